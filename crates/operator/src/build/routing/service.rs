//! What the frontend Service carries for routing: kube-proxy's ClientIP
//! affinity (provider Service), and Traefik's sticky-cookie annotations,
//! which Traefik reads from the Service, not from the Ingress.

use super::{with_user_annotations, DEFAULT_COOKIE_NAME};
use crate::api::{AffinityMode, IngressDialect, ProviderType, SameSite};
use crate::build::{BuildError, Owner};
use crate::validate::dialect;
use std::collections::BTreeMap;

/// kube-proxy's default ClientIP affinity timeout (3 hours).
pub const DEFAULT_CLIENT_IP_TIMEOUT: i32 = 10_800;
const TRAEFIK: &str = "traefik.ingress.kubernetes.io/service.sticky.cookie";

pub(crate) struct ServiceSettings {
    pub session_affinity: &'static str,
    pub client_ip_timeout_seconds: Option<i32>,
    pub annotations: BTreeMap<String, String>,
}

pub(crate) fn settings(owner: &Owner<'_>) -> Result<ServiceSettings, BuildError> {
    let routing = &owner.sc.spec.routing;
    let affinity = &routing.affinity;
    let mut out = ServiceSettings {
        session_affinity: "None",
        client_ip_timeout_seconds: None,
        annotations: BTreeMap::new(),
    };
    match routing.provider.type_ {
        ProviderType::Service => {
            if affinity.mode == AffinityMode::ClientIp {
                out.session_affinity = "ClientIP";
                out.client_ip_timeout_seconds = Some(
                    affinity
                        .client_ip_timeout_seconds
                        .unwrap_or(DEFAULT_CLIENT_IP_TIMEOUT),
                );
            }
            // With provider Service the Service is the routing object.
            out.annotations = with_user_annotations(owner, BTreeMap::new())?;
        }
        ProviderType::Ingress
            if dialect(routing) == IngressDialect::Traefik
                && affinity.mode == AffinityMode::Cookie =>
        {
            out.annotations = traefik_sticky(owner);
        }
        _ => {}
    }
    Ok(out)
}

fn traefik_sticky(owner: &Owner<'_>) -> BTreeMap<String, String> {
    let cookie = owner
        .sc
        .spec
        .routing
        .affinity
        .cookie
        .clone()
        .unwrap_or_default();
    let mut a = BTreeMap::new();
    a.insert(TRAEFIK.to_string(), "true".to_string());
    a.insert(
        format!("{TRAEFIK}.name"),
        cookie.name.unwrap_or_else(|| DEFAULT_COOKIE_NAME.into()),
    );
    a.insert(format!("{TRAEFIK}.httponly"), "true".into());
    if let Some(secure) = cookie.secure {
        a.insert(format!("{TRAEFIK}.secure"), secure.to_string());
    }
    if let Some(same_site) = cookie.same_site {
        let v = match same_site {
            SameSite::Lax => "lax",
            SameSite::Strict => "strict",
            SameSite::None => "none",
        };
        a.insert(format!("{TRAEFIK}.samesite"), v.into());
    }
    if let Some(age) = cookie.max_age_seconds {
        a.insert(format!("{TRAEFIK}.maxage"), age.to_string());
    }
    if let Some(path) = cookie.path {
        a.insert(format!("{TRAEFIK}.path"), path);
    }
    a
}
