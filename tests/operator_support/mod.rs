//! Shared helpers of the operator integration tests: a client for the local control
//! plane, a fresh namespace per test, the CRD, an in-process operator, bounded polling.
#![allow(dead_code)] // each test binary uses a different subset

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Client;
use serde_json::{json, Value};
use sessionplane_operator::leader::Timings;
use sessionplane_operator::runtime::{self, Running, Settings};
use tokio::sync::OnceCell;

pub const CRD_NAME: &str = "sessionclusters.sessionplane.dev";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A client for the cluster named by KUBECONFIG. Fails loudly without one: these tests
/// are the main evidence for the operator and must never pass by skipping.
pub async fn client() -> Client {
    init_tracing();
    let Some(path) = std::env::var_os("KUBECONFIG") else {
        panic!(
            "KUBECONFIG is not set: these tests need the local control plane. Run \
             `bash hack/cluster.sh up && eval \"$(bash hack/cluster.sh env)\"` first."
        );
    };
    if !Path::new(&path).exists() {
        panic!("KUBECONFIG={path:?} does not exist: run `bash hack/cluster.sh up`");
    }
    let client = Client::try_default().await.unwrap_or_else(|e| {
        panic!("no client from KUBECONFIG={path:?}: {e}; run `bash hack/cluster.sh up`")
    });
    if let Err(e) = client.apiserver_version().await {
        panic!("the API server in KUBECONFIG={path:?} does not answer ({e}): run `bash hack/cluster.sh up`");
    }
    client
}

/// Operator logs in the test output (shown for failing tests); RUST_LOG overrides the level.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sessionplane_operator=debug"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

static CRD: OnceCell<()> = OnceCell::const_new();

/// Installs crds/ by server-side apply (once per test binary) and waits until Established.
pub async fn ensure_crd(client: &Client) {
    CRD.get_or_init(|| async {
        let text = std::fs::read_to_string(repo_root().join("crds/sessioncluster.yaml"))
            .expect("read crds/sessioncluster.yaml");
        let crd: Value = serde_yaml::from_str(&text).expect("parse the CRD");
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        api.patch(
            CRD_NAME,
            &PatchParams::apply("sessionplane-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("apply the CRD");
        wait_for(
            "the CRD to be Established",
            Duration::from_secs(30),
            || async {
                let crd = api.get(CRD_NAME).await.ok()?;
                let conds = crd.status?.conditions?;
                conds
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            },
        )
        .await;
        // Discovery of a fresh CRD lags its Established condition a little.
        wait_for(
            "the SessionCluster kind in discovery",
            Duration::from_secs(30),
            || async {
                let gvk = GroupVersionKind::gvk("sessionplane.dev", "v1alpha1", "SessionCluster");
                kube::discovery::pinned_kind(client, &gvk)
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
    })
    .await;
}

/// Polls `f` every 200 ms until it returns `Some`, or panics after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A namespace of its own for one test; deleted by `cleanup` (left behind on failure,
/// for a look with kubectl).
pub struct TestNs {
    pub name: String,
    pub client: Client,
}

impl TestNs {
    pub async fn new(client: &Client, prefix: &str) -> TestNs {
        let suffix: u32 = rand_suffix();
        let name = format!("{prefix}-{suffix:08x}");
        let api: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"sessionplane.dev/test": "true"}}
        }))
        .expect("namespace object");
        api.create(&PostParams::default(), &ns)
            .await
            .expect("create the test namespace");
        TestNs {
            name,
            client: client.clone(),
        }
    }

    pub async fn cleanup(self) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let _ = api.delete(&self.name, &DeleteParams::background()).await;
    }

    pub fn dynamic(&self, api_version: &str, kind: &str) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            &self.name,
            &api_resource(api_version, kind),
        )
    }

    pub fn sessionclusters(&self) -> Api<DynamicObject> {
        self.dynamic("sessionplane.dev/v1alpha1", "SessionCluster")
    }

    /// Creates a SessionCluster from JSON (name and namespace filled in).
    pub async fn create_sc(&self, name: &str, mut sc: Value) -> Result<DynamicObject, kube::Error> {
        sc["apiVersion"] = json!("sessionplane.dev/v1alpha1");
        sc["kind"] = json!("SessionCluster");
        sc["metadata"]["name"] = json!(name);
        sc["metadata"]["namespace"] = json!(self.name);
        let obj: DynamicObject = serde_json::from_value(sc).expect("SessionCluster JSON");
        self.sessionclusters()
            .create(&PostParams::default(), &obj)
            .await
    }

    /// Merge-patches a SessionCluster's spec as a user would (`kubectl patch --type merge`).
    pub async fn patch_sc(&self, name: &str, patch: Value) -> Result<DynamicObject, kube::Error> {
        self.sessionclusters()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
    }

    /// Gets an object as JSON, or `None` if it does not exist.
    pub async fn get(&self, api_version: &str, kind: &str, name: &str) -> Option<Value> {
        let obj = self.dynamic(api_version, kind).get_opt(name).await.ok()??;
        serde_json::to_value(obj).ok()
    }

    /// Runs kubectl against this namespace.
    pub fn kubectl(&self, args: &[&str]) -> std::process::Output {
        kubectl(&[&["-n", &self.name], args].concat())
    }
}

pub fn api_resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

fn rand_suffix() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() as u32
}

/// A staged cookie key seals this soon in the tests (the operator's default is 120 s), so a
/// whole rotation fits in a test.
pub const KEYRING_PROPAGATION: Duration = Duration::from_secs(3);

