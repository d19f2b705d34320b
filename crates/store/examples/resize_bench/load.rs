//! The sessions loaded before the resize, and the recording load that runs during it.

use crate::Common;
use anyhow::{bail, Context};
use sessionplane_store::loadgen::client::RespClient;
use sessionplane_store::loadgen::{Endpoints, LoadConfig, LoadGen, Report};
use sessionplane_store::reply::Reply;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(30);
/// Load before and after the resize, so the window covers its start and its end.
pub const SETTLE: Duration = Duration::from_secs(2);

pub fn session_key(i: u64) -> Vec<u8> {
    format!("sess:{i:012}").into_bytes()
}

fn session_value(i: u64, size: usize) -> Vec<u8> {
    let mut v = format!("session-{i}-").into_bytes();
    v.resize(size.max(v.len()), b'x');
    v
}

/// Which node a key is sent to.
pub type Route = Arc<dyn Fn(&[u8]) -> String + Send + Sync>;

/// `SET sess:<i> <value> EX 86400` for i in 0..sessions, over `load_connections`
/// concurrent connections, each key sent to the node `route` names (both systems get
/// a client that knows the owners, so neither pays for forwarding while loading).
pub async fn bulk_load(common: &Common, route: Route) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let n = common.sessions;
    let tasks = common.load_connections.max(1) as u64;
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tick.tick().await;
                eprintln!("  loaded {} of {n}", done.load(Ordering::Relaxed));
            }
        })
    };
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let route = route.clone();
            let done = done.clone();
            let size = common.value_size;
            tokio::spawn(async move {
                let mut conns: HashMap<String, RespClient> = HashMap::new();
                let mut i = t;
                while i < n {
                    let key = session_key(i);
                    let value = session_value(i, size);
                    let addr = route(&key);
                    if !conns.contains_key(&addr) {
                        let c = RespClient::connect(&addr, TIMEOUT).await?;
                        conns.insert(addr.clone(), c);
                    }
                    let Some(c) = conns.get_mut(&addr) else {
                        bail!("no connection to {addr}");
                    };
                    let reply = c
                        .call(&[b"SET", &key, &value, b"EX", b"86400"], TIMEOUT)
                        .await
                        .with_context(|| format!("SET via {addr}"))?;
                    if reply != Reply::Simple("OK".into()) {
                        bail!(
                            "SET {} via {addr}: {reply:?}",
                            String::from_utf8_lossy(&key)
                        );
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                    i += tasks;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    let mut result = Ok(());
    for h in handles {
        match h.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e),
            Err(e) => result = Err(e.into()),
        }
    }
    progress.abort();
    result.map(|()| started.elapsed())
}

/// The client that keeps reading and writing its own sessions while the resize runs.
pub fn start_live_load(common: &Common, endpoints: Endpoints, cluster_client: bool) -> LoadGen {
    LoadGen::start(
        LoadConfig {
            workers: common.workers,
            sessions_per_worker: 100,
            value_size: common.value_size,
            read_ratio: 0.5,
            ttl_secs: 86_400,
            request_timeout: Duration::from_secs(10),
            pace: Some(Duration::from_millis(common.pace_ms)),
            prefix: "live".into(),
            follow_cluster_redirects: cluster_client,
            ..LoadConfig::default()
        },
        endpoints,
    )
}

/// Keys of the live load that must exist (their last write was acknowledged).
pub fn live_keys(report: &Report) -> u64 {
    report
        .expected
        .values()
        .filter(|e| e.acked.is_some())
        .count() as u64
}

/// `DBSIZE` on one node.
pub async fn dbsize(addr: &str) -> anyhow::Result<u64> {
    let mut c = RespClient::connect(addr, TIMEOUT).await?;
    match c.call(&[b"DBSIZE"], TIMEOUT).await? {
        Reply::Integer(n) => Ok(u64::try_from(n).unwrap_or(0)),
        other => bail!("DBSIZE via {addr}: {other:?}"),
    }
}
