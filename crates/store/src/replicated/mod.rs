//! Strategy Replicated: every agent (the sidecar of each frontend pod) holds every
//! session.
//!
//! A write applies locally, stamped with a hybrid logical clock, and is pushed to every
//! live peer (`Async`: the client is answered after the local apply; `Sync`: after every
//! live peer acked, or after the failure-detector timeout). Anti-entropy compares bucket
//! digests with a random peer and repairs what a push missed; conflicts resolve last
//! writer wins per key. A new agent pulls a full state from a ready peer before it
//! reports ready. See docs/strategies.md.

mod admin;
pub mod agent;
pub mod antientropy;
pub mod hlc;
pub mod metrics;
pub mod peers;
pub mod state;
pub mod wire;

use crate::server::{self, ServerArgs, ServerConfig};
use agent::Agent;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Propagation {
    /// Answer the client after the local apply; peers catch up in the background.
    #[value(name = "Async", alias = "async")]
    Async,
    /// Answer the client after every live peer acked (or the peer timeout passed).
    #[value(name = "Sync", alias = "sync")]
    Sync,
}

/// Command-line arguments of the Replicated agent (`sessionplane agent` with
/// SESSIONPLANE_STRATEGY=Replicated); every flag has the env fallback the operator's
/// ConfigMap and sidecar spec set.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplicatedArgs {
    /// Address the Redis protocol listens on (the app reaches it on localhost).
    #[arg(long, env = "SESSIONPLANE_LISTEN", default_value = "127.0.0.1:6379")]
    pub listen: SocketAddr,
    /// This agent's id: unique among the peers (the pod name).
    #[arg(long, env = "SESSIONPLANE_NODE_ID")]
    pub id: String,
    /// Address of the peer RPC (push, anti-entropy, bootstrap).
    #[arg(long, env = "SESSIONPLANE_PEER_LISTEN", default_value = "0.0.0.0:7379")]
    pub peer_listen: SocketAddr,
    /// Address of the admin HTTP API (probes, status, metrics).
    #[arg(
        long,
        env = "SESSIONPLANE_ADMIN_LISTEN",
        default_value = "0.0.0.0:9379"
    )]
    pub admin: SocketAddr,
    #[arg(
        long,
        env = "SESSIONPLANE_PROPAGATION",
        value_enum,
        default_value = "Async"
    )]
    pub propagation: Propagation,
    /// Headless Service whose A records are every agent (resolved periodically; the port
    /// is the one of --peer-listen).
    #[arg(long, env = "SESSIONPLANE_PEER_SERVICE")]
    pub peer_service: Option<String>,
    /// The peer address other agents reach this one on (host:port; the pod IP in a
    /// cluster), sent in pings so peers push to a new agent before DNS lists it.
    #[arg(long, env = "SESSIONPLANE_ADVERTISE_ADDR")]
    pub advertise: Option<String>,
    /// Fixed peer addresses (host:port, comma separated), next to or instead of DNS.
    #[arg(long, env = "SESSIONPLANE_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,
    /// Failure detector: a peer is live while it answered within this time. It is also
    /// the longest a Sync write waits for a peer's ack.
    #[arg(long, env = "SESSIONPLANE_PEER_TIMEOUT_MS", default_value_t = 1000)]
    pub peer_timeout_ms: u64,
    #[arg(
        long,
        env = "SESSIONPLANE_ANTI_ENTROPY_INTERVAL_MS",
        default_value_t = 1000
    )]
    pub anti_entropy_interval_ms: u64,
    #[arg(
        long,
        env = "SESSIONPLANE_MEMBERSHIP_INTERVAL_MS",
        default_value_t = 2000
    )]
    pub membership_interval_ms: u64,
    /// Longest wait for a ready peer to pull from before starting empty.
    #[arg(
        long,
        env = "SESSIONPLANE_BOOTSTRAP_TIMEOUT_SECS",
        default_value_t = 15
    )]
    pub bootstrap_timeout_secs: u64,
    /// Session lifetime; tombstones are kept for max(this, 10 minutes).
    #[arg(long, env = "SESSIONPLANE_SESSION_TTL_SECONDS", default_value_t = 3600)]
    pub session_ttl_seconds: u64,
    /// Largest key plus value a write may leave (every agent holds every session).
    #[arg(long, env = "SESSIONPLANE_MAX_SESSION_BYTES", default_value_t = 1024 * 1024)]
    pub max_session_bytes: usize,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// The agent's timings, from the arguments.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub peer_timeout: Duration,
    pub anti_entropy_interval: Duration,
    pub membership_interval: Duration,
    pub bootstrap_timeout: Duration,
    pub tombstone_retention: Duration,
}