fn keyring_propagation() -> Duration {
    KEYRING_PROPAGATION
}

/// Starts the operator in-process, watching only `ns`, with its Lease in `ns`.
pub async fn start_operator(
    client: &Client,
    ns: &str,
    identity: &str,
    timings: Timings,
) -> Running {
    start_operator_with(client, ns, identity, timings, Default::default()).await
}

/// The same, with a store failover policy of its own (short windows in tests).
pub async fn start_operator_with(
    client: &Client,
    ns: &str,
    identity: &str,
    timings: Timings,
    failover: sessionplane_operator::ring_driver::health::FailoverPolicy,
) -> Running {
    let settings = Settings {
        metrics_addr: "127.0.0.1:0".parse().expect("loopback address"),
        watch_namespace: Some(ns.to_owned()),
        lease_namespace: ns.to_owned(),
        lease_name: "sessionplane-operator".to_owned(),
        identity: identity.to_owned(),
        timings,
        leader_election: true,
        image: "example.invalid/sessionplane:test".to_owned(),
        cluster_domain: "cluster.local".to_owned(),
        keyring_propagation: keyring_propagation(),
        failover,
    };
    runtime::start(client.clone(), settings)
        .await
        .expect("start the operator")
}

/// Starts one operator for `ns` and waits until it leads and its caches are synced.
pub async fn start_leader(client: &Client, ns: &str) -> Running {
    start_leader_with(client, ns, Default::default()).await
}

/// The same, with a store failover policy of its own.
pub async fn start_leader_with(
    client: &Client,
    ns: &str,
    failover: sessionplane_operator::ring_driver::health::FailoverPolicy,
) -> Running {
    let op = start_operator_with(client, ns, "test-operator", Timings::default(), failover).await;
    let ready = op.ready.clone();
    let lead = op.leadership.clone();
    wait_for(
        "the operator to lead and sync",
        Duration::from_secs(30),
        || {
            let ready = ready.clone();
            let lead = lead.clone();
            async move {
                (lead.borrow().is_leader() && ready.load(std::sync::atomic::Ordering::Acquire))
                    .then_some(())
            }
        },
    )
    .await;
    op
}

/// The kubectl of the local control plane: $KUBECTL, else the cached build, else PATH.
pub fn kubectl_path() -> PathBuf {
    if let Some(p) = std::env::var_os("KUBECTL") {
        return PathBuf::from(p);
    }
    let out = Command::new("bash")
        .arg(repo_root().join("hack/k8s/build.sh"))
        .arg("paths")
        .output();
    if let Ok(out) = out {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(dir) = line.strip_prefix("K8S_BIN=") {
                let p = PathBuf::from(dir.trim_matches('\'').trim_matches('"')).join("kubectl");
                if p.exists() {
                    return p;
                }
            }
        }
    }
    PathBuf::from("kubectl")
}

pub fn kubectl(args: &[&str]) -> std::process::Output {
    Command::new(kubectl_path())
        .args(args)
        .output()
        .expect("run kubectl")
}

/// The JSON of a manifest file under the repo.
pub fn manifest(rel: &str) -> Value {
    let text = std::fs::read_to_string(repo_root().join(rel))
        .unwrap_or_else(|e| panic!("read {rel}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parse {rel}: {e}"))
}

/// A small valid SessionCluster spec of the given strategy, routed by a Service without affinity.
pub fn base_spec(strategy: &str) -> Value {
    let mut spec = json!({
        "strategy": strategy,
        "frontend": {
            "replicas": 2,
            "port": 8080,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "web"}},
                "spec": {"containers": [{"name": "web", "image": "example.invalid/web:1.0"}]}
            }
        },
        "routing": {"affinity": {"mode": "None"}, "provider": {"type": "Service"}}
    });
    match strategy {
        "Store" => spec["store"] = json!({"replicas": 3, "replicationFactor": 2, "partitions": 64}),
        "Sticky" => spec["routing"]["affinity"] = json!({"mode": "ClientIP"}),
        _ => {}
    }
    json!({ "spec": spec })
}

/// Waits until `f` sees the object in the wanted state; returns it.
pub async fn wait_object(
    ns: &TestNs,
    api_version: &str,
    kind: &str,
    name: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(
        &format!("{kind} {name}: {what}"),
        Duration::from_secs(30),
        || async {
            let obj = ns.get(api_version, kind, name).await?;
            check(&obj).then_some(obj)
        },
    )
    .await
}

/// The operator's /metrics page.
pub fn scrape(addr: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to /metrics");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The value of one counter series (name with labels) on a metrics page; 0 when absent.
pub fn counter(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// (kind, name) → object, for everything labelled with the cluster.
pub type Owned = std::collections::BTreeMap<(String, String), Value>;

/// Every object of the operator's owned kinds carrying the cluster label.
pub async fn owned(ns: &TestNs, cluster: &str) -> Owned {
    let mut out = Owned::new();
    let lp =
        kube::api::ListParams::default().labels(&format!("sessionplane.dev/cluster={cluster}"));
    for (av, kind) in sessionplane_operator::build::owned_kinds() {
        let list = ns
            .dynamic(av, kind)
            .list(&lp)
            .await
            .unwrap_or_else(|e| panic!("list {kind}: {e}"));
        for item in list.items {
            let v = serde_json::to_value(&item).expect("an object is JSON");
            let name = v["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            out.insert((kind.to_string(), name), v);
        }
    }
    out
}
