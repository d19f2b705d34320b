//! The clustered data path: ring configuration and fencing, routing and forwarding,
//! synchronous replication, live migration to learners, and active TTL expiry.

mod coalesce;
pub mod config;
mod expiry;
mod handler;
mod lease;
mod migration;
pub mod partition;
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
/// not acknowledging) before the client gets a TRYAGAIN error. Longer than a master
/// needs to notice a dead node and push a new epoch.
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(15);
/// The same for a command forwarded from another node; shorter than the forwarding
/// RPC's timeout so the forwarder gets an answer rather than a timeout.
pub const FORWARDED_DEADLINE: Duration = Duration::from_secs(8);
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
pub const REPLICATE_TIMEOUT: Duration = Duration::from_secs(3);

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
            Retry::Replication(_) => "replication",
            Retry::Storage(_) => "storage",
            Retry::NoLease => "no_lease",
            Retry::LeaseWait => "lease_wait",
        }
    }
}
