//! Read leases: a primary answers a command that does not replicate (a read, or a
//! write that changed nothing) only while every backup and learner of the partition
//! has recently promised not to serve the partition as a new primary.
//!
//! Why: a primary cut off from the master keeps its memory after the master promoted a
//! replica. Writes cannot succeed there (they need the replicas' acks, and the replicas
//! fence the old epoch), but reads need nobody, so without a lease it would go on
//! answering values the new primary has since overwritten.
//!
//! The protocol, per partition `p` with primary `P` at epoch `E`:
//! - Every `LEASE_RENEW_EVERY`, and at once when a configuration arrives, `P` asks each
//!   backup and learner `t` of `p` for a grant (`LeaseRenew{E}`), noting the instant
//!   `asked` before sending. `t` grants only if it serves `E` too and `P` is `p`'s
//!   primary there; it then records that it will not act as `p`'s primary before
//!   `received + LEASE_GRANT`.
//! - `P` answers a non-replicating command on `p` only if, checked after executing it
//!   and under the partition lock, every `t` of `p` at `E` granted at epoch `E` with
//!   `now < asked + LEASE_HOLD`.
//! - A node that becomes `p`'s primary does nothing as primary for `p` (no command, no
//!   teaching) until every grant it gave for `p` has run out, or until the node it
//!   granted to confirms it serves the new epoch (`EpochOf`), after which that node's
//!   epoch check refuses the old lease. A node restarted from its disk may have given
//!   grants it no longer remembers, so it acts as no partition's primary during its
//!   first `LEASE_GRANT`.
//!
//! Safety rests on the master's rule that a new primary is always an in-sync replica or
//! a caught-up learner (so it granted the old primary's lease) and on clocks that run
//! at nearly the same rate (`LEASE_HOLD` is 25 % shorter than `LEASE_GRANT`); no
//! synchronised wall clocks are needed: each side measures with its own monotonic clock.

use super::config::{RingConfig, Role};
use super::rpc::{Request, Response};
use super::Retry;
use crate::node::Node;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How often a primary renews its leases.
pub const LEASE_RENEW_EVERY: Duration = Duration::from_millis(200);
/// How long a primary trusts a grant, counted from just before it asked.
pub const LEASE_HOLD: Duration = Duration::from_millis(1500);
/// How long a grantor refuses to act as the partition's primary, counted from when it
/// granted. Longer than `LEASE_HOLD`, so the holder's lease runs out first even if its
/// clock runs somewhat slow.
pub const LEASE_GRANT: Duration = Duration::from_millis(2000);
/// A renewal that takes longer than this is abandoned (the lease lapses meanwhile).
const RENEW_TIMEOUT: Duration = Duration::from_millis(1000);
const ASK_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long a grantor behind the holder's epoch waits for it before refusing.
const BEHIND_WAIT: Duration = Duration::from_millis(500);

/// A grant this node gave as a backup or learner.
#[derive(Debug, Clone)]
struct Given {
    until: Instant,
    /// The grantee's peer address when the grant was given (it may since have left the
    /// configuration).
    addr: String,
}

#[derive(Default)]
struct Inner {
    /// As primary: partition -> grantor -> (epoch, instant asked).
    held: HashMap<u32, HashMap<String, (u64, Instant)>>,
    /// As backup or learner: partition -> grantee -> grant.
    given: HashMap<u32, HashMap<String, Given>>,
    /// Grantee -> the epoch it said it serves.
    confirmed: HashMap<String, u64>,
    /// (peer, epoch) with a renewal in flight (a slow peer must not hold back the
    /// others, and a renewal at an old epoch must not hold back one at the new epoch).
    renewing: HashSet<(String, u64)>,
    /// Grantees being asked for their epoch.
    asking: HashSet<String>,
}

/// The node's lease bookkeeping (both sides).
pub(crate) struct Leases {
    inner: Mutex<Inner>,
    /// Before this instant the node acts as no partition's primary.
    floor: Instant,
    loop_started: std::sync::atomic::AtomicBool,
}

