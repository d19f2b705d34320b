//! A latency histogram that takes a whole pipelined run in one observation.
//!
//! prometheus-client's `Histogram` holds a mutex that every observation takes; a node
//! answering a 16-deep pipeline observed the same duration 16 times under it, from
//! every worker thread. Here an observation is three atomic adds, for any count.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug)]
struct Inner {
    /// Upper bounds in seconds, ascending; observations above the last go to `+Inf`.
    bounds: Vec<f64>,
    /// One count per bound, then `+Inf`; not cumulative.
    counts: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
}

#[derive(Clone, Debug)]
pub struct BatchHistogram(Arc<Inner>);

impl BatchHistogram {
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> Self {
        let bounds: Vec<f64> = bounds.into_iter().collect();
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        BatchHistogram(Arc::new(Inner {
            bounds,
            counts,
            sum_nanos: AtomicU64::new(0),
        }))
    }

    /// Records `n` observations of `seconds` each.
    pub fn observe_n(&self, seconds: f64, n: u64) {
        if n == 0 {
            return;
        }
        let inner = &self.0;
        // `le` buckets: a value equal to a bound belongs to it.
        let bucket = inner.bounds.partition_point(|&b| b < seconds);
        inner.counts[bucket].fetch_add(n, Ordering::Relaxed);
        let nanos = (seconds.max(0.0) * 1e9) as u64;
        inner
            .sum_nanos
            .fetch_add(nanos.saturating_mul(n), Ordering::Relaxed);
    }

    pub fn observe(&self, seconds: f64) {
        self.observe_n(seconds, 1);
    }

    /// (upper bound, observations in that bucket alone), `+Inf` last.
    fn buckets(&self) -> Vec<(f64, u64)> {
        let inner = &self.0;
        inner
            .bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(inner.counts.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect()
    }
}

impl TypedMetric for BatchHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for BatchHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets = self.buckets();
        // The count is what the buckets add up to, so a scrape taken during
        // observations never shows a count its buckets disagree with.
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
    use prometheus_client::registry::Registry;

    fn exposition(metric: impl EncodeMetric + Send + Sync + std::fmt::Debug + 'static) -> String {
        let mut registry = Registry::default();
        registry.register("d", "help", metric);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode");
        out
    }

    /// The exposition's `_sum` value, and its other lines.
    fn sum_and_rest(text: &str) -> (f64, Vec<&str>) {
        let sum = text
            .lines()
            .find_map(|l| l.strip_prefix("d_sum "))
            .and_then(|v| v.parse().ok())
            .expect("a _sum line");
        (
            sum,
            text.lines().filter(|l| !l.starts_with("d_sum ")).collect(),
        )
    }

    #[test]
    fn a_run_counts_once_per_command_in_the_bucket_of_its_duration() {
        let h = BatchHistogram::new([0.001, 0.01, 0.1]);
        h.observe_n(0.005, 16);
        h.observe(0.001);
        h.observe(0.5);
        h.observe_n(0.02, 0);
        let text = exposition(h);
        for line in [
            "d_count 18\n",
            "d_bucket{le=\"0.001\"} 1\n",
            "d_bucket{le=\"0.01\"} 17\n",
            "d_bucket{le=\"0.1\"} 17\n",
            "d_bucket{le=\"+Inf\"} 18\n",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        let (sum, _) = sum_and_rest(&text);
        assert!((sum - (0.08 + 0.001 + 0.5)).abs() < 1e-6, "{sum}");
    }

    #[test]
    fn the_exposition_of_the_mutex_histogram_it_replaces() {
        let ours = BatchHistogram::new(exponential_buckets(0.000_05, 2.0, 18));
        let theirs = Histogram::new(exponential_buckets(0.000_05, 2.0, 18));
        // On and between bounds and past the last.
        let values = [0.0, 0.00005, 0.0001, 0.003, 1.5, 13.25, 99.0];
        for (i, v) in values.iter().enumerate() {
            ours.observe_n(*v, i as u64 + 1);
            for _ in 0..=i {
                theirs.observe(*v);
            }
        }
        // The sums differ in the last digits (ours adds whole nanoseconds): compared apart.
        let (ours, theirs) = (exposition(ours), exposition(theirs));
        let (ours_sum, ours) = sum_and_rest(&ours);
        let (theirs_sum, theirs) = sum_and_rest(&theirs);
        assert_eq!(ours, theirs);
        assert!(
            (ours_sum - theirs_sum).abs() < 1e-6,
            "{ours_sum} {theirs_sum}"
        );
    }
}
