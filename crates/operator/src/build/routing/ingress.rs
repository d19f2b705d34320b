//! Provider Ingress (networking.k8s.io/v1), with the affinity in the
//! annotations of the chosen controller.

use super::{with_user_annotations, DEFAULT_COOKIE_NAME};
use crate::api::{AffinityMode, CookieSpec, HashSource, IngressDialect, SameSite};
use crate::build::labels::Component;
use crate::build::{names, object, BuildError, Desired, Owner, FRONTEND_SERVICE_PORT};
use crate::validate::dialect;
use serde_json::json;
use std::collections::BTreeMap;

const NGINX: &str = "nginx.ingress.kubernetes.io";
const HAPROXY: &str = "haproxy-ingress.github.io";

pub(crate) fn ingress(owner: &Owner<'_>) -> Result<Desired, BuildError> {
    let routing = &owner.sc.spec.routing;
    let ours = match dialect(routing) {
        IngressDialect::Nginx => nginx(owner),
        IngressDialect::HaProxy => haproxy(owner),
        // Traefik reads sticky cookies from the Service (see routing::service).
        IngressDialect::Traefik => BTreeMap::new(),
    };
    let annotations = with_user_annotations(owner, ours)?;
    let backend = json!({"service": {
        "name": names::frontend(owner.name),
        "port": {"number": FRONTEND_SERVICE_PORT},
    }});
    let mut rule =
        json!({"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}});
    if let Some(host) = &routing.host {
        rule["host"] = json!(host);
    }
    let mut spec = json!({ "rules": [rule] });
    if let Some(class) = routing
        .provider
        .ingress
        .as_ref()
        .and_then(|i| i.class_name.as_ref())
    {
        spec["ingressClassName"] = json!(class);
    }
    if let (Some(secret), Some(host)) = (&routing.tls_secret_name, &routing.host) {
        spec["tls"] = json!([{"hosts": [host], "secretName": secret}]);
    }
    Ok(object(
        owner,
        "networking.k8s.io/v1",
        "Ingress",
        names::frontend(owner.name),
        Component::Routing,
        annotations,
        json!({ "spec": spec }),
    ))
}

fn cookie(owner: &Owner<'_>) -> CookieSpec {
    owner
        .sc
        .spec
        .routing
        .affinity
        .cookie
        .clone()
        .unwrap_or_default()
}

fn same_site_name(s: SameSite) -> &'static str {
    match s {
        SameSite::Lax => "Lax",
        SameSite::Strict => "Strict",
        SameSite::None => "None",
    }
}

/// ingress-nginx: `affinity: cookie` with session-cookie-*, or
/// `upstream-hash-by` (consistent hashing) for ClientIP and Hash.
fn nginx(owner: &Owner<'_>) -> BTreeMap<String, String> {
    let affinity = &owner.sc.spec.routing.affinity;
    let mut a = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        a.insert(format!("{NGINX}/{k}"), v);
    };
    match affinity.mode {
        AffinityMode::None => {}
        AffinityMode::ClientIp => put("upstream-hash-by", "$remote_addr".into()),
        AffinityMode::Cookie => {
            let c = cookie(owner);
            put("affinity", "cookie".into());
            put(
                "session-cookie-name",
                c.name.unwrap_or_else(|| DEFAULT_COOKIE_NAME.into()),
            );
            if let Some(age) = c.max_age_seconds {
                put("session-cookie-max-age", age.to_string());
            }
            if let Some(path) = c.path {
                put("session-cookie-path", path);
            }
            if let Some(s) = c.same_site {
                put("session-cookie-samesite", same_site_name(s).into());
            }
            if let Some(secure) = c.secure {
                put("session-cookie-secure", secure.to_string());
            }
        }
        AffinityMode::Hash => {
            if let Some(h) = &affinity.hash {
                // nginx exposes headers as $http_<lowercase, '-' → '_'>.
                let var = match h.source {
                    HashSource::Header => {
                        format!("$http_{}", h.name.to_ascii_lowercase().replace('-', "_"))
                    }
                    HashSource::Cookie => format!("$cookie_{}", h.name),
                    HashSource::Query => format!("$arg_{}", h.name),
                };
                put("upstream-hash-by", var);
            }
        }
    }
    a
}

/// HAProxy Ingress: `affinity: cookie` with the cookie's attributes as HAProxy
/// `cookie` keywords, or `balance-algorithm` (source, hdr(), url_param).
fn haproxy(owner: &Owner<'_>) -> BTreeMap<String, String> {
    let affinity = &owner.sc.spec.routing.affinity;
    let mut a = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        a.insert(format!("{HAPROXY}/{k}"), v);
    };
    match affinity.mode {
        AffinityMode::None => {}
        AffinityMode::ClientIp => put("balance-algorithm", "source".into()),
        AffinityMode::Cookie => {
            let c = cookie(owner);
            put("affinity", "cookie".into());
            put(
                "session-cookie-name",
                c.name.unwrap_or_else(|| DEFAULT_COOKIE_NAME.into()),
            );
            // HAProxy Ingress's default keywords, plus one `attr` per attribute
            // HAProxy has no dedicated keyword for.
            let mut keywords = vec!["indirect".to_string(), "nocache".into(), "httponly".into()];
            if c.secure == Some(true) {
                keywords.push("secure".into());
            }
            if let Some(s) = c.same_site {
                keywords.push(format!("attr SameSite={}", same_site_name(s)));
            }
            if let Some(age) = c.max_age_seconds {
                keywords.push(format!("attr Max-Age={age}"));
            }
            put("session-cookie-keywords", keywords.join(" "));
        }
        AffinityMode::Hash => {
            if let Some(h) = &affinity.hash {
                match h.source {
                    HashSource::Header => put("balance-algorithm", format!("hdr({})", h.name)),
                    HashSource::Query => put("balance-algorithm", format!("url_param {}", h.name)),
                    // Rejected by validate_routing; nothing to translate.
                    HashSource::Cookie => {}
                }
            }
        }
    }
    a
}
