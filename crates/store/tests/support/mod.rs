//! Test support for cluster tests: store nodes as processes on loopback, and a master
//! that places partitions with the ring crate and pushes configurations over the admin
//! API, including the learner phase of a migration.

#![allow(dead_code)]

mod http_client;
pub mod master;
pub mod netns;
pub mod procs;

pub use http_client::{http, http_from};
use std::time::{Duration, Instant};

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

/// A free loopback port (bound and released; the race is acceptable for tests).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}
