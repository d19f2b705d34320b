//! A store node: the partitions it holds, the ring configuration it follows, and the
//! `Backend` the protocol front hands every data command to.
//!
//! The data path lives in `cluster::{router, replication, migration, expiry, handler}`
//! as further `impl Node` blocks; this file holds the state and the configuration life
//! cycle.

use crate::backend::{Backend, BackendStats};
use crate::cluster::config::{ConfigError, RingConfig, Role};
use crate::cluster::partition::PartState;
use crate::cluster::rpc::Peers;
use crate::cluster::Leases;
use crate::metrics::{Metrics, RoleLabels};
use crate::reply::Reply;
use crate::storage::{FsyncPolicy, Op, Storage, StorageError};
use futures::future::BoxFuture;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const META_CONFIG: &str = "ring_config";
/// "1" when the disk holds every acknowledged write (fsync always, or after a graceful
/// shutdown); "0" while a node with `everysec` runs.
const META_CLEAN: &str = "clean_shutdown";

/// One partition slot of the node; its lock serialises every command on the partition.
pub struct Partition {
    pub id: u32,
    pub state: tokio::sync::Mutex<PartState>,
    /// Commands waiting for the lock, run as one replication round by its next holder.
    pub(crate) queue: Mutex<Vec<crate::cluster::replication::Queued>>,
}

impl Partition {
    fn new(id: u32, state: PartState) -> Self {
        Partition {
            id,
            state: tokio::sync::Mutex::new(state),
            queue: Mutex::new(Vec::new()),
        }
    }
}

/// A learner being taught by this node (as primary), for status and metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TeachProgress {
    pub epoch: u64,
    pub keys_sent: u64,
    pub keys_total: u64,
    pub bytes_sent: u64,
    pub done: bool,
}

pub struct NodeOptions {
    pub id: String,
    pub data_dir: PathBuf,
    pub fsync: FsyncPolicy,
    /// What this node proves to its peers when it connects (see `cluster::rpc`).
    pub peer_key: Option<crate::cluster::rpc::PeerKey>,
    /// How long a client command may take in the cluster before it gets an error.
    pub command_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("stored ring configuration is unreadable: {0}")]
    StoredConfig(serde_json::Error),
}

impl NodeError {
    pub fn label(&self) -> &'static str {
        match self {
            NodeError::Config(e) => e.label(),
            NodeError::Storage(e) => e.label(),
            NodeError::StoredConfig(_) => "stored_config",
        }
    }
}

pub struct Node {
    pub(crate) id: String,
    pub(crate) storage: Storage,
    pub(crate) config_tx: watch::Sender<Option<Arc<RingConfig>>>,
    /// The configuration accepted before a restart; nothing is served until one at
    /// least as new arrives.
    pub(crate) persisted: Option<RingConfig>,
    pub(crate) parts: RwLock<Vec<Arc<Partition>>>,
    pub(crate) peers: Peers,
    pub(crate) metrics: Arc<Metrics>,
    apply_lock: tokio::sync::Mutex<()>,
    pub(crate) teaching: Mutex<HashMap<(u32, String), TeachProgress>>,
    pub(crate) started: Instant,
    /// See `NodeOptions::command_timeout`.
    pub(crate) command_timeout: Duration,
    /// This node, for background tasks started from `&self` methods.
    pub(crate) me: Weak<Node>,
    /// Read leases held as primary and granted as backup (`cluster::lease`).
    pub(crate) leases: Leases,
    /// Forwards waiting to be coalesced, by partition (`cluster::coalesce`).
    pub(crate) forward_lanes: Mutex<HashMap<u32, Arc<crate::cluster::Lane>>>,
    disk_complete: bool,
}

#[derive(Debug, Serialize)]
pub struct LearnerStatus {
    pub id: String,
    #[serde(flatten)]
    pub progress: TeachProgress,
}

#[derive(Debug, Serialize)]
pub struct PartitionStatus {
    pub partition: u32,
    pub role: Role,
    pub keys: u64,
    pub caught_up: bool,
    /// Highest write sequence this node applied for the partition: its replication
    /// position (sequences continue across epochs and primaries).
    pub applied_seq: u64,
    /// This node holds every write acknowledged for the partition as far as its own
    /// disk goes: its disk is complete, or it was taught the partition again since it
    /// started. A master promotes only a replica that says so.
    pub complete: bool,
    /// For a partition this node is primary of: whether it holds the read lease now
    /// (false also while it waits out a lease it granted the previous primary).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub learners: Vec<LearnerStatus>,
}

#[derive(Debug, Default, Serialize)]
pub struct RoleCounts {
    pub primary: u32,
    pub replica: u32,
    pub learner: u32,
}

