//! Server-side apply of the desired objects and pruning of the ones no longer desired.
//!
//! One field manager, `sessionplane`, with force: the operator owns every field it sets
//! and takes a field back when someone edits it by hand. An apply that changes nothing
//! does not change the object's `resourceVersion`, so a steady-state reconcile writes nothing.

use std::collections::BTreeSet;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::ApiResource;
use kube::{Client, ResourceExt};
use serde_json::Value;

use crate::error::Error;

/// The field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "sessionplane";
/// Label on every object the operator creates: the name of its SessionCluster.
pub const CLUSTER_LABEL: &str = "sessionplane.dev/cluster";

/// What an apply did to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

impl Outcome {
    /// Compares the resourceVersion before and after: the server only bumps it on a real write.
    pub fn from_versions(before: Option<&str>, after: Option<&str>) -> Outcome {
        match before {
            None => Outcome::Created,
            Some(b) if Some(b) == after => Outcome::Unchanged,
            Some(_) => Outcome::Updated,
        }
    }
}

/// Applies one object and reports whether that created, changed or left it alone.
pub async fn apply(
    client: &Client,
    ar: &ApiResource,
    namespace: &str,
    name: &str,
    object: &Value,
) -> Result<(Outcome, DynamicObject), Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, ar);
    let err = |source| Error::Apply {
        kind: ar.kind.clone(),
        name: name.to_owned(),
        source,
    };
    let before = api.get_metadata_opt(name).await.map_err(err)?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let after = api
        .patch(name, &params, &Patch::Apply(object))
        .await
        .map_err(err)?;
    let outcome = Outcome::from_versions(
        before
            .as_ref()
            .and_then(|b| b.metadata.resource_version.as_deref()),
        after.metadata.resource_version.as_deref(),
    );
    Ok((outcome, after))
}

/// Deletes objects of one kind that carry the cluster's label, are controlled by the
/// SessionCluster with `owner_uid`, and are not in `keep`. Returns the deleted names.
pub async fn prune(
    client: &Client,
    ar: &ApiResource,
    namespace: &str,
    cluster: &str,
    owner_uid: &str,
    keep: &BTreeSet<String>,
) -> Result<Vec<String>, Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, ar);
    let err = |source| Error::Prune {
        kind: ar.kind.clone(),
        source,
    };
    let selector = format!("{CLUSTER_LABEL}={cluster}");
    let list = api
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .map_err(err)?;
    let mut deleted = Vec::new();
    for item in list.items {
        let name = item.name_any();
        let ours = item
            .owner_references()
            .iter()
            .any(|o| o.uid == owner_uid && o.controller == Some(true));
        if !ours || keep.contains(&name) {
            continue;
        }
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => deleted.push(name),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_follows_the_resource_version() {
        assert_eq!(Outcome::from_versions(None, Some("5")), Outcome::Created);
        assert_eq!(
            Outcome::from_versions(Some("5"), Some("5")),
            Outcome::Unchanged
        );
        assert_eq!(
            Outcome::from_versions(Some("5"), Some("6")),
            Outcome::Updated
        );
    }
}
