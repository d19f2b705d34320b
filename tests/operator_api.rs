//! The SessionCluster API against a real kube-apiserver: the CRD installs, every example
//! applies, and the API server itself rejects bad input with a message naming the field.
//!
//! Needs the local control plane: `bash hack/cluster.sh up && eval "$(bash hack/cluster.sh env)"`.

mod operator_support;

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use operator_support::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_installs_with_status_scale_and_printer_columns() {
    let client = client().await;
    ensure_crd(&client).await;
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get(CRD_NAME)
        .await
        .unwrap();
    let crd = serde_json::to_value(crd).unwrap();
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert!(
        version["subresources"]["status"].is_object(),
        "status subresource: {version}"
    );
    let scale = &version["subresources"]["scale"];
    assert_eq!(
        scale["specReplicasPath"], ".spec.frontend.replicas",
        "{scale}"
    );
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for want in [
        "Strategy", "Affinity", "Frontend", "Store", "Epoch", "Phase", "Age",
    ] {
        assert!(
            columns.contains(&want),
            "printer column {want} missing from {columns:?}"
        );
    }
    // `kubectl explain` works because every field has a description.
    // The API server publishes a new CRD's OpenAPI a few seconds after it is Established.
    let mut out = kubectl(&["explain", "sessioncluster.spec.routing"]);
    for _ in 0..30 {
        if out.status.success() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        out = kubectl(&["explain", "sessioncluster.spec.routing"]);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubectl explain failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("affinity") && text.contains("provider"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_applies() {
    let client = client().await;
    ensure_crd(&client).await;
    let ns = TestNs::new(&client, "op-examples").await;
    let dir = repo_root().join("manifests/examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "one example per strategy expected in {dir:?}, found {files:?}"
    );
    let mut strategies = Vec::new();
    for file in &files {
        let rel = file
            .strip_prefix(repo_root())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut obj = manifest(&rel);
        strategies.push(
            obj["spec"]["strategy"]
                .as_str()
                .unwrap_or("Store")
                .to_owned(),
        );
        obj["metadata"]["namespace"] = json!(ns.name);
        let name = obj["metadata"]["name"].as_str().unwrap().to_owned();
        let dynobj: DynamicObject = serde_json::from_value(obj).unwrap();
        ns.sessionclusters()
            .patch(
                &name,
                &PatchParams::apply("sessionplane-tests"),
                &Patch::Apply(&dynobj),
            )
            .await
            .unwrap_or_else(|e| panic!("{rel} was rejected: {e}"));
    }
    strategies.sort();
    assert_eq!(strategies, ["Client", "Replicated", "Sticky", "Store"]);
    ns.cleanup().await;
}

/// Sets `value` at a dotted path (creating objects on the way); `null` removes the key.
fn set(doc: &mut Value, path: &str, value: Value) {
    let mut cur = doc;
    let parts: Vec<&str> = path.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        if cur.get(*p).is_none() {
            cur[*p] = json!({});
        }
        cur = &mut cur[*p];
    }
    let last = parts[parts.len() - 1];
    if value.is_null() {
        if let Some(m) = cur.as_object_mut() {
            m.remove(last);
        }
    } else {
        cur[last] = value;
    }
}

struct Case {
    what: &'static str,
    strategy: &'static str,
    edits: Vec<(&'static str, Value)>,
    /// Substrings the API server's message must contain (the field, and the reason).
    expect: &'static [&'static str],
}

fn case(
    what: &'static str,
    strategy: &'static str,
    edits: Vec<(&'static str, Value)>,
    expect: &'static [&'static str],
) -> Case {
    Case {
        what,
        strategy,
        edits,
        expect,
    }
}

fn invalid_cases() -> Vec<Case> {
    let ingress = json!({"type": "Ingress"});
    let gateway = json!({"type": "GatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "web"}]}});
    vec![
        case(
            "replication factor above store replicas",
            "Store",
            vec![
                ("spec.store.replicas", json!(2)),
                ("spec.store.replicationFactor", json!(3)),
            ],
            &["spec.store.replicationFactor"],
        ),
        case(
            "replication factor above 5",
            "Store",
            vec![
                ("spec.store.replicas", json!(9)),
                ("spec.store.replicationFactor", json!(6)),
            ],
            &["spec.store.replicationFactor"],
        ),
        case(
            "partitions below 16",
            "Store",
            vec![("spec.store.partitions", json!(8))],
            &["spec.store.partitions"],
        ),
        case(
            "store replicas 0",
            "Store",
            vec![("spec.store.replicas", json!(0))],
            &["spec.store.replicas"],
        ),
        case(
            "Hash without a key",
            "Store",
            vec![
                ("spec.routing.affinity", json!({"mode": "Hash"})),
                ("spec.routing.provider", ingress.clone()),
            ],
            &["spec.routing.affinity.hash"],
        ),
        case(
            "hash settings with mode None",
            "Store",
            vec![
                (
                    "spec.routing.affinity",
                    json!({"mode": "None", "hash": {"source": "Header", "name": "x-user"}}),
                ),
                ("spec.routing.provider", ingress.clone()),
            ],
            &["spec.routing.affinity.hash"],
        ),
        case(
            "bad hash source",
            "Store",
            vec![
                (
                    "spec.routing.affinity",
                    json!({"mode": "Hash", "hash": {"source": "Body", "name": "x"}}),
                ),
                ("spec.routing.provider", ingress.clone()),
            ],
            &["spec.routing.affinity.hash.source"],
        ),
        case(
            "Cookie with provider Service",
            "Store",
            vec![("spec.routing.affinity", json!({"mode": "Cookie"}))],
            &["spec.routing.affinity.mode", "provider Service"],
        ),
        case(
            "Hash with provider Service",
            "Store",
            vec![(
                "spec.routing.affinity",
                json!({"mode": "Hash", "hash": {"source": "Header", "name": "x-user"}}),
            )],
            &["spec.routing.affinity.mode", "provider Service"],
        ),
        case(
            "SameSite None without secure",
            "Store",
            vec![
                (
                    "spec.routing.affinity",
                    json!({"mode": "Cookie", "cookie": {"sameSite": "None"}}),
                ),
                ("spec.routing.provider", ingress.clone()),
            ],
            &["spec.routing.affinity.cookie.secure", "sameSite"],
        ),
        case(
            "bad SameSite value",
            "Store",
            vec![
                (
                    "spec.routing.affinity",
                    json!({"mode": "Cookie", "cookie": {"sameSite": "Sometimes"}}),
                ),
                ("spec.routing.provider", ingress.clone()),
            ],
            &["spec.routing.affinity.cookie.sameSite"],
        ),
        case(
            "cookie name with a space",
            "Store",
            vec![
                (
                    "spec.routing.affinity",
                    json!({"mode": "Cookie", "cookie": {"name": "my cookie"}}),
                ),
                ("spec.routing.provider", ingress.clone()),
            ],
            &["spec.routing.affinity.cookie.name"],
        ),
        case(
            "cookie settings with mode ClientIP",
            "Store",
            vec![(
                "spec.routing.affinity",
                json!({"mode": "ClientIP", "cookie": {"name": "sid"}}),
            )],
            &["spec.routing.affinity.cookie"],
        ),
        case(
            "port 0",
            "Store",
            vec![("spec.frontend.port", json!(0))],
            &["spec.frontend.port"],
        ),
        case(
            "port 70000",
            "Store",
            vec![("spec.frontend.port", json!(70000))],
            &["spec.frontend.port"],
        ),
        case(
            "negative frontend replicas",
            "Store",
            vec![("spec.frontend.replicas", json!(-1))],
            &["spec.frontend.replicas"],
        ),
        case(
            "no frontend",
            "Store",
            vec![("spec.frontend", Value::Null)],
            &["spec.frontend"],
        ),
        case(
            "unknown strategy",
            "Store",
            vec![("spec.strategy", json!("Memcached"))],
            &["spec.strategy", "Memcached"],
        ),
        case(
            "unknown affinity mode",
            "Store",
            vec![("spec.routing.affinity.mode", json!("Random"))],
            &["spec.routing.affinity.mode"],
        ),
        case(
            "unknown provider",
            "Store",
            vec![("spec.routing.provider.type", json!("Mesh"))],
            &["spec.routing.provider.type"],
        ),
        case(
            "client settings with strategy Store",
            "Store",
            vec![(
                "spec.client",
                json!({"rotationIntervalSeconds": 86400, "retainedKeys": 3}),
            )],
            &["spec.client"],
        ),
        case(
            "Sticky without affinity",
            "Sticky",
            vec![("spec.routing.affinity", json!({"mode": "None"}))],
            &["spec.routing.affinity.mode"],
        ),
        case(
            "Client with sessions above 4 KiB",
            "Client",
            vec![("spec.sessions", json!({"maxSessionBytes": 8192}))],
            &["spec.sessions.maxSessionBytes"],
        ),
        case(
            "TLS secret without host",
            "Store",
            vec![
                ("spec.routing.provider", ingress.clone()),
                ("spec.routing.tlsSecretName", json!("tls")),
            ],
            &["spec.routing.tlsSecretName"],
        ),
        case(
            "host with provider Service",
            "Store",
            vec![("spec.routing.host", json!("shop.example.com"))],
            &["spec.routing.host"],
        ),
        case(
            "GatewayAPI without parentRefs",
            "Store",
            vec![("spec.routing.provider", json!({"type": "GatewayAPI"}))],
            &["spec.routing.provider.gatewayAPI"],
        ),
        case(
            "ingress settings with provider GatewayAPI",
            "Store",
            vec![("spec.routing.provider", {
                let mut g = gateway.clone();
                g["ingress"] = json!({"dialect": "Nginx"});
                g
            })],
            &["spec.routing.provider.ingress"],
        ),
        case(
            "clientIPTimeoutSeconds with mode None",
            "Store",
            vec![(
                "spec.routing.affinity",
                json!({"mode": "None", "clientIPTimeoutSeconds": 60}),
            )],
            &["clientIPTimeoutSeconds"],
        ),
        case(
            "name longer than 40",
            "Store",
            vec![("metadata.name", json!("a".repeat(41)))],
            &["metadata.name"],
        ),
        case(
            "name that is not a DNS-1035 label",
            "Store",
            vec![("metadata.name", json!("9lives"))],
            &["metadata.name"],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_sessionclusters_are_rejected_with_the_field_named() {
    let client = client().await;
    ensure_crd(&client).await;
    let ns = TestNs::new(&client, "op-invalid").await;
    let cases = invalid_cases();
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let mut sc = base_spec(c.strategy);
        sc["metadata"] = json!({"name": format!("bad-{i}")});
        for (path, value) in &c.edits {
            set(&mut sc, path, value.clone());
        }
        let name = sc["metadata"]["name"].as_str().unwrap().to_owned();
        match ns.create_sc(&name, sc).await {
            Ok(_) => failures.push(format!("{}: accepted", c.what)),
            Err(kube::Error::Api(s)) => {
                let missing: Vec<_> = c
                    .expect
                    .iter()
                    .filter(|e| !s.message.contains(**e))
                    .collect();
                if s.code != 422 || !missing.is_empty() {
                    failures.push(format!(
                        "{}: code {} message {:?} lacks {missing:?}",
                        c.what, s.code, s.message
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: unexpected error {e}", c.what)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immutable_fields_cannot_change() {
    let client = client().await;
    ensure_crd(&client).await;
    let ns = TestNs::new(&client, "op-immutable").await;
    let mut sc = base_spec("Store");
    sc["spec"]["store"]["persistence"] = json!({"size": "1Gi"});
    ns.create_sc("imm", sc).await.expect("valid SessionCluster");

    let changes = [
        (
            json!({"spec": {"store": {"partitions": 128}}}),
            "spec.store.partitions",
        ),
        (
            json!({"spec": {"store": {"persistence": {"size": "2Gi"}}}}),
            "spec.store.persistence.size",
        ),
        (
            json!({"spec": {"store": {"persistence": null}}}),
            "spec.store.persistence",
        ),
    ];
    for (patch, field) in changes {
        match ns.patch_sc("imm", patch.clone()).await {
            Ok(_) => panic!("{patch} was accepted"),
            Err(kube::Error::Api(s)) => {
                assert_eq!(s.code, 422, "{patch}: {s:?}");
                assert!(
                    s.message.contains(field),
                    "{patch}: message {:?} does not name {field}",
                    s.message
                );
            }
            Err(e) => panic!("{patch}: {e}"),
        }
    }
    // A mutable field still changes.
    ns.patch_sc("imm", json!({"spec": {"store": {"replicas": 4}}}))
        .await
        .expect("store replicas may change");
    let _ = Duration::ZERO;
    ns.cleanup().await;
}
