//! Whether a change of `spec.routing` moves users to other frontends, and what that does
//! to their sessions. The operator remembers the placement it applied last
//! (`status.routing`); a new spec whose provider or affinity key differs sends every user
//! with affinity to a different frontend at once (each proxy hashes and names its cookies
//! its own way), so the change is worth a warning that says what happens to the sessions.

use crate::api::{AffinityMode, HashSource, IngressDialect, ProviderType, RoutingSpec, Strategy};
use crate::build::DEFAULT_COOKIE_NAME;
use crate::validate::dialect;

pub use crate::api::RoutingStatus;

/// What implements the affinity and on which key, as remembered in `status.routing`.
pub fn placement(routing: &RoutingSpec) -> RoutingStatus {
    let provider = match routing.provider.type_ {
        ProviderType::Service => "Service".to_owned(),
        ProviderType::GatewayApi => "GatewayAPI".to_owned(),
        ProviderType::Ingress => format!(
            "Ingress/{}",
            match dialect(routing) {
                IngressDialect::Nginx => "Nginx",
                IngressDialect::Traefik => "Traefik",
                IngressDialect::HaProxy => "HAProxy",
            }
        ),
    };
    let affinity = &routing.affinity;
    let (mode, key) = match affinity.mode {
        AffinityMode::None => ("None", String::new()),
        AffinityMode::ClientIp => ("ClientIP", "client address".to_owned()),
        AffinityMode::Cookie => (
            "Cookie",
            format!(
                "cookie {}",
                affinity
                    .cookie
                    .as_ref()
                    .and_then(|c| c.name.as_deref())
                    .unwrap_or(DEFAULT_COOKIE_NAME)
            ),
        ),
        AffinityMode::Hash => (
            "Hash",
            affinity.hash.as_ref().map_or_else(String::new, |h| {
                let source = match h.source {
                    HashSource::Header => "header",
                    HashSource::Cookie => "cookie",
                    HashSource::Query => "query parameter",
                };
                format!("{source} {}", h.name)
            }),
        ),
    };
    RoutingStatus {
        provider,
        affinity: mode.to_owned(),
        key,
    }
}

/// The outcome of comparing the remembered placement with the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing remembered yet (a new SessionCluster, or one from before this field).
    First,
    /// Same provider, mode and key: every user stays where they are.
    Unchanged,
    /// The routing changed, but nobody had a placement to lose (mode None before).
    Harmless { message: String },
    /// Every user with affinity lands on another frontend.
    Remapped { reason: Reason, message: String },
}

/// Why users are remapped, as a stable CamelCase word for Events and conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Another proxy (or dialect) hashes and names its cookies its own way.
    ProviderChanged,
    /// Same proxy, another affinity mode or key.
    AffinityKeyChanged,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::ProviderChanged => "ProviderChanged",
            Reason::AffinityKeyChanged => "AffinityKeyChanged",
        }
    }
}

fn describe(p: &RoutingStatus) -> String {
    if p.key.is_empty() {
        format!("{} with affinity {}", p.provider, p.affinity)
    } else {
        format!("{} with affinity {} on {}", p.provider, p.affinity, p.key)
    }
}

/// What a remapped user's session goes through, by strategy.
pub fn sessions_after_remap(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::Store => {
            "strategy Store: nothing is lost, every frontend reads every session from the store; users just land on another frontend"
        }
        Strategy::Client => {
            "strategy Client: nothing is lost, the session travels in the user's cookie and every frontend opens it; users just land on another frontend"
        }
        Strategy::Replicated => {
            "strategy Replicated: nothing is lost, every frontend holds every session; users just land on another frontend"
        }
        Strategy::Sticky => {
            "strategy Sticky: sessions stay on the frontend that holds them and are found there via forwarding from the frontend a user now lands on, so nobody is logged out"
        }
    }
}

