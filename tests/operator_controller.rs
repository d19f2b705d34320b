//! The controller against a real kube-apiserver and kube-controller-manager: owned objects
//! appear with the right fields, follow changes, are put back when broken, are garbage
//! collected with their SessionCluster, and a reconcile with nothing to do writes nothing.
//!
//! Needs the local control plane: `bash hack/cluster.sh up && eval "$(bash hack/cluster.sh env)"`.
//! The test pods use an image that does not exist (example.invalid): without a node they
//! stay Pending, with one (the node tier) they fail to pull. Either way none becomes Ready.

mod operator_support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use operator_support::*;
use serde_json::{json, Value};

fn of_kind<'a>(objs: &'a Owned, kind: &str) -> Vec<&'a Value> {
    objs.iter()
        .filter(|((k, _), _)| k == kind)
        .map(|(_, v)| v)
        .collect()
}

fn one<'a>(objs: &'a Owned, kind: &str) -> &'a Value {
    let all = of_kind(objs, kind);
    assert_eq!(
        all.len(),
        1,
        "expected one {kind}, found {}: {:?}",
        all.len(),
        objs.keys().collect::<Vec<_>>()
    );
    all[0]
}

fn versions(objs: &Owned) -> BTreeMap<(String, String), String> {
    objs.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

async fn sc_json(ns: &TestNs, name: &str) -> Value {
    ns.get("sessionplane.dev/v1alpha1", "SessionCluster", name)
        .await
        .expect("SessionCluster exists")
}

/// Waits until the operator has reconciled the current generation (status.observedGeneration).
async fn wait_observed(ns: &TestNs, name: &str) -> Value {
    wait_for(
        &format!("{name} to be reconciled"),
        Duration::from_secs(30),
        || async {
            let sc = ns
                .get("sessionplane.dev/v1alpha1", "SessionCluster", name)
                .await?;
            (sc["status"]["observedGeneration"] == sc["metadata"]["generation"]).then_some(sc)
        },
    )
    .await
}

async fn wait_owned(
    ns: &TestNs,
    cluster: &str,
    what: &str,
    check: impl Fn(&Owned) -> bool,
) -> Owned {
    wait_for(
        &format!("{cluster}: {what}"),
        Duration::from_secs(30),
        || async {
            let objs = owned(ns, cluster).await;
            check(&objs).then_some(objs)
        },
    )
    .await
}

fn frontend_replicas(objs: &Owned) -> i64 {
    one(objs, "Deployment")["spec"]["replicas"]
        .as_i64()
        .unwrap_or(-1)
}

/// Store strategy end to end: create, the owned objects, status, no-op reconcile,
/// hand edits restored, changes followed, `kubectl scale`, deletion collected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_cluster_lifecycle() {
    let client = client().await;
    ensure_crd(&client).await;
    let ns = TestNs::new(&client, "op-life").await;
    let op = start_leader(&client, &ns.name).await;

    let created = ns
        .create_sc("shop", base_spec("Store"))
        .await
        .expect("create");
    let uid = created.metadata.uid.clone().unwrap();
    let objs = wait_owned(
        &ns,
        "shop",
        "Deployment, StatefulSet, Services, PDB, Secret",
        |o| {
            !of_kind(o, "Deployment").is_empty()
                && !of_kind(o, "StatefulSet").is_empty()
                && !of_kind(o, "PodDisruptionBudget").is_empty()
                && !of_kind(o, "Secret").is_empty()
                && of_kind(o, "Service").len() >= 2
        },
    )
    .await;

    // Ownership and labels on everything.
    for ((kind, name), obj) in &objs {
        let refs = obj["metadata"]["ownerReferences"]
            .as_array()
            .unwrap_or_else(|| panic!("{kind} {name} has no owner"));
        assert!(
            refs.iter().any(|r| r["uid"] == uid.as_str()
                && r["controller"] == true
                && r["kind"] == "SessionCluster"),
            "{kind} {name}: owner refs {refs:?}"
        );
        assert_eq!(
            obj["metadata"]["labels"]["app.kubernetes.io/managed-by"], "sessionplane",
            "{kind} {name}"
        );
    }
    assert_eq!(frontend_replicas(&objs), 2);
    let sts = one(&objs, "StatefulSet");
    assert_eq!(sts["spec"]["replicas"], 3);
    let dep = one(&objs, "Deployment");
    let containers = dep["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    let web = containers
        .iter()
        .find(|c| c["name"] == "web")
        .expect("the user's container is kept");
    let env: Vec<&str> = web["env"]
        .as_array()
        .map(|e| e.iter().filter_map(|v| v["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        env.contains(&"SESSIONPLANE_STORE_ADDR"),
        "store address injected: {env:?}"
    );
    let secret = one(&objs, "Secret");
    let password_before = secret["data"].clone();
    assert!(
        password_before.as_object().is_some_and(|m| !m.is_empty()),
        "generated store secret: {secret}"
    );

    // Status: honest readiness (no pod can become ready, see the top of the file).
    let sc = wait_for(
        "status to show 0/2 and 0/3 ready",
        Duration::from_secs(30),
        || async {
            let sc = sc_json(&ns, "shop").await;
            let ready = sc["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Ready")?
                .clone();
            // The store pods never answer here (no kubelet), so the ring driver waits
            // for them before the first placement, and says so.
            let message = ready["message"].as_str()?;
            (message.starts_with("frontend 0/2 ready, store 0/3 ready; ring: waiting for store nodes to answer before the first placement: shop-store-0, shop-store-1, shop-store-2"))
                .then_some(sc)
        },
    )
    .await;
    let st = &sc["status"];
    assert_eq!(st["observedGeneration"], sc["metadata"]["generation"]);
    assert_eq!(st["phase"], "Pending");
    let cond = |t: &str| {
        st["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .cloned()
            .unwrap()
    };
    assert_eq!(cond("Ready")["status"], "False");
    assert_eq!(cond("Progressing")["status"], "True");
    assert_eq!(cond("Degraded")["status"], "False");
    assert_eq!(cond("Migrating")["status"], "False");
    assert_eq!(
        st["ring"]["epoch"], 0,
        "nothing is placed before the nodes answer"
    );
    assert!(st["ring"].get("members").is_none(), "{st}");
    let ring_state = ns.kubectl(&["get", "configmap", "shop-ring"]);
    assert!(
        !ring_state.status.success(),
        "no ring state is persisted before the first placement"
    );
    assert!(
        st["frontend"]["selector"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{st}"
    );

    // A reconcile with nothing to do writes nothing: touch an annotation (a watch event,
    // no generation change), and check nothing else moved.
    let settled = wait_settled(&ns, "shop").await;
    let sc_rv_before = sc_json(&ns, "shop").await["metadata"]["resourceVersion"].clone();
    let before_metrics = counter(
        &scrape(op.metrics_addr),
        "sessionplane_operator_reconciles_total{result=\"ok\"}",
    );
    ns.sessionclusters()
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {"test/touch": "1"}}})),
        )
        .await
        .unwrap();
    wait_for(
        "a reconcile after the touch",
        Duration::from_secs(20),
        || async {
            let now = counter(
                &scrape(op.metrics_addr),
                "sessionplane_operator_reconciles_total{result=\"ok\"}",
            );
            (now > before_metrics).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = owned(&ns, "shop").await;
    assert_eq!(
        versions(&after),
        settled,
        "a no-op reconcile changed owned objects"
    );
    let sc_after = sc_json(&ns, "shop").await;
    assert_ne!(
        sc_after["metadata"]["resourceVersion"], sc_rv_before,
        "the touch itself is one write"
    );
    let touched_rv = sc_after["metadata"]["resourceVersion"].clone();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sc_json(&ns, "shop").await["metadata"]["resourceVersion"],
        touched_rv,
        "status was rewritten"
    );
    assert_eq!(
        one(&after, "Secret")["data"],
        password_before,
        "the store password must never be regenerated"
    );

    // A hand edit is put back.
    let dep_name = one(&after, "Deployment")["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    ns.dynamic("apps/v1", "Deployment")
        .patch(
            &dep_name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 7}})),
        )
        .await
        .unwrap();
    wait_owned(
        &ns,
        "shop",
        "the edited Deployment restored to 2 replicas",
        |o| frontend_replicas(o) == 2,
    )
    .await;

    // A deleted owned object is recreated.
    let svc = of_kind(&after, "Service")[0].clone();
    let svc_name = svc["metadata"]["name"].as_str().unwrap().to_owned();
    let svc_uid = svc["metadata"]["uid"].clone();
    ns.dynamic("v1", "Service")
        .delete(&svc_name, &DeleteParams::default())
        .await
        .unwrap();
    wait_object(&ns, "v1", "Service", &svc_name, "recreated", |o| {
        o["metadata"]["uid"] != svc_uid
    })
    .await;

    // Changes of the spec are followed.
    ns.patch_sc(
        "shop",
        json!({"spec": {"frontend": {"replicas": 4}, "store": {"replicas": 4}}}),
    )
    .await
    .unwrap();
    wait_owned(&ns, "shop", "4 frontend and 4 store replicas", |o| {
        frontend_replicas(o) == 4 && one(o, "StatefulSet")["spec"]["replicas"] == 4
    })
    .await;
    wait_observed(&ns, "shop").await;

    // `kubectl scale` goes through the scale subresource to the Deployment.
    let out = ns.kubectl(&["scale", "sessioncluster/shop", "--replicas=5"]);
    assert!(
        out.status.success(),
        "kubectl scale: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sc_json(&ns, "shop").await["spec"]["frontend"]["replicas"],
        5
    );
    wait_owned(
        &ns,
        "shop",
        "5 frontend replicas after kubectl scale",
        |o| frontend_replicas(o) == 5,
    )
    .await;
    let out = ns.kubectl(&[
        "get",
        "sessioncluster/shop",
        "--subresource=scale",
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "get scale: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scale: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(scale["spec"]["replicas"], 5);

    // Deleting the SessionCluster lets the garbage collector take everything.
    ns.sessionclusters()
        .delete("shop", &DeleteParams::background())
        .await
        .unwrap();
    wait_for(
        "every owned object to be garbage collected",
        Duration::from_secs(60),
        || async { owned(&ns, "shop").await.is_empty().then_some(()) },
    )
    .await;

    op.stop().await.unwrap();
    ns.cleanup().await;
}

/// Waits until the owned objects stop changing (the workload controllers finish their
/// first status updates), and returns their resourceVersions.
async fn wait_settled(ns: &TestNs, cluster: &str) -> BTreeMap<(String, String), String> {
    let mut last = versions(&owned(ns, cluster).await);
    let mut stable_for = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = versions(&owned(ns, cluster).await);
        if now == last {
            stable_for += 1;
            if stable_for >= 4 {
                return now;
            }
        } else {
            stable_for = 0;
            last = now;
        }
    }
    panic!("owned objects of {cluster} kept changing for 20s");
}

