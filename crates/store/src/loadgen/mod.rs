//! A recording load generator for session stores speaking RESP.
//!
//! Workers write and read sessions (`SET key value EX ttl`, `GET key`), each worker
//! owning its own keys, so the worker knows the value every key must hold: the last
//! acknowledged write, or a write whose outcome is unknown (the request failed) that
//! may or may not have taken effect. Every read is checked against that (a read that
//! returns anything else is a linearizability violation), and `Report::verify` reads
//! every key back at the end. Endpoints can change while it runs, as a Kubernetes
//! Service's endpoints do; a worker moves off an endpoint as soon as it is withdrawn.

pub mod client;
pub mod redirects;

use crate::reply::Reply;
use client::RespClient;
use parking_lot::RwLock;
use redirects::Redirects;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub workers: usize,
    pub sessions_per_worker: usize,
    pub value_size: usize,
    /// Fraction of operations that are reads, 0.0..=1.0.
    pub read_ratio: f64,
    pub ttl_secs: u64,
    pub request_timeout: Duration,
    /// Pause between one worker's operations (None: as fast as it can).
    pub pace: Option<Duration>,
    /// Bound on operations per worker, whatever happens.
    pub max_ops_per_worker: u64,
    /// Key prefix, so several generators can share a store.
    pub prefix: String,
    /// Follow Redis Cluster MOVED/ASK redirections as a cluster client library does
    /// (for driving a Redis Cluster as a peer in benchmarks; the store needs none).
    pub follow_cluster_redirects: bool,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            workers: 8,
            sessions_per_worker: 50,
            value_size: 64,
            read_ratio: 0.3,
            ttl_secs: 3600,
            request_timeout: Duration::from_secs(30),
            pace: None,
            max_ops_per_worker: 1_000_000,
            prefix: "sess".into(),
            follow_cluster_redirects: false,
        }
    }
}

/// The addresses workers may connect to; replace them while the load runs.
#[derive(Clone, Default)]
pub struct Endpoints(Arc<RwLock<Vec<String>>>);

impl Endpoints {
    pub fn new(addrs: Vec<String>) -> Self {
        Endpoints(Arc::new(RwLock::new(addrs)))
    }

    pub fn set(&self, addrs: Vec<String>) {
        *self.0.write() = addrs;
    }

    pub fn get(&self) -> Vec<String> {
        self.0.read().clone()
    }
}

/// What a key may hold: its last acknowledged value (None: never written), then the
/// values of later writes whose outcome is unknown, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    pub acked: Option<Vec<u8>>,
    pub maybe: Vec<Vec<u8>>,
}

impl Expect {
    fn allows(&self, got: Option<&[u8]>) -> bool {
        got == self.acked.as_deref() || got.is_some_and(|g| self.maybe.iter().any(|m| m == g))
    }

