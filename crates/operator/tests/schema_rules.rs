//! The schema's CEL rules (evaluated client-side by kube's CEL engine, the same
//! expressions the API server runs) and `validate()` agree: each invalid case
//! is rejected by both, with the field named in both messages.

use serde_json::{json, Value};
use sessionplane_operator::api::SessionCluster;
use sessionplane_operator::validate::validate;

const CASES: &str = include_str!("fixtures/sessioncluster_cases.json");

fn fixture() -> Value {
    serde_json::from_str(CASES).expect("fixtures/sessioncluster_cases.json is JSON")
}

fn base() -> Value {
    let mut b = fixture()["base"].clone();
    b["metadata"]["namespace"] = json!("default");
    b
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

#[test]
fn the_base_fixture_is_valid() {
    let sc = cluster(json!({}));
    assert_eq!(cel_errors(&sc), Vec::<String>::new());
    assert_eq!(validate(&sc.spec), Ok(()));
}

/// Every case of the shared fixture: valid ones pass CEL and validate();
/// invalid ones are rejected, with the field named, by every layer that
/// sees them outside the API server.
#[test]
fn the_shared_cases_hold_outside_the_api_server() {
    let cases = fixture()["cases"].as_array().cloned().expect("cases");
    assert!(cases.len() >= 50, "{} cases", cases.len());
    for case in cases {
        let what = case["what"].as_str().expect("what");
        let mut v = base();
        merge(&mut v, &case["patch"]);
        let Some(field) = case["field"].as_str() else {
            let sc: SessionCluster = serde_json::from_value(v).expect(what);
            assert_eq!(cel_errors(&sc), Vec::<String>::new(), "{what}");
            assert_eq!(validate(&sc.spec), Ok(()), "{what}");
            continue;
        };
        let parsed = serde_json::from_value::<SessionCluster>(v);
        if case["validate"] == false {
            assert!(
                parsed.is_err(),
                "{what}: expected the Rust types to refuse it"
            );
            continue;
        }
        let sc = parsed.expect(what);
        if case["cel"] == true {
            let cel = cel_errors(&sc);
            assert!(
                cel.iter().any(|m| m.contains(field)),
                "{what}: CEL said {cel:?}, not naming {field}"
            );
        }
        let err = if field == "metadata.name" {
            sessionplane_operator::validate::validate_name(
                sc.metadata.name.as_deref().unwrap_or_default(),
            )
        } else {
            validate(&sc.spec)
        }
        .expect_err(what);
        assert!(
            err.to_string().contains(field),
            "{what}: validate() said {err}, not naming {field}"
        );
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

/// What the schema cannot see inside the opaque pod template, validate() does.
#[test]
fn pod_template_problems_are_reported_not_dropped() {
    let template = |t: Value| json!({"spec": {"frontend": {"template": t}}});
    let cases = [
        (
            template(
                json!({"spec": {"containers": [{"name": "web", "image": "a", "imagePullPolcy": "Always"}]}}),
            ),
            "spec.containers[0].imagePullPolcy is not a field",
        ),
        (
            template(json!({"spec": {"containers": "web"}})),
            "is not a valid PodTemplateSpec",
        ),
        (
            template(json!({"spec": {"containers": []}})),
            "at least one container",
        ),
        (
            json!({"spec": {"frontend": {"containerName": "app"}}}),
            "no container is named \"app\"",
        ),
        (
            template(
                json!({"metadata": {"labels": {"sessionplane.dev/cluster": "x"}}, "spec": {"containers": [{"name": "web", "image": "a"}]}}),
            ),
            "metadata.labels[\"sessionplane.dev/cluster\"]",
        ),
        (
            json!({"spec": {"strategy": "Sticky", "routing": {"affinity": {"mode": "ClientIP"}}, "frontend": {"template": {"spec": {"containers": [{"name": "sessionplane-agent", "image": "a"}]}}}}}),
            "reserved for the sessionplane agent",
        ),
        (
            json!({"spec": {"strategy": "Client", "frontend": {"template": {"spec": {"containers": [{"name": "web", "image": "a"}], "volumes": [{"name": "sessionplane-keyring", "emptyDir": {}}]}}}}}),
            "reserved for the cookie keyring",
        ),
    ];
    for (patch, expected) in cases {
        // The SessionCluster itself always deserializes: a bad template must
        // not break the controller's watch.
        let sc = cluster(patch.clone());
        let err = validate(&sc.spec).expect_err(expected);
        let msg = err.to_string();
        assert!(msg.starts_with("spec.frontend.template"), "{msg}");
        assert!(msg.contains(expected), "{patch}: {msg}");
        assert_eq!(err.label(), "invalid_template");
    }
    // Fields of the real type, including nested ones, pass.
    let ok = cluster(template(json!({
        "metadata": {"labels": {"app": "shop"}, "annotations": {"a": "b"}},
        "spec": {"containers": [{"name": "web", "image": "a", "imagePullPolicy": "Always",
            "ports": [{"containerPort": 3000}], "resources": {"limits": {"cpu": "500m"}},
            "readinessProbe": {"httpGet": {"path": "/", "port": 3000}}}],
            "nodeSelector": {"disk": "ssd"}}
    })));
    assert_eq!(validate(&ok.spec), Ok(()));
}
