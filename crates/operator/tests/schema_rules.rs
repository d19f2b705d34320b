//! The schema's CEL rules (evaluated client-side by kube's CEL engine, the same
//! expressions the API server runs) and `validate()` agree: each invalid case
//! is rejected by both, with the field named in both messages.

use serde_json::{json, Value};
use sessionplane_operator::api::SessionCluster;
use sessionplane_operator::validate::validate;

fn base() -> Value {
    json!({
        "apiVersion": "sessionplane.dev/v1alpha1",
        "kind": "SessionCluster",
        "metadata": {"name": "shop", "namespace": "default"},
        "spec": {
            "frontend": {
                "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}
            }
        }
    })
}

/// Deep-merges `patch` into `target` (objects merge, everything else replaces).
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn cluster(patch: Value) -> SessionCluster {
    let mut v = base();
    merge(&mut v, &patch);
    serde_json::from_value(v).expect("fixture deserializes")
}

fn cel_errors(sc: &SessionCluster) -> Vec<String> {
    match sc.validate_cel() {
        Ok(()) => vec![],
        Err(e) => vec![e.to_string()],
    }
}

/// (what is wrong, patch, field that both messages must name)
fn invalid_cases() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        (
            "hash mode without key",
            json!({"spec": {"routing": {"affinity": {"mode": "Hash"}, "provider": {"type": "Ingress"}}}}),
            "spec.routing.affinity.hash",
        ),
        (
            "cookie settings without Cookie mode",
            json!({"spec": {"routing": {"affinity": {"mode": "ClientIP", "cookie": {"name": "a"}}}}}),
            "spec.routing.affinity.cookie",
        ),
        (
            "hash settings without Hash mode",
            json!({"spec": {"routing": {"affinity": {"mode": "None", "hash": {"source": "Header", "name": "X-User"}}}}}),
            "spec.routing.affinity.hash",
        ),
        (
            "Cookie mode on a Service",
            json!({"spec": {"routing": {"affinity": {"mode": "Cookie"}, "provider": {"type": "Service"}}}}),
            "spec.routing.affinity.mode",
        ),
        (
            "Hash mode on a Service",
            json!({"spec": {"routing": {"affinity": {"mode": "Hash", "hash": {"source": "Header", "name": "X-User"}}, "provider": {"type": "Service"}}}}),
            "spec.routing.affinity.mode",
        ),
        (
            "GatewayAPI without parentRefs",
            json!({"spec": {"routing": {"provider": {"type": "GatewayAPI"}}}}),
            "spec.routing.provider.gatewayAPI",
        ),
        (
            "gatewayAPI block with Ingress",
            json!({"spec": {"routing": {"provider": {"type": "Ingress", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}}}}),
            "spec.routing.provider.gatewayAPI",
        ),
        (
            "ingress block with Service",
            json!({"spec": {"routing": {"provider": {"type": "Service", "ingress": {"dialect": "Traefik"}}}}}),
            "spec.routing.provider.ingress",
        ),
        (
            "SameSite=None without secure",
            json!({"spec": {"routing": {"affinity": {"mode": "Cookie", "cookie": {"sameSite": "None"}}, "provider": {"type": "Ingress"}}}}),
            "spec.routing.affinity.cookie.secure",
        ),
        (
            "Traefik with ClientIP",
            json!({"spec": {"routing": {"affinity": {"mode": "ClientIP"}, "provider": {"type": "Ingress", "ingress": {"dialect": "Traefik"}}}}}),
            "spec.routing.affinity.mode",
        ),
        (
            "Traefik with Hash",
            json!({"spec": {"routing": {"affinity": {"mode": "Hash", "hash": {"source": "Query", "name": "u"}}, "provider": {"type": "Ingress", "ingress": {"dialect": "Traefik"}}}}}),
            "spec.routing.affinity.mode",
        ),
        (
            "HAProxy hashing a cookie",
            json!({"spec": {"routing": {"affinity": {"mode": "Hash", "hash": {"source": "Cookie", "name": "u"}}, "provider": {"type": "Ingress", "ingress": {"dialect": "HAProxy"}}}}}),
            "spec.routing.affinity.hash.source",
        ),
        (
            "HAProxy cookie path",
            json!({"spec": {"routing": {"affinity": {"mode": "Cookie", "cookie": {"path": "/app"}}, "provider": {"type": "Ingress", "ingress": {"dialect": "HAProxy"}}}}}),
            "spec.routing.affinity.cookie.path",
        ),
        (
            "Nginx cookie hash with a dash",
            json!({"spec": {"routing": {"affinity": {"mode": "Hash", "hash": {"source": "Cookie", "name": "user-id"}}, "provider": {"type": "Ingress"}}}}),
            "spec.routing.affinity.hash.name",
        ),
        (
            "GatewayAPI cookie sameSite",
            json!({"spec": {"routing": {"affinity": {"mode": "Cookie", "cookie": {"sameSite": "Lax"}}, "provider": {"type": "GatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}}}}),
            "spec.routing.affinity.cookie",
        ),
        (
            "clientIP timeout on Ingress",
            json!({"spec": {"routing": {"affinity": {"mode": "ClientIP", "clientIPTimeoutSeconds": 60}, "provider": {"type": "Ingress"}}}}),
            "spec.routing.affinity.clientIPTimeoutSeconds",
        ),
        (
            "clientIP timeout without ClientIP",
            json!({"spec": {"routing": {"affinity": {"mode": "None", "clientIPTimeoutSeconds": 60}}}}),
            "spec.routing.affinity.clientIPTimeoutSeconds",
        ),
        (
            "host on a Service",
            json!({"spec": {"routing": {"host": "shop.example.com"}}}),
            "spec.routing.host",
        ),
        (
            "TLS without host",
            json!({"spec": {"routing": {"tlsSecretName": "tls", "provider": {"type": "Ingress"}}}}),
            "spec.routing.host",
        ),
        (
            "TLS on GatewayAPI",
            json!({"spec": {"routing": {"host": "a.example.com", "tlsSecretName": "tls", "provider": {"type": "GatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}}}}),
            "spec.routing.tlsSecretName",
        ),
        (
            "replication factor above replicas",
            json!({"spec": {"store": {"replicas": 2, "replicationFactor": 3}}}),
            "spec.store.replicationFactor",
        ),
        (
            "client block with Store",
            json!({"spec": {"client": {"rotationIntervalSeconds": 3600}}}),
            "spec.client",
        ),
        (
            "replicated block with Store",
            json!({"spec": {"replicated": {"propagation": "Sync"}}}),
            "spec.replicated",
        ),
        (
            "sticky block with Store",
            json!({"spec": {"sticky": {"replicationFactor": 1}}}),
            "spec.sticky",
        ),
        (
            "Sticky without affinity",
            json!({"spec": {"strategy": "Sticky"}}),
            "spec.routing.affinity.mode",
        ),
        (
            "Client with large sessions",
            json!({"spec": {"strategy": "Client", "sessions": {"maxSessionBytes": 8192}}}),
            "spec.sessions.maxSessionBytes",
        ),
        (
            "Client keyring shorter than TTL",
            json!({"spec": {"strategy": "Client", "client": {"rotationIntervalSeconds": 3600, "retainedKeys": 2}}}),
            "spec.client.rotationIntervalSeconds",
        ),
        (
            "name too long",
            json!({"metadata": {"name": "a-very-long-session-cluster-name-that-overflows"}}),
            "metadata.name",
        ),
        (
            "name starting with a digit",
            json!({"metadata": {"name": "1shop"}}),
            "metadata.name",
        ),
    ]
}

#[test]
fn the_base_fixture_is_valid() {
    let sc = cluster(json!({}));
    assert_eq!(cel_errors(&sc), Vec::<String>::new());
    assert_eq!(validate(&sc.spec), Ok(()));
}

#[test]
fn every_invalid_case_is_rejected_by_the_schema_and_by_validate() {
    for (what, patch, field) in invalid_cases() {
        let sc = cluster(patch);
        let cel = cel_errors(&sc);
        assert!(!cel.is_empty(), "{what}: the schema accepted it");
        assert!(
            cel.iter().any(|m| m.contains(field)),
            "{what}: CEL message {cel:?} does not name {field}"
        );
        if field == "metadata.name" {
            let name = sc.metadata.name.clone().unwrap_or_default();
            let err = sessionplane_operator::validate::validate_name(&name).expect_err(what);
            assert!(err.to_string().contains(field), "{what}: {err}");
            continue;
        }
        let err = validate(&sc.spec).expect_err(what);
        assert!(
            err.to_string().contains(field),
            "{what}: validate() said {err:?} ({err}), which does not name {field}"
        );
    }
}

#[test]
fn valid_combinations_pass_both() {
    let ok = [
        json!({"spec": {"routing": {"affinity": {"mode": "ClientIP", "clientIPTimeoutSeconds": 600}}}}),
        json!({"spec": {"routing": {"affinity": {"mode": "Cookie", "cookie": {"name": "route", "sameSite": "None", "secure": true, "maxAgeSeconds": 3600, "path": "/"}}, "provider": {"type": "Ingress"}, "host": "shop.example.com", "tlsSecretName": "shop-tls"}}}),
        json!({"spec": {"routing": {"affinity": {"mode": "Hash", "hash": {"source": "Header", "name": "X-User-Id"}}, "provider": {"type": "GatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw", "namespace": "infra", "sectionName": "https"}]}}}}}),
        json!({"spec": {"routing": {"affinity": {"mode": "Cookie", "cookie": {"name": "route", "maxAgeSeconds": 600}}, "provider": {"type": "GatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}}}}),
        json!({"spec": {"routing": {"affinity": {"mode": "Hash", "hash": {"source": "Query", "name": "user"}}, "provider": {"type": "Ingress", "ingress": {"dialect": "HAProxy", "className": "haproxy"}}}}}),
        json!({"spec": {"routing": {"affinity": {"mode": "Cookie", "cookie": {"path": "/shop", "sameSite": "Strict"}}, "provider": {"type": "Ingress", "ingress": {"dialect": "Traefik"}}}}}),
        json!({"spec": {"strategy": "Sticky", "sticky": {"replicationFactor": 1}, "routing": {"affinity": {"mode": "ClientIP"}}}}),
        json!({"spec": {"strategy": "Replicated", "replicated": {"propagation": "Sync"}}}),
        json!({"spec": {"strategy": "Client", "client": {"rotationIntervalSeconds": 43200, "retainedKeys": 4}, "sessions": {"maxSessionBytes": 4096}}}),
        json!({"spec": {"store": {"replicas": 5, "replicationFactor": 3, "partitions": 4096, "persistence": {"size": "2Gi", "storageClassName": "fast", "fsync": "Always"}}}}),
    ];
    for patch in ok {
        let sc = cluster(patch.clone());
        assert_eq!(cel_errors(&sc), Vec::<String>::new(), "{patch}");
        assert_eq!(validate(&sc.spec), Ok(()), "{patch}");
    }
}

#[test]
fn partitions_and_volumes_are_immutable() {
    let old =
        cluster(json!({"spec": {"store": {"partitions": 1024, "persistence": {"size": "1Gi"}}}}));
    let same = old.clone();
    assert!(same.validate_cel_update(&old).is_ok());
    assert!(sessionplane_operator::validate::validate_update(&old.spec, &same.spec).is_ok());
    let cases = [
        (
            json!({"spec": {"store": {"partitions": 2048, "persistence": {"size": "1Gi"}}}}),
            "spec.store.partitions",
        ),
        (
            json!({"spec": {"store": {"partitions": 1024, "persistence": {"size": "2Gi"}}}}),
            "spec.store.persistence",
        ),
        (
            json!({"spec": {"store": {"partitions": 1024}}}),
            "spec.store.persistence",
        ),
    ];
    for (patch, field) in cases {
        let new = cluster(patch.clone());
        let err = new
            .validate_cel_update(&old)
            .expect_err("transition rule fires")
            .to_string();
        assert!(err.contains(field), "{patch}: {err}");
        let err = sessionplane_operator::validate::validate_update(&old.spec, &new.spec)
            .expect_err("immutable");
        assert!(err.to_string().contains(field), "{patch}: {err}");
        assert_eq!(err.label(), "immutable");
    }
}

#[test]
fn cel_messages_are_the_rule_messages() {
    let sc = cluster(json!({"spec": {"store": {"replicas": 2, "replicationFactor": 3}}}));
    let msg = cel_errors(&sc).join("\n");
    assert!(
        msg.contains("spec.store.replicationFactor must be at most spec.store.replicas"),
        "{msg}"
    );
}
