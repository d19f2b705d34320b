//! A single in-memory partition behind the `Backend` seam: the engine of a standalone
//! node, the reference the clustered node is compared with, and the store of the
//! protocol tests.

use crate::backend::{Backend, BackendStats};
use crate::command::scan::{glob_match, scan_position, scan_reply, ScanArgs};
use crate::command::{self, errors, KeyView, Kind};
use crate::reply::Reply;
use crate::value::{Entry, Mutation};
use futures::future::{self, BoxFuture, FutureExt};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// Keys grouped by SCAN position, so a cursor is the position to resume from.
#[derive(Default)]
struct Keyspace {
    buckets: BTreeMap<u64, Vec<(Vec<u8>, Entry)>>,
    keys: usize,
}

impl Keyspace {
    fn apply(&mut self, mutation: Mutation) {
        match mutation {
            Mutation::Put { key, entry } => {
                let bucket = self.buckets.entry(scan_position(&key)).or_default();
                match bucket.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = entry,
                    None => {
                        bucket.push((key, entry));
                        self.keys += 1;
                    }
                }
            }
            Mutation::Delete { key } => {
                let pos = scan_position(&key);
                if let Some(bucket) = self.buckets.get_mut(&pos) {
                    let before = bucket.len();
                    bucket.retain(|(k, _)| *k != key);
                    self.keys -= before - bucket.len();
                    if bucket.is_empty() {
                        self.buckets.remove(&pos);
                    }
                }
            }
        }
    }
}

impl KeyView for Keyspace {
    fn get(&mut self, key: &[u8]) -> Option<Entry> {
        self.buckets
            .get(&scan_position(key))?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, e)| e.clone())
    }

    fn contains(&mut self, key: &[u8]) -> bool {
        self.buckets
            .get(&scan_position(key))
            .is_some_and(|b| b.iter().any(|(k, _)| k == key))
    }
}

#[derive(Default)]
pub struct MemoryBackend {
    keyspace: Mutex<Keyspace>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs one command at `now` (unix milliseconds).
    pub fn call_at(&self, args: &[Vec<u8>], now: u64) -> Reply {
        let Some(spec) = args.first().and_then(|n| command::spec(n)) else {
            return errors::unknown_command(args);
        };
        let mut ks = self.keyspace.lock();
        if spec.kind != Kind::Keyspace {
            let outcome = command::execute(args, &mut *ks, now);
            for m in outcome.mutations {
                ks.apply(m);
            }
            return outcome.reply;
        }
        if !spec.arity_ok(args.len()) {
            return errors::wrong_arity(spec.name);
        }
        match spec.name {
            "dbsize" => Reply::Integer(ks.keys as i64),
            "keys" => Reply::Array(
                ks.buckets
                    .values()
                    .flatten()
                    .filter(|(k, e)| e.is_live(now) && glob_match(&args[1], k))
                    .map(|(k, _)| Reply::Bulk(k.clone()))
                    .collect(),
            ),
            "scan" => match ScanArgs::parse(args) {
                Ok(scan) => scan_keyspace(&ks, &scan, now),
                Err(e) => e,
            },
            _ => errors::unknown_command(args),
        }
    }

    /// Active expiry as Redis does it: look at up to `samples` keys from random SCAN
    /// positions, drop the expired ones, and go again while more than a quarter of a
    /// round was expired (at most 16 rounds, so one call stays short). Returns how many
    /// keys were dropped.
    pub fn expire_sample(&self, now: u64, samples: usize) -> usize {
        let mut dropped = 0;
        for _ in 0..16 {
            let mut expired = Vec::new();
            let mut seen = 0;
            {
                let ks = self.keyspace.lock();
                if ks.keys == 0 {
                    return dropped;
                }
                for _ in 0..samples {
                    let at: u64 = rand::random();
                    let Some((_, bucket)) = ks
                        .buckets
                        .range(at..)
                        .next()
                        .or_else(|| ks.buckets.iter().next())
                    else {
                        break;
                    };
                    for (key, entry) in bucket {
                        seen += 1;
                        if !entry.is_live(now) {
                            expired.push(key.clone());
                        }
                    }
                }
            }
            let n = expired.len();
            let mut ks = self.keyspace.lock();
            for key in expired {
                // Checked again under the lock: the key may have been rewritten meanwhile.
                if ks.get(&key).is_some_and(|e| !e.is_live(now)) {
                    ks.apply(Mutation::Delete { key });
                    dropped += 1;
                }
            }
            if n * 4 <= seen {
                break;
            }
        }
        dropped
    }

