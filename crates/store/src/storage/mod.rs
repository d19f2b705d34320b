//! Durable storage of a node's partitions on redb.
//!
//! Memory is the source of reads (like Redis); redb is the log that survives a crash.
//! One writer thread owns all write transactions and group-commits whatever is queued,
//! so many concurrent writers share one fsync. With `FsyncPolicy::Always` a write is
//! acknowledged only after an `Immediate` commit; with `EverySec` commits are
//! non-durable and a flush every second makes everything before it durable.

mod writer;

pub use writer::Storage;

use crate::value::Entry;
use serde::{Deserialize, Serialize};

/// Order of writes to one partition: the ring epoch of the primary that made the write,
/// then the primary's per-partition sequence. A snapshot and a live tail merge by
/// keeping the newer version of each key.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Version {
    pub epoch: u64,
    pub seq: u64,
}

/// What is stored for a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: Version,
    pub entry: Entry,
}

/// When a write reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FsyncPolicy {
    /// fsync before acknowledging every write (group-committed).
    Always,
    /// fsync once a second; a crash loses at most the last second of this node's writes
    /// (other replicas still hold them).
    Everysec,
}

/// One change to the stored state.
#[derive(Debug, Clone)]
pub enum Op {
    Put {
        partition: u32,
        key: Vec<u8>,
        record: Record,
    },
    Delete {
        partition: u32,
        key: Vec<u8>,
    },
    /// Forget every key of a partition (the node no longer replicates it, or it
    /// re-learns it from a snapshot).
    DropPartition {
        partition: u32,
    },
    /// Small named values: the last accepted ring configuration.
    PutMeta {
        name: String,
        value: Vec<u8>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage engine: {0}")]
    Engine(#[from] redb::Error),
    #[error("record encoding: {0}")]
    Encoding(#[from] postcard::Error),
    #[error("storage writer stopped")]
    WriterGone,
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
}

impl StorageError {
    pub fn label(&self) -> &'static str {
        match self {
            StorageError::Engine(_) => "engine",
            StorageError::Encoding(_) => "encoding",
            StorageError::WriterGone => "writer_gone",
            StorageError::Commit(_) => "commit",
            StorageError::Io(_) => "io",
        }
    }
}

macro_rules! engine_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self {
                StorageError::Engine(e.into())
            }
        }
    )*};
}
engine_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// Stored key of `key` in `partition`: the partition first, so one partition is a range.
pub(crate) fn stored_key(partition: u32, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + key.len());
    k.extend_from_slice(&partition.to_be_bytes());
    k.extend_from_slice(key);
    k
}
