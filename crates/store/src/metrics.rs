//! Prometheus metrics of a store node.

mod batch_histogram;

pub use batch_histogram::BatchHistogram;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    /// A command's name from its spec: looking a counter up allocates nothing.
    pub command: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabels {
    pub role: String,
}

pub struct Metrics {
    pub registry: Registry,
    pub ops: Family<CommandLabels, Counter>,
    pub latency: BatchHistogram,
    pub forwarded: Counter,
    pub retries: Family<ReasonLabels, Counter>,
    pub gave_up: Family<ReasonLabels, Counter>,
    pub replication_ack: Histogram,
    pub replication_errors: Family<ReasonLabels, Counter>,
    pub keys: Gauge,
    pub memory_bytes: Gauge,
    pub partitions: Family<RoleLabels, Gauge>,
    pub epoch: Gauge,
    pub migration_keys_sent: Gauge,
    pub migration_keys_total: Gauge,
    pub migration_bytes_sent: Gauge,
    pub migration_partitions_pending: Gauge,
    pub expired_keys: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sessionplane_store");
        let ops = Family::<CommandLabels, Counter>::default();
        registry.register("commands", "Data commands handled, by command", ops.clone());
        let latency = BatchHistogram::new(exponential_buckets(0.000_05, 2.0, 18));
        registry.register(
            "command_duration_seconds",
            "Time to answer a data command",
            latency.clone(),
        );
        let forwarded = Counter::default();
        registry.register(
            "forwarded",
            "Commands forwarded to a partition's primary on another node",
            forwarded.clone(),
        );
        let retries = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "route_retries",
            "Command attempts retried (stale epoch, unreachable owner, replication failure)",
            retries.clone(),
        );
        let gave_up = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "commands_given_up",
            "Commands answered with an error because routing gave up: deadline (the command timeout ran out while retrying), outcome_unknown (a forwarded write went unanswered and is not sent twice)",
            gave_up.clone(),
        );
        let replication_ack = Histogram::new(exponential_buckets(0.000_05, 2.0, 18));
        registry.register(
            "replication_ack_seconds",
            "Time for every replica of a partition to acknowledge a write (the replication lag a client waits for)",
            replication_ack.clone(),
        );
        let replication_errors = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "replication_errors",
            "Writes a replica or learner failed to acknowledge",
            replication_errors.clone(),
        );
        let keys = Gauge::default();
        registry.register("keys", "Keys held (all roles)", keys.clone());
        let memory_bytes = Gauge::default();
        registry.register(
            "memory_bytes",
            "Estimated bytes of keys and values in memory",
            memory_bytes.clone(),
        );
        let partitions = Family::<RoleLabels, Gauge>::default();
        registry.register(
            "partitions",
            "Partitions by this node's role",
            partitions.clone(),
        );
        let epoch = Gauge::default();
        registry.register(
            "ring_epoch",
            "Epoch of the ring configuration served",
            epoch.clone(),
        );
        let migration_keys_sent = Gauge::default();
        registry.register(
            "migration_keys_sent",
            "Snapshot keys sent to learners in the current epoch",
            migration_keys_sent.clone(),
        );
        let migration_keys_total = Gauge::default();
        registry.register(
            "migration_keys_total",
            "Snapshot keys to send to learners in the current epoch",
            migration_keys_total.clone(),
        );
        let migration_bytes_sent = Gauge::default();
        registry.register(
            "migration_bytes_sent",
            "Snapshot bytes sent to learners in the current epoch",
            migration_bytes_sent.clone(),
        );
        let migration_partitions_pending = Gauge::default();
        registry.register(
            "migration_partitions_pending",
            "Partitions this node is primary of with a learner not yet caught up",
            migration_partitions_pending.clone(),
        );
        let expired_keys = Counter::default();
        registry.register(
            "expired_keys",
            "Keys removed by active expiry",
            expired_keys.clone(),
        );
        Metrics {
            registry,
            ops,
            latency,
            forwarded,
            retries,
            gave_up,
            replication_ack,
            replication_errors,
            keys,
            memory_bytes,
            partitions,
            epoch,
            migration_keys_sent,
            migration_keys_total,
            migration_bytes_sent,
            migration_partitions_pending,
            expired_keys,
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
