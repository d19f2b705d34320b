//! The operator process against a real kube-apiserver: leader election on a Lease between
//! two replicas, hand-over on graceful shutdown, and the health and metrics endpoints.
//!
//! Needs the local control plane: `bash hack/cluster.sh up && eval "$(bash hack/cluster.sh env)"`.

mod operator_support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use operator_support::*;
use sessionplane_operator::leader::Timings;

fn fast() -> Timings {
    Timings {
        lease_duration: Duration::from_secs(4),
        renew_period: Duration::from_millis(1000),
        renew_deadline: Duration::from_secs(3),
        retry_period: Duration::from_millis(500),
    }
}

fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("sessionplane-operator")
        .await
        .ok()??
        .spec?
        .holder_identity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_one_leader_and_hand_over() {
    let client = client().await;
    ensure_crd(&client).await;
    let ns = TestNs::new(&client, "op-lease").await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);

    let a = start_operator(&client, &ns.name, "replica-a", fast()).await;
    wait_for("replica-a to lead", Duration::from_secs(20), || async {
        a.leadership.borrow().is_leader().then_some(())
    })
    .await;
    let b = start_operator(&client, &ns.name, "replica-b", fast()).await;
    wait_for(
        "replica-b to know it stands by",
        Duration::from_secs(20),
        || async {
            matches!(
                *b.leadership.borrow(),
                sessionplane_operator::leader::Leadership::Standby { .. }
            )
            .then_some(())
        },
    )
    .await;
    assert_eq!(holder(&leases).await.as_deref(), Some("replica-a"));

    // Both are ready (the standby too), both are healthy; only the leader says so in /metrics.
    wait_for("replica-a ready", Duration::from_secs(30), || async {
        a.ready.load(Ordering::Acquire).then_some(())
    })
    .await;
    for op in [&a, &b] {
        assert_eq!(get(op.metrics_addr, "/healthz").0, 200);
        assert_eq!(get(op.metrics_addr, "/readyz").0, 200);
    }
    assert!(get(a.metrics_addr, "/metrics")
        .1
        .contains("sessionplane_operator_leader 1"));
    assert!(get(b.metrics_addr, "/metrics")
        .1
        .contains("sessionplane_operator_leader 0"));

    // Over a few renew periods the leader keeps the Lease and the standby stays put.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(a.leadership.borrow().is_leader());
    assert!(!b.leadership.borrow().is_leader());

    // The standby does not reconcile; after the leader's graceful stop (which releases the
    // Lease) it takes over well before the lease duration would have expired, and reconciles.
    ns.create_sc("handover", base_spec("Client")).await.unwrap();
    wait_for(
        "the leader to reconcile",
        Duration::from_secs(30),
        || async {
            let sc = ns
                .get("sessionplane.dev/v1alpha1", "SessionCluster", "handover")
                .await?;
            sc["status"]["observedGeneration"].as_i64().map(|_| ())
        },
    )
    .await;
    let stopped = std::time::Instant::now();
    a.stop().await.expect("graceful stop");
    // Released on shutdown: free, or already taken by the standby (it retries every 0.5 s).
    let after_stop = holder(&leases).await;
    assert_ne!(
        after_stop.as_deref(),
        Some("replica-a"),
        "the Lease is released on shutdown"
    );
    wait_for(
        "replica-b to take over",
        Duration::from_secs(10),
        || async { b.leadership.borrow().is_leader().then_some(()) },
    )
    .await;
    assert!(
        stopped.elapsed() < Duration::from_secs(4),
        "hand-over took {:?}",
        stopped.elapsed()
    );
    assert_eq!(holder(&leases).await.as_deref(), Some("replica-b"));
    let lease = leases.get("sessionplane-operator").await.unwrap();
    assert!(lease.spec.unwrap().lease_transitions.unwrap_or(0) >= 1);

    // The new leader reconciles: a spec change reaches the owned Deployment.
    ns.patch_sc(
        "handover",
        serde_json::json!({"spec": {"frontend": {"replicas": 3}}}),
    )
    .await
    .unwrap();
    wait_for(
        "replica-b to reconcile the change",
        Duration::from_secs(30),
        || async {
            let sc = ns
                .get("sessionplane.dev/v1alpha1", "SessionCluster", "handover")
                .await?;
            (sc["status"]["observedGeneration"] == sc["metadata"]["generation"]).then_some(())
        },
    )
    .await;
    assert!(get(b.metrics_addr, "/metrics")
        .1
        .contains("sessionplane_operator_leader 1"));

    b.stop().await.expect("graceful stop");
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_held_elsewhere_keeps_the_operator_standing_by() {
    let client = client().await;
    ensure_crd(&client).await;
    let ns = TestNs::new(&client, "op-standby").await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    // Someone else (say an older operator in another pod) holds a live Lease.
    let foreign: Lease = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "sessionplane-operator"},
        "spec": {"holderIdentity": "someone-else", "leaseDurationSeconds": 3600,
                 "renewTime": "2026-01-01T00:00:00.000000Z", "leaseTransitions": 0}
    }))
    .unwrap();
    leases.create(&Default::default(), &foreign).await.unwrap();

    let op = start_operator(&client, &ns.name, "replica-c", fast()).await;
    wait_for("replica-c to stand by", Duration::from_secs(20), || async {
        matches!(
            *op.leadership.borrow(),
            sessionplane_operator::leader::Leadership::Standby { .. }
        )
        .then_some(())
    })
    .await;
    // It stays that way: the foreign lease is live (local observation, not the old renewTime).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!op.leadership.borrow().is_leader());
    assert_eq!(holder(&leases).await.as_deref(), Some("someone-else"));
    assert_eq!(get(op.metrics_addr, "/readyz").0, 200, "a standby is ready");

    // A SessionCluster is not touched by a standby.
    ns.create_sc("untouched", base_spec("Client"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sc = ns
        .get("sessionplane.dev/v1alpha1", "SessionCluster", "untouched")
        .await
        .unwrap();
    assert!(
        sc.get("status").is_none()
            || sc["status"].is_null()
            || sc["status"]["observedGeneration"].is_null()
    );

    op.stop().await.unwrap();
    ns.cleanup().await;
}
