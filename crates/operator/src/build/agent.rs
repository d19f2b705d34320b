//! Strategies Sticky and Replicated: sessions live in an agent next to each
//! frontend. The agent's data plane (`sessionplane agent`) comes with a later
//! issue; this module gives it its place: a native sidecar (an init container
//! with restartPolicy Always, so it is up before the app and stops after it)
//! running the operator's image, and a headless Service for peer discovery.

use super::labels::{selector_for, Component};
use super::{
    names, object, BuildInputs, Desired, Owner, ADMIN_PORT, PASSWORD_KEY, PEER_PORT, REDIS_PORT,
};
use crate::validate::AGENT_CONTAINER;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The agent sidecar of a frontend pod. The app reaches it on 127.0.0.1:6379.
pub(crate) fn sidecar(owner: &Owner<'_>, inputs: &BuildInputs) -> Value {
    let image = owner
        .sc
        .spec
        .store
        .image
        .clone()
        .unwrap_or_else(|| inputs.default_image.clone());
    json!({
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
            // Peers learn a new agent from its first ping, before the peers Service's
            // DNS lists the pod.
            {"name": "SESSIONPLANE_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "SESSIONPLANE_ADVERTISE_ADDR", "value": format!("$(SESSIONPLANE_POD_IP):{PEER_PORT}")},
        ],
        // A native sidecar's startup probe holds the app containers back: the app
        // starts only once the agent has pulled the sessions from a peer (Replicated)
        // and answers on localhost. 60 s covers the agent's 15 s wait for a ready peer
        // and the pull.
        "startupProbe": {
            "httpGet": {"path": "/readyz", "port": "sp-admin"},
            "periodSeconds": 1, "timeoutSeconds": 2, "failureThreshold": 60,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "sp-admin"},
            "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3,
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
    })
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
