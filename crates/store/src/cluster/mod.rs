//! The clustered data path: ring configuration and fencing, routing and forwarding,
//! synchronous replication, live migration to learners, and active TTL expiry.

mod coalesce;
pub mod config;
mod expiry;
mod handler;
mod lease;
mod migration;
pub mod partition;
mod pipeline;
pub(crate) mod replication;
mod router;
pub(crate) use coalesce::Lane;
pub(crate) use router::Backoff;
pub mod rpc;

pub use expiry::EXPIRY_TICK;
pub(crate) use lease::Leases;
pub use lease::{LEASE_GRANT, LEASE_HOLD, LEASE_RENEW_EVERY};

use std::time::Duration;

/// How long a client command keeps retrying (stale epoch, unreachable owner, replica
/// not acknowledging) before the client gets a TRYAGAIN error, unless the node is told
/// otherwise (`--command-timeout-ms`). Long enough for a master to push a new epoch
/// after a node left; short enough that web frameworks' request timeouts (often 5 s)
/// have not given up first: a write still retrying here after its application answered
/// its user would land after whatever the user did next.
pub const DEFAULT_COMMAND_TIMEOUT_MS: u64 = 4000;
/// A forwarded command retries on the primary for what is left of the forwarder's
/// command timeout (sent with it), and never longer than this.
pub const FORWARDED_DEADLINE: Duration = Duration::from_secs(8);
/// How long a forwarder waits for the primary's answer at most.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
pub const REPLICATE_TIMEOUT: Duration = Duration::from_secs(3);
/// How much longer than the command's own deadline a forwarder waits for the primary's
/// answer: the primary may begin one last attempt just before the deadline, and that
/// attempt waits for its replicas up to `REPLICATE_TIMEOUT`. Giving up earlier would
/// leave the outcome unknown while the write could still be applied.
pub const FORWARD_ANSWER_GRACE: Duration =
    Duration::from_millis(REPLICATE_TIMEOUT.as_millis() as u64 + 1000);

/// Why one attempt at a command did not complete; every one of them is retried.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Retry {
    #[error("no ring configuration yet")]
    NoConfig,
    #[error("a peer serves the newer epoch {0}")]
    StaleEpoch(u64),
    #[error("a peer has not reached this epoch yet")]
    PeerBehind,
    #[error("the configuration changed during the command")]
    ConfigChanged,
    #[error("the addressed node does not own the partition")]
    NotOwner,
    #[error("owner unreachable: {0}")]
    Unreachable(String),
    /// A forward went out and no answer came back: the primary may have executed it.
    /// Reads retry; writes do not (see `rpc::RpcError::outcome_unknown`).
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    #[error("the command timeout ran out")]
    Deadline,
    #[error("replication failed: {0}")]
    Replication(String),
    #[error("storage: {0}")]
    Storage(String),
    #[error("no read lease: a backup or learner has not granted one recently")]
    NoLease,
    #[error("waiting out a read lease granted to the previous primary")]
    LeaseWait,
}

impl Retry {
    pub fn label(&self) -> &'static str {
        match self {
            Retry::NoConfig => "no_config",
            Retry::StaleEpoch(_) => "stale_epoch",
            Retry::PeerBehind => "peer_behind",
            Retry::ConfigChanged => "config_changed",
            Retry::NotOwner => "not_owner",
            Retry::Unreachable(_) => "unreachable",
            Retry::OutcomeUnknown(_) => "outcome_unknown",
            Retry::Deadline => "deadline",
            Retry::Replication(_) => "replication",
            Retry::Storage(_) => "storage",
            Retry::NoLease => "no_lease",
            Retry::LeaseWait => "lease_wait",
        }
    }
}