impl Leases {
    /// `restarted`: the node opened a disk that had a configuration, so it may have
    /// granted leases before it stopped.
    pub(crate) fn new(restarted: bool) -> Leases {
        let now = Instant::now();
        Leases {
            inner: Mutex::new(Inner::default()),
            floor: if restarted { now + LEASE_GRANT } else { now },
            loop_started: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the primary of `p` in `cfg` (this node) holds a lease from every backup
    /// and learner of `p` at `cfg.epoch`.
    fn held(&self, cfg: &RingConfig, p: u32, now: Instant) -> bool {
        let mut grantors = cfg.backups(p).iter().chain(cfg.learners_of(p)).peekable();
        if grantors.peek().is_none() {
            // Nobody could be promoted in its place without being taught by it.
            return true;
        }
        let inner = self.inner.lock();
        let Some(grants) = inner.held.get(&p) else {
            return false;
        };
        grantors.all(|t| {
            grants
                .get(t.as_str())
                .is_some_and(|(epoch, asked)| *epoch == cfg.epoch && now < *asked + LEASE_HOLD)
        })
    }

    fn record_held(&self, epoch: u64, grantor: &str, partitions: &[u32], asked: Instant) {
        let mut inner = self.inner.lock();
        for &p in partitions {
            let slot = inner
                .held
                .entry(p)
                .or_default()
                .entry(grantor.to_string())
                .or_insert((epoch, asked));
            if (epoch, asked) > *slot {
                *slot = (epoch, asked);
            }
        }
    }

    fn record_given(&self, p: u32, grantee: &str, addr: &str, now: Instant) {
        let mut inner = self.inner.lock();
        let until = now + LEASE_GRANT;
        let grants = inner.given.entry(p).or_default();
        let g = grants.entry(grantee.to_string()).or_insert(Given {
            until,
            addr: addr.to_string(),
        });
        g.until = g.until.max(until);
        g.addr = addr.to_string();
    }

    /// The grants that still keep this node, primary of `p` at `epoch`, from acting:
    /// (grantee, address) of each, or `Some(empty)` during the restart floor.
    fn blocking(&self, p: u32, epoch: u64, now: Instant) -> Option<Vec<(String, String)>> {
        if now < self.floor {
            return Some(Vec::new());
        }
        let mut inner = self.inner.lock();
        let Inner {
            given, confirmed, ..
        } = &mut *inner;
        let grants = given.get_mut(&p)?;
        grants.retain(|_, g| now < g.until);
        let waiting: Vec<(String, String)> = grants
            .iter()
            .filter(|(grantee, _)| confirmed.get(*grantee).is_none_or(|e| *e < epoch))
            .map(|(grantee, g)| (grantee.clone(), g.addr.clone()))
            .collect();
        if grants.is_empty() {
            given.remove(&p);
        }
        (!waiting.is_empty()).then_some(waiting)
    }
}

impl Node {
    /// For a command on `p`, which this node is primary of in `cfg`: refuses while a
    /// lease this node granted to an earlier primary of `p` may still be in use.
    pub(crate) fn check_new_primary(&self, p: u32, cfg: &RingConfig) -> Result<(), Retry> {
        let Some(waiting) = self.leases.blocking(p, cfg.epoch, Instant::now()) else {
            return Ok(());
        };
        for (grantee, addr) in waiting {
            self.ask_epoch(grantee, addr, cfg.epoch);
        }
        Err(Retry::LeaseWait)
    }

    /// For a command on `p` that replicated nothing, checked after executing it: the
    /// answer may be given only under a lease (see the module documentation).
    pub(crate) fn check_lease(&self, p: u32, cfg: &RingConfig) -> Result<(), Retry> {
        if self.leases.held(cfg, p, Instant::now()) {
            Ok(())
        } else {
            Err(Retry::NoLease)
        }
    }

    /// Whether commands on `p`, which this node is primary of in `cfg`, would be
    /// answered now (for the status; asks nobody).
    pub(crate) fn lease_usable(&self, p: u32, cfg: &RingConfig) -> bool {
        let now = Instant::now();
        self.leases.blocking(p, cfg.epoch, now).is_none() && self.leases.held(cfg, p, now)
    }

    /// Asks a former lease holder (in the background) which epoch it serves.
    fn ask_epoch(&self, grantee: String, addr: String, epoch: u64) {
        let Some(me) = self.me.upgrade() else { return };
        if !self.leases.inner.lock().asking.insert(grantee.clone()) {
            return;
        }
        tokio::spawn(async move {
            let req = Request::EpochOf {
                epoch,
                from: me.id.clone(),
            };
            let answer = me.peers.call(&addr, &req, ASK_TIMEOUT).await;
            let mut inner = me.leases.inner.lock();
            inner.asking.remove(&grantee);
            match answer {
                Ok(Response::Epoch(theirs)) => {
                    let slot = inner.confirmed.entry(grantee.clone()).or_insert(0);
                    *slot = (*slot).max(theirs);
                    if theirs >= epoch {
                        tracing::info!(%grantee, epoch = theirs, "former primary confirmed the new epoch; its lease is void");
                    }
                }
                Ok(other) => tracing::debug!(%grantee, ?other, "unexpected answer to EpochOf"),
                Err(e) => {
                    tracing::debug!(%grantee, error = %e, "former primary unreachable; waiting its lease out")
                }
            }
        });
    }

    /// Starts the renewal loop once (it ends when the node is dropped).
    pub(crate) fn start_lease_renewal(&self) {
        if self
            .leases
            .loop_started
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        let me = self.me.clone();
        let mut changes = self.config_tx.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(LEASE_RENEW_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    changed = changes.changed() => if changed.is_err() { return },
                }
                let Some(node) = me.upgrade() else { return };
                node.renew_leases();
            }
        });
    }

    /// Sends one renewal to each backup and learner of the partitions this node is
    /// primary of, one request per peer.
    fn renew_leases(self: Arc<Self>) {
        let Some(cfg) = self.config() else { return };
        let mut by_peer: HashMap<&str, Vec<u32>> = HashMap::new();
        for p in 0..cfg.partitions {
            if cfg.primary(p) != Some(self.id.as_str()) {
                continue;
            }
            for t in cfg.backups(p).iter().chain(cfg.learners_of(p)) {
                by_peer.entry(t.as_str()).or_default().push(p);
            }
        }
        let addrs = cfg.addr_map();
        for (peer, partitions) in by_peer {
            let Some(addr) = addrs.get(peer).cloned() else {
                continue;
            };
            if !self
                .leases
                .inner
                .lock()
                .renewing
                .insert((peer.to_string(), cfg.epoch))
            {
                continue;
            }
            let node = Arc::downgrade(&self);
            let peer = peer.to_string();
            let epoch = cfg.epoch;
            tokio::spawn(renew_one(node, peer, addr, epoch, partitions));
        }
    }

    /// A backup or learner answers a lease renewal.
    pub(crate) async fn handle_lease_renew(
        &self,
        epoch: u64,
        from: &str,
        partitions: &[u32],
    ) -> Response {
        if self.epoch() < epoch {
            // The master's push is on its way; granting as soon as it lands keeps the
            // primary's reads from stalling for a whole renewal period.
            self.wait_epoch(epoch, Instant::now() + BEHIND_WAIT).await;
        }
        let Some(cfg) = self.config() else {
            return Response::Behind { current: 0 };
        };
        if epoch < cfg.epoch {
            return Response::StaleEpoch { current: cfg.epoch };
        }
        if epoch > cfg.epoch {
            return Response::Behind { current: cfg.epoch };
        }
        let Some(addr) = cfg.addr_map().get(from).cloned() else {
            return Response::NotOwner;
        };
        let now = Instant::now();
        let mut granted = Vec::new();
        for &p in partitions {
            let mine = cfg.role(&self.id, p);
            if cfg.primary(p) == Some(from) && matches!(mine, Role::Replica | Role::Learner) {
                self.leases.record_given(p, from, &addr, now);
                granted.push(p);
            }
        }
        Response::Granted(granted)
    }

    /// A new primary asks which epoch this node serves; a node behind fetches the newer
    /// configuration from the asker.
    pub(crate) fn handle_epoch_of(&self, epoch: u64, from: &str) -> Response {
        let mine = self.epoch();
        if mine < epoch {
            if let Some(addr) = self.config().and_then(|c| c.addr_map().get(from).cloned()) {
                self.refresh_from(&addr, epoch);
            }
        }
        Response::Epoch(mine)
    }
}

async fn renew_one(node: Weak<Node>, peer: String, addr: String, epoch: u64, partitions: Vec<u32>) {
    let Some(me) = node.upgrade() else { return };
    let req = Request::LeaseRenew {
        epoch,
        from: me.id.clone(),
        partitions,
    };
    let asked = Instant::now();
    let answer = me.peers.call(&addr, &req, RENEW_TIMEOUT).await;
    me.leases
        .inner
        .lock()
        .renewing
        .remove(&(peer.clone(), epoch));
    match answer {
        Ok(Response::Granted(granted)) => me.leases.record_held(epoch, &peer, &granted, asked),
        Ok(Response::StaleEpoch { current }) => me.refresh_from(&addr, current),
        Ok(other) => tracing::debug!(%peer, ?other, "lease renewal refused"),
        Err(e) => tracing::debug!(%peer, error = %e, "lease renewal failed"),
    }
}
