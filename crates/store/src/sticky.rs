//! The agent of strategy Sticky: a store node running next to one frontend, as a member
//! of a ring the operator places over the frontend pods.
//!
//! The engine is the store's own (routing to the owner, replication, live migration);
//! what is particular to the sidecar is its way out. Kubernetes sends SIGTERM to a pod
//! that is leaving (scale-down, deletion, eviction). The operator sees the same pod
//! terminating and moves the ring to an epoch without it; the agent keeps serving its
//! peers until its own status says it holds nothing (its partitions were copied to their
//! new owners and the flip made them primaries), then stays a moment longer so the
//! operator reads that status, then exits. With replication factor 1 this handoff is the
//! only copy of the sessions the pod owned.

use crate::node::NodeStatus;
use crate::{server, start_cluster, StoreArgs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a leaving agent looks at its own status.
const HANDOFF_POLL: Duration = Duration::from_millis(200);
/// How long a drained agent keeps answering before it exits: longer than the operator's
/// poll of a moving ring (3 s), so it sees the node hold nothing and closes the ring
/// without it instead of waiting for the failover window.
pub const LINGER: Duration = Duration::from_secs(5);

/// Command-line arguments of the Sticky agent (`sessionplane agent` with
/// SESSIONPLANE_STRATEGY=Sticky).
#[derive(Debug, Clone, clap::Args)]
pub struct StickyArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Longest the agent waits, once told to stop, for the ring to move its sessions to
    /// their new owners. The operator sets it a little below the pod's grace period.
    #[arg(long, env = "SESSIONPLANE_HANDOFF_SECONDS", default_value_t = 60)]
    pub handoff_seconds: u64,
}

/// The node's own word that it owns nothing: no partition data and no role. The same
/// test the operator applies before it drops a draining node from the ring.
pub fn owns_nothing(status: &NodeStatus) -> bool {
    status.partitions_held == 0
        && status.roles.primary == 0
        && status.roles.replica == 0
        && status.roles.learner == 0
}

/// How a handoff ended, for the log line and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// The node owned nothing after this long.
    Done(Duration),
    /// The deadline passed first; what the node still held is lost unless a replica has it.
    TimedOut { keys_left: u64 },
}

/// Waits until `node` owns nothing or `limit` passes.
pub async fn hand_off(node: &crate::node::Node, limit: Duration) -> Handoff {
    let started = Instant::now();
    loop {
        let status = node.status().await;
        if owns_nothing(&status) {
            return Handoff::Done(started.elapsed());
        }
        if started.elapsed() >= limit {
            return Handoff::TimedOut {
                keys_left: status.keys,
            };
        }
        tokio::time::sleep(HANDOFF_POLL.min(limit.saturating_sub(started.elapsed()))).await;
    }
}

/// Runs the Sticky agent until SIGTERM (or Ctrl-C) and the handoff that follows.
pub async fn run(args: StickyArgs) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let cluster = start_cluster(&args.store, stop_rx).await?;
    let config = server::ServerConfig::from_args(args.store.listen, &args.store.server)?;
    let backend: Arc<dyn crate::backend::Backend> = cluster.node.clone();
    let node = cluster.node.clone();
    let limit = Duration::from_secs(args.handoff_seconds);
    let leaving = async move {
        crate::shutdown_signal().await;
        tracing::info!(limit = ?limit, "stop requested: handing sessions to their new owners");
        match hand_off(&node, limit).await {
            Handoff::Done(took) => {
                tracing::info!(
                    handoff_ms = took.as_millis() as u64,
                    "handoff done: this agent owns nothing"
                );
                // Answer the operator's next status poll with "holds nothing", within
                // the time left.
                let left = limit.saturating_sub(took);
                tokio::time::sleep(LINGER.min(left)).await;
            }
            Handoff::TimedOut { keys_left } => {
                tracing::error!(keys_left, limit = ?limit, "handoff deadline passed with sessions still held here");
            }
        }
    };
    server::serve(config, backend, leaving).await?;
    stop_tx.send_replace(true);
    cluster.node.shutdown().await?;
    tracing::info!("sticky agent stopped");
    Ok(())
}
