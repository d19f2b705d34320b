//! Strategy Store: the store StatefulSet, its headless and client Services,
//! and its PodDisruptionBudget.

use super::config::CONFIG_HASH_ANNOTATION;
use super::labels::{labels_for, selector_for, Component};
use super::{
    names, object, BuildError, BuildInputs, Desired, Owner, ADMIN_PORT, PASSWORD_KEY, PEER_PORT,
    REDIS_PORT,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// UID and GID the store runs as (the image's non-root user).
pub const STORE_UID: i64 = 65532;
const DATA_VOLUME: &str = "data";
const DATA_DIR: &str = "/data";
/// How long a store pod that is being deleted keeps serving before it gets SIGTERM. The
/// pod leaves the client Service's endpoints the moment it is marked for deletion, but
/// kube-proxy on every node applies that a moment later; a node that closed its clients
/// at once would see them reconnect through the Service straight back to its own dead
/// address (refused, or unreachable for seconds once its network is gone). Sleeping in
/// preStop (the kubelet's own action, no binary in the image) lets them reconnect to a
/// pod that stays. Counted within terminationGracePeriodSeconds.
pub const STORE_DRAIN_SECONDS: i64 = 5;

pub(crate) fn objects(
    owner: &Owner<'_>,
    inputs: &BuildInputs,
    config_hash: &str,
) -> Result<Vec<Desired>, BuildError> {
    Ok(vec![
        headless_service(owner),
        client_service(owner),
        stateful_set(owner, inputs, config_hash),
        disruption_budget(owner),
    ])
}

fn ports() -> Value {
    json!([
        {"name": "redis", "port": REDIS_PORT, "targetPort": "redis", "protocol": "TCP"},
        {"name": "peer", "port": PEER_PORT, "targetPort": "peer", "protocol": "TCP"},
        {"name": "admin", "port": ADMIN_PORT, "targetPort": "admin", "protocol": "TCP"},
    ])
}

/// Gives each store pod a stable DNS name. Not-ready pods are published
/// because a node becomes ready only once it serves a ring configuration,
/// and its peers must reach it before that.
fn headless_service(owner: &Owner<'_>) -> Desired {
    object(
        owner,
        "v1",
        "Service",
        names::store_headless(owner.name),
        Component::Store,
        BTreeMap::new(),
        json!({"spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": true,
            "selector": selector_for(owner.name, Component::Store),
            "ports": ports(),
        }}),
    )
}

/// What the frontends connect to (any node forwards to a partition's owner).
fn client_service(owner: &Owner<'_>) -> Desired {
    object(
        owner,
        "v1",
        "Service",
        names::store(owner.name),
        Component::Store,
        BTreeMap::new(),
        json!({"spec": {
            "type": "ClusterIP",
            "selector": selector_for(owner.name, Component::Store),
            "ports": [{"name": "redis", "port": REDIS_PORT, "targetPort": "redis", "protocol": "TCP"}],
        }}),
    )
}

