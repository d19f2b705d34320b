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
            "Ring epochs written, by step (bootstrap, add_learners, flip, remove_drained, rejoin)",
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
        Metrics {
            keyring_steps,
            ring_epochs,
            ring_learning,
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

    /// Partition replicas still being copied in the SessionCluster last reconciled.
    pub fn ring_learning(&self, replicas: u64) {
        self.ring_learning
            .set(i64::try_from(replicas).unwrap_or(i64::MAX));
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
}
