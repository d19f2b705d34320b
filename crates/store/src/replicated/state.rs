//! The agent's copy of every session: per key the last write (value or tombstone) with
//! its stamp, merged last-writer-wins, and the bucket digests anti-entropy compares.

use super::hlc::{fnv64, Stamp};
use crate::command::KeyView;
use crate::keymap::KeyMap;
use crate::value::Entry;
use serde::{Deserialize, Serialize};

/// Anti-entropy buckets: a digest exchange sends one u64 per bucket (2 KiB).
pub const BUCKETS: u32 = 256;

/// The last write of a key: its value, or `None` for a deletion (a tombstone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub stamp: Stamp,
    pub entry: Option<Entry>,
}

impl Record {
    /// Holds a value that has not expired at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.entry.as_ref().is_some_and(|e| e.is_live(now_ms))
    }

    /// A tombstone or expired value older than the retention: every agent that was
    /// reachable in that time has it, so it may be forgotten (and is not compared).
    fn is_obsolete(&self, now_ms: u64, retention_ms: u64) -> bool {
        !self.is_live(now_ms) && self.stamp.wall_ms.saturating_add(retention_ms) < now_ms
    }
}

pub fn bucket_of(key: &[u8]) -> u32 {
    (fnv64(&[key]) % u64::from(BUCKETS)) as u32
}

fn record_hash(key: &[u8], stamp: &Stamp) -> u64 {
    fnv64(&[
        key,
        &stamp.wall_ms.to_le_bytes(),
        &stamp.counter.to_le_bytes(),
        &stamp.node.to_le_bytes(),
    ])
}

pub struct State {
    records: KeyMap<Vec<u8>, Record>,
    retention_ms: u64,
}

impl State {
    pub fn new(retention_ms: u64) -> State {
        State {
            records: KeyMap::default(),
            retention_ms,
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<&Record> {
        self.records.get(key)
    }

    /// Last writer wins: keeps `incoming` if it is newer than what the key holds.
    /// Returns whether the key changed. A record older than the retention is only
    /// taken over a still older one, so a forgotten tombstone does not come back.
    pub fn merge(&mut self, key: Vec<u8>, incoming: Record, now_ms: u64) -> bool {
        match self.records.get(&key) {
            Some(cur) if cur.stamp >= incoming.stamp => false,
            Some(_) => {
                self.records.insert(key, incoming);
                true
            }
            None if incoming.is_obsolete(now_ms, self.retention_ms) => false,
            None => {
                self.records.insert(key, incoming);
                true
            }
        }
    }

    /// One digest per bucket: XOR of (key, stamp) hashes of the records still compared.
    pub fn digests(&self, now_ms: u64) -> Vec<u64> {
        let mut out = vec![0u64; BUCKETS as usize];
        for (key, rec) in &self.records {
            if !rec.is_obsolete(now_ms, self.retention_ms) {
                out[bucket_of(key) as usize] ^= record_hash(key, &rec.stamp);
            }
        }
        out
    }

    /// The compared records of `buckets` (bootstrap pulls all of them, anti-entropy
    /// the ones whose digests differ).
    pub fn records_in(&self, buckets: &[u32], now_ms: u64) -> Vec<(Vec<u8>, Record)> {
        let wanted: std::collections::HashSet<u32> = buckets.iter().copied().collect();
        self.records
            .iter()
            .filter(|(k, r)| {
                !r.is_obsolete(now_ms, self.retention_ms) && wanted.contains(&bucket_of(k))
            })
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect()
    }

    /// Forgets obsolete tombstones and expired values; returns how many.
    pub fn collect_garbage(&mut self, now_ms: u64) -> usize {
        let before = self.records.len();
        let retention = self.retention_ms;
        self.records
            .retain(|_, r| !r.is_obsolete(now_ms, retention));
        before - self.records.len()
    }

    /// Keys holding a live value at `now_ms`, with it.
    pub fn live(&self, now_ms: u64) -> impl Iterator<Item = (&Vec<u8>, &Entry)> {
        self.records
            .iter()
            .filter_map(move |(k, r)| match &r.entry {
                Some(e) if e.is_live(now_ms) => Some((k, e)),
                _ => None,
            })
    }

    /// Records held, tombstones and expired values included.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// Commands see the stored value (expired or not: `Txn` decides expiry); a tombstone
/// reads as a missing key.
impl KeyView for State {
    fn get(&mut self, key: &[u8]) -> Option<Entry> {
        self.records.get(key).and_then(|r| r.entry.clone())
    }

    fn contains(&mut self, key: &[u8]) -> bool {
        self.records.get(key).is_some_and(|r| r.entry.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn stamp(wall_ms: u64, node: u64) -> Stamp {
        Stamp {
            wall_ms,
            counter: 0,
            node,
        }
    }

    fn put(v: &str, wall_ms: u64, node: u64) -> Record {
        Record {
            stamp: stamp(wall_ms, node),
            entry: Some(Entry {
                value: Value::Str(v.as_bytes().to_vec()),
                expires_at_ms: None,
            }),
        }
    }

    fn tomb(wall_ms: u64, node: u64) -> Record {
        Record {
            stamp: stamp(wall_ms, node),
            entry: None,
        }
    }

    #[test]
    fn merge_order_does_not_change_the_outcome() {
        let writes = [put("a", 10, 1), put("b", 10, 2), tomb(9, 3), put("c", 8, 1)];
        let mut outcomes = Vec::new();
        for perm in [[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]] {
            let mut s = State::new(1000);
            for i in perm {
                s.merge(b"k".to_vec(), writes[i].clone(), 20);
            }
            outcomes.push(s.get(b"k").cloned());
        }
        assert!(outcomes.iter().all(|o| *o == Some(put("b", 10, 2))));
    }

    #[test]
    fn a_newer_tombstone_wins_and_is_forgotten_after_the_retention() {
        let mut s = State::new(100);
        assert!(s.merge(b"k".to_vec(), put("a", 10, 1), 10));
        assert!(s.merge(b"k".to_vec(), tomb(20, 2), 20));
        assert!(!s.merge(b"k".to_vec(), put("old", 15, 1), 30));
        assert_eq!(s.collect_garbage(50), 0);
        assert_eq!(s.collect_garbage(121), 1);
        assert!(s.is_empty());
        // A peer that still has the forgotten tombstone does not bring it back.
        assert!(!s.merge(b"k".to_vec(), tomb(20, 2), 130));
    }

    #[test]
    fn digests_match_exactly_when_the_compared_records_match() {
        let mut a = State::new(100);
        let mut b = State::new(100);
        for i in 0..50u64 {
            a.merge(format!("k{i}").into_bytes(), put("v", i, 1), 60);
            b.merge(format!("k{i}").into_bytes(), put("v", i, 1), 60);
        }
        assert_eq!(a.digests(60), b.digests(60));
        b.merge(b"k7".to_vec(), put("w", 55, 2), 60);
        let (da, db) = (a.digests(60), b.digests(60));
        let differing: Vec<u32> = (0..BUCKETS)
            .filter(|&i| da[i as usize] != db[i as usize])
            .collect();
        assert_eq!(differing, vec![bucket_of(b"k7")]);
        let repair = b.records_in(&differing, 60);
        assert!(repair.iter().any(|(k, _)| k == b"k7"));
        for (k, r) in repair {
            a.merge(k, r, 60);
        }
        assert_eq!(a.digests(60), b.digests(60));
    }
}