/// podManagementPolicy is Parallel, not OrderedReady: a store node is ready
/// only once it serves a ring configuration, and the operator writes the
/// first one only when every member is up, so OrderedReady would wait for
/// pod 0's readiness forever. Ordered scale-down is not needed either: the
/// operator drains the leaving ordinals before it lowers replicas.
/// Rolling updates still go one pod at a time, highest ordinal first.
fn stateful_set(owner: &Owner<'_>, inputs: &BuildInputs, config_hash: &str) -> Desired {
    let store = &owner.sc.spec.store;
    let image = store
        .image
        .clone()
        .unwrap_or_else(|| inputs.default_image.clone());
    let mut container = json!({
        "name": "store",
        "image": image,
        "args": ["store"],
        "ports": [
            {"name": "redis", "containerPort": REDIS_PORT, "protocol": "TCP"},
            {"name": "peer", "containerPort": PEER_PORT, "protocol": "TCP"},
            {"name": "admin", "containerPort": ADMIN_PORT, "protocol": "TCP"},
        ],
        "envFrom": [{"configMapRef": {"name": names::config(owner.name)}}],
        "env": [
            {"name": "SESSIONPLANE_NODE_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "SESSIONPLANE_PASSWORD", "valueFrom": {"secretKeyRef": {"name": names::store_auth(owner.name), "key": PASSWORD_KEY}}},
            {"name": "SESSIONPLANE_LISTEN", "value": format!("0.0.0.0:{REDIS_PORT}")},
            {"name": "SESSIONPLANE_PEER_LISTEN", "value": format!("0.0.0.0:{PEER_PORT}")},
            {"name": "SESSIONPLANE_ADMIN_LISTEN", "value": format!("0.0.0.0:{ADMIN_PORT}")},
            {"name": "SESSIONPLANE_DATA_DIR", "value": DATA_DIR},
            // In the store pods' own template, not the shared settings: a change rolls
            // the store, not the frontends.
            {"name": "SESSIONPLANE_COMMAND_TIMEOUT_MS", "value": (i64::from(store.command_timeout_seconds) * 1000).to_string()},
        ],
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "admin"},
            "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "admin"},
            "initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 6,
        },
        "lifecycle": {"preStop": {"sleep": {"seconds": STORE_DRAIN_SECONDS}}},
        "volumeMounts": [{"name": DATA_VOLUME, "mountPath": DATA_DIR}],
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "capabilities": {"drop": ["ALL"]},
        },
    });
    if let Some(resources) = &store.resources {
        container["resources"] = serde_json::to_value(resources).unwrap_or(Value::Null);
    }
    let mut pod_spec = json!({
        "containers": [container],
        "terminationGracePeriodSeconds": 30,
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": STORE_UID,
            "runAsGroup": STORE_UID,
            "fsGroup": STORE_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        // Replicas of a partition go to distinct nodes; spreading the pods
        // makes "distinct nodes" mean distinct machines where possible.
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100,
            "podAffinityTerm": {
                "topologyKey": "kubernetes.io/hostname",
                "labelSelector": {"matchLabels": selector_for(owner.name, Component::Store)},
            },
        }]}},
    });
    let mut spec = json!({
        "serviceName": names::store_headless(owner.name),
        "replicas": store.replicas.max(inputs.store_pods_floor),
        "podManagementPolicy": "Parallel",
        "updateStrategy": {"type": "RollingUpdate"},
        "selector": {"matchLabels": selector_for(owner.name, Component::Store)},
        "template": {
            "metadata": {
                "labels": labels_for(owner.name, Component::Store),
                "annotations": {CONFIG_HASH_ANNOTATION: config_hash},
            },
        },
    });
    match &store.persistence {
        None => {
            pod_spec["volumes"] = json!([{"name": DATA_VOLUME, "emptyDir": {}}]);
        }
        Some(p) => {
            let mut claim = json!({
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": p.size}},
            });
            if let Some(class) = &p.storage_class_name {
                claim["storageClassName"] = json!(class);
            }
            spec["volumeClaimTemplates"] = json!([{
                "metadata": {"name": DATA_VOLUME},
                "spec": claim,
            }]);
        }
    }
    spec["template"]["spec"] = pod_spec;
    object(
        owner,
        "apps/v1",
        "StatefulSet",
        names::store(owner.name),
        Component::Store,
        BTreeMap::new(),
        json!({ "spec": spec }),
    )
}

/// One voluntary disruption at a time. With replicationFactor ≥ 2 that never
/// takes a partition's last replica (replicas sit on distinct nodes). With
/// replicationFactor 1 there is no second copy to protect; 0 would block
/// every node drain forever, so 1 it is, and the data survives on the
/// volume when persistence is set.
fn disruption_budget(owner: &Owner<'_>) -> Desired {
    object(
        owner,
        "policy/v1",
        "PodDisruptionBudget",
        names::store(owner.name),
        Component::Store,
        BTreeMap::new(),
        json!({"spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_for(owner.name, Component::Store)},
        }}),
    )
}
