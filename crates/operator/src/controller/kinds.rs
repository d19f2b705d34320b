//! Which owned kinds the API server serves, resolved once at start-up by discovery.
//!
//! Gateway API and Envoy Gateway kinds are CRDs that a cluster may not have: those are
//! remembered as missing, not watched, and skipped with a warning when desired.

use std::collections::BTreeMap;

use kube::core::{ApiResource, GroupVersionKind};
use kube::Client;

use crate::error::Error;

/// A kind as the builders name it: `apiVersion` and `kind`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KindKey {
    pub api_version: String,
    pub kind: String,
}

impl KindKey {
    pub fn new(api_version: &str, kind: &str) -> Self {
        KindKey {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        }
    }

    pub fn gvk(&self) -> GroupVersionKind {
        let (group, version) = match self.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", self.api_version.as_str()),
        };
        GroupVersionKind::gvk(group, version, &self.kind)
    }
}

impl std::fmt::Display for KindKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.kind, self.api_version)
    }
}

/// The owned kinds, split into served and missing.
#[derive(Debug, Clone, Default)]
pub struct Kinds {
    served: BTreeMap<KindKey, ApiResource>,
    missing: Vec<KindKey>,
}

impl Kinds {
    /// Asks the API server about each kind; a 404 means "not installed".
    pub async fn discover(client: &Client, kinds: &[KindKey]) -> Result<Kinds, Error> {
        let mut out = Kinds::default();
        for key in kinds {
            match kube::discovery::pinned_kind(client, &key.gvk()).await {
                Ok((ar, _caps)) => {
                    out.served.insert(key.clone(), ar);
                }
                Err(err) if is_not_found(&err) => {
                    tracing::warn!(kind = %key, "kind is not served by the API server (CRD not installed?); objects of this kind are skipped");
                    out.missing.push(key.clone());
                }
                Err(source) => {
                    return Err(Error::Discovery {
                        kind: key.to_string(),
                        source,
                    });
                }
            }
        }
        Ok(out)
    }

    pub fn get(&self, key: &KindKey) -> Option<&ApiResource> {
        self.served.get(key)
    }

    pub fn served(&self) -> impl Iterator<Item = (&KindKey, &ApiResource)> {
        self.served.iter()
    }

    pub fn missing(&self) -> &[KindKey] {
        &self.missing
    }
}

/// Discovery reports an absent group or kind either as a 404 from the server or as its
/// own "not found in discovery" error.
fn is_not_found(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(s) => s.code == 404,
        kube::Error::Discovery(d) => {
            !matches!(d, kube::error::DiscoveryError::InvalidGroupVersion(_))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_api_version_into_group_and_version() {
        let core = KindKey::new("v1", "Service").gvk();
        assert_eq!(
            (
                core.group.as_str(),
                core.version.as_str(),
                core.kind.as_str()
            ),
            ("", "v1", "Service")
        );
        let apps = KindKey::new("apps/v1", "Deployment").gvk();
        assert_eq!((apps.group.as_str(), apps.version.as_str()), ("apps", "v1"));
        let gw = KindKey::new("gateway.networking.k8s.io/v1", "HTTPRoute");
        assert_eq!(gw.gvk().group, "gateway.networking.k8s.io");
        assert_eq!(gw.to_string(), "HTTPRoute.gateway.networking.k8s.io/v1");
    }

    #[test]
    fn only_absence_counts_as_not_installed() {
        use kube::error::DiscoveryError;
        let missing =
            kube::Error::Discovery(DiscoveryError::MissingKind("BackendTrafficPolicy".into()));
        let no_group = kube::Error::Discovery(DiscoveryError::MissingApiGroup(
            "gateway.envoyproxy.io".into(),
        ));
        let not_found = kube::Error::Api(Box::new(
            kube::core::Status::failure("nope", "NotFound").with_code(404),
        ));
        assert!(is_not_found(&missing) && is_not_found(&no_group) && is_not_found(&not_found));
        let bug = kube::Error::Discovery(DiscoveryError::InvalidGroupVersion("a/b/c".into()));
        let forbidden = kube::Error::Api(Box::new(
            kube::core::Status::failure("no", "Forbidden").with_code(403),
        ));
        assert!(!is_not_found(&bug) && !is_not_found(&forbidden));
    }
}
