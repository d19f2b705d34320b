//! Strategies Sticky and Replicated: sessions live in an agent next to each
//! frontend (`sessionplane agent`): a native sidecar (an init container with
//! restartPolicy Always, so it is up before the app and stops after it) running
//! the operator's image, and a headless Service for peer discovery.
//!
//! The agent keeps its data in an emptyDir: it outlives a crash of the agent
//! container (the restarted agent comes back with its sessions, fsync always)
//! and goes with the pod, whose sessions are handed off before that (Sticky).

use super::labels::{selector_for, Component};
use super::{
    names, object, BuildInputs, Desired, Owner, ADMIN_PORT, PASSWORD_KEY, PEER_PORT, REDIS_PORT,
};
use crate::api::Strategy;
use crate::validate::AGENT_CONTAINER;
use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, Volume};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Volume of the agent's data (an emptyDir).
pub const AGENT_DATA_VOLUME: &str = "sessionplane-agent-data";
/// Where the agent keeps its data.
pub const AGENT_DATA_DIR: &str = "/var/lib/sessionplane";
/// Seconds of the pod's grace period the agent leaves for the app to stop and itself
/// to flush, out of the handoff grace.
const HANDOFF_MARGIN_SECONDS: i64 = 5;

/// terminationGracePeriodSeconds of a frontend pod: at least the handoff grace of
/// strategy Sticky, so a leaving pod's agent has time to hand its sessions over.
pub(crate) fn grace_period(owner: &Owner<'_>, template_grace: Option<i64>) -> Option<i64> {
    match owner.sc.spec.strategy {
        Strategy::Sticky => {
            let handoff = owner
                .sc
                .spec
                .sticky
                .clone()
                .unwrap_or_default()
                .handoff_grace_period_seconds;
            Some(template_grace.unwrap_or(0).max(handoff))
        }
        _ => template_grace,
    }
}

/// The agent's data volume.
pub(crate) fn data_volume() -> Volume {
    Volume {
        name: AGENT_DATA_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

/// The agent sidecar of a frontend pod. The app reaches it on 127.0.0.1:6379.
pub(crate) fn sidecar(owner: &Owner<'_>, inputs: &BuildInputs, grace: Option<i64>) -> Value {
    let image = owner
        .sc
        .spec
        .store
        .image
        .clone()
        .unwrap_or_else(|| inputs.default_image.clone());
    let handoff = grace.map_or(60, |g| (g - HANDOFF_MARGIN_SECONDS).max(1));
    let mut sidecar = json!({
        "name": AGENT_CONTAINER,
        "image": image,
        "args": ["agent"],
        "restartPolicy": "Always",
        "ports": [
            {"name": "sp-peer", "containerPort": PEER_PORT, "protocol": "TCP"},
            {"name": "sp-admin", "containerPort": ADMIN_PORT, "protocol": "TCP"},
        ],
        "envFrom": [{"configMapRef": {"name": names::config(owner.name)}}],
        "env": [
            {"name": "SESSIONPLANE_NODE_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "SESSIONPLANE_PASSWORD", "valueFrom": {"secretKeyRef": {"name": names::store_auth(owner.name), "key": PASSWORD_KEY}}},
            {"name": "SESSIONPLANE_LISTEN", "value": format!("127.0.0.1:{REDIS_PORT}")},
            {"name": "SESSIONPLANE_PEER_LISTEN", "value": format!("0.0.0.0:{PEER_PORT}")},
            {"name": "SESSIONPLANE_ADMIN_LISTEN", "value": format!("0.0.0.0:{ADMIN_PORT}")},
            // Replicated: peers learn a new agent from its first ping, before the peers
            // Service's DNS lists the pod.
            {"name": "SESSIONPLANE_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "SESSIONPLANE_ADVERTISE_ADDR", "value": format!("$(SESSIONPLANE_POD_IP):{PEER_PORT}")},
            // Sticky: the ring's data and how long a leaving agent may take to hand it off.
            {"name": "SESSIONPLANE_DATA_DIR", "value": AGENT_DATA_DIR},
            {"name": "SESSIONPLANE_HANDOFF_SECONDS", "value": handoff.to_string()},
        ],
        "volumeMounts": [{"name": AGENT_DATA_VOLUME, "mountPath": AGENT_DATA_DIR}],
        // Ready once it can serve sessions (Sticky: follows a ring epoch; Replicated: has
        // pulled the sessions from a peer): before that the app's session commands would
        // fail, so the pod stays out of the Service.
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "sp-admin"},
            "periodSeconds": 1,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "sp-admin"},
            "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 6,
        },
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "runAsUser": super::store::STORE_UID,
            "capabilities": {"drop": ["ALL"]},
        },
    });
    if owner.sc.spec.strategy == Strategy::Replicated {
        // A native sidecar's startup probe holds the app containers back: the app starts
        // only once the agent has pulled the sessions from a peer and answers on localhost.
        // 60 s covers the agent's 15 s wait for a ready peer and the pull. (A Sticky agent
        // is ready once the operator has put its pod in the ring, which can wait for a
        // running migration, so there the app starts at once and readiness gates traffic.)
        sidecar["startupProbe"] = json!({
            "httpGet": {"path": "/readyz", "port": "sp-admin"},
            "periodSeconds": 1, "timeoutSeconds": 2, "failureThreshold": 60,
        });
    }
    sidecar
}

/// Lets every agent find its peers, ready or not (gossip starts before readiness).
pub(crate) fn peers_service(owner: &Owner<'_>) -> Desired {
    object(
        owner,
        "v1",
        "Service",
        names::peers(owner.name),
        Component::Frontend,
        BTreeMap::new(),
        json!({"spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": true,
            "selector": selector_for(owner.name, Component::Frontend),
            "ports": [{"name": "peer", "port": PEER_PORT, "targetPort": "sp-peer", "protocol": "TCP"}],
        }}),
    )
}
