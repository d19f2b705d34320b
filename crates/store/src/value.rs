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

impl Value {
    /// The name TYPE answers.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
        }
    }

    /// Bytes held by the payload, a lower bound of the memory it takes.
    pub fn payload_bytes(&self) -> usize {
        match self {
            Value::Str(s) => s.len(),
            Value::Hash(h) => h.iter().map(|(f, v)| f.len() + v.len()).sum(),
            Value::Set(s) => s.iter().map(Vec::len).sum(),
        }
    }
}

impl Entry {
    /// Whether the entry is still live at `now_ms` (unix milliseconds).
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_none_or(|at| at > now_ms)
    }
}
