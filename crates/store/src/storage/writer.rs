//! The single writer thread and the read paths used at startup.

use super::{stored_key, FsyncPolicy, Op, Record, StorageError};
use crate::keymap::KeyMap;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Jobs waiting for the writer; a full queue pushes back on writers.
const QUEUE: usize = 4096;
/// redb's page cache. Reads are served from memory, never from redb, so the cache only
/// speeds up the B-tree pages a commit touches; redb's default (1 GiB) would keep a
/// second copy of up to a gigabyte of sessions resident next to the in-memory copy.
const CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Jobs folded into one transaction at most.
const BATCH: usize = 4096;
/// With `everysec` nobody waits for a key write's commit, so the writer lets writes
/// gather this long between commits: fewer, larger transactions, and writers that find
/// it not waiting on the queue do not have to wake its thread for every write.
const EVERYSEC_GATHER: std::time::Duration = std::time::Duration::from_millis(1);

struct Job {
    ops: Vec<Op>,
    /// A flush makes every earlier non-durable commit durable.
    flush: bool,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

/// Handle to a node's database. Cheap to clone.
#[derive(Clone)]
pub struct Storage {
    db: Arc<Database>,
    tx: mpsc::Sender<Job>,
    policy: FsyncPolicy,
}

impl Storage {
    /// Opens (or creates) `dir/store.redb` and starts the writer thread.
    pub fn open(dir: &Path, policy: FsyncPolicy) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir)?;
        let db = Arc::new(
            Database::builder()
                .set_cache_size(CACHE_BYTES)
                .create(dir.join("store.redb"))?,
        );
        {
            let txn = db.begin_write()?;
            txn.open_table(KV)?;
            txn.open_table(META)?;
            txn.commit()?;
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer_db = db.clone();
        std::thread::Builder::new()
            .name("storage-writer".into())
            .spawn(move || writer_loop(writer_db, rx, policy))?;
        Ok(Storage { db, tx, policy })
    }

    pub fn policy(&self) -> FsyncPolicy {
        self.policy
    }

    /// Applies `ops` in one transaction (shared with other queued writes); returns once
    /// they are as durable as the fsync policy promises.
    ///
    /// - `always`: after the group commit that holds them is fsynced (`Immediate`).
    /// - `everysec` (Redis's `appendfsync everysec`): key writes (`Put`, `Delete`) return
    ///   once queued, in order, behind a bounded queue that pushes back when the writer
    ///   falls behind; they reach the file with the next group commit and are fsynced
    ///   by the once-a-second flush. A crash of this process may lose what was queued
    ///   or committed since the last flush; the node then reports `disk_complete:
    ///   false` after restart so the master re-teaches it from a replica.
    ///   Configuration and partition drops always wait for their commit: fencing and
    ///   ownership must never be ahead of the disk.
    pub async fn write(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        if ops.is_empty() {
            return Ok(());
        }
        let keys_only = ops
            .iter()
            .all(|op| matches!(op, Op::Put { .. } | Op::Delete { .. }));
        if self.policy == FsyncPolicy::Everysec && keys_only {
            return self
                .tx
                .send(Job {
                    ops,
                    flush: false,
                    done: None,
                })
                .await
                .map_err(|_| StorageError::WriterGone);
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job {
                ops,
                flush: false,
                done: Some(done),
            })
            .await
            .map_err(|_| StorageError::WriterGone)?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(msg)) => Err(StorageError::Commit(msg)),
            Err(_) => Err(StorageError::WriterGone),
        }
    }

    /// Makes every write so far durable (used by the `everysec` ticker and at shutdown).
    pub async fn flush(&self) -> Result<(), StorageError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job {
                ops: Vec::new(),
                flush: true,
                done: Some(done),
            })
            .await
            .map_err(|_| StorageError::WriterGone)?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(msg)) => Err(StorageError::Commit(msg)),
            Err(_) => Err(StorageError::WriterGone),
        }
    }

    /// Every stored key: (partition, key, record). Blocking; called once at startup.
    pub fn load(&self) -> Result<Vec<(u32, Vec<u8>, Record)>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(KV)?;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (k, v) = item?;
            let k = k.value();
            if k.len() < 4 {
                continue;
            }
            let partition = u32::from_be_bytes([k[0], k[1], k[2], k[3]]);
            let record: Record = postcard::from_bytes(v.value())?;
            out.push((partition, k[4..].to_vec(), record));
        }
        Ok(out)
    }

    /// A named value written with `Op::PutMeta`.
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(META)?;
        Ok(table.get(name)?.map(|v| v.value().to_vec()))
    }
}