    /// A read saw `got`: an unknown write it shows took effect, and so did nothing
    /// older than it.
    fn observed(&mut self, got: Option<&[u8]>) {
        if let Some(g) = got {
            if let Some(i) = self.maybe.iter().position(|m| m == g) {
                self.acked = Some(self.maybe[i].clone());
                self.maybe.drain(..=i);
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub ops: u64,
    pub writes_acked: u64,
    pub reads_ok: u64,
    pub failures: u64,
    /// The first failures, for diagnosis.
    pub failure_samples: Vec<String>,
    /// Reads that returned a value the key could not hold.
    pub violations: Vec<String>,
    /// Redis Cluster redirections followed (not failures).
    pub redirects: u64,
    pub latencies: Vec<Duration>,
    pub expected: HashMap<Vec<u8>, Expect>,
    pub elapsed: Duration,
}

impl Report {
    /// Latency quantile `q` in 0..=1.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
        self.latencies[i]
    }

    pub fn max_latency(&self) -> Duration {
        self.latencies.last().copied().unwrap_or_default()
    }

    pub fn summary(&self) -> String {
        format!(
            "ops={} writes_acked={} reads_ok={} failures={} violations={} p50={:?} p99={:?} max={:?} elapsed={:?}",
            self.ops,
            self.writes_acked,
            self.reads_ok,
            self.failures,
            self.violations.len(),
            self.quantile(0.5),
            self.quantile(0.99),
            self.max_latency(),
            self.elapsed
        )
    }

    /// Reads every key through `addr`; returns the keys whose value is not one the
    /// key may hold (an acknowledged write lost, or a value from nowhere).
    pub async fn verify(&self, addr: &str, timeout: Duration) -> Result<Vec<String>, String> {
        self.verify_with(addr, timeout, None).await
    }

    /// `verify`, reading through a Redis Cluster client's redirections when given.
    pub async fn verify_with(
        &self,
        addr: &str,
        timeout: Duration,
        mut redirects: Option<&mut Redirects>,
    ) -> Result<Vec<String>, String> {
        let mut client = RespClient::connect(addr, timeout)
            .await
            .map_err(|e| e.to_string())?;
        let mut bad = Vec::new();
        let mut keys: Vec<&Vec<u8>> = self.expected.keys().collect();
        keys.sort();
        for key in keys {
            let expect = &self.expected[key];
            let reply = redirected(
                &mut client,
                redirects.as_deref_mut(),
                key,
                &[b"GET", key],
                timeout,
            )
            .await
            .map_err(|e| e.to_string())?;
            let got = match &reply {
                Reply::Bulk(v) => Some(v.as_slice()),
                Reply::Nil => None,
                other => {
                    bad.push(format!("{}: {other:?}", String::from_utf8_lossy(key)));
                    continue;
                }
            };
            if !expect.allows(got) {
                bad.push(format!(
                    "{}: got {:?}, acknowledged {:?}",
                    String::from_utf8_lossy(key),
                    got.map(String::from_utf8_lossy),
                    expect.acked.as_deref().map(String::from_utf8_lossy)
                ));
            }
        }
        Ok(bad)
    }
}

/// A running load.
pub struct LoadGen {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    started: Instant,
    workers: Vec<tokio::task::JoinHandle<Report>>,
}

impl LoadGen {
    pub fn start(cfg: LoadConfig, endpoints: Endpoints) -> LoadGen {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let workers = (0..cfg.workers)
            .map(|w| {
                let cfg = cfg.clone();
                let endpoints = endpoints.clone();
                let stop = stop.clone();
                let acked = acked.clone();
                tokio::spawn(async move { worker(w, cfg, endpoints, stop, acked).await })
            })
            .collect();
        LoadGen {
            stop,
            acked,
            started: Instant::now(),
            workers,
        }
    }

    /// Writes acknowledged so far (live, while the load runs).
    pub fn acked_writes(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Stops the workers and merges what they recorded.
    pub async fn stop(self) -> Report {
        self.stop.store(true, Ordering::SeqCst);
        let mut total = Report::default();
        for w in self.workers {
            if let Ok(r) = w.await {
                total.ops += r.ops;
                total.writes_acked += r.writes_acked;
                total.reads_ok += r.reads_ok;
                total.failures += r.failures;
                total.redirects += r.redirects;
                total
                    .failure_samples
                    .extend(r.failure_samples.into_iter().take(20));
                total.violations.extend(r.violations);
                total.latencies.extend(r.latencies);
                total.expected.extend(r.expected);
            }
        }
        total.latencies.sort();
        total.elapsed = self.started.elapsed();
        total
    }
}

/// xorshift64*: enough randomness for choosing keys, no dependency on a seeded RNG API.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One command, through the cluster client's redirections when there is one.
async fn redirected(
    client: &mut RespClient,
    redirects: Option<&mut Redirects>,
    key: &[u8],
    args: &[&[u8]],
    timeout: Duration,
) -> Result<Reply, client::ClientError> {
    match redirects {
        Some(r) => r.call(client, key, args, timeout).await,
        None => client.call(args, timeout).await,
    }
}

fn fail(report: &mut Report, what: String) {
    report.failures += 1;
    if report.failure_samples.len() < 20 {
        report.failure_samples.push(what);
    }
}

async fn worker(
    w: usize,
    cfg: LoadConfig,
    endpoints: Endpoints,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
) -> Report {
    let mut report = Report::default();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93));
    let mut client: Option<RespClient> = None;
    let mut redirects = cfg.follow_cluster_redirects.then(Redirects::default);
    let mut connects = 0usize;
    let mut counter = 0u64;
    let ttl = cfg.ttl_secs.to_string();
    let keys: Vec<Vec<u8>> = (0..cfg.sessions_per_worker)
        .map(|i| format!("{}:w{w}:s{i}", cfg.prefix).into_bytes())
        .collect();
    while !stop.load(Ordering::SeqCst) && report.ops < cfg.max_ops_per_worker {
        let current = endpoints.get();
        if current.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        if client
            .as_ref()
            .is_some_and(|c| !current.iter().any(|a| a == c.addr()))
        {
            client = None;
        }
        if client.is_none() {
            let addr = &current[(w + connects) % current.len()];
            connects += 1;
            match RespClient::connect(addr, cfg.request_timeout).await {
                Ok(c) => client = Some(c),
                Err(e) => {
                    fail(&mut report, format!("connect {addr}: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        let Some(c) = client.as_mut() else { continue };
        let key = &keys[(rng.next() % keys.len() as u64) as usize];
        let expect = report.expected.entry(key.clone()).or_default();
        let read = expect.acked.is_some() && rng.unit() < cfg.read_ratio;
        report.ops += 1;
        let started = Instant::now();
        if read {
            let result = redirected(
                c,
                redirects.as_mut(),
                key,
                &[b"GET", key],
                cfg.request_timeout,
            )
            .await;
            report.latencies.push(started.elapsed());
            let expect = report.expected.entry(key.clone()).or_default();
            match result {
                Ok(Reply::Bulk(v)) if expect.allows(Some(&v)) => {
                    expect.observed(Some(&v));
                    report.reads_ok += 1;
                }
                Ok(Reply::Nil) if expect.allows(None) => report.reads_ok += 1,
                Ok(Reply::Error(e)) => fail(&mut report, format!("GET: {e}")),
                Ok(other) => {
                    let msg = format!(
                        "{}: read {other:?}, acknowledged {:?}",
                        String::from_utf8_lossy(key),
                        expect.acked.as_deref().map(String::from_utf8_lossy)
                    );
                    report.violations.push(msg);
                }
                Err(e) => {
                    fail(&mut report, format!("GET via {}: {e}", c.addr()));
                    client = None;
                }
            }
        } else {
            counter += 1;
            let mut value = format!("w{w}-{counter}-").into_bytes();
            value.resize(cfg.value_size.max(value.len()), b'x');
            let result = redirected(
                c,
                redirects.as_mut(),
                key,
                &[b"SET", key, &value, b"EX", ttl.as_bytes()],
                cfg.request_timeout,
            )
            .await;
            report.latencies.push(started.elapsed());
            let expect = report.expected.entry(key.clone()).or_default();
            match result {
                Ok(Reply::Simple(s)) if s == "OK" => {
                    expect.acked = Some(value);
                    expect.maybe.clear();
                    report.writes_acked += 1;
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                Ok(other) => {
                    expect.maybe.push(value);
                    fail(&mut report, format!("SET: {other:?}"));
                }
                Err(e) => {
                    expect.maybe.push(value);
                    fail(&mut report, format!("SET via {}: {e}", c.addr()));
                    client = None;
                }
            }
        }
        if let Some(p) = cfg.pace {
            tokio::time::sleep(p).await;
        }
    }
    report.redirects = redirects.map_or(0, |r| r.followed);
    report
}

#[cfg(test)]
mod tests {
    use super::Expect;

    #[test]
    fn unknown_writes_may_surface_once_and_then_rule() {
        let mut e = Expect {
            acked: Some(b"a".to_vec()),
            maybe: vec![b"b".to_vec(), b"c".to_vec()],
        };
        assert!(e.allows(Some(b"a")));
        assert!(e.allows(Some(b"c")));
        assert!(!e.allows(None));
        e.observed(Some(b"b"));
        assert!(!e.allows(Some(b"a")));
        assert!(e.allows(Some(b"c")));
    }
}
