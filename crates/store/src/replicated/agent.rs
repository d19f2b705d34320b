//! The replicated agent: applies client commands locally, pushes every change to every
//! peer, answers peers, and keeps its peer table and failure detector current.

use super::hlc::Clock;
use super::metrics::{AgentMetrics, ReasonLabels};
use super::peers::{Discovery, Peer, PeerTable, Pending};
use super::state::{Record, State};
use super::wire::{PeerRequest, PeerResponse, Records};
use super::{Propagation, Timing};
use crate::backend::{Backend, BackendStats};
use crate::cluster::rpc;
use crate::command::scan::{glob_match, scan_reply, ScanArgs};
use crate::command::{self, errors, Kind};
use crate::reply::Reply;
use crate::server::memory::now_ms;
use crate::value::Mutation;
use futures::future::{BoxFuture, FutureExt};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use tokio::sync::{mpsc, oneshot};

/// Largest number of writes one push message carries.
const MAX_BATCH: usize = 512;

/// What a ping found on an address.
pub(super) enum Pong {
    /// This agent itself (its own address in the peers Service).
    Own,
    Peer {
        id: String,
        ready: bool,
    },
}

pub struct Agent {
    pub id: String,
    pub propagation: Propagation,
    pub timing: Timing,
    max_session_bytes: usize,
    clock: Clock,
    state: Mutex<State>,
    pub(super) rpc: rpc::Peers,
    pub(super) peers: PeerTable,
    pub(super) discovery: Discovery,
    /// The peer address this agent tells others in its pings.
    advertise: Option<String>,
    ready: AtomicBool,
    /// Writes queued to peers and not yet acked or given up on (drained at shutdown).
    in_flight: AtomicUsize,
    pub metrics: AgentMetrics,
}

impl Agent {
    pub fn new(
        id: String,
        propagation: Propagation,
        timing: Timing,
        max_session_bytes: usize,
        discovery: Discovery,
        advertise: Option<String>,
        peer_key: Option<rpc::PeerKey>,
    ) -> Arc<Agent> {
        let peers = PeerTable::default();
        if let Some(addr) = &advertise {
            peers.mark_own(addr);
        }
        Arc::new(Agent {
            clock: Clock::new(&id),
            state: Mutex::new(State::new(timing.tombstone_retention.as_millis() as u64)),
            id,
            propagation,
            timing,
            max_session_bytes,
            rpc: rpc::Peers::new(peer_key),
            peers,
            discovery,
            advertise,
            ready: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            metrics: AgentMetrics::new(),
        })
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub(super) fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
        self.metrics.ready.set(1);
    }

    /// Merges records from a peer; returns how many changed this agent's state.
    pub(super) fn merge(&self, records: Records) -> u32 {
        let now = now_ms();
        let mut st = self.state.lock();
        let mut changed = 0;
        for (key, record) in records {
            self.clock.observe(record.stamp);
            if st.merge(key, record, now) {
                changed += 1;
            }
        }
        changed
    }

    pub(super) fn digests(&self) -> Vec<u64> {
        self.state.lock().digests(now_ms())
    }

    pub(super) fn records_in(&self, buckets: &[u32]) -> Records {
        self.state.lock().records_in(buckets, now_ms())
    }

    pub(super) fn collect_garbage(&self) -> usize {
        self.state.lock().collect_garbage(now_ms())
    }