#[derive(Debug, Default, Serialize)]
pub struct MigrationStatus {
    /// Partitions this node is primary of that have learners.
    pub partitions_total: u32,
    /// Of those, partitions whose every learner has the snapshot and the tail.
    pub partitions_done: u32,
    pub keys_sent: u64,
    pub keys_total: u64,
    pub bytes_sent: u64,
    /// Partitions this node is learning, and how many of them are caught up.
    pub learning: u32,
    pub learning_caught_up: u32,
}

#[derive(Debug, Serialize)]
pub struct NodeStatus {
    pub node: String,
    pub epoch: Option<u64>,
    pub persisted_epoch: Option<u64>,
    pub ready: bool,
    /// Whether this node's disk holds every write it acknowledged before its last
    /// start: always true with `fsync always`; with `everysec` only after a graceful
    /// shutdown. A master must re-add a node whose disk is not complete as a learner,
    /// never list it straight back as an in-sync replica.
    pub disk_complete: bool,
    /// Keys held in every partition this node has data for (all roles).
    pub keys: u64,
    /// Partitions with data on this node (0 once a drained node owns nothing).
    pub partitions_held: u32,
    pub roles: RoleCounts,
    pub migration: MigrationStatus,
    pub partitions: Vec<PartitionStatus>,
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Node {
    /// Opens the data directory and loads every stored partition into memory.
    pub fn open(opts: NodeOptions, metrics: Arc<Metrics>) -> Result<Arc<Node>, NodeError> {
        let storage = Storage::open(&opts.data_dir, opts.fsync)?;
        let persisted = match storage.meta(META_CONFIG)? {
            Some(bytes) => Some(
                serde_json::from_slice::<RingConfig>(&bytes).map_err(NodeError::StoredConfig)?,
            ),
            None => None,
        };
        let was_clean = storage.meta(META_CLEAN)?.is_none_or(|v| v == b"1");
        let disk_complete = was_clean;
        let mut parts = Vec::new();
        if let Some(cfg) = &persisted {
            let mut states: Vec<PartState> =
                (0..cfg.partitions).map(|_| PartState::default()).collect();
            for (p, key, record) in storage.load()? {
                if let Some(st) = states.get_mut(p as usize) {
                    st.apply_owned(key, record.version, Some(record.entry), false);
                }
            }
            parts = states
                .into_iter()
                .enumerate()
                .map(|(i, st)| Arc::new(Partition::new(i as u32, st)))
                .collect();
        }
        let (config_tx, _) = watch::channel(None);
        let leases = Leases::new(persisted.is_some());
        Ok(Arc::new_cyclic(|me| Node {
            me: me.clone(),
            leases,
            disk_complete,
            id: opts.id,
            storage,
            config_tx,
            persisted,
            parts: RwLock::new(parts),
            peers: Peers::new(opts.peer_key),
            metrics,
            apply_lock: tokio::sync::Mutex::new(()),
            teaching: Mutex::new(HashMap::new()),
            forward_lanes: Mutex::new(HashMap::new()),
            started: Instant::now(),
            command_timeout: opts.command_timeout,
        }))
    }

    /// Records, before serving, whether a crash from now on can leave the disk behind
    /// what was acknowledged (only under `everysec`).
    pub async fn mark_running(&self) -> Result<(), StorageError> {
        let complete = self.storage.policy() == FsyncPolicy::Always;
        self.storage
            .write(vec![Op::PutMeta {
                name: META_CLEAN.into(),
                value: if complete {
                    b"1".to_vec()
                } else {
                    b"0".to_vec()
                },
            }])
            .await?;
        self.storage.flush().await
    }

    /// Flushes everything and records a clean shutdown.
    pub async fn shutdown(&self) -> Result<(), StorageError> {
        self.storage
            .write(vec![Op::PutMeta {
                name: META_CLEAN.into(),
                value: b"1".to_vec(),
            }])
            .await?;
        self.storage.flush().await
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn config(&self) -> Option<Arc<RingConfig>> {
        self.config_tx.borrow().clone()
    }

    pub fn epoch(&self) -> u64 {
        self.config_tx.borrow().as_ref().map_or(0, |c| c.epoch)
    }

    pub fn ready(&self) -> bool {
        self.config_tx.borrow().is_some()
    }

    pub(crate) fn partition(&self, p: u32) -> Option<Arc<Partition>> {
        self.parts.read().get(p as usize).cloned()
    }

    /// Waits until the node serves an epoch of at least `min`, or `until` passes.
    pub(crate) async fn wait_epoch(&self, min: u64, until: Instant) -> bool {
        let mut rx = self.config_tx.subscribe();
        loop {
            if rx.borrow().as_ref().is_some_and(|c| c.epoch >= min) {
                return true;
            }
            match tokio::time::timeout_at(until.into(), rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return false,
            }
        }
    }

    /// Accepts a configuration from the master: fences older epochs, persists it, then
    /// drops partitions this node no longer holds and starts teaching new learners.
    pub async fn apply_config(self: &Arc<Self>, offered: RingConfig) -> Result<u64, NodeError> {
        let _serial = self.apply_lock.lock().await;
        let offered = offered.validate()?;
        let current = self.config();
        let reference = current.as_deref().or(self.persisted.as_ref());
        RingConfig::check_successor(reference, &offered)?;
        if current.as_deref() == Some(&offered) {
            return Ok(offered.epoch);
        }
        let bytes = serde_json::to_vec(&offered).map_err(NodeError::StoredConfig)?;
        self.storage
            .write(vec![Op::PutMeta {
                name: META_CONFIG.into(),
                value: bytes,
            }])
            .await?;
        self.storage.flush().await?;
        {
            let mut parts = self.parts.write();
            if parts.is_empty() {
                *parts = (0..offered.partitions)
                    .map(|i| Arc::new(Partition::new(i, PartState::default())))
                    .collect();
            }
        }
        let cfg = Arc::new(offered);
        self.config_tx.send_replace(Some(cfg.clone()));
        self.metrics.epoch.set(cfg.epoch as i64);
        tracing::info!(epoch = cfg.epoch, node = %self.id, "ring configuration accepted");

        let parts: Vec<Arc<Partition>> = self.parts.read().clone();
        let mut drops = Vec::new();
        for part in &parts {
            if cfg.role(&self.id, part.id) == Role::None {
                let mut st = part.state.lock().await;
                if !st.is_empty() {
                    st.clear();
                    drops.push(Op::DropPartition { partition: part.id });
                }
            }
        }
        if !drops.is_empty() {
            tracing::info!(
                count = drops.len(),
                "dropping partitions no longer replicated here"
            );
            self.storage.write(drops).await?;
        }
        self.teaching.lock().retain(|_, t| t.epoch == cfg.epoch);
        self.spawn_teachers(&cfg);
        self.start_lease_renewal();
        Ok(cfg.epoch)
    }

    /// A peer told us it serves the newer epoch `seen`: fetch that configuration from
    /// it rather than wait for the master's push (which may have missed us). Runs in
    /// the background: applying a configuration takes partition locks the caller may
    /// hold.
    pub(crate) fn refresh_from(&self, addr: &str, seen: u64) {
        let Some(me) = self.me.upgrade() else { return };
        if self.epoch() >= seen {
            return;
        }
        let addr = addr.to_string();
        tokio::spawn(async move {
            let req = crate::cluster::rpc::Request::FetchConfig;
            match me.peers.call(&addr, &req, Duration::from_secs(2)).await {
                Ok(crate::cluster::rpc::Response::Config(json)) => {
                    match serde_json::from_str::<RingConfig>(&json) {
                        Ok(cfg) if cfg.epoch > me.epoch() => {
                            let epoch = cfg.epoch;
                            match me.apply_config(cfg).await {
                                Ok(_) => {
                                    tracing::info!(epoch, %addr, "configuration refreshed from a peer")
                                }
                                Err(e) => tracing::debug!(error = %e, "peer configuration refused"),
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "peer sent an unreadable configuration")
                        }
                    }
                }
                Ok(other) => tracing::debug!(?other, "peer did not send its configuration"),
                Err(e) => tracing::debug!(error = %e, "configuration refresh failed"),
            }
        });
    }

    /// Per-partition state for the admin API.
    pub async fn status(&self) -> NodeStatus {
        let cfg = self.config();
        let parts: Vec<Arc<Partition>> = self.parts.read().clone();
        let teaching = self.teaching.lock().clone();
        let mut out = NodeStatus {
            node: self.id.clone(),
            epoch: cfg.as_ref().map(|c| c.epoch),
            persisted_epoch: self.persisted.as_ref().map(|c| c.epoch),
            disk_complete: self.disk_complete,
            ready: cfg.is_some(),
            keys: 0,
            partitions_held: 0,
            roles: RoleCounts::default(),
            migration: MigrationStatus::default(),
            partitions: Vec::new(),
        };
        for part in parts {
            let st = part.state.lock().await;
            let role = cfg
                .as_ref()
                .map_or(Role::None, |c| c.role(&self.id, part.id));
            out.keys += st.keys();
            if !st.is_empty() {
                out.partitions_held += 1;
            }
            let epoch = cfg.as_ref().map_or(0, |c| c.epoch);
            let caught_up = match role {
                Role::Primary | Role::Replica => true,
                Role::Learner => st.learning.epoch == epoch && st.learning.snapshot_done,
                Role::None => false,
            };
            let mut learners = Vec::new();
            if role == Role::Primary {
                if let Some(c) = &cfg {
                    for l in c.learners_of(part.id) {
                        let progress = teaching
                            .get(&(part.id, l.clone()))
                            .cloned()
                            .unwrap_or_default();
                        learners.push(LearnerStatus {
                            id: l.clone(),
                            progress,
                        });
                    }
                }
            }
            match role {
                Role::Primary => out.roles.primary += 1,
                Role::Replica => out.roles.replica += 1,
                Role::Learner => {
                    out.roles.learner += 1;
                    out.migration.learning += 1;
                    if caught_up {
                        out.migration.learning_caught_up += 1;
                    }
                }
                Role::None => {}
            }
            if !learners.is_empty() {
                out.migration.partitions_total += 1;
                if learners.iter().all(|l| l.progress.done) {
                    out.migration.partitions_done += 1;
                }
                for l in &learners {
                    out.migration.keys_sent += l.progress.keys_sent;
                    out.migration.keys_total += l.progress.keys_total;
                    out.migration.bytes_sent += l.progress.bytes_sent;
                }
            }
            if role != Role::None || !st.is_empty() {
                let lease = match (&cfg, role) {
                    (Some(c), Role::Primary) => Some(self.lease_usable(part.id, c)),
                    _ => None,
                };
                out.partitions.push(PartitionStatus {
                    partition: part.id,
                    role,
                    keys: st.keys(),
                    caught_up,
                    applied_seq: st.seq,
                    complete: self.disk_complete || st.learning.snapshot_done,
                    lease,
                    learners,
                });
            }
        }
        out
    }

    /// Refreshes the gauges that are cheaper to compute at scrape time.
    pub async fn refresh_metrics(&self) {
        let status = self.status().await;
        let stats = self.stats();
        let m = &self.metrics;
        m.keys.set(status.keys as i64);
        m.memory_bytes.set(stats.used_memory_bytes as i64);
        for (role, n) in [
            ("primary", status.roles.primary),
            ("replica", status.roles.replica),
            ("learner", status.roles.learner),
        ] {
            m.partitions
                .get_or_create(&RoleLabels { role: role.into() })
                .set(i64::from(n));
        }
        m.migration_keys_sent.set(status.migration.keys_sent as i64);
        m.migration_keys_total
            .set(status.migration.keys_total as i64);
        m.migration_bytes_sent
            .set(status.migration.bytes_sent as i64);
        m.migration_partitions_pending.set(i64::from(
            status.migration.partitions_total - status.migration.partitions_done,
        ));
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Backend for Node {
    fn call(&self, args: Vec<Vec<u8>>) -> BoxFuture<'_, Reply> {
        Box::pin(async move {
            let started = Instant::now();
            let name = args
                .first()
                .and_then(|n| crate::command::spec(n))
                .map_or("unknown", |s| s.name);
            let reply = self.dispatch(args).await;
            self.metrics
                .ops
                .get_or_create(&crate::metrics::CommandLabels { command: name })
                .inc();
            self.metrics
                .latency
                .observe(started.elapsed().as_secs_f64());
            reply
        })
    }

    fn call_batch(&self, commands: Vec<Vec<Vec<u8>>>) -> BoxFuture<'_, Vec<Reply>> {
        Box::pin(async move {
            let started = Instant::now();
            let names: Vec<&'static str> = commands
                .iter()
                .map(|args| {
                    args.first()
                        .and_then(|n| crate::command::spec(n))
                        .map_or("unknown", |s| s.name)
                })
                .collect();
            let replies = self.dispatch_batch(commands).await;
            // One counter update per run of the same command (a pipeline of SETs).
            for run in names.chunk_by(|a, b| a == b) {
                self.metrics
                    .ops
                    .get_or_create(&crate::metrics::CommandLabels { command: run[0] })
                    .inc_by(run.len() as u64);
            }
            self.metrics
                .latency
                .observe_n(started.elapsed().as_secs_f64(), replies.len() as u64);
            replies
        })
    }

    fn stats(&self) -> BackendStats {
        let cfg = self.config();
        let parts: Vec<Arc<Partition>> = self.parts.read().clone();
        let mut stats = BackendStats {
            role: "slave",
            epoch: cfg.as_ref().map_or(0, |c| c.epoch),
            ..BackendStats::default()
        };
        for part in parts {
            // Stats must not wait behind a write in flight: a busy partition is skipped.
            if let Ok(st) = part.state.try_lock() {
                stats.keys += st.keys();
                stats.expires += st.expires();
                stats.used_memory_bytes += st.bytes();
            }
            match cfg.as_ref().map(|c| c.role(&self.id, part.id)) {
                Some(Role::Primary) => stats.partitions_primary += 1,
                Some(Role::Replica) => stats.partitions_replica += 1,
                _ => {}
            }
        }
        if stats.partitions_primary > 0 {
            stats.role = "master";
        }
        stats
    }
}
