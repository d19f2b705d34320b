//! One partition's keys in memory, with versions, the expiry index and scan order.
//!
//! A node holds this for every partition it replicates or learns. The primary reads and
//! executes against it; replicas and learners only apply versioned mutations.

use crate::command::KeyView;
use crate::keymap::KeyMap;
use crate::storage::{Op, Record, Version};
use crate::value::{Entry, Mutation, Value};
use std::collections::BTreeSet;

/// A key's state. `entry: None` is a tombstone, kept only while a learner merges a
/// snapshot with the live tail (a delete seen in the tail must beat the older copy of
/// the key that a snapshot chunk may still bring).
#[derive(Debug, Clone)]
pub struct Slot {
    pub version: Version,
    pub entry: Option<Entry>,
}

/// Bits of the SCAN cursor that hold the position inside a partition; the partition
/// index sits above them.
pub const SCAN_POSITION_BITS: u32 = 52;

/// Where a key sorts in SCAN: a hash, so the order does not change as keys come and go
/// and a cursor stays meaningful under concurrent writes.
pub fn scan_position(key: &[u8]) -> u64 {
    crate::command::scan::scan_position(key) >> (64 - SCAN_POSITION_BITS)
}

/// A learner's progress on one partition (kept on the learner).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Learning {
    /// Epoch of the LearnStart that began the current copy.
    pub epoch: u64,
    pub snapshot_done: bool,
}

#[derive(Debug, Default)]
pub struct PartState {
    data: KeyMap<Vec<u8>, Slot>,
    /// (expires_at_ms, key) of live keys with a TTL, earliest first.
    expiring: BTreeSet<(u64, Vec<u8>)>,
    live: u64,
    bytes: u64,
    /// Highest sequence seen; the primary numbers its next write after it.
    pub seq: u64,
    pub learning: Learning,
    /// As primary: learners (by id) that receive the live tail, for `sync_epoch`.
    pub sync_learners: BTreeSet<String>,
    pub sync_epoch: u64,
}

fn entry_size(key: &[u8], e: &Entry) -> u64 {
    let v = match &e.value {
        Value::Str(s) => s.len(),
        Value::Hash(h) => h.iter().map(|(k, v)| k.len() + v.len() + 16).sum(),
        Value::Set(s) => s.iter().map(|m| m.len() + 8).sum(),
    };
    (key.len() + v + 64) as u64
}

/// Counts a live entry about to be stored under `key` in a partition's indexes (the
/// fields of `PartState` it needs, borrowed apart from its map, which holds the key).
fn index_live(
    expiring: &mut BTreeSet<(u64, Vec<u8>)>,
    live: &mut u64,
    bytes: &mut u64,
    key: &[u8],
    e: &Entry,
) {
    if let Some(at) = e.expires_at_ms {
        expiring.insert((at, key.to_vec()));
    }
    *live += 1;
    *bytes += entry_size(key, e);
}

impl KeyView for PartState {
    fn get(&mut self, key: &[u8]) -> Option<Entry> {
        self.data.get(key).and_then(|s| s.entry.clone())
    }

    fn contains(&mut self, key: &[u8]) -> bool {
        self.data.get(key).is_some_and(|s| s.entry.is_some())
    }
}

impl PartState {
    pub fn keys(&self) -> u64 {
        self.live
    }

