//! Test support for cluster tests: store nodes as processes on loopback, and a master
//! that places partitions with the ring crate and pushes configurations over the admin
//! API, including the learner phase of a migration.

#![allow(dead_code)]

pub mod agents;
mod http_client;
pub mod master;
pub mod netns;
pub mod procs;

pub use http_client::{http, http_from};
use sessionplane_store::loadgen::Report;
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

/// A free loopback port that nothing else will take before the test's process binds it.
///
/// Ports come from below the kernel's ephemeral range (`ip_local_port_range`, 32768 up
/// by default), so the many outgoing connections a test run makes (clients, peers,
/// redis-cli) can never be given one in the gap between this check and the child's bind,
/// the race that a port from `bind(0)` had: CI saw an agent fail to start on it. Each
/// port is handed out once per process; the start is spread by pid so test binaries run
/// side by side rarely meet, and a port something else holds is skipped.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 16_000;
    const SPAN: u32 = 32_768 - LOW;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id() * 997) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {LOW}..32768");
}