    /// Answers one request of a peer.
    pub async fn handle_peer(self: Arc<Self>, req: PeerRequest) -> PeerResponse {
        match req {
            PeerRequest::Ping { from, addr } => {
                if let Some(addr) = addr.filter(|_| from != self.id) {
                    self.learn(addr, from);
                }
                PeerResponse::Pong {
                    id: self.id.clone(),
                    ready: self.is_ready(),
                    peers: self
                        .peers
                        .live(self.timing.peer_timeout)
                        .iter()
                        .map(|p| p.addr.clone())
                        .collect(),
                }
            }
            // Pushes are taken before readiness too: a bootstrapping agent must not miss
            // the writes made while it pulls.
            PeerRequest::Push { records, .. } => PeerResponse::Applied {
                changed: self.merge(records),
            },
            PeerRequest::Repair { records, .. } => {
                let changed = self.merge(records);
                self.metrics.ae_keys_repaired.inc_by(u64::from(changed));
                PeerResponse::Applied { changed }
            }
            PeerRequest::Digest { digests, .. } if self.is_ready() => {
                let mine = self.digests();
                let differing = super::antientropy::differing(&mine, &digests);
                PeerResponse::Records {
                    records: self.records_in(&differing),
                    differing,
                }
            }
            PeerRequest::Fetch { buckets } if self.is_ready() => PeerResponse::Records {
                records: self.records_in(&buckets),
                differing: buckets,
            },
            PeerRequest::Digest { .. } | PeerRequest::Fetch { .. } => PeerResponse::NotReady,
        }
    }

    /// Runs one keyed command: execute on the local state, stamp each changed key, and
    /// return the records to push.
    fn apply_local(&self, args: &[Vec<u8>], now: u64) -> (Reply, Records) {
        let mut st = self.state.lock();
        let outcome = command::execute(args, &mut *st, now);
        for m in &outcome.mutations {
            if let Mutation::Put { key, entry } = m {
                let size = key.len() + entry.value.payload_bytes();
                if size > self.max_session_bytes {
                    return (
                        errors::err(&format!(
                            "ERR session too large ({size} bytes; the limit is {} bytes)",
                            self.max_session_bytes
                        )),
                        Vec::new(),
                    );
                }
            }
        }
        let mut changed = Vec::new();
        for m in outcome.mutations {
            let (key, entry) = match m {
                Mutation::Put { key, entry } => (key, Some(entry)),
                // Deleting what is already gone or expired (lazy expiry on a read) is
                // no write: every agent sees the expiry at the same wall time.
                Mutation::Delete { key } if !st.get(&key).is_some_and(|r| r.is_live(now)) => {
                    continue
                }
                Mutation::Delete { key } => (key, None),
            };
            let record = Record {
                stamp: self.clock.tick(now),
                entry,
            };
            st.merge(key.clone(), record.clone(), now);
            changed.push((key, record));
        }
        (outcome.reply, changed)
    }