fn writer_loop(db: Arc<Database>, mut rx: mpsc::Receiver<Job>, policy: FsyncPolicy) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let durable = policy == FsyncPolicy::Always || jobs.iter().any(|j| j.flush);
        let result = commit(&db, &jobs, durable).map_err(|e| e.to_string());
        if let Err(msg) = &result {
            tracing::error!(error = %msg, "storage commit failed");
        }
        for job in jobs {
            if let Some(done) = job.done {
                let _ = done.send(result.clone());
            }
        }
        if policy == FsyncPolicy::Everysec {
            std::thread::sleep(EVERYSEC_GATHER);
        }
    }
}

/// Index of the last `Put`/`Delete` of each key in a batch (None for a batch of one op).
/// A hot key written many times while the writer was busy (a session touched on every
/// request) then costs one insert per commit, not one per write.
fn last_write_of_each_key<'a>(ops: &[&'a Op]) -> Option<KeyMap<(u32, &'a [u8]), usize>> {
    if ops.len() < 2 {
        return None;
    }
    let mut last = KeyMap::with_capacity_and_hasher(ops.len(), Default::default());
    for (i, op) in ops.iter().enumerate() {
        if let Op::Put { partition, key, .. } | Op::Delete { partition, key } = op {
            last.insert((*partition, key.as_slice()), i);
        }
    }
    Some(last)
}

/// Whether a later op of the batch sets the final state of `op`'s key, so `op` need not
/// be written: the later `Put`/`Delete` replaces whatever `op` stored, and a partition
/// drop in between removes it either way.
fn superseded(last: &KeyMap<(u32, &[u8]), usize>, op: &Op, i: usize) -> bool {
    match op {
        Op::Put { partition, key, .. } | Op::Delete { partition, key } => last
            .get(&(*partition, key.as_slice()))
            .is_some_and(|&at| at > i),
        Op::DropPartition { .. } | Op::PutMeta { .. } => false,
    }
}

