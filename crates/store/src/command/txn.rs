//! One command's view of the keys it touches: reads through to the store, applies
//! Redis's lazy expiry, and records the resulting state of every key it changes.

use crate::keymap::KeyMap;
use crate::value::{Entry, Mutation, Value};
use std::collections::HashMap;

/// Read access to the stored entries of one partition (or of whatever holds the keys
/// of a command). Returns the entry as stored, expired or not: expiry is decided here.
pub trait KeyView {
    fn get(&mut self, key: &[u8]) -> Option<Entry>;

    /// Whether an entry (live or expired) is stored for `key`. Views override it to
    /// answer without copying the value out, as a write that replaces a key only needs
    /// to know whether it existed.
    fn contains(&mut self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }
}

/// Lets tests and simple engines use a plain map as a view.
impl<S: std::hash::BuildHasher> KeyView for HashMap<Vec<u8>, Entry, S> {
    fn get(&mut self, key: &[u8]) -> Option<Entry> {
        HashMap::get(self, key).cloned()
    }

    fn contains(&mut self, key: &[u8]) -> bool {
        self.contains_key(key)
    }
}

struct Touched {
    key: Vec<u8>,
    /// Whether the store held an entry (live or expired) before this command.
    stored: bool,
    state: Option<Entry>,
}

/// Touched keys looked up by scanning `touched` up to this many; beyond, through `index`
/// (a hashed index costs an allocation and a hash per command, and almost every command
/// touches one or two keys; a huge MSET must not scan quadratically).
const SCAN_TOUCHED: usize = 8;

pub(crate) struct Txn<'a> {
    view: &'a mut dyn KeyView,
    pub now: u64,
    touched: Vec<Touched>,
    /// Position in `touched` by key, kept once there are more than `SCAN_TOUCHED`.
    index: KeyMap<Vec<u8>, usize>,
}

/// A key's value after a type check.
pub(crate) enum Typed<T> {
    Missing,
    Wrong,
    Found(T, Option<u64>),
}

impl<'a> Txn<'a> {
    pub fn new(view: &'a mut dyn KeyView, now: u64) -> Self {
        Txn {
            view,
            now,
            touched: Vec::new(),
            index: KeyMap::default(),
        }
    }

    fn is_live(&self, entry: &Entry) -> bool {
        entry.expires_at_ms.is_none_or(|at| at > self.now)
    }

    /// The live entry of `key`, as this command has left it so far.
    fn position(&self, key: &[u8]) -> Option<usize> {
        if self.touched.len() <= SCAN_TOUCHED {
            self.touched.iter().position(|t| t.key == key)
        } else {
            self.index.get(key).copied()
        }
    }

    pub fn get(&mut self, key: &[u8]) -> Option<Entry> {
        if let Some(i) = self.position(key) {
            return self.touched[i].state.clone();
        }
        let stored = self.view.get(key)?;
        if self.is_live(&stored) {
            return Some(stored);
        }
        // Lazy expiry: the read deletes the key, as Redis's expireIfNeeded does.
        self.record(key, true, None);
        None
    }

    pub fn exists(&mut self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    pub fn put(&mut self, key: &[u8], entry: Entry) {
        let state = if self.is_live(&entry) {
            Some(entry)
        } else {
            None
        };
        self.set_state(key, state);
    }

    pub fn delete(&mut self, key: &[u8]) {
        self.set_state(key, None);
    }

    fn set_state(&mut self, key: &[u8], state: Option<Entry>) {
        if let Some(i) = self.position(key) {
            self.touched[i].state = state;
            return;
        }
        let stored = self.view.contains(key);
        self.record(key, stored, state);
    }

    /// Adds a key not touched before.
    fn record(&mut self, key: &[u8], stored: bool, state: Option<Entry>) {
        self.touched.push(Touched {
            key: key.to_vec(),
            stored,
            state,
        });
        match self.touched.len() {
            n if n <= SCAN_TOUCHED => {}
            n if n == SCAN_TOUCHED + 1 => {
                self.index = (self.touched.iter().enumerate())
                    .map(|(i, t)| (t.key.clone(), i))
                    .collect();
            }
            n => {
                self.index.insert(key.to_vec(), n - 1);
            }
        }
    }

    pub fn string(&mut self, key: &[u8]) -> Typed<Vec<u8>> {
        match self.get(key) {
            None => Typed::Missing,
            Some(Entry {
                value: Value::Str(s),
                expires_at_ms,
            }) => Typed::Found(s, expires_at_ms),
            Some(_) => Typed::Wrong,
        }
    }

    pub fn hash(&mut self, key: &[u8]) -> Typed<std::collections::BTreeMap<Vec<u8>, Vec<u8>>> {
        match self.get(key) {
            None => Typed::Missing,
            Some(Entry {
                value: Value::Hash(h),
                expires_at_ms,
            }) => Typed::Found(h, expires_at_ms),
            Some(_) => Typed::Wrong,
        }
    }

    pub fn set(&mut self, key: &[u8]) -> Typed<std::collections::BTreeSet<Vec<u8>>> {
        match self.get(key) {
            None => Typed::Missing,
            Some(Entry {
                value: Value::Set(s),
                expires_at_ms,
            }) => Typed::Found(s, expires_at_ms),
            Some(_) => Typed::Wrong,
        }
    }

    /// The resulting state of every key this command changed, in first-touch order.
    pub fn into_mutations(self) -> Vec<Mutation> {
        self.touched
            .into_iter()
            .filter_map(|t| match t.state {
                Some(entry) => Some(Mutation::Put { key: t.key, entry }),
                None if t.stored => Some(Mutation::Delete { key: t.key }),
                None => None,
            })
            .collect()
    }
}
