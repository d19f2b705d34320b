//! The single writer thread and the read paths used at startup.

use super::{stored_key, FsyncPolicy, Op, Record, StorageError};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Jobs waiting for the writer; a full queue pushes back on writers.
const QUEUE: usize = 4096;
/// Jobs folded into one transaction at most.
const BATCH: usize = 512;

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
        let db = Arc::new(Database::create(dir.join("store.redb"))?);
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
    pub async fn write(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        if ops.is_empty() {
            return Ok(());
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
        for op in jobs.iter().flat_map(|j| j.ops.iter()) {
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