fn commit(db: &Database, jobs: &[Job], durable: bool) -> Result<(), StorageError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(if durable {
        Durability::Immediate
    } else {
        Durability::None
    })?;
    {
        let mut kv = txn.open_table(KV)?;
        let mut meta = txn.open_table(META)?;
        let ops: Vec<&Op> = jobs.iter().flat_map(|j| j.ops.iter()).collect();
        let last = last_write_of_each_key(&ops);
        for (i, op) in ops.iter().enumerate() {
            if last.as_ref().is_some_and(|last| superseded(last, op, i)) {
                continue;
            }
            match op {
                Op::Put {
                    partition,
                    key,
                    record,
                } => {
                    let bytes = postcard::to_allocvec(record)?;
                    kv.insert(stored_key(*partition, key).as_slice(), bytes.as_slice())?;
                }
                Op::Delete { partition, key } => {
                    kv.remove(stored_key(*partition, key).as_slice())?;
                }
                Op::DropPartition { partition } => {
                    let lo = partition.to_be_bytes();
                    let mut doomed = Vec::new();
                    for item in kv.range(lo.as_slice()..)? {
                        let (k, _) = item?;
                        let k = k.value();
                        if k.len() < 4 || k[..4] != lo {
                            break;
                        }
                        doomed.push(k.to_vec());
                    }
                    for k in doomed {
                        kv.remove(k.as_slice())?;
                    }
                }
                Op::PutMeta { name, value } => {
                    meta.insert(name.as_str(), value.as_slice())?;
                }
            }
        }
    }
    txn.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Version;
    use crate::value::{Entry, Value};

    fn rec(seq: u64, v: &[u8]) -> Record {
        Record {
            version: Version { epoch: 1, seq },
            entry: Entry {
                value: Value::Str(v.to_vec()),
                expires_at_ms: Some(42),
            },
        }
    }

    #[tokio::test]
    async fn everysec_acknowledges_queued_key_writes_and_a_flush_makes_them_durable() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Storage::open(dir.path(), FsyncPolicy::Everysec).unwrap();
            for seq in 1..=200u64 {
                s.write(vec![Op::Put {
                    partition: 3,
                    key: format!("k{seq}").into_bytes(),
                    record: rec(seq, b"v"),
                }])
                .await
                .unwrap();
            }
            s.write(vec![Op::Delete {
                partition: 3,
                key: b"k7".to_vec(),
            }])
            .await
            .unwrap();
            // The flush is queued behind every acknowledged write, so once it returns
            // they are all committed, in order.
            s.flush().await.unwrap();
        }
        // The writer thread lets go of the database shortly after the handle is dropped.
        let mut reopened = None;
        for _ in 0..250 {
            if let Ok(s) = Storage::open(dir.path(), FsyncPolicy::Everysec) {
                reopened = Some(s);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let s = reopened.expect("database reopens");
        let keys: std::collections::BTreeSet<Vec<u8>> =
            s.load().unwrap().into_iter().map(|(_, k, _)| k).collect();
        assert_eq!(keys.len(), 199);
        assert!(!keys.contains(b"k7".as_slice()), "the later delete won");
    }

    #[test]
    fn a_batch_writes_only_the_last_state_of_each_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("store.redb")).unwrap();
        let put = |partition, key: &str, seq, v: &[u8]| Op::Put {
            partition,
            key: key.as_bytes().to_vec(),
            record: rec(seq, v),
        };
        let job = |ops| Job {
            ops,
            flush: false,
            done: None,
        };
        let jobs = vec![
            job(vec![put(1, "a", 1, b"old"), put(1, "b", 2, b"x")]),
            job(vec![put(1, "c", 3, b"dropped")]),
            job(vec![Op::DropPartition { partition: 1 }]),
            job(vec![
                put(1, "a", 4, b"new"),
                Op::Delete {
                    partition: 1,
                    key: b"b".to_vec(),
                },
            ]),
            job(vec![put(2, "a", 5, b"other partition")]),
        ];
        commit(&db, &jobs, true).unwrap();
        let txn = db.begin_read().unwrap();
        let kv = txn.open_table(KV).unwrap();
        let mut stored = Vec::new();
        for item in kv.iter().unwrap() {
            let (k, v) = item.unwrap();
            let record: Record = postcard::from_bytes(v.value()).unwrap();
            stored.push((k.value().to_vec(), record));
        }
        assert_eq!(
            stored,
            vec![
                (stored_key(1, b"a"), rec(4, b"new")),
                (stored_key(2, b"a"), rec(5, b"other partition")),
            ]
        );
    }

    #[tokio::test]
    async fn writes_survive_reopen_and_partitions_drop_alone() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Storage::open(dir.path(), FsyncPolicy::Always).unwrap();
            s.write(vec![
                Op::Put {
                    partition: 1,
                    key: b"a".to_vec(),
                    record: rec(1, b"x"),
                },
                Op::Put {
                    partition: 2,
                    key: b"b".to_vec(),
                    record: rec(2, b"y"),
                },
                Op::Put {
                    partition: 2,
                    key: b"c".to_vec(),
                    record: rec(3, b"z"),
                },
                Op::PutMeta {
                    name: "config".into(),
                    value: b"{}".to_vec(),
                },
            ])
            .await
            .unwrap();
            s.write(vec![
                Op::DropPartition { partition: 2 },
                Op::Delete {
                    partition: 1,
                    key: b"missing".to_vec(),
                },
            ])
            .await
            .unwrap();
        }
        // The writer thread holds the database until its channel closes; wait for it.
        let mut reopened = None;
        for _ in 0..100 {
            match Storage::open(dir.path(), FsyncPolicy::Everysec) {
                Ok(s) => {
                    reopened = Some(s);
                    break;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
        let s = reopened.expect("database reopens");
        let all = s.load().unwrap();
        assert_eq!(all, vec![(1, b"a".to_vec(), rec(1, b"x"))]);
        assert_eq!(s.meta("config").unwrap(), Some(b"{}".to_vec()));
        s.write(vec![Op::Delete {
            partition: 1,
            key: b"a".to_vec(),
        }])
        .await
        .unwrap();
        s.flush().await.unwrap();
        assert!(s.load().unwrap().is_empty());
    }
}
