//! What a key holds, and how a change to it travels between replicas.
//!
//! Replication ships resulting state (`Mutation`), never commands, so replicas apply
//! deterministically: INCR-style commands and relative TTLs are resolved once, on the
//! partition's primary.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The value of a key. Only the types session libraries use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    Str(Vec<u8>),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    Set(BTreeSet<Vec<u8>>),
}

/// A key's value with its absolute expiry (unix milliseconds), as Redis keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub value: Value,
    pub expires_at_ms: Option<u64>,
}

/// The new state of one key after a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mutation {
    Put { key: Vec<u8>, entry: Entry },
    Delete { key: Vec<u8> },
}
