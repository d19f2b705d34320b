//! Pure builders: a SessionCluster (plus the secrets the controller read or
//! generated) in, the full objects to server-side apply out. No I/O, no clock,
//! no randomness: the same input gives byte-identical output, so a reconcile
//! with nothing changed writes nothing.

mod agent;
mod config;
mod frontend;
mod labels;
pub mod names;
mod routing;
mod secrets;
mod store;
#[cfg(test)]
mod tests;

use crate::api::{SessionCluster, Strategy};
use crate::validate::{validate, validate_name, ValidationError};
use serde_json::Value;
use std::collections::BTreeMap;

pub use config::config_hash;
pub use labels::{
    frontend_selector, labels_for, selector_for, Component, CLUSTER_LABEL, MANAGED_BY,
};
pub use routing::DEFAULT_COOKIE_NAME;

/// Container port of the Redis protocol (store nodes and agents).
pub const REDIS_PORT: i32 = 6379;
/// Container port of the node-to-node RPC (replication, forwarding, gossip).
pub const PEER_PORT: i32 = 7379;
/// Container port of the admin HTTP API (/healthz, /readyz, /metrics).
pub const ADMIN_PORT: i32 = 9379;
/// Port of the frontend Service; it forwards to spec.frontend.port.
pub const FRONTEND_SERVICE_PORT: i32 = 80;
/// Where the keyring Secret is mounted in the frontend container (strategy Client).
pub const KEYRING_MOUNT_PATH: &str = "/var/run/sessionplane/keyring";
/// Key of the store password in the `<name>-store-auth` Secret.
pub const PASSWORD_KEY: &str = "password";

/// One object to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// apiVersion, for example `apps/v1`.
    pub api_version: String,
    /// kind, for example `Deployment`.
    pub kind: String,
    /// metadata.name.
    pub name: String,
    /// metadata.namespace (the SessionCluster's).
    pub namespace: String,
    /// The full object, with apiVersion, kind and metadata, ready for server-side apply.
    pub object: Value,
}

/// What the controller reads or generates and hands to the builders, so the
/// builders themselves stay free of I/O and randomness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInputs {
    /// Password of the session store (`<name>-store-auth`): read from the
    /// existing Secret, or generated once. Must be URL-safe (letters, digits,
    /// `-`, `_`, `.`, `~`) because it is spliced into REDIS_URL.
    pub store_password: String,
    /// Data of the `<name>-keyring` Secret for strategy Client, entry name to
    /// bytes, verbatim. Required for strategy Client, ignored otherwise.
    pub cookie_keyring: Option<BTreeMap<String, Vec<u8>>>,
    /// Image for store nodes and agents when spec.store.image is unset: the
    /// operator's own image (one binary, one image).
    pub default_image: String,
    /// Store pods that must keep running although spec.store.replicas may be lower:
    /// the ring still lists them (they are being drained). The StatefulSet shrinks only
    /// once the ring driver has confirmed, from the nodes' own status, that they hold nothing.
    pub store_pods_floor: i32,
}

/// Why the desired objects could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The spec or the name is invalid (the message names the field).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The SessionCluster lacks metadata the objects need (it was not read from the API server).
    #[error("{field} is missing: build from a SessionCluster read from the API server")]
    MissingMetadata { field: &'static str },
    /// The controller did not provide an input the strategy needs.
    #[error("build input {input} is missing: {reason}")]
    MissingInput {
        input: &'static str,
        reason: &'static str,
    },
    /// An input the controller provided has the wrong form.
    #[error("build input {input} is invalid: {reason}")]
    BadInput {
        input: &'static str,
        reason: &'static str,
    },
    /// spec.routing.annotations sets a key sessionplane sets itself.
    #[error("spec.routing.annotations[{key:?}] is set by sessionplane for the chosen affinity; remove it")]
    AnnotationConflict { key: String },
}

impl BuildError {
    /// Stable short label for metrics and Event reasons.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Invalid(e) => e.label(),
            Self::MissingMetadata { .. } => "missing_metadata",
            Self::MissingInput { .. } => "missing_input",
            Self::BadInput { .. } => "bad_input",
            Self::AnnotationConflict { .. } => "annotation_conflict",
        }
    }
}

/// The SessionCluster's identity, checked once, shared by every builder.
pub(crate) struct Owner<'a> {
    pub sc: &'a SessionCluster,
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
}

