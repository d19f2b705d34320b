//! Labels, selectors and the owner reference every owned object carries.

use super::Owner;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Value of app.kubernetes.io/managed-by on every owned object.
pub const MANAGED_BY: &str = "sessionplane";
/// Label naming the SessionCluster an object belongs to.
pub const CLUSTER_LABEL: &str = "sessionplane.dev/cluster";

/// Which part of a SessionCluster an object belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Frontend,
    Store,
    Routing,
    Config,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Frontend => "frontend",
            Self::Store => "store",
            Self::Routing => "routing",
            Self::Config => "config",
        }
    }
}

/// Labels of an owned object (and of the pods of its workloads).
pub fn labels_for(cluster: &str, component: Component) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "sessionplane".into()),
        ("app.kubernetes.io/instance".into(), cluster.into()),
        (
            "app.kubernetes.io/component".into(),
            component.as_str().into(),
        ),
        ("app.kubernetes.io/managed-by".into(), MANAGED_BY.into()),
        (CLUSTER_LABEL.into(), cluster.into()),
    ])
}

/// The selector of a workload's pods: stable for the life of the cluster
/// (a Deployment's or StatefulSet's selector is immutable).
pub fn selector_for(cluster: &str, component: Component) -> BTreeMap<String, String> {
    BTreeMap::from([
        (CLUSTER_LABEL.into(), cluster.into()),
        (
            "app.kubernetes.io/component".into(),
            component.as_str().into(),
        ),
    ])
}

/// The frontend pod selector as a string, for status.frontend.selector (the
/// scale subresource's labelSelectorPath).
pub fn frontend_selector(cluster: &str) -> String {
    selector_for(cluster, Component::Frontend)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn owner_reference(owner: &Owner<'_>) -> Value {
    json!({
        "apiVersion": format!("{}/{}", crate::api::GROUP, crate::api::VERSION),
        "kind": "SessionCluster",
        "name": owner.name,
        "uid": owner.uid,
        "controller": true,
        "blockOwnerDeletion": true,
    })
}
