//! The operator's ring driver against real store nodes (`sessionplane store` processes on
//! loopback), without Kubernetes: the same decide(), node API client and probe verdicts
//! the operator uses, with the state kept in memory instead of the ring ConfigMap.
//!
//! Under a recording load: bootstrap 3 nodes (replication factor 2), kill -9 one, and the
//! driver must notice it from its probes, fail it over (promoting only replicas that prove
//! themselves from their own status), restore the replication factor on the two left, and
//! take the node back as a learner when it restarts. No acknowledged write may be lost and
//! reads must never see a value that was not written.
//!
//! Then the whole operator against the local control plane (`bash hack/cluster.sh up`):
//! store pods whose status points at such processes, a node killed, the failover seen in
//! the ring ConfigMap, the status, the Events and the printer column, and a new operator
//! that resumes the migration from the ConfigMap instead of starting over.

mod operator_support;

use sessionplane_operator::ring_driver::decide::{decide, Advance, NodeView, Step, Want};
use sessionplane_operator::ring_driver::health::{FailoverPolicy, HealthBook};
use sessionplane_operator::ring_driver::node_api;
use sessionplane_operator::ring_driver::state::RingState;
use sessionplane_store::loadgen::{Endpoints, LoadConfig, LoadGen};
use sessionplane_store::local_ports::free_port;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CLUSTER: &str = "test/failover";

