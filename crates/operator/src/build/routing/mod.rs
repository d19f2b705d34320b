//! Routing: what the chosen provider needs to express the affinity mode.
//! `validate_routing` has already rejected what a provider cannot express,
//! so these builders translate every combination they receive.

pub(crate) mod gateway;
pub(crate) mod ingress;
pub(crate) mod service;

use super::{BuildError, Desired, Owner};
use crate::api::ProviderType;
use std::collections::BTreeMap;

/// Default name of the affinity cookie.
pub const DEFAULT_COOKIE_NAME: &str = "sp-affinity";

pub(crate) fn objects(owner: &Owner<'_>) -> Result<Vec<Desired>, BuildError> {
    let routing = &owner.sc.spec.routing;
    match routing.provider.type_ {
        // The frontend Service itself carries the affinity.
        ProviderType::Service => Ok(vec![]),
        ProviderType::Ingress => Ok(vec![ingress::ingress(owner)?]),
        ProviderType::GatewayApi => gateway::objects(owner),
    }
}

/// The user's spec.routing.annotations plus sessionplane's own, refusing a
/// user key that sessionplane sets (it would be silently overwritten otherwise).
pub(crate) fn with_user_annotations(
    owner: &Owner<'_>,
    ours: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, BuildError> {
    let mut out = owner.sc.spec.routing.annotations.clone();
    for (k, v) in ours {
        if out.contains_key(&k) {
            return Err(BuildError::AnnotationConflict { key: k });
        }
        out.insert(k, v);
    }
    Ok(out)
}
