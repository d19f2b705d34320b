//! Strategy Sticky: the whole operator against the local control plane
//! (`bash hack/cluster.sh up`), with real agents (`sessionplane agent` processes) standing in
//! for the frontend pods' sidecars.
//!
//! The Deployment controller creates the frontend pods; with no kubelet here, the test plays
//! it: it reports each pod running at a loopback address of its own and starts that pod's
//! agent there (the operator reaches agents at pod IP:7379 / :9379, as in a cluster). Shown:
//! the pods get the handoff grace period and the sidecar; the ring ConfigMap and the status
//! list the frontend pods; a session written through one agent is read through every other
//! (forwarding to the owner); a pod that starts terminating leaves the ring while its agent,
//! told to stop, hands its sessions over (replication factor 1: the only copy) and exits; no
//! session is lost; Events and metrics tell the ring's steps.

mod operator_support;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use operator_support::*;
use serde_json::json;
use sessionplane_operator::ring_driver::node_api;
use sessionplane_operator::ring_driver::state::RingState;
use sessionplane_store::loadgen::client::RespClient;
use sessionplane_store::reply::Reply;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SESSIONS: usize = 300;
const IO: Duration = Duration::from_secs(5);

/// One frontend pod's agent, on the pod's (loopback) IP.
struct Agent {
    pod: String,
    ip: String,
    log: PathBuf,
    child: Child,
}

impl Agent {
    fn start(root: &Path, pod: &str, ip: &str) -> Agent {
        let log = root.join(format!("{pod}.log"));
        let out = std::fs::File::create(&log).expect("agent log");
        let err = out.try_clone().expect("clone the log handle");
        let child = Command::new(env!("CARGO_BIN_EXE_sessionplane"))
            .arg("agent")
            .env("SESSIONPLANE_STRATEGY", "Sticky")
            .env("SESSIONPLANE_NODE_ID", pod)
            .env("SESSIONPLANE_LISTEN", format!("{ip}:6379"))
            .env("SESSIONPLANE_PEER_LISTEN", format!("{ip}:7379"))
            .env("SESSIONPLANE_ADMIN_LISTEN", format!("{ip}:9379"))
            .env("SESSIONPLANE_DATA_DIR", root.join(pod))
            .env("SESSIONPLANE_HANDOFF_SECONDS", "60")
            .env_remove("SESSIONPLANE_PASSWORD")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn sessionplane agent");
        Agent {
            pod: pod.to_string(),
            ip: ip.to_string(),
            log,
            child,
        }
    }