/// Compares the remembered placement with the one the new spec asks for.
pub fn assess(
    previous: Option<&RoutingStatus>,
    next: &RoutingStatus,
    strategy: Strategy,
) -> Change {
    let Some(prev) = previous else {
        return Change::First;
    };
    if prev == next {
        return Change::Unchanged;
    }
    let from_to = format!("{} -> {}", describe(prev), describe(next));
    if prev.affinity == "None" {
        return Change::Harmless {
            message: format!("routing changed ({from_to}); no user had a placement to lose"),
        };
    }
    let reason = if prev.provider != next.provider {
        Reason::ProviderChanged
    } else {
        Reason::AffinityKeyChanged
    };
    let landing = if next.affinity == "None" {
        "every user's requests now spread over all frontends"
    } else {
        "every user with affinity is remapped to a frontend chosen anew"
    };
    Change::Remapped {
        reason,
        message: format!(
            "routing changed ({from_to}): {landing}; {}",
            sessions_after_remap(strategy)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn routing(v: serde_json::Value) -> RoutingSpec {
        serde_json::from_value(v).unwrap()
    }

    fn hash_on(provider: serde_json::Value, source: &str, name: &str) -> RoutingStatus {
        placement(&routing(json!({
            "affinity": {"mode": "Hash", "hash": {"source": source, "name": name}},
            "provider": provider,
        })))
    }

    fn nginx() -> serde_json::Value {
        json!({"type": "Ingress", "ingress": {"dialect": "Nginx"}})
    }

    fn gateway() -> serde_json::Value {
        json!({"type": "GatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "web"}]}})
    }

    #[test]
    fn placement_names_provider_mode_and_key() {
        assert_eq!(
            hash_on(nginx(), "Header", "X-User"),
            RoutingStatus {
                provider: "Ingress/Nginx".into(),
                affinity: "Hash".into(),
                key: "header X-User".into()
            }
        );
        let cookie = placement(&routing(json!({
            "affinity": {"mode": "Cookie"},
            "provider": {"type": "Ingress", "ingress": {"dialect": "Traefik"}},
        })));
        assert_eq!(cookie.provider, "Ingress/Traefik");
        assert_eq!(cookie.key, "cookie sp-affinity");
        // An Ingress without settings is dialect Nginx.
        let plain = placement(&routing(json!({"provider": {"type": "Ingress"}})));
        assert_eq!(plain.provider, "Ingress/Nginx");
        assert_eq!(plain.affinity, "None");
        assert_eq!(plain.key, "");
        let ip = placement(&routing(json!({"affinity": {"mode": "ClientIP"}})));
        assert_eq!(
            (ip.provider.as_str(), ip.key.as_str()),
            ("Service", "client address")
        );
    }

    #[test]
    fn nothing_remembered_or_nothing_changed_says_nothing() {
        let p = hash_on(nginx(), "Header", "X-User");
        assert_eq!(assess(None, &p, Strategy::Store), Change::First);
        assert_eq!(assess(Some(&p), &p, Strategy::Store), Change::Unchanged);
    }

    #[test]
    fn a_new_provider_remaps_every_hashed_user() {
        let before = hash_on(nginx(), "Header", "X-User");
        let after = hash_on(gateway(), "Header", "X-User");
        match assess(Some(&before), &after, Strategy::Store) {
            Change::Remapped { reason, message } => {
                assert_eq!(reason, Reason::ProviderChanged);
                assert!(
                    message.contains(
                        "Ingress/Nginx with affinity Hash on header X-User -> GatewayAPI"
                    ),
                    "{message}"
                );
                assert!(message.contains("remapped"), "{message}");
                assert!(message.contains("nothing is lost"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_new_hash_key_or_mode_remaps_with_the_key_reason() {
        let before = hash_on(nginx(), "Header", "X-User");
        for after in [
            hash_on(nginx(), "Header", "X-Account"),
            hash_on(nginx(), "Cookie", "X-User"),
            placement(&routing(
                json!({"affinity": {"mode": "ClientIP"}, "provider": nginx()}),
            )),
        ] {
            assert!(
                matches!(
                    assess(Some(&before), &after, Strategy::Client),
                    Change::Remapped {
                        reason: Reason::AffinityKeyChanged,
                        ..
                    }
                ),
                "{after:?}"
            );
        }
    }

    #[test]
    fn dropping_affinity_spreads_users_and_says_so() {
        let before = hash_on(nginx(), "Query", "uid");
        let after = placement(&routing(json!({"provider": nginx()})));
        let Change::Remapped { message, .. } = assess(Some(&before), &after, Strategy::Replicated)
        else {
            panic!("dropping Hash must warn");
        };
        assert!(message.contains("spread over all frontends"), "{message}");
        assert!(
            message.contains("every frontend holds every session"),
            "{message}"
        );
    }

    #[test]
    fn sticky_sessions_are_found_via_forwarding() {
        let before = placement(&routing(
            json!({"affinity": {"mode": "Cookie"}, "provider": nginx()}),
        ));
        let after = placement(&routing(json!({
            "affinity": {"mode": "Cookie"},
            "provider": {"type": "Ingress", "ingress": {"dialect": "Traefik"}},
        })));
        let Change::Remapped { reason, message } = assess(Some(&before), &after, Strategy::Sticky)
        else {
            panic!("a cookie from one proxy means nothing to another");
        };
        assert_eq!(reason, Reason::ProviderChanged);
        assert!(message.contains("via forwarding"), "{message}");
        assert!(message.contains("nobody is logged out"), "{message}");
    }

    #[test]
    fn changes_without_a_placement_to_lose_are_harmless() {
        // From no affinity, anything: nobody was pinned anywhere.
        let none = placement(&routing(json!({"provider": nginx()})));
        let hashed = hash_on(gateway(), "Header", "X-User");
        assert!(matches!(
            assess(Some(&none), &hashed, Strategy::Store),
            Change::Harmless { .. }
        ));
        // Same provider and key: a cookie's max age or a ClientIP timeout changes nobody's frontend.
        let a = placement(&routing(
            json!({"affinity": {"mode": "Cookie", "cookie": {"name": "sid"}}, "provider": nginx()}),
        ));
        let b = placement(&routing(
            json!({"affinity": {"mode": "Cookie", "cookie": {"name": "sid", "maxAgeSeconds": 60}}, "provider": nginx()}),
        ));
        assert_eq!(assess(Some(&a), &b, Strategy::Store), Change::Unchanged);
    }

    #[test]
    fn every_pair_of_placements_is_classified_consistently() {
        let providers = [
            json!({"type": "Service"}),
            nginx(),
            json!({"type": "Ingress", "ingress": {"dialect": "HAProxy"}}),
            gateway(),
        ];
        let affinities = [
            json!({"mode": "None"}),
            json!({"mode": "ClientIP"}),
            json!({"mode": "Cookie"}),
            json!({"mode": "Hash", "hash": {"source": "Header", "name": "X-User"}}),
            json!({"mode": "Hash", "hash": {"source": "Query", "name": "uid"}}),
        ];
        let all: Vec<RoutingStatus> = providers
            .iter()
            .flat_map(|p| {
                affinities
                    .iter()
                    .map(move |a| placement(&routing(json!({"affinity": a, "provider": p}))))
            })
            .collect();
        for a in &all {
            for b in &all {
                let change = assess(Some(a), b, Strategy::Store);
                let expected_remap = a.affinity != "None" && a != b;
                assert_eq!(
                    matches!(change, Change::Remapped { .. }),
                    expected_remap,
                    "{a:?} -> {b:?}: {change:?}"
                );
                assert_eq!(change == Change::Unchanged, a == b, "{a:?} -> {b:?}");
            }
        }
    }
}