/// The Warning Event with `reason` about SessionCluster `name`, within 20 s.
async fn wait_warning(events: &Api<Event>, reason: &str, name: &str) -> Event {
    wait_for(
        &format!("a Warning Event {reason} about {name}"),
        Duration::from_secs(20),
        || async {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items.into_iter().find(|e| {
                e.type_.as_deref() == Some("Warning")
                    && e.reason.as_deref() == Some(reason)
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
            })
        },
    )
    .await
}

/// An invalid spec the schema cannot catch (the template is opaque to it): status
/// Invalid, a Degraded condition with the message, a Warning Event, nothing created,
/// and no hot loop; once fixed, applied, with advice on what still hurts users.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_spec_is_reported_not_applied() {
    let client = client().await;
    ensure_crd(&client).await;
    let ns = TestNs::new(&client, "op-inval").await;
    let op = start_leader(&client, &ns.name).await;

    let mut sc = base_spec("Client");
    sc["spec"]["frontend"]["containerName"] = json!("api");
    ns.create_sc("broken", sc)
        .await
        .expect("the schema admits it");
    let sc = wait_observed(&ns, "broken").await;
    assert_eq!(sc["status"]["phase"], "Invalid");
    let degraded = sc["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Degraded")
        .cloned()
        .unwrap();
    assert_eq!(degraded["status"], "True");
    assert_eq!(degraded["reason"], "Invalid");
    assert!(
        degraded["message"]
            .as_str()
            .unwrap()
            .contains("containerName"),
        "{degraded}"
    );

    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let warning = wait_warning(&events, "Invalid", "broken").await;
    assert!(warning.note.unwrap_or_default().contains("containerName"));
    assert!(
        owned(&ns, "broken").await.is_empty(),
        "nothing may be applied for an invalid spec"
    );

    // No hot loop: over a few seconds, no further reconciles of it.
    let m0 = counter(
        &scrape(op.metrics_addr),
        "sessionplane_operator_reconciles_total{result=\"invalid\"}",
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let m1 = counter(
        &scrape(op.metrics_addr),
        "sessionplane_operator_reconciles_total{result=\"invalid\"}",
    );
    assert!(
        m1 <= m0 + 1,
        "invalid object reconciled {} times in 4s",
        m1 - m0
    );

    // Fixing the spec recovers it.
    ns.patch_sc(
        "broken",
        json!({"spec": {"frontend": {"containerName": "web"}}}),
    )
    .await
    .unwrap();
    let sc = wait_for(
        "the fixed spec to be reconciled",
        Duration::from_secs(30),
        || async {
            let sc = ns
                .get("sessionplane.dev/v1alpha1", "SessionCluster", "broken")
                .await?;
            (sc["status"]["phase"] != "Invalid"
                && sc["status"]["observedGeneration"] == sc["metadata"]["generation"])
                .then_some(sc)
        },
    )
    .await;
    assert_eq!(sc["status"]["phase"], "Pending");
    assert!(!owned(&ns, "broken").await.is_empty());

    // Valid now, but its web container has no readinessProbe: applied, and advised against.
    let advice = wait_warning(&events, "FrontendWithoutReadinessProbe", "broken").await;
    assert!(
        advice
            .note
            .unwrap_or_default()
            .contains("container web serves port 8080"),
        "the advice names the container and port"
    );

    op.stop().await.unwrap();
    ns.cleanup().await;
}