    fn resp(&self) -> String {
        format!("{}:6379", self.ip)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "SIGTERM to {}", self.pod);
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn call(addr: &str, args: &[&[u8]]) -> Option<Reply> {
    let mut c = RespClient::connect(addr, IO).await.ok()?;
    c.call(args, IO).await.ok()
}

fn key(i: usize) -> String {
    format!("session:{i}")
}

/// Every session reads back, with its value, through the agent at `addr`.
async fn all_sessions_read(addr: &str) -> Result<(), String> {
    let mut c = RespClient::connect(addr, IO)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    for i in 0..SESSIONS {
        let k = key(i);
        match c.call(&[b"GET", k.as_bytes()], IO).await {
            Ok(Reply::Bulk(v)) if v == format!("user-{i}").as_bytes() => {}
            other => return Err(format!("GET {k} via {addr}: {other:?}")),
        }
    }
    Ok(())
}

fn ring_state(cm: &ConfigMap) -> Option<RingState> {
    serde_json::from_str(cm.data.as_ref()?.get("ring.json")?).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_ring_over_frontend_pods_hands_sessions_off_before_a_pod_goes() {
    let client = client().await;
    ensure_crd(&client).await;
    let ns = TestNs::new(&client, "op-sticky").await;
    let op = start_leader(&client, &ns.name).await;

    let mut spec = base_spec("Sticky");
    spec["spec"]["frontend"]["replicas"] = json!(3);
    spec["spec"]["sticky"] = json!({"handoffGracePeriodSeconds": 90});
    ns.create_sc("st", spec)
        .await
        .expect("create the SessionCluster");

    // The Deployment carries the handoff grace and the agent sidecar with its data dir.
    let dep = wait_object(&ns, "apps/v1", "Deployment", "st-frontend", "built", |_| {
        true
    })
    .await;
    let pod_spec = &dep["spec"]["template"]["spec"];
    assert_eq!(pod_spec["terminationGracePeriodSeconds"], 90);
    let agent = &pod_spec["initContainers"][0];
    assert_eq!(agent["args"], json!(["agent"]));
    assert_eq!(agent["restartPolicy"], "Always");
    assert!(
        agent["env"].as_array().is_some_and(|e| e
            .iter()
            .any(|v| v["name"] == "SESSIONPLANE_HANDOFF_SECONDS" && v["value"] == "85")),
        "{agent}"
    );
    let config = wait_object(&ns, "v1", "ConfigMap", "st-config", "built", |_| true).await;
    assert_eq!(config["data"]["SESSIONPLANE_STRATEGY"], "Sticky");
    assert_eq!(config["data"]["SESSIONPLANE_REPLICATION_FACTOR"], "1");

    // The ReplicaSet's pods, played running: each at an address of its own, with its agent.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let selector = "sessionplane.dev/cluster=st,app.kubernetes.io/component=frontend";
    let names: Vec<String> = wait_for("3 frontend pods", Duration::from_secs(60), || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels(selector))
                .await
                .ok()?;
            let names: Vec<String> = list
                .items
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            (names.len() == 3).then_some(names)
        }
    })
    .await;
    let net = 100 + (std::process::id() % 100);
    let root = tempfile::tempdir().expect("temporary directory");
    let mut agents: BTreeMap<String, Agent> = BTreeMap::new();
    for (i, name) in names.iter().enumerate() {
        let ip = format!("127.78.{net}.{}", i + 1);
        // A finalizer of the test's: a deleted pod stays terminating, as with a kubelet
        // running out its grace period, until the test lets it go.
        pods.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["sessionplane.dev/test-kubelet"]}})),
        )
        .await
        .expect("add the test finalizer");
        agents.insert(name.clone(), Agent::start(root.path(), name, &ip));
        let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}});
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("report the pod running");
    }

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let cm_state = || {
        let cms = cms.clone();
        async move { ring_state(&cms.get_opt("st-ring").await.ok()??) }
    };
    let want: BTreeSet<String> = names.iter().cloned().collect();
    let placed = wait_for(
        "the ring over the 3 pods",
        Duration::from_secs(60),
        || async { cm_state().await.filter(|s| s.serving() == want) },
    )
    .await;
    assert_eq!(placed.replication_factor, 1);
    assert_eq!(placed.partitions, 128);
    for (id, addr) in &placed.members {
        let ip = &agents[id].ip;
        assert_eq!(
            addr,
            &format!("{ip}:7379"),
            "members are reached at pod IPs"
        );
    }
    let sc_api = ns.sessionclusters();
    wait_for(
        "status.ring to list the pods",
        Duration::from_secs(60),
        || async {
            let sc = serde_json::to_value(sc_api.get("st").await.ok()?).ok()?;
            let members: BTreeSet<String> =
                serde_json::from_value(sc["status"]["ring"]["members"].clone()).ok()?;
            (members == want).then_some(())
        },
    )
    .await;
    for a in agents.values() {
        wait_for(
            &format!("{} to serve", a.pod),
            Duration::from_secs(30),
            || async {
                matches!(call(&a.resp(), &[b"PING"]).await, Some(Reply::Simple(_))).then_some(())
            },
        )
        .await;
    }

    // Sessions written through one agent land on their owners; any agent finds each one.
    let first = agents.values().next().expect("an agent").resp();
    let mut c = RespClient::connect(&first, IO).await.expect("connect");
    for i in 0..SESSIONS {
        let (k, v) = (key(i), format!("user-{i}"));
        let r = c
            .call(&[b"SET", k.as_bytes(), v.as_bytes()], IO)
            .await
            .expect("SET");
        assert_eq!(r, Reply::Simple("OK".into()), "SET {k}");
    }
    for a in agents.values() {
        all_sessions_read(&a.resp())
            .await
            .expect("read through every agent");
    }
    let held: Vec<u64> = join_keys(&agents).await;
    assert!(
        held.iter().all(|&k| k > 0) && held.iter().sum::<u64>() == SESSIONS as u64,
        "every agent owns a share, one copy each: {held:?}"
    );

    // A pod is deleted: it leaves the ring while its agent, told to stop, hands its
    // sessions over and exits on its own.
    let victim = names[0].clone();
    let started = Instant::now();
    pods.delete(&victim, &DeleteParams::default())
        .await
        .expect("delete the pod");
    agents[&victim].terminate();
    let exit = wait_for(
        "the agent to hand off and exit",
        Duration::from_secs(90),
        || {
            let child = &mut agents.get_mut(&victim).expect("victim").child;
            let status = child.try_wait().ok().flatten();
            async move { status }
        },
    )
    .await;
    let handoff = started.elapsed();
    let log = agents[&victim].log_text();
    assert!(exit.success(), "agent exit {exit:?}:\n{log}");
    assert!(log.contains("handoff done"), "{log}");
    let owned_nothing_after = log
        .lines()
        .find(|l| l.contains("handoff done"))
        .and_then(|l| l.split("handoff_ms=").nth(1))
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap_or("?")
        .to_string();
    eprintln!(
        "handoff of {victim}: owned nothing {owned_nothing_after} ms after SIGTERM; \
         exited {handoff:?} after the deletion (with the linger)"
    );
    pods.patch(
        &victim,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("let the pod go");

    let rest: BTreeSet<String> = names[1..].iter().cloned().collect();
    wait_for(
        "the ring without the pod",
        Duration::from_secs(60),
        || async {
            cm_state()
                .await
                .filter(|s| s.serving() == rest && !s.members.contains_key(&victim))
        },
    )
    .await;
    for id in &rest {
        all_sessions_read(&agents[id].resp())
            .await
            .expect("no session lost in the handoff");
    }

    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), &ns.name);
    let notes: Vec<String> = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("RingEpoch"))
        .filter_map(|e| e.note)
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("learners caught up")),
        "{notes:?}"
    );
    let metrics = scrape(op.metrics_addr);
    assert!(
        metrics.contains("sessionplane_operator_ring_epochs_total{step=\"flip\"}"),
        "{metrics}"
    );

    op.stop().await.expect("stop the operator");
    drop(agents);
    ns.cleanup().await;
}

/// Keys each agent holds, from its own status.
async fn join_keys(agents: &BTreeMap<String, Agent>) -> Vec<u64> {
    let mut out = Vec::new();
    for a in agents.values() {
        let status = node_api::status(&format!("{}:9379", a.ip)).await.ok();
        out.push(status.and_then(|s| s["keys"].as_u64()).unwrap_or(0));
    }
    out
}
