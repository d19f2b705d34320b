//! Prometheus metrics of the operator.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error: &'static str,
}

/// The operator's metrics; cheap to clone (all handles share the same values).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconciles: Family<ResultLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Histogram,
    leader: Gauge,
    ring_epochs: Family<StepLabels, Counter>,
    ring_learning: Gauge,
    keyring_steps: Family<StepLabels, Counter>,
    routing_remaps: Family<ReasonLabels, Counter>,
    ring_promotions: Counter,
    ring_nodes_down: Gauge,
    ring_unavailable: Gauge,
    migration_sessions: Counter,
    migration_bytes: Counter,
    migration_duration: Histogram,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    step: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let reconciles = Family::<ResultLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new([
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ]);
        let leader = Gauge::default();
        let ring_epochs = Family::<StepLabels, Counter>::default();
        let ring_learning = Gauge::default();
        let keyring_steps = Family::<StepLabels, Counter>::default();
        let routing_remaps = Family::<ReasonLabels, Counter>::default();
        let ring_promotions = Counter::default();
        let ring_nodes_down = Gauge::default();
        let ring_unavailable = Gauge::default();
        let migration_sessions = Counter::default();
        let migration_bytes = Counter::default();
        let migration_duration = Histogram::new([
            1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
        ]);
        let mut registry = Registry::with_prefix("sessionplane_operator");
        registry.register(
            "reconciles",
            "Reconciles of SessionClusters, by result (ok, error, invalid)",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconcile errors, by error label",
            errors.clone(),
        );
        registry.register_with_unit(
            "reconcile_duration",
            "Time spent in one reconcile",
            prometheus_client::registry::Unit::Seconds,
            duration.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        registry.register(
            "ring_epochs",
            "Ring epochs written, by step (bootstrap, add_learners, flip, remove_drained, rejoin, failover)",
            ring_epochs.clone(),
        );
        registry.register(
            "ring_learning_replicas",
            "Partition replicas being copied to new owners, over all SessionClusters last reconciled",
            ring_learning.clone(),
        );
        registry.register(
            "keyring_rotation_steps",
            "Cookie keyring rotation steps (strategy Client), by step (staged, promoted)",
            keyring_steps.clone(),
        );
        registry.register(
            "routing_remaps",
            "Routing changes that sent every user with affinity to another frontend, by reason (ProviderChanged, AffinityKeyChanged)",
            routing_remaps.clone(),
        );
        registry.register(
            "ring_promotions",
            "Partition primaries handed to a proven replica because their primary was down",
            ring_promotions.clone(),
        );
        registry.register(
            "ring_nodes_down",
            "Store nodes failed over and still not answering, in the SessionCluster last reconciled",
            ring_nodes_down.clone(),
        );
        registry.register(
            "ring_unavailable_partitions",
            "Partitions waiting for their failed primary (no replica proven caught up), in the SessionCluster last reconciled",
            ring_unavailable.clone(),
        );
        registry.register(
            "migration_sessions_copied",
            "Sessions copied to new owners by snapshot, as the store nodes report it (rate() is the migration throughput)",
            migration_sessions.clone(),
        );
        registry.register_with_unit(
            "migration_copied",
            "Bytes copied to new owners by snapshot",
            prometheus_client::registry::Unit::Bytes,
            migration_bytes.clone(),
        );
        registry.register_with_unit(
            "migration_duration",
            "Time from the learners' epoch to the flip, per finished migration",
            prometheus_client::registry::Unit::Seconds,
            migration_duration.clone(),
        );
        Metrics {
            keyring_steps,
            routing_remaps,
            ring_epochs,
            ring_learning,
            ring_promotions,
            ring_nodes_down,
            ring_unavailable,
            migration_sessions,
            migration_bytes,
            migration_duration,
            registry: Arc::new(registry),
            reconciles,
            errors,
            duration,
            leader,
        }
    }

    /// Counts one finished reconcile.
    pub fn reconciled(&self, result: &'static str, took: Duration) {
        self.reconciles
            .get_or_create(&ResultLabels { result })
            .inc();
        self.duration.observe(took.as_secs_f64());
    }

    /// Counts one reconcile error by its label.
    pub fn error(&self, label: &'static str) {
        self.errors
            .get_or_create(&ErrorLabels { error: label })
            .inc();
    }

    /// Counts one new ring epoch by the step that made it.
    pub fn ring_epoch(&self, step: &'static str) {
        self.ring_epochs.get_or_create(&StepLabels { step }).inc();
    }

    /// Counts one cookie-keyring rotation step.
    pub fn keyring_step(&self, step: &'static str) {
        self.keyring_steps.get_or_create(&StepLabels { step }).inc();
    }

    /// Counts one routing change that remapped users (routing_change::Reason::label).
    pub fn routing_remap(&self, reason: &'static str) {
        self.routing_remaps
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Partition replicas still being copied in the SessionCluster last reconciled.
    pub fn ring_learning(&self, replicas: u64) {
        self.ring_learning
            .set(i64::try_from(replicas).unwrap_or(i64::MAX));
    }

    /// Primaries handed over by one failover.
    pub fn ring_promoted(&self, n: u64) {
        self.ring_promotions.inc_by(n);
    }

    /// Failed nodes and unavailable partitions of the SessionCluster last reconciled.
    pub fn ring_failures(&self, nodes_down: u64, unavailable: u64) {
        self.ring_nodes_down
            .set(i64::try_from(nodes_down).unwrap_or(i64::MAX));
        self.ring_unavailable
            .set(i64::try_from(unavailable).unwrap_or(i64::MAX));
    }

    /// Sessions and bytes copied since the last observation.
    pub fn migration_copied(&self, sessions: u64, bytes: u64) {
        self.migration_sessions.inc_by(sessions);
        self.migration_bytes.inc_by(bytes);
    }

    /// One finished migration.
    pub fn migration_finished(&self, took: Duration) {
        self.migration_duration.observe(took.as_secs_f64());
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counters_by_label_and_histogram() {
        let m = Metrics::new();
        m.reconciled("ok", Duration::from_millis(20));
        m.reconciled("ok", Duration::from_millis(30));
        m.reconciled("error", Duration::from_millis(5));
        m.error("apply");
        m.set_leader(true);
        let text = m.encode();
        assert!(
            text.contains("sessionplane_operator_reconciles_total{result=\"ok\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("sessionplane_operator_reconciles_total{result=\"error\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("sessionplane_operator_reconcile_errors_total{error=\"apply\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("sessionplane_operator_reconcile_duration_seconds_count 3"),
            "{text}"
        );
        assert!(text.contains("sessionplane_operator_leader 1"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn encodes_failover_and_migration_metrics() {
        let m = Metrics::new();
        m.ring_epoch("failover");
        m.ring_promoted(3);
        m.ring_failures(1, 2);
        m.migration_copied(100, 4096);
        m.migration_copied(50, 1024);
        m.migration_finished(Duration::from_secs(12));
        let text = m.encode();
        for line in [
            "sessionplane_operator_ring_epochs_total{step=\"failover\"} 1",
            "sessionplane_operator_ring_promotions_total 3",
            "sessionplane_operator_ring_nodes_down 1",
            "sessionplane_operator_ring_unavailable_partitions 2",
            "sessionplane_operator_migration_sessions_copied_total 150",
            "sessionplane_operator_migration_copied_bytes_total 5120",
            "sessionplane_operator_migration_duration_seconds_count 1",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }
}