impl<'a> Owner<'a> {
    fn new(sc: &'a SessionCluster) -> Result<Self, BuildError> {
        let name = sc
            .metadata
            .name
            .as_deref()
            .ok_or(BuildError::MissingMetadata {
                field: "metadata.name",
            })?;
        let namespace = sc
            .metadata
            .namespace
            .as_deref()
            .ok_or(BuildError::MissingMetadata {
                field: "metadata.namespace",
            })?;
        let uid = sc
            .metadata
            .uid
            .as_deref()
            .ok_or(BuildError::MissingMetadata {
                field: "metadata.uid",
            })?;
        Ok(Self {
            sc,
            name,
            namespace,
            uid,
        })
    }
}

/// Every object a SessionCluster should own, in a fixed order.
pub fn desired_objects(
    sc: &SessionCluster,
    inputs: &BuildInputs,
) -> Result<Vec<Desired>, BuildError> {
    let owner = Owner::new(sc)?;
    validate_name(owner.name)?;
    validate(&sc.spec)?;
    check_inputs(sc.spec.strategy, inputs)?;

    let mut out = Vec::new();
    let config = config::config_map(&owner);
    let hash = config::config_hash(&config);
    out.push(config);
    if uses_store_password(sc.spec.strategy) {
        out.push(secrets::store_auth(&owner, &inputs.store_password));
    }
    if sc.spec.strategy == Strategy::Client {
        if let Some(keyring) = &inputs.cookie_keyring {
            out.push(secrets::keyring(&owner, keyring));
        }
    }
    match sc.spec.strategy {
        Strategy::Store => out.extend(store::objects(&owner, inputs, &hash)?),
        Strategy::Sticky | Strategy::Replicated => out.push(agent::peers_service(&owner)),
        Strategy::Client => {}
    }
    out.push(frontend::deployment(&owner, inputs, &hash)?);
    out.push(frontend::service(&owner)?);
    out.extend(routing::objects(&owner)?);
    Ok(out)
}

/// The (apiVersion, kind) of everything `desired_objects` may return, so the
/// controller knows what to watch and where to look for orphans to prune.
pub fn owned_kinds() -> Vec<(&'static str, &'static str)> {
    vec![
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Service"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
        ("policy/v1", "PodDisruptionBudget"),
        ("networking.k8s.io/v1", "Ingress"),
        ("gateway.networking.k8s.io/v1", "HTTPRoute"),
        ("gateway.envoyproxy.io/v1alpha1", "BackendTrafficPolicy"),
    ]
}

fn uses_store_password(strategy: Strategy) -> bool {
    strategy != Strategy::Client
}

fn check_inputs(strategy: Strategy, inputs: &BuildInputs) -> Result<(), BuildError> {
    if uses_store_password(strategy) {
        let p = &inputs.store_password;
        if p.len() < 16 {
            return Err(BuildError::BadInput {
                input: "store_password",
                reason: "must be at least 16 characters",
            });
        }
        if !p
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
        {
            return Err(BuildError::BadInput {
                input: "store_password",
                reason: "must be URL-safe (letters, digits, '-', '_', '.', '~'): it is spliced into REDIS_URL",
            });
        }
    }
    if strategy == Strategy::Client && inputs.cookie_keyring.as_ref().is_none_or(|k| k.is_empty()) {
        return Err(BuildError::MissingInput {
            input: "cookie_keyring",
            reason: "strategy Client mounts the keyring Secret into the frontends",
        });
    }
    let bad_key = |k: &String| {
        k.is_empty()
            || k.len() > 253
            || !k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    if strategy == Strategy::Client
        && inputs
            .cookie_keyring
            .as_ref()
            .is_some_and(|k| k.keys().any(bad_key))
    {
        return Err(BuildError::BadInput {
            input: "cookie_keyring",
            reason: "entry names must be Secret keys (letters, digits, '-', '_', '.')",
        });
    }
    if inputs.default_image.trim().is_empty() {
        return Err(BuildError::MissingInput {
            input: "default_image",
            reason:
                "store nodes and agents run the operator's image unless spec.store.image is set",
        });
    }
    Ok(())
}

/// Builds an object's skeleton with metadata, labels and the owner reference.
pub(crate) fn object(
    owner: &Owner<'_>,
    api_version: &str,
    kind: &str,
    name: String,
    component: Component,
    annotations: BTreeMap<String, String>,
    body: Value,
) -> Desired {
    let mut metadata = serde_json::json!({
        "name": name,
        "namespace": owner.namespace,
        "labels": labels_for(owner.name, component),
        "ownerReferences": [labels::owner_reference(owner)],
    });
    if !annotations.is_empty() {
        metadata["annotations"] = serde_json::json!(annotations);
    }
    let mut object = serde_json::json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": metadata,
    });
    if let (Some(obj), Value::Object(fields)) = (object.as_object_mut(), body) {
        obj.extend(fields);
    }
    Desired {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name,
        namespace: owner.namespace.to_string(),
        object,
    }
}
