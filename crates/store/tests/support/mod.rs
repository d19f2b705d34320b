//! Test support for cluster tests: store nodes as processes on loopback, and a master
//! that places partitions with the ring crate and pushes configurations over the admin
//! API, including the learner phase of a migration.

#![allow(dead_code)]

pub mod agents;
mod http_client;
pub mod master;
pub mod netns;
pub mod procs;

pub use http_client::{http, http_authorized, http_from};
use sessionplane_store::loadgen::Report;
pub use sessionplane_store::local_ports::free_port;
use std::time::{Duration, Instant};

/// The recording client's first check after a run: no read saw a value it could not have
/// (older than an acknowledged write, or never written).
pub fn assert_no_stale_reads(report: &Report, logs: &str) {
    assert!(
        report.violations.is_empty(),
        "reads saw values they could not: {:?}\n{logs}",
        &report.violations[..report.violations.len().min(5)]
    );
}

/// The second: every acknowledged write reads back, with its latest value, through node
/// `id` (RESP address `resp`).
pub async fn assert_acked_read_back(report: &Report, id: &str, resp: &str, logs: &str) {
    let bad = report
        .verify(resp, Duration::from_secs(30))
        .await
        .expect("verification reads");
    assert!(
        bad.is_empty(),
        "acknowledged writes lost via {id}: {:?}\n{logs}",
        &bad[..bad.len().min(5)]
    );
}

/// Polls `check` every 50 ms until it holds or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