impl ReplicatedArgs {
    fn timing(&self) -> Timing {
        Timing {
            peer_timeout: Duration::from_millis(self.peer_timeout_ms.max(1)),
            anti_entropy_interval: Duration::from_millis(self.anti_entropy_interval_ms.max(10)),
            membership_interval: Duration::from_millis(self.membership_interval_ms.max(10)),
            bootstrap_timeout: Duration::from_secs(self.bootstrap_timeout_secs),
            tombstone_retention: Duration::from_secs(self.session_ttl_seconds.max(600)),
        }
    }
}

/// Runs an agent until SIGTERM or Ctrl-C.
pub async fn run(args: ReplicatedArgs) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let config = ServerConfig::from_args(args.listen, &args.server)?;
    let agent = start(&args, stop_rx).await?;
    let backend: Arc<dyn crate::backend::Backend> = agent.clone();
    server::serve(config, backend, crate::shutdown_signal()).await?;
    let left = agent.drain(agent.timing.peer_timeout * 2).await;
    if left > 0 {
        tracing::warn!(
            left,
            "stopping with pushes not acked; anti-entropy cannot repair them"
        );
    }
    stop_tx.send_replace(true);
    tracing::info!("replicated agent stopped");
    Ok(())
}

/// Binds the peer RPC and admin API, then bootstraps and runs the background loops in
/// a task of its own (the Redis front answers LOADING until the agent is ready).
pub async fn start(
    args: &ReplicatedArgs,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Arc<Agent>> {
    let discovery = peers::Discovery {
        static_peers: args
            .peers
            .iter()
            .filter(|p| !p.is_empty())
            .cloned()
            .collect(),
        service: args
            .peer_service
            .clone()
            .map(|s| (s, args.peer_listen.port())),
    };
    let agent = Agent::new(
        args.id.clone(),
        args.propagation,
        args.timing(),
        args.max_session_bytes,
        discovery,
        args.advertise.clone(),
        crate::cluster::rpc::PeerKey::from_optional(args.server.password.as_deref()),
    );
    let peer_listener = tokio::net::TcpListener::bind(args.peer_listen).await?;
    let admin_listener = tokio::net::TcpListener::bind(args.admin).await?;
    let rpc_agent = agent.clone();
    tokio::spawn(crate::cluster::rpc::serve_as(
        peer_listener,
        agent.rpc.key().cloned(),
        move |req| rpc_agent.clone().handle_peer(req),
        crate::stopped(shutdown.clone()),
        |e| wire::PeerResponse::Error(format!("undecodable request: {e}")),
    ));
    tokio::spawn(admin::serve(
        admin_listener,
        agent.clone(),
        crate::stopped(shutdown.clone()),
    ));
    tracing::info!(id = %args.id, propagation = ?args.propagation, "replicated agent starting");
    let background = agent.clone();
    let stop = crate::stopped(shutdown);
    tokio::spawn(async move {
        tokio::select! {
            _ = run_loops(background) => {}
            _ = stop => {}
        }
    });
    Ok(agent)
}

async fn run_loops(agent: Arc<Agent>) {
    antientropy::bootstrap(&agent).await;
    agent.heartbeat().await;
    let timing = agent.timing;
    let mut heartbeat = tokio::time::interval(timing.peer_timeout / 3);
    let mut membership = tokio::time::interval(timing.membership_interval);
    let mut ae = tokio::time::interval(timing.anti_entropy_interval);
    let mut gc = tokio::time::interval(Duration::from_secs(10));
    for t in [&mut heartbeat, &mut membership, &mut ae, &mut gc] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                let a = agent.clone();
                // A hung peer must not stall the other loops: each heartbeat round runs
                // on its own, bounded by the peer timeout.
                tokio::spawn(async move { a.heartbeat().await });
            }
            _ = membership.tick() => { agent.refresh_membership().await; }
            _ = ae.tick() => {
                let a = agent.clone();
                tokio::spawn(async move { antientropy::round(&a).await });
            }
            _ = gc.tick() => { agent.collect_garbage(); }
        }
    }
}
