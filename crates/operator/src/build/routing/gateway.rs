//! Provider GatewayAPI: an HTTPRoute to the user's Gateway, with
//! sessionPersistence for Cookie (Gateway API experimental channel), and an
//! Envoy Gateway BackendTrafficPolicy with a consistent hash for ClientIP and Hash.

use super::with_user_annotations;
use crate::api::{AffinityMode, HashSource};
use crate::build::labels::Component;
use crate::build::{names, object, BuildError, Desired, Owner, FRONTEND_SERVICE_PORT};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub(crate) fn objects(owner: &Owner<'_>) -> Result<Vec<Desired>, BuildError> {
    let mut out = vec![http_route(owner)?];
    if let Some(policy) = backend_traffic_policy(owner) {
        out.push(policy);
    }
    Ok(out)
}

/// A Gateway API Duration (`^([0-9]{1,5}(h|m|s|ms)){1,4}$`): each unit holds at
/// most five digits, so seconds are split into hours, minutes and seconds.
pub fn duration(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, (seconds % 3600) / 60, seconds % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

fn http_route(owner: &Owner<'_>) -> Result<Desired, BuildError> {
    let routing = &owner.sc.spec.routing;
    let parent_refs: Vec<Value> = routing
        .provider
        .gateway_api
        .as_ref()
        .map(|g| g.parent_refs.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let mut v = json!({
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "name": r.name,
            });
            if let Some(ns) = &r.namespace {
                v["namespace"] = json!(ns);
            }
            if let Some(section) = &r.section_name {
                v["sectionName"] = json!(section);
            }
            v
        })
        .collect();
    let mut rule = json!({
        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
        "backendRefs": [{
            "group": "",
            "kind": "Service",
            "name": names::frontend(owner.name),
            "port": FRONTEND_SERVICE_PORT,
            "weight": 1,
        }],
    });
    if routing.affinity.mode == AffinityMode::Cookie {
        let cookie = routing.affinity.cookie.clone().unwrap_or_default();
        let mut persistence = json!({
            "sessionName": cookie.name.unwrap_or_else(|| super::DEFAULT_COOKIE_NAME.into()),
            "type": "Cookie",
        });
        match cookie.max_age_seconds {
            Some(age) => {
                persistence["absoluteTimeout"] = json!(duration(age));
                persistence["cookieConfig"] = json!({"lifetimeType": "Permanent"});
            }
            None => persistence["cookieConfig"] = json!({"lifetimeType": "Session"}),
        }
        rule["sessionPersistence"] = persistence;
    }
    let mut spec = json!({ "parentRefs": parent_refs, "rules": [rule] });
    if let Some(host) = &routing.host {
        spec["hostnames"] = json!([host]);
    }
    Ok(object(
        owner,
        "gateway.networking.k8s.io/v1",
        "HTTPRoute",
        names::frontend(owner.name),
        Component::Routing,
        with_user_annotations(owner, BTreeMap::new())?,
        json!({ "spec": spec }),
    ))
}

/// Envoy Gateway's consistent hash (Maglev) on the route's backends. Uses the
/// list forms `Headers` and `QueryParams` (the single `Header` form is deprecated).
fn backend_traffic_policy(owner: &Owner<'_>) -> Option<Desired> {
    let affinity = &owner.sc.spec.routing.affinity;
    let hash = match affinity.mode {
        AffinityMode::ClientIp => json!({"type": "SourceIP"}),
        AffinityMode::Hash => {
            let h = affinity.hash.as_ref()?;
            match h.source {
                HashSource::Header => json!({"type": "Headers", "headers": [{"name": h.name}]}),
                HashSource::Cookie => json!({"type": "Cookie", "cookie": {"name": h.name}}),
                HashSource::Query => {
                    json!({"type": "QueryParams", "queryParams": [{"name": h.name}]})
                }
            }
        }
        AffinityMode::None | AffinityMode::Cookie => return None,
    };
    Some(object(
        owner,
        "gateway.envoyproxy.io/v1alpha1",
        "BackendTrafficPolicy",
        names::frontend(owner.name),
        Component::Routing,
        BTreeMap::new(),
        json!({"spec": {
            "targetRefs": [{
                "group": "gateway.networking.k8s.io",
                "kind": "HTTPRoute",
                "name": names::frontend(owner.name),
            }],
            "loadBalancer": {"type": "ConsistentHash", "consistentHash": hash},
        }}),
    ))
}
