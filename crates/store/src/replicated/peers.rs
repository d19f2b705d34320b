//! The other agents: who they are (DNS of the peers Service, or a fixed list), whether
//! the failure detector holds them live, and the queue that batches pushes to each.

use super::state::Record;
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Writes waiting for one peer; beyond this the writes are left to anti-entropy.
pub const QUEUE_CAPACITY: usize = 16 * 1024;

/// One write on its way to one peer; `ack` is answered when the peer applied it.
pub struct Pending {
    pub key: Vec<u8>,
    pub record: Record,
    pub ack: Option<oneshot::Sender<()>>,
}

pub struct Peer {
    pub addr: String,
    /// The node id the peer gave in its last Pong.
    pub id: Mutex<Option<String>>,
    /// Last answer of any kind; the peer is live while this is within the timeout.
    last_ok: Mutex<Option<Instant>>,
    pub queue: mpsc::Sender<Pending>,
}

impl Peer {
    pub fn new(addr: String) -> (Arc<Peer>, mpsc::Receiver<Pending>) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let peer = Peer {
            addr,
            id: Mutex::new(None),
            last_ok: Mutex::new(None),
            queue: tx,
        };
        (Arc::new(peer), rx)
    }

    pub fn answered(&self) {
        *self.last_ok.lock() = Some(Instant::now());
    }

    /// A Sync write gave up waiting on this peer: it stays out of Sync writes until it
    /// answers again (a heartbeat, a push or anti-entropy).
    pub fn suspect(&self) {
        *self.last_ok.lock() = None;
    }

    pub fn is_live(&self, timeout: Duration) -> bool {
        self.last_ok.lock().is_some_and(|t| t.elapsed() < timeout)
    }
}

/// Where peers are found.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// `host:port` of every peer, fixed (tests, benchmarks).
    pub static_peers: Vec<String>,
    /// Headless Service name whose A records are the peers, and their RPC port.
    pub service: Option<(String, u16)>,
}

impl Discovery {
    /// The current peer addresses, or None when DNS could not be asked (not the same as
    /// "no peers": a bootstrapping agent must not take a failed lookup for an empty set).
    pub async fn resolve(&self) -> Option<BTreeSet<String>> {
        let mut out: BTreeSet<String> = self.static_peers.iter().cloned().collect();
        if let Some((name, port)) = &self.service {
            match tokio::net::lookup_host((name.as_str(), *port)).await {
                Ok(addrs) => out.extend(addrs.map(|a| a.to_string())),
                Err(e) => {
                    tracing::debug!(service = %name, error = %e, "peer lookup failed");
                    return None;
                }
            }
        }
        Some(out)
    }
}

/// A peer just found, with the receiving end of its push queue.
pub type NewPeer = (Arc<Peer>, mpsc::Receiver<Pending>);

/// The peer table: address → peer, minus the addresses found to be this agent.
#[derive(Default)]
pub struct PeerTable {
    peers: Mutex<HashMap<String, Arc<Peer>>>,
    own_addrs: Mutex<BTreeSet<String>>,
}

impl PeerTable {
    pub fn all(&self) -> Vec<Arc<Peer>> {
        self.peers.lock().values().cloned().collect()
    }

    pub fn live(&self, timeout: Duration) -> Vec<Arc<Peer>> {
        self.all()
            .into_iter()
            .filter(|p| p.is_live(timeout))
            .collect()
    }

    /// Adds the peers of `addrs` not yet held (minus our own) and drops the held ones
    /// that are neither in `addrs` nor live (a peer that introduced itself before DNS
    /// lists it stays); returns the peers added, with their queues, and the addresses
    /// removed.
    pub fn reconcile(
        &self,
        addrs: &BTreeSet<String>,
        timeout: Duration,
    ) -> (Vec<NewPeer>, Vec<String>) {
        let own = self.own_addrs.lock().clone();
        let mut peers = self.peers.lock();
        let removed: Vec<String> = peers
            .iter()
            .filter(|(a, p)| own.contains(*a) || (!addrs.contains(*a) && !p.is_live(timeout)))
            .map(|(a, _)| a.clone())
            .collect();
        for a in &removed {
            peers.remove(a);
        }
        let mut added = Vec::new();
        for a in addrs {
            if own.contains(a) || peers.contains_key(a) {
                continue;
            }
            let (peer, rx) = Peer::new(a.clone());
            peers.insert(a.clone(), peer.clone());
            added.push((peer, rx));
        }
        (added, removed)
    }

    /// The address answered with our own id: never a peer again.
    pub fn mark_own(&self, addr: &str) {
        self.own_addrs.lock().insert(addr.to_string());
        self.peers.lock().remove(addr);
    }

    pub fn get(&self, addr: &str) -> Option<Arc<Peer>> {
        self.peers.lock().get(addr).cloned()
    }

    /// Adds one peer unless held or our own.
    pub fn add(&self, addr: &str) -> Option<NewPeer> {
        if self.own_addrs.lock().contains(addr) {
            return None;
        }
        let mut peers = self.peers.lock();
        if peers.contains_key(addr) {
            return None;
        }
        let (peer, rx) = Peer::new(addr.to_string());
        peers.insert(addr.to_string(), peer.clone());
        Some((peer, rx))
    }
}