    /// Drops every expired key at once (tests; `expire_sample` is the running form).
    pub fn expire_sweep(&self, now: u64) -> usize {
        let mut ks = self.keyspace.lock();
        let expired: Vec<Vec<u8>> = ks
            .buckets
            .values()
            .flatten()
            .filter(|(_, e)| !e.is_live(now))
            .map(|(k, _)| k.clone())
            .collect();
        let n = expired.len();
        for key in expired {
            ks.apply(Mutation::Delete { key });
        }
        n
    }
}

fn scan_keyspace(ks: &Keyspace, scan: &ScanArgs, now: u64) -> Reply {
    let start = if scan.cursor == 0 { 1 } else { scan.cursor };
    let mut keys = Vec::new();
    let mut examined = 0;
    let mut next = 0;
    for (&pos, bucket) in ks.buckets.range(start..) {
        if examined >= scan.count {
            next = pos;
            break;
        }
        for (key, entry) in bucket {
            examined += 1;
            if entry.is_live(now) && scan.accepts(key, &entry.value) {
                keys.push(key.clone());
            }
        }
    }
    scan_reply(next, keys)
}

impl Backend for MemoryBackend {
    fn call(&self, args: Vec<Vec<u8>>) -> BoxFuture<'_, Reply> {
        future::ready(self.call_at(&args, now_ms())).boxed()
    }

    fn stats(&self) -> BackendStats {
        let ks = self.keyspace.lock();
        let mut stats = BackendStats {
            keys: ks.keys as u64,
            role: "master",
            ..BackendStats::default()
        };
        for (key, entry) in ks.buckets.values().flatten() {
            if entry.expires_at_ms.is_some() {
                stats.expires += 1;
            }
            stats.used_memory_bytes += (key.len() + entry.value.payload_bytes() + 64) as u64;
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(line: &str) -> Vec<Vec<u8>> {
        line.split_whitespace()
            .map(|w| w.as_bytes().to_vec())
            .collect()
    }

    #[test]
    fn scan_visits_every_key_once_across_calls() {
        let m = MemoryBackend::new();
        for i in 0..500 {
            m.call_at(&a(&format!("SET key:{i} v")), 1000);
        }
        m.call_at(&a("HSET other f v"), 1000);
        let mut seen = std::collections::BTreeSet::new();
        let mut cursor = 0u64;
        for _ in 0..1000 {
            let Reply::Array(parts) =
                m.call_at(&a(&format!("SCAN {cursor} MATCH key:* COUNT 7")), 1000)
            else {
                panic!("not an array")
            };
            let Reply::Bulk(c) = &parts[0] else {
                panic!("cursor")
            };
            let Reply::Array(keys) = &parts[1] else {
                panic!("keys")
            };
            for k in keys {
                let Reply::Bulk(k) = k else { panic!("key") };
                assert!(seen.insert(k.clone()), "duplicate");
            }
            cursor = String::from_utf8_lossy(c).parse().unwrap();
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(cursor, 0);
        assert_eq!(seen.len(), 500);
        assert_eq!(m.call_at(&a("DBSIZE"), 1000), Reply::Integer(501));
        let Reply::Array(hashes) = m.call_at(&a("SCAN 0 COUNT 1000 TYPE hash"), 1000) else {
            panic!()
        };
        assert_eq!(
            hashes[1],
            Reply::Array(vec![Reply::Bulk(b"other".to_vec())])
        );
    }

    #[test]
    fn expiry_sweep_and_stats() {
        let m = MemoryBackend::new();
        m.call_at(&a("SET a v PX 10"), 1000);
        m.call_at(&a("SET b v"), 1000);
        assert_eq!(m.stats().keys, 2);
        assert_eq!(m.stats().expires, 1);
        assert_eq!(m.expire_sweep(1010), 1);
        assert_eq!(m.stats().keys, 1);
        assert_eq!(
            m.call_at(&a("KEYS *"), 1010),
            Reply::Array(vec![Reply::Bulk(b"b".to_vec())])
        );
        for i in 0..200 {
            m.call_at(&a(&format!("SET e{i} v PX 10")), 1000);
        }
        let mut dropped = 0;
        for _ in 0..100 {
            dropped += m.expire_sample(1010, 20);
        }
        assert!(
            dropped > 150,
            "sampling finds most expired keys, got {dropped}"
        );
        assert_eq!(m.stats().keys as usize, 201 - dropped);
    }
}