    /// Sends `records` to every peer: Async returns once queued, Sync once every peer
    /// live at the start acked or the failure-detector timeout passed.
    async fn push(&self, records: Records) {
        let sync = self.propagation == Propagation::Sync;
        let mut acks = Vec::new();
        for peer in self.peers.all() {
            if !peer.is_live(self.timing.peer_timeout) {
                self.metrics.push_skipped.inc();
                continue;
            }
            for (key, record) in &records {
                let (tx, rx) = if sync {
                    let (tx, rx) = oneshot::channel();
                    (Some(tx), Some(rx))
                } else {
                    (None, None)
                };
                let pending = Pending {
                    key: key.clone(),
                    record: record.clone(),
                    ack: tx,
                };
                if peer.queue.try_send(pending).is_err() {
                    self.metrics.push_skipped.inc();
                    continue;
                }
                self.in_flight.fetch_add(1, Ordering::AcqRel);
                if let Some(rx) = rx {
                    acks.push((peer.clone(), rx));
                }
            }
        }
        if acks.is_empty() {
            return;
        }
        let deadline = tokio::time::Instant::now() + self.timing.peer_timeout;
        let mut degraded = false;
        for (peer, rx) in acks {
            match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(())) => {}
                // No ack in time, or the push failed: go on without this peer, and keep
                // it out of Sync writes until it answers again.
                _ => {
                    peer.suspect();
                    degraded = true;
                }
            }
        }
        if degraded {
            self.metrics.sync_degraded.inc();
        }
    }

    /// Waits until every queued push was acked or given up on, at most `limit`: an
    /// agent that stops (a pod scaled away) first hands its last Async writes on.
    pub async fn drain(&self, limit: std::time::Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = self.in_flight.load(Ordering::Acquire);
            if left == 0 || tokio::time::Instant::now() >= deadline {
                return left;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    fn keyspace(&self, name: &str, args: &[Vec<u8>], now: u64) -> Reply {
        let st = self.state.lock();
        match name {
            "dbsize" => Reply::Integer(st.live(now).count() as i64),
            "keys" => Reply::Array(
                st.live(now)
                    .filter(|(k, _)| glob_match(&args[1], k))
                    .map(|(k, _)| Reply::Bulk(k.clone()))
                    .collect(),
            ),
            // The whole keyspace in one page: a cursor of 0 ends the iteration, which
            // SCAN's contract allows, and sessions are few per agent.
            "scan" => match ScanArgs::parse(args) {
                Ok(scan) => scan_reply(
                    0,
                    st.live(now)
                        .filter(|(k, e)| scan.accepts(k, &e.value))
                        .map(|(k, _)| k.clone())
                        .collect(),
                ),
                Err(e) => e,
            },
            _ => errors::unknown_command(args),
        }
    }

    async fn call_async(&self, args: Vec<Vec<u8>>) -> Reply {
        if !self.is_ready() {
            return Reply::Error("LOADING the agent is pulling sessions from a peer".into());
        }
        let Some(spec) = args.first().and_then(|n| command::spec(n)) else {
            return errors::unknown_command(&args);
        };
        let now = now_ms();
        if spec.kind == Kind::Keyspace {
            if !spec.arity_ok(args.len()) {
                return errors::wrong_arity(spec.name);
            }
            return self.keyspace(spec.name, &args, now);
        }
        let (reply, records) = self.apply_local(&args, now);
        if !records.is_empty() {
            self.metrics.writes.inc();
            self.push(records).await;
        }
        reply
    }

    /// Peer table and gauges after a membership change or a heartbeat round.
    pub(super) fn update_peer_gauges(&self) {
        self.metrics.peers_known.set(self.peers.all().len() as i64);
        self.metrics
            .peers_live
            .set(self.peers.live(self.timing.peer_timeout).len() as i64);
        self.metrics
            .keys
            .set(self.state.lock().live(now_ms()).count() as i64);
    }

    /// A peer that pinged us: live from now on, and added if DNS has not listed it yet.
    fn learn(self: &Arc<Self>, addr: String, id: String) {
        if let Some(peer) = self.peers.get(&addr) {
            peer.answered();
            return;
        }
        if let Some((peer, rx)) = self.peers.add(&addr) {
            tracing::info!(peer = %addr, %id, "peer introduced itself");
            *peer.id.lock() = Some(id);
            peer.answered();
            self.spawn_sender(&peer, rx);
        }
    }

    fn spawn_sender(self: &Arc<Self>, peer: &Arc<Peer>, rx: mpsc::Receiver<Pending>) {
        tokio::spawn(send_pushes(
            Arc::downgrade(self),
            Arc::downgrade(peer),
            peer.addr.clone(),
            rx,
        ));
    }

    pub(super) fn ping_request(&self) -> PeerRequest {
        PeerRequest::Ping {
            from: self.id.clone(),
            addr: self.advertise.clone(),
        }
    }

    /// Resolves the peers and starts a push sender for each new one. Returns whether
    /// the lookup worked.
    pub(super) async fn refresh_membership(self: &Arc<Self>) -> bool {
        let Some(addrs) = self.discovery.resolve().await else {
            return false;
        };
        let (added, removed) = self.peers.reconcile(&addrs, self.timing.peer_timeout);
        for addr in removed {
            tracing::info!(peer = %addr, "peer left");
            self.rpc.forget(&addr);
        }
        for (peer, rx) in added {
            tracing::info!(peer = %peer.addr, "peer found");
            self.spawn_sender(&peer, rx);
        }
        true
    }

    /// Pings one peer: learns its id and readiness (or that the address is our own) and
    /// adds the peers it holds live that this agent does not know. None when it did not
    /// answer.
    pub(super) async fn ping(self: &Arc<Self>, peer: &Peer) -> Option<Pong> {
        self.metrics.heartbeats.inc();
        let resp: PeerResponse = self
            .rpc
            .call_as(&peer.addr, &self.ping_request(), self.timing.peer_timeout)
            .await
            .ok()?;
        let PeerResponse::Pong { id, ready, peers } = resp else {
            return None;
        };
        if id == self.id {
            self.peers.mark_own(&peer.addr);
            return Some(Pong::Own);
        }
        *peer.id.lock() = Some(id.clone());
        peer.answered();
        for addr in peers {
            if let Some((new, rx)) = self.peers.add(&addr) {
                tracing::info!(peer = %addr, via = %peer.addr, "peer heard of from a peer");
                self.spawn_sender(&new, rx);
            }
        }
        Some(Pong::Peer { id, ready })
    }

    /// Pings every peer once.
    pub(super) async fn heartbeat(self: &Arc<Self>) {
        let peers = self.peers.all();
        futures::future::join_all(peers.iter().map(|peer| self.ping(peer))).await;
        self.update_peer_gauges();
    }

    pub fn status(&self) -> serde_json::Value {
        let peers: Vec<serde_json::Value> = self
            .peers
            .all()
            .iter()
            .map(|p| {
                serde_json::json!({
                    "addr": p.addr,
                    "id": *p.id.lock(),
                    "live": p.is_live(self.timing.peer_timeout),
                })
            })
            .collect();
        let st = self.state.lock();
        serde_json::json!({
            "id": self.id,
            "ready": self.is_ready(),
            "propagation": format!("{:?}", self.propagation),
            "keys": st.live(now_ms()).count(),
            "records": st.len(),
            "peers": peers,
        })
    }
}

/// Drains one peer's queue: every message carries all writes waiting at that moment
/// (up to `MAX_BATCH`), so a busy agent sends fewer messages than writes. Ends when the
/// peer leaves the table.
async fn send_pushes(
    agent: Weak<Agent>,
    peer: Weak<Peer>,
    addr: String,
    mut rx: mpsc::Receiver<Pending>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let Some(agent) = agent.upgrade() else { return };
        let batch_len = batch.len();
        let mut records = Vec::with_capacity(batch.len());
        let mut acks = Vec::new();
        for p in batch {
            records.push((p.key, p.record));
            acks.extend(p.ack);
        }
        agent.metrics.push_sent.inc();
        agent.metrics.push_records.inc_by(records.len() as u64);
        let req = PeerRequest::Push {
            from: agent.id.clone(),
            records,
        };
        let resp: Result<PeerResponse, rpc::RpcError> = agent
            .rpc
            .call_as(&addr, &req, agent.timing.peer_timeout)
            .await;
        agent.in_flight.fetch_sub(batch_len, Ordering::AcqRel);
        match resp {
            Ok(PeerResponse::Applied { .. }) => {
                agent.metrics.push_acked.inc();
                if let Some(p) = peer.upgrade() {
                    p.answered();
                }
                for ack in acks {
                    let _ = ack.send(());
                }
            }
            Ok(other) => {
                tracing::debug!(peer = %addr, response = ?other, "push refused");
                failed(&agent, "refused");
            }
            Err(e) => {
                tracing::debug!(peer = %addr, error = %e, "push failed");
                failed(&agent, e.label());
            }
        }
    }
}

fn failed(agent: &Agent, reason: &str) {
    agent
        .metrics
        .push_failed
        .get_or_create(&ReasonLabels {
            reason: reason.to_string(),
        })
        .inc();
}

impl Backend for Agent {
    fn call(&self, args: Vec<Vec<u8>>) -> BoxFuture<'_, Reply> {
        self.call_async(args).boxed()
    }

    fn stats(&self) -> BackendStats {
        let st = self.state.lock();
        let now = now_ms();
        let mut stats = BackendStats {
            role: "master",
            ..BackendStats::default()
        };
        for (key, entry) in st.live(now) {
            stats.keys += 1;
            if entry.expires_at_ms.is_some() {
                stats.expires += 1;
            }
            stats.used_memory_bytes += (key.len() + entry.value.payload_bytes() + 64) as u64;
        }
        stats
    }
}