struct StoreNode {
    id: String,
    resp: String,
    peer: String,
    admin: String,
    data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl StoreNode {
    fn new(root: &std::path::Path, id: &str) -> StoreNode {
        Self::with_admin(root, id, format!("127.0.0.1:{}", free_port()))
    }

    fn with_admin(root: &std::path::Path, id: &str, admin: String) -> StoreNode {
        StoreNode {
            id: id.to_string(),
            resp: format!("127.0.0.1:{}", free_port()),
            peer: format!("127.0.0.1:{}", free_port()),
            admin,
            data: root.join(id),
            log: root.join(format!("{id}.log")),
            child: None,
        }
    }

    async fn start(&mut self) {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the node's log");
        let err = log.try_clone().expect("clone the log handle");
        let child = Command::new(env!("CARGO_BIN_EXE_sessionplane"))
            .args(["store", "--id", &self.id, "--listen", &self.resp])
            .args(["--peer-listen", &self.peer, "--admin", &self.admin])
            .args(["--fsync", "always"])
            .arg("--data-dir")
            .arg(&self.data)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn sessionplane store");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !node_api::probe(&self.admin, Duration::from_secs(1)).await {
            assert!(
                Instant::now() < deadline,
                "{} never answered:\n{}",
                self.id,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for StoreNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The operator's ring loop, minus Kubernetes.
struct Driver {
    want: Want,
    state: Option<RingState>,
    admin: BTreeMap<String, String>,
    health: HealthBook,
    policy: FailoverPolicy,
    steps: Vec<Advance>,
}

impl Driver {
    /// One reconcile: read every node, decide, persist (here: keep) and push.
    async fn tick(&mut self) -> Step {
        let mut ids: Vec<String> = self.want.members.keys().cloned().collect();
        if let Some(s) = &self.state {
            ids.extend(s.members.keys().cloned());
        }
        ids.sort();
        ids.dedup();
        let now = Instant::now();
        let mut views = BTreeMap::new();
        for id in ids {
            let mut view = node_api::view(&self.admin[&id]).await;
            self.health
                .record(CLUSTER, &id, view.reachable, now, &self.policy);
            view.down = self.health.is_down(CLUSTER, &id);
            views.insert(id, view);
        }
        let step = decide(&self.want, self.state.as_ref(), &views).expect("placement");
        match &step {
            Step::Advance { state, why } => {
                self.steps.push(*why);
                self.install(state.clone()).await;
            }
            Step::Failover { state, .. } => {
                self.steps.push(Advance::Failover);
                self.install(state.clone()).await;
            }
            Step::Repush(lagging) => {
                if let Some(s) = &self.state {
                    let config = s.node_config();
                    for id in lagging {
                        let _ = node_api::push(&self.admin[id], &config, None).await;
                    }
                }
            }
            Step::Wait(_) | Step::Steady => {}
        }
        step
    }

    async fn install(&mut self, next: RingState) {
        let config = next.node_config();
        for id in next.members.keys() {
            // A dead node refuses; the others must take it.
            let _ = node_api::push(&self.admin[id], &config, None).await;
        }
        self.state = Some(next);
    }

    /// Ticks every probe interval until `done` holds for a step; returns that step.
    async fn until(
        &mut self,
        limit: Duration,
        what: &str,
        done: impl Fn(&Step, &[Advance]) -> bool,
    ) -> Step {
        let deadline = Instant::now() + limit;
        loop {
            let step = self.tick().await;
            if done(&step, &self.steps) {
                return step;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last step {step:?}, steps {:?}",
                self.steps
            );
            tokio::time::sleep(self.policy.probe_interval).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_store_node_is_failed_over_and_rejoins_as_a_learner() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut nodes: BTreeMap<String, StoreNode> = ["fo-0", "fo-1", "fo-2"]
        .iter()
        .map(|id| (id.to_string(), StoreNode::new(root.path(), id)))
        .collect();
    for n in nodes.values_mut() {
        n.start().await;
    }
    let logs = |nodes: &BTreeMap<String, StoreNode>| {
        nodes
            .values()
            .map(|n| format!("--- {} ---\n{}", n.id, n.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut driver = Driver {
        want: Want {
            members: nodes
                .values()
                .map(|n| (n.id.clone(), n.peer.clone()))
                .collect(),
            partitions: 16,
            replication_factor: 2,
        },
        state: None,
        admin: nodes
            .values()
            .map(|n| (n.id.clone(), n.admin.clone()))
            .collect(),
        health: HealthBook::default(),
        // Short for the test; the operator's default is 5 probes over 8 s.
        policy: FailoverPolicy {
            probe_interval: Duration::from_millis(200),
            failed_probes: 3,
            after: Duration::from_secs(1),
        },
        steps: Vec::new(),
    };
    driver
        .until(Duration::from_secs(30), "the first placement", |s, _| {
            *s == Step::Steady
        })
        .await;
    assert_eq!(driver.steps, vec![Advance::Bootstrap]);

    let all: Vec<String> = nodes.values().map(|n| n.resp.clone()).collect();
    let endpoints = Endpoints::new(all);
    let load = LoadGen::start(
        LoadConfig {
            workers: 4,
            sessions_per_worker: 40,
            read_ratio: 0.4,
            request_timeout: Duration::from_secs(30),
            prefix: "fo".into(),
            ..LoadConfig::default()
        },
        endpoints.clone(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while load.acked_writes() < 200 {
        assert!(Instant::now() < deadline, "the load never got going");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let victim = "fo-1".to_string();
    let epoch_before = driver.state.as_ref().map_or(0, |s| s.epoch);
    nodes.get_mut(&victim).expect("victim").kill9();
    endpoints.set(
        nodes
            .values()
            .filter(|n| n.id != victim)
            .map(|n| n.resp.clone())
            .collect(),
    );
    // Failover, then the factor restored on the two left; the driver then only waits for
    // the dead node.
    driver.steps.clear();
    let step = driver
        .until(
            Duration::from_secs(60),
            "failover and restore",
            |s, steps| {
                steps.contains(&Advance::Flip)
                    && matches!(s, Step::Wait(why) if why.contains("not answering"))
            },
        )
        .await;
    assert_eq!(
        driver.steps,
        vec![Advance::Failover, Advance::AddLearners, Advance::Flip],
        "{step:?}\n{}",
        logs(&nodes)
    );
    let state = driver.state.clone().expect("state");
    assert!(state.epoch > epoch_before);
    assert!(state.failed.contains(&victim));
    assert!(
        state
            .replicas
            .iter()
            .all(|r| r.len() == 2 && !r.contains(&victim)),
        "{:?}",
        state.replicas
    );
    let acked = load.acked_writes();
    let deadline = Instant::now() + Duration::from_secs(30);
    while load.acked_writes() < acked + 100 {
        assert!(
            Instant::now() < deadline,
            "writes stalled after the failover\n{}",
            logs(&nodes)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The node comes back from its volume: it learns again before it serves.
    nodes.get_mut(&victim).expect("victim").start().await;
    let back: NodeView = node_api::view(&nodes[&victim].admin).await;
    assert_eq!(
        back.epoch, None,
        "a node left out serves nothing on its own"
    );
    driver.steps.clear();
    driver
        .until(Duration::from_secs(60), "the rejoin", |s, _| {
            *s == Step::Steady
        })
        .await;
    assert_eq!(
        driver.steps,
        vec![Advance::AddLearners, Advance::Flip],
        "{}",
        logs(&nodes)
    );
    let state = driver.state.clone().expect("state");
    assert!(state.failed.is_empty());
    assert!(state.serving().contains(&victim));

    let report = load.stop().await;
    eprintln!("failover under load: {}", report.summary());
    assert!(
        report.violations.is_empty(),
        "reads saw values never written: {:?}",
        &report.violations[..report.violations.len().min(5)]
    );
    // Requests in flight on the killed node fail with it; a handful, not a stream.
    assert!(
        report.failures <= 8,
        "{} failed requests: {:?}",
        report.failures,
        report.failure_samples
    );
    for n in nodes.values() {
        let bad = report
            .verify(&n.resp, Duration::from_secs(30))
            .await
            .expect("verification reads");
        assert!(
            bad.is_empty(),
            "acknowledged writes lost via {}: {:?}",
            n.id,
            &bad[..bad.len().min(5)]
        );
    }
}

fn series(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|rest| rest.trim().parse().ok())
    })
}

fn ring_state(cm: &serde_json::Value) -> Option<RingState> {
    serde_json::from_str(cm["data"]["ring.json"].as_str()?).ok()
}

/// The operator against the real API server: the store pods' status names loopback
/// addresses where `sessionplane store` processes answer on the admin port (9379, one
/// loopback address per pod). The nodes' peer addresses are cluster DNS names that do
/// not resolve here, so replication between them cannot work: bootstrap and failover
/// (decided from each node's own status) can, the copy to new learners cannot, which
/// leaves a migration running for the restart half of the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_fails_over_and_a_new_leader_resumes_from_the_configmap() {
    use kube::api::{Api, ListParams, Patch, PatchParams};
    use operator_support::*;
    use serde_json::json;

    let client = client().await;
    ensure_crd(&client).await;
    let ns = TestNs::new(&client, "op-failover").await;
    let policy = FailoverPolicy {
        probe_interval: Duration::from_millis(300),
        failed_probes: 3,
        after: Duration::from_secs(2),
    };
    let op = start_leader_with(&client, &ns.name, policy).await;

    // A loopback /24 of its own per run, so two runs (or helpers) never share 9379.
    let net = 100 + (std::process::id() % 100);
    let ip = |i: usize| format!("127.77.{net}.{}", i + 1);
    let root = tempfile::tempdir().expect("temporary directory");
    let mut nodes: BTreeMap<String, StoreNode> = (0..3)
        .map(|i| {
            let id = format!("fo-store-{i}");
            let admin = format!("{}:9379", ip(i));
            (id.clone(), StoreNode::with_admin(root.path(), &id, admin))
        })
        .collect();
    for n in nodes.values_mut() {
        n.start().await;
    }

    let mut spec = base_spec("Store");
    spec["spec"]["store"] = json!({"replicas": 3, "replicationFactor": 2, "partitions": 16});
    ns.create_sc("fo", spec)
        .await
        .expect("create the SessionCluster");

    // The StatefulSet controller creates the pods; with no kubelet here, the test plays
    // it and reports each pod running at its node's address.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), &ns.name);
    for i in 0..3 {
        let name = format!("fo-store-{i}");
        wait_for(&format!("pod {name}"), Duration::from_secs(60), || {
            let pods = pods.clone();
            let name = name.clone();
            async move { pods.get_opt(&name).await.ok().flatten() }
        })
        .await;
        let status = json!({"status": {
            "phase": "Running",
            "podIP": ip(i),
            "podIPs": [{"ip": ip(i)}],
        }});
        pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("report the pod running");
    }

    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let cm_state = || {
        let cms = cms.clone();
        async move {
            let cm = cms.get_opt("fo-ring").await.ok().flatten()?;
            ring_state(&serde_json::to_value(cm).ok()?)
        }
    };
    let placed = wait_for("the first placement", Duration::from_secs(60), || async {
        cm_state().await.filter(|s| s.epoch == 1)
    })
    .await;
    assert_eq!(placed.serving().len(), 3);
    for n in nodes.values() {
        wait_for(
            &format!("{} to serve epoch 1", n.id),
            Duration::from_secs(30),
            || async { (node_api::view(&n.admin).await.epoch == Some(1)).then_some(()) },
        )
        .await;
    }

    let victim = "fo-store-1".to_string();
    nodes.get_mut(&victim).expect("victim").kill9();
    let failed = wait_for("the failover epoch", Duration::from_secs(60), || async {
        cm_state().await.filter(|s| s.failed.contains(&victim))
    })
    .await;
    assert!(
        failed
            .replicas
            .iter()
            .all(|r| !r.contains(&victim) && !r.is_empty()),
        "{:?}",
        failed.replicas
    );
    assert!(!failed.members.contains_key(&victim));

    // Then the factor is restored on the two left: learners that cannot copy here.
    let migrating = wait_for("the restore to start", Duration::from_secs(60), || async {
        cm_state()
            .await
            .filter(|s| s.target.is_some() && s.learner_slots() > 0)
    })
    .await;
    let total = migrating.learner_slots();
    let sc_api = ns.sessionclusters();
    let status = wait_for("the status to show it", Duration::from_secs(60), || async {
        let sc = sc_api.get("fo").await.ok()?;
        let st = serde_json::to_value(&sc).ok()?["status"].clone();
        (st["migration"]["progress"] == json!(format!("0/{total}"))
            && st["ring"]["failed"] == json!([victim.clone()]))
        .then_some(st)
    })
    .await;
    let migrating_condition = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Migrating"))
        .cloned();
    assert_eq!(
        migrating_condition.map(|c| c["status"].clone()),
        Some(json!("True")),
        "{status}"
    );
    assert_eq!(status["migration"]["partitionsTotal"], json!(total));
    let printed = ns.kubectl(&["get", "sessionclusters", "fo"]);
    let table = String::from_utf8_lossy(&printed.stdout).to_string();
    assert!(
        table.contains("MIGRATION") && table.contains(&format!("0/{total}")),
        "{table}"
    );
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), &ns.name);
    let failover_event = wait_for("the Failover event", Duration::from_secs(30), || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("Failover"))
    })
    .await;
    assert!(
        failover_event
            .note
            .as_deref()
            .is_some_and(|n| n.contains(&victim)),
        "{failover_event:?}"
    );
    let metrics = scrape(op.metrics_addr);
    assert_eq!(
        series(
            &metrics,
            "sessionplane_operator_ring_epochs_total{step=\"failover\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        series(&metrics, "sessionplane_operator_ring_nodes_down"),
        Some(1.0)
    );

    // The operator dies mid-migration; a new one resumes from the ConfigMap and the
    // nodes' answers: the same epoch, the same learners, no second failover.
    op.stop().await.expect("stop the operator");
    let before = cm_state().await.expect("state");
    let op = start_leader_with(&client, &ns.name, policy).await;
    wait_for(
        "the new leader's ring syncs",
        Duration::from_secs(60),
        || async {
            let m = scrape(op.metrics_addr);
            (series(&m, "sessionplane_operator_reconciles_total{result=\"ok\"}").unwrap_or(0.0)
                >= 2.0)
                .then_some(())
        },
    )
    .await;
    let after = cm_state().await.expect("state");
    assert!(
        after.same_decision(&before),
        "the new leader changed the ring: {before:?} -> {after:?}"
    );
    let metrics = scrape(op.metrics_addr);
    assert_eq!(
        series(&metrics, "sessionplane_operator_ring_learning_replicas"),
        Some(total as f64),
        "{metrics}"
    );
    op.stop().await.expect("stop the operator");
    drop(nodes);
    ns.cleanup().await;
}