/// Real readiness that needs no running pod: a SessionCluster with zero frontend replicas
/// and no store (strategy Client) is fully ready once the Deployment controller has
/// observed it. Scaling up makes it not ready, with the counts in the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_replicas_become_ready() {
    let client = client().await;
    ensure_crd(&client).await;
    let ns = TestNs::new(&client, "op-ready").await;
    let op = start_leader(&client, &ns.name).await;

    let mut sc = base_spec("Client");
    sc["spec"]["frontend"]["replicas"] = json!(0);
    ns.create_sc("idle", sc).await.unwrap();
    let sc = wait_for("phase Ready", Duration::from_secs(30), || async {
        let sc = ns
            .get("sessionplane.dev/v1alpha1", "SessionCluster", "idle")
            .await?;
        (sc["status"]["phase"] == "Ready").then_some(sc)
    })
    .await;
    let conds = sc["status"]["conditions"].as_array().unwrap();
    let get = |t: &str| conds.iter().find(|c| c["type"] == t).unwrap();
    assert_eq!(get("Ready")["status"], "True");
    assert_eq!(get("Ready")["message"], "frontend 0/0 ready");
    assert_eq!(get("Progressing")["status"], "False");
    assert!(sc["status"].get("store").is_none() || sc["status"]["store"].is_null());

    // Scaling up makes it not ready. Only conditions whose status flips get a new
    // lastTransitionTime: Degraded stays False, with its original time.
    let t_degraded = get("Degraded")["lastTransitionTime"].clone();
    let t_ready = get("Ready")["lastTransitionTime"].clone();
    // Times have one-second resolution: make sure a new one would differ.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ns.patch_sc("idle", json!({"spec": {"frontend": {"replicas": 2}}}))
        .await
        .unwrap();
    let sc = wait_for(
        "Ready=False after scaling up",
        Duration::from_secs(30),
        || async {
            let sc = ns
                .get("sessionplane.dev/v1alpha1", "SessionCluster", "idle")
                .await?;
            let ready = sc["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Ready")?
                .clone();
            (ready["status"] == "False" && ready["message"] == "frontend 0/2 ready").then_some(sc)
        },
    )
    .await;
    assert_eq!(sc["status"]["phase"], "Pending");
    let ready = sc["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready["status"], "False");
    assert_ne!(
        ready["lastTransitionTime"], t_ready,
        "Ready flipped: new time"
    );
    let degraded = sc["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Degraded")
        .unwrap()
        .clone();
    assert_eq!(degraded["status"], "False");
    assert_eq!(degraded["lastTransitionTime"], t_degraded);

    op.stop().await.unwrap();
    ns.cleanup().await;
}
