//! What one system's run measured, and the table comparing the two.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sessionplane_store::loadgen::Report;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Outcome {
    pub system: String,
    pub sessions: u64,
    pub value_size: usize,
    /// How the system counts what it moves ("slots", "partition replicas").
    pub unit: String,
    pub load_secs: f64,
    /// Wall time of the resize: from the first command to the last one returning.
    pub resize_secs: f64,
    pub units_total: u64,
    pub units_moved: u64,
    pub units_minimum: u64,
    /// Key copies held before the resize (sessions × replicas).
    pub keys_before: u64,
    pub keys_moved: u64,
    pub keys_minimum: u64,
    /// Loaded sessions not found after the resize (DBSIZE against what must be there).
    pub sessions_missing: i64,
    pub ops: u64,
    pub failures: u64,
    pub failure_samples: Vec<String>,
    pub stale_reads: u64,
    /// Acknowledged sessions of the live load that did not read back afterwards.
    pub acked_lost: u64,
    pub redirects: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The load window (resize plus the settle time before and after).
    pub window_secs: f64,
    pub notes: String,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Outcome {
    /// Copies the live load's figures in.
    pub fn record_load(&mut self, report: &Report, acked_lost: u64) {
        self.ops = report.ops;
        self.failures = report.failures;
        self.failure_samples = report.failure_samples.iter().take(5).cloned().collect();
        self.stale_reads = report.violations.len() as u64;
        self.acked_lost = acked_lost;
        self.redirects = report.redirects;
        self.p50_ms = ms(report.quantile(0.5));
        self.p99_ms = ms(report.quantile(0.99));
        self.max_ms = ms(report.max_latency());
        self.window_secs = report.elapsed.as_secs_f64();
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
        eprintln!("{}: {}", self.system, serde_json::to_string(self)?);
        Ok(())
    }

    pub fn read(path: &Path) -> anyhow::Result<Outcome> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        Ok(serde_json::from_str(&text)?)
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b == 0.0 {
        "n/a".into()
    } else {
        format!("{:.2}", a / b)
    }
}

/// The report: one row per system, ratios against Redis.
pub fn table(redis: &Outcome, store: &Outcome) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{} sessions of {} bytes (`SET sess:<12 digits> <value> EX 86400`); resize 3 → 4 nodes.\n\n",
        store.sessions, store.value_size
    ));
    out.push_str("| system | resize wall time s | ÷ Redis | moved | minimum | moved ÷ minimum | keys moved | key minimum (¼) | keys ÷ minimum | sessions missing after |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for o in [redis, store] {
        out.push_str(&format!(
            "| {} | {:.1} | {} | {} {} | {} | {} | {} | {} | {} | {} |\n",
            o.system,
            o.resize_secs,
            ratio(o.resize_secs, redis.resize_secs),
            o.units_moved,
            o.unit,
            o.units_minimum,
            ratio(o.units_moved as f64, o.units_minimum as f64),
            o.keys_moved,
            o.keys_minimum,
            ratio(o.keys_moved as f64, o.keys_minimum as f64),
            o.sessions_missing,
        ));
    }
    out.push_str("\nThe client during the resize (one recording load generator per system, same settings):\n\n");
    out.push_str("| system | window s | requests | failed | stale reads | acked sessions lost | redirects followed | p50 ms | p99 ms | max ms | p99 ÷ Redis |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for o in [redis, store] {
        out.push_str(&format!(
            "| {} | {:.1} | {} | {} | {} | {} | {} | {:.2} | {:.1} | {:.0} | {} |\n",
            o.system,
            o.window_secs,
            o.ops,
            o.failures,
            o.stale_reads,
            o.acked_lost,
            o.redirects,
            o.p50_ms,
            o.p99_ms,
            o.max_ms,
            ratio(o.p99_ms, redis.p99_ms),
        ));
    }
    out.push_str(&format!(
        "\nResize time ratio (sessionplane ÷ Redis): **{}**. Loading the sessions took {:.0} s (Redis) and {:.0} s (sessionplane).\n",
        ratio(store.resize_secs, redis.resize_secs),
        redis.load_secs,
        store.load_secs
    ));
    for o in [redis, store] {
        if !o.notes.is_empty() {
            out.push_str(&format!("\n{}: {}\n", o.system, o.notes));
        }
        if !o.failure_samples.is_empty() {
            out.push_str(&format!(
                "\n{} failures (first {}): {}\n",
                o.system,
                o.failure_samples.len(),
                o.failure_samples.join("; ")
            ));
        }
    }
    out
}
