//! The cookie keyring of strategy Client and its rotation: a pure planner over the
//! `<name>-keyring` Secret's data, no kube or I/O types.
//!
//! The Secret, mounted into every frontend, holds
//! - `key-<n>`: 32 random bytes; `n` grows by one per rotation;
//! - `current`: the decimal `n` of the key that seals new cookies;
//! - `updated-at`: Unix seconds of the last step, the operator's clock for the schedule.
//!
//! A rotation is two steps, because a Secret volume reaches pods at different moments
//! (the kubelet's sync period): first the new key is *staged* (present, not current), so
//! every pod can open cookies sealed with it; one propagation delay later it becomes
//! *current* and the oldest keys beyond `retainedKeys` are retired. A key that stops being
//! current therefore still opens cookies for `(retainedKeys − 1) × rotationInterval`, and
//! nobody whose session is younger than that is logged out by a rotation.

use std::collections::BTreeMap;

/// Size of one key (AES-256-GCM).
pub const KEY_BYTES: usize = 32;
pub const CURRENT: &str = "current";
pub const UPDATED_AT: &str = "updated-at";
const KEY_PREFIX: &str = "key-";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyringError {
    #[error("the keyring has no key-<n> entries")]
    NoKeys,
    #[error("entry {entry:?}: {reason}")]
    BadEntry { entry: String, reason: String },
    #[error("current names key {0}, which the keyring does not hold")]
    MissingCurrent(u64),
}

impl KeyringError {
    /// Stable label for metrics and events.
    pub fn label(&self) -> &'static str {
        match self {
            KeyringError::NoKeys => "no_keys",
            KeyringError::BadEntry { .. } => "bad_entry",
            KeyringError::MissingCurrent(_) => "missing_current",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyring {
    pub keys: BTreeMap<u64, Vec<u8>>,
    /// The key that seals new cookies.
    pub current: u64,
    /// Unix seconds of the last stage or promotion.
    pub updated_at: i64,
}

/// The schedule, from the SessionCluster's `client` settings and the operator's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Seconds between two keys becoming current.
    pub interval: i64,
    /// Keys kept that can open cookies: the current one and older ones (≥ 2).
    pub retained: usize,
    /// Seconds a staged key waits before it seals: longer than a Secret takes to reach
    /// every pod's volume.
    pub propagation: i64,
}

impl Policy {
    /// Seconds after a promotion that the next key is staged, so promotions stay
    /// `interval` apart; never sooner than one propagation delay.
    fn stage_after(&self) -> i64 {
        (self.interval - self.propagation).max(self.propagation)
    }
}

/// What a step did, for Events and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// A new key is in the keyring and opens cookies; it seals from the next step.
    Staged { key: u64 },
    /// `key` seals new cookies now; `retired` keys were removed.
    Promoted { key: u64, retired: Vec<u64> },
}

impl Rotation {
    pub fn label(&self) -> &'static str {
        match self {
            Rotation::Staged { .. } => "staged",
            Rotation::Promoted { .. } => "promoted",
        }
    }
}

impl Keyring {
    /// A first keyring: one key, current from `now`.
    pub fn first(key: Vec<u8>, now: i64) -> Keyring {
        Keyring {
            keys: BTreeMap::from([(1, key)]),
            current: 1,
            updated_at: now,
        }
    }

    /// Reads the Secret's data. A keyring written before rotation existed (keys only)
    /// takes its highest key as current and `now` as its last step.
    pub fn parse(data: &BTreeMap<String, Vec<u8>>, now: i64) -> Result<Keyring, KeyringError> {
        let bad = |entry: &str, reason: &str| KeyringError::BadEntry {
            entry: entry.to_owned(),
            reason: reason.to_owned(),
        };
        let mut keys = BTreeMap::new();
        let mut current = None;
        let mut updated_at = None;
        for (entry, value) in data {
            if let Some(n) = entry.strip_prefix(KEY_PREFIX) {
                let n: u64 = n
                    .parse()
                    .map_err(|_| bad(entry, "not key-<decimal number>"))?;
                if value.len() != KEY_BYTES {
                    return Err(bad(
                        entry,
                        &format!("{} bytes, want {KEY_BYTES}", value.len()),
                    ));
                }
                keys.insert(n, value.clone());
            } else if entry == CURRENT {
                current = Some(decimal(entry, value).map_err(|r| bad(entry, &r))?);
            } else if entry == UPDATED_AT {
                updated_at = Some(decimal(entry, value).map_err(|r| bad(entry, &r))?);
            } else {
                return Err(bad(entry, "unknown entry"));
            }
        }
        let highest = *keys.keys().next_back().ok_or(KeyringError::NoKeys)?;
        let current = match current {
            Some(c) => u64::try_from(c).map_err(|_| bad(CURRENT, "negative"))?,
            None => highest,
        };
        if !keys.contains_key(&current) {
            return Err(KeyringError::MissingCurrent(current));
        }
        Ok(Keyring {
            keys,
            current,
            updated_at: updated_at.unwrap_or(now),
        })
    }

    /// The Secret's data.
    pub fn to_data(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out: BTreeMap<String, Vec<u8>> = self
            .keys
            .iter()
            .map(|(n, k)| (format!("{KEY_PREFIX}{n}"), k.clone()))
            .collect();
        out.insert(CURRENT.into(), self.current.to_string().into_bytes());
        out.insert(UPDATED_AT.into(), self.updated_at.to_string().into_bytes());
        out
    }

    /// A key newer than the current one waits to become current.
    pub fn staged(&self) -> Option<u64> {
        self.keys
            .keys()
            .next_back()
            .copied()
            .filter(|&n| n > self.current)
    }

    /// When the next step is due (Unix seconds).
    pub fn next_due(&self, policy: &Policy) -> i64 {
        match self.staged() {
            Some(_) => self.updated_at + policy.propagation,
            None => self.updated_at + policy.stage_after(),
        }
    }

    /// The keyring at `now`: unchanged, or one step further. `new_key` is called only when
    /// a key is staged.
    pub fn step(
        &self,
        now: i64,
        policy: &Policy,
        new_key: impl FnOnce() -> Vec<u8>,
    ) -> (Keyring, Option<Rotation>) {
        if now < self.next_due(policy) {
            return (self.clone(), None);
        }
        let mut next = self.clone();
        next.updated_at = now;
        match self.staged() {
            Some(key) => {
                next.current = key;
                let keep: Vec<u64> = next
                    .keys
                    .keys()
                    .copied()
                    .filter(|&n| n <= key)
                    .rev()
                    .take(policy.retained.max(2))
                    .collect();
                let retired: Vec<u64> = next
                    .keys
                    .keys()
                    .copied()
                    .filter(|n| *n <= key && !keep.contains(n))
                    .collect();
                for n in &retired {
                    next.keys.remove(n);
                }
                (next, Some(Rotation::Promoted { key, retired }))
            }
            None => {
                let key = self.keys.keys().next_back().copied().unwrap_or(0) + 1;
                next.keys.insert(key, new_key());
                (next, Some(Rotation::Staged { key }))
            }
        }
    }
}

fn decimal(entry: &str, value: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("{entry} is not a decimal number"))
}

#[cfg(test)]
mod tests;