    pub fn expires(&self) -> u64 {
        self.expiring.len() as u64
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Sets a key's state if `version` is newer than what is held. Returns whether it
    /// changed. A delete of a key not held leaves a tombstone only when `tombstones`.
    pub fn apply(
        &mut self,
        key: &[u8],
        version: Version,
        entry: Option<Entry>,
        tombstones: bool,
    ) -> bool {
        // Checked before copying the key, so a stale update costs no allocation.
        if self.data.get(key).is_some_and(|old| old.version >= version) {
            self.seq = self.seq.max(version.seq);
            return false;
        }
        self.apply_owned(key.to_vec(), version, entry, tombstones)
    }

    /// `apply` for a key the caller owns: one hash lookup and no copy of the key (the
    /// write path's hot call, once per replicated or acknowledged mutation).
    pub fn apply_owned(
        &mut self,
        key: Vec<u8>,
        version: Version,
        entry: Option<Entry>,
        tombstones: bool,
    ) -> bool {
        use std::collections::hash_map::Entry as Held;
        self.seq = self.seq.max(version.seq);
        let slot = Slot { version, entry };
        match self.data.entry(key) {
            Held::Occupied(mut held) => {
                if held.get().version >= version {
                    return false;
                }
                if let Some(old) = &held.get().entry {
                    if let Some(at) = old.expires_at_ms {
                        self.expiring.remove(&(at, held.key().clone()));
                    }
                    self.live = self.live.saturating_sub(1);
                    self.bytes = self.bytes.saturating_sub(entry_size(held.key(), old));
                }
                match &slot.entry {
                    Some(e) => {
                        index_live(
                            &mut self.expiring,
                            &mut self.live,
                            &mut self.bytes,
                            held.key(),
                            e,
                        );
                        held.insert(slot);
                    }
                    None if tombstones => {
                        held.insert(slot);
                    }
                    None => {
                        held.remove();
                    }
                }
            }
            Held::Vacant(free) => match &slot.entry {
                Some(e) => {
                    index_live(
                        &mut self.expiring,
                        &mut self.live,
                        &mut self.bytes,
                        free.key(),
                        e,
                    );
                    free.insert(slot);
                }
                None if tombstones => {
                    free.insert(slot);
                }
                None => {}
            },
        }
        true
    }

    /// Applies versioned mutations (a replica's or learner's copy of the primary's
    /// writes); returns the storage operations for the ones that took effect, which
    /// take the received keys and values, memory a copy.
    pub fn apply_mutations(
        &mut self,
        partition: u32,
        mutations: Vec<(Version, Mutation)>,
        tombstones: bool,
    ) -> Vec<Op> {
        let mut ops = Vec::with_capacity(mutations.len());
        for (version, m) in mutations {
            match m {
                Mutation::Put { key, entry } => {
                    if self.apply_owned(key.clone(), version, Some(entry.clone()), tombstones) {
                        ops.push(Op::Put {
                            partition,
                            key,
                            record: Record { version, entry },
                        });
                    }
                }
                Mutation::Delete { key } => {
                    if self.apply_owned(key.clone(), version, None, tombstones) {
                        ops.push(Op::Delete { partition, key });
                    }
                }
            }
        }
        ops
    }

    /// Storage operations for mutations about to be applied (the primary writes its
    /// disk while the replicas apply, and its memory only after they acknowledged).
    pub fn storage_ops(partition: u32, mutations: &[(Version, Mutation)]) -> Vec<Op> {
        mutations
            .iter()
            .map(|(version, m)| match m {
                Mutation::Put { key, entry } => Op::Put {
                    partition,
                    key: key.clone(),
                    record: Record {
                        version: *version,
                        entry: entry.clone(),
                    },
                },
                Mutation::Delete { key } => Op::Delete {
                    partition,
                    key: key.clone(),
                },
            })
            .collect()
    }

    /// Forgets everything (the node stops replicating the partition or re-learns it).
    pub fn clear(&mut self) {
        self.data.clear();
        self.expiring.clear();
        self.live = 0;
        self.bytes = 0;
        self.learning = Learning::default();
        self.sync_learners.clear();
    }

    pub fn drop_tombstones(&mut self) {
        self.data.retain(|_, s| s.entry.is_some());
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Every live key with its version: a point-in-time copy for a learner.
    pub fn snapshot(&self) -> Vec<(Vec<u8>, Record)> {
        self.data
            .iter()
            .filter_map(|(k, s)| {
                s.entry.as_ref().map(|e| {
                    (
                        k.clone(),
                        Record {
                            version: s.version,
                            entry: e.clone(),
                        },
                    )
                })
            })
            .collect()
    }

    /// Up to `limit` keys whose expiry has passed, earliest first.
    pub fn expired(&self, now_ms: u64, limit: usize) -> Vec<Vec<u8>> {
        self.expiring
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .take(limit)
            .map(|(_, k)| k.clone())
            .collect()
    }

    /// Live, unexpired keys from `position` on in scan order, at least `count` of them
    /// when the partition has that many (keys sharing the last position all come, so
    /// the next page can start strictly after it). Returns the keys and the position to
    /// continue from, or None when the partition is done.
    pub fn scan_page(
        &self,
        position: u64,
        count: usize,
        now_ms: u64,
        filter: impl Fn(&[u8], &Entry) -> bool,
    ) -> (Vec<Vec<u8>>, Option<u64>) {
        let mut candidates: Vec<(u64, &Vec<u8>, &Entry)> = self
            .data
            .iter()
            .filter_map(|(k, s)| {
                let e = s.entry.as_ref()?;
                let pos = scan_position(k);
                (pos >= position).then_some((pos, k, e))
            })
            .collect();
        candidates.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        let mut out = Vec::new();
        let mut last = None;
        for (taken, (pos, k, e)) in candidates.into_iter().enumerate() {
            if taken >= count.max(1) && last != Some(pos) {
                return (out, Some(pos));
            }
            last = Some(pos);
            let live = e.expires_at_ms.is_none_or(|at| at > now_ms);
            if live && filter(k, e) {
                out.push(k.clone());
            }
        }
        (out, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(v: &[u8], ttl: Option<u64>) -> Option<Entry> {
        Some(Entry {
            value: Value::Str(v.to_vec()),
            expires_at_ms: ttl,
        })
    }

    fn ver(seq: u64) -> Version {
        Version { epoch: 1, seq }
    }

    #[test]
    fn older_versions_lose_and_tombstones_block_resurrection() {
        let mut p = PartState::default();
        assert!(p.apply(b"k", ver(5), None, true));
        // A snapshot chunk carrying the key as it was before the delete must not win.
        assert!(!p.apply(b"k", ver(3), put(b"old", None), true));
        assert_eq!(KeyView::get(&mut p, b"k"), None);
        assert!(p.apply(b"k", ver(6), put(b"new", Some(10)), true));
        assert_eq!(p.keys(), 1);
        assert_eq!(p.expired(10, 5), vec![b"k".to_vec()]);
        assert!(p.expired(9, 5).is_empty());
        p.apply(b"gone", ver(7), None, true);
        p.drop_tombstones();
        assert_eq!(p.snapshot().len(), 1);
        assert!(p.apply(b"k", ver(8), None, false));
        assert_eq!(p.keys(), 0);
        assert!(p.is_empty());
        assert_eq!(p.expires(), 0);
    }

    #[test]
    fn scan_pages_cover_every_key_once() {
        let mut p = PartState::default();
        for i in 0..100u64 {
            p.apply(
                format!("key{i}").as_bytes(),
                ver(i + 1),
                put(b"v", None),
                false,
            );
        }
        let mut seen = Vec::new();
        let mut pos = 0;
        for _ in 0..100 {
            let (keys, next) = p.scan_page(pos, 7, 0, |_, _| true);
            seen.extend(keys);
            match next {
                Some(n) => pos = n,
                None => break,
            }
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 100);
    }
}
