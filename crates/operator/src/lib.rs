//! The SessionCluster API and the controller that reconciles it.

pub mod advice;
pub mod api;
pub mod build;
pub mod controller;
pub mod error;
pub mod http;
pub mod keyring;
pub mod leader;
pub mod metrics;
pub mod ring_driver;
pub mod routing_change;
pub mod runtime;
pub mod status;
pub mod validate;

/// Command-line arguments of `sessionplane operator`.
#[derive(Debug, Clone, clap::Args)]
pub struct OperatorArgs {
    /// Address of the metrics and health HTTP server.
    #[arg(
        long,
        env = "SESSIONPLANE_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_addr: std::net::SocketAddr,

    /// Watch SessionClusters in this namespace only (all namespaces when unset).
    #[arg(long, env = "SESSIONPLANE_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// Elect a leader on a Lease so several replicas can run; off only for a single replica.
    #[arg(long, env = "SESSIONPLANE_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,

    /// Namespace of the leader-election Lease (default: POD_NAMESPACE, the service
    /// account's namespace, the watched namespace, else `default`).
    #[arg(long, env = "SESSIONPLANE_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "SESSIONPLANE_LEASE_NAME",
        default_value = "sessionplane-operator"
    )]
    pub lease_name: String,

    /// DNS domain of the cluster: store nodes reach each other at
    /// `<pod>.<headless service>.<namespace>.svc.<domain>`.
    #[arg(
        long,
        env = "SESSIONPLANE_CLUSTER_DOMAIN",
        default_value = "cluster.local"
    )]
    pub cluster_domain: String,

    /// Seconds a new cookie key (strategy Client) is only staged before it seals new
    /// cookies: longer than a Secret update takes to reach every frontend pod's volume
    /// (the kubelet's sync period, 1 min by default, plus its cache TTL).
    #[arg(
        long,
        env = "SESSIONPLANE_KEYRING_PROPAGATION_SECONDS",
        default_value_t = 120,
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub keyring_propagation_seconds: u64,

    /// Image of store nodes and agents when a SessionCluster names none: the operator's own.
    #[arg(long, env = "SESSIONPLANE_IMAGE", default_value = DEFAULT_IMAGE)]
    pub image: String,

    /// Seconds between two probes of every store node's admin API.
    #[arg(long, env = "SESSIONPLANE_STORE_PROBE_INTERVAL", default_value_t = 1.0)]
    pub store_probe_interval: f64,

    /// Consecutive failed probes before a store node is failed over.
    #[arg(long, env = "SESSIONPLANE_STORE_FAILED_PROBES", default_value_t = 5)]
    pub store_failed_probes: u32,

    /// Seconds a store node must stay silent (from its first failed probe) before it is
    /// failed over; never less than the store's read lease plus a margin.
    #[arg(long, env = "SESSIONPLANE_STORE_FAILOVER_AFTER", default_value_t = 8.0)]
    pub store_failover_after: f64,
}

/// The image this build of the operator is published as.
pub const DEFAULT_IMAGE: &str = concat!(
    "docker.io/sessionplane/sessionplane:",
    env!("CARGO_PKG_VERSION")
);

/// The CustomResourceDefinition YAML, as written to `crds/`.
pub fn crd_yaml() -> anyhow::Result<String> {
    use kube::CustomResourceExt;
    Ok(serde_yaml::to_string(&api::SessionCluster::crd())?)
}

/// Runs the operator until SIGTERM or SIGINT. The client comes from the environment
/// (KUBECONFIG, ~/.kube/config, or the in-cluster service account).
pub async fn run(args: OperatorArgs) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await?;
    let settings = runtime::Settings {
        metrics_addr: args.metrics_addr,
        lease_namespace: args
            .lease_namespace
            .or_else(|| {
                std::env::var("POD_NAMESPACE")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .or_else(in_cluster_namespace)
            .or_else(|| args.watch_namespace.clone())
            .unwrap_or_else(|| "default".to_owned()),
        watch_namespace: args.watch_namespace,
        lease_name: args.lease_name,
        identity: leader::decision::identity(
            std::env::var("POD_NAME").ok().as_deref(),
            hostname().as_deref(),
            std::process::id(),
        ),
        timings: leader::Timings::default(),
        leader_election: args.leader_election,
        image: args.image,
        cluster_domain: args.cluster_domain,
        keyring_propagation: std::time::Duration::from_secs(args.keyring_propagation_seconds),
        failover: ring_driver::health::FailoverPolicy {
            probe_interval: seconds(args.store_probe_interval, 1.0),
            failed_probes: args.store_failed_probes.max(1),
            after: seconds(args.store_failover_after, 8.0),
        },
    };
    runtime::run_until_signal(client, settings).await
}

/// A duration from a command-line number of seconds; `fallback` for nonsense (negative,
/// NaN, absurdly large).
fn seconds(value: f64, fallback: f64) -> std::time::Duration {
    std::time::Duration::try_from_secs_f64(value)
        .or_else(|_| std::time::Duration::try_from_secs_f64(fallback))
        .unwrap_or(std::time::Duration::from_secs(1))
}

fn in_cluster_namespace() -> Option<String> {
    std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|s| !s.is_empty())
}
