//! Live migration: a primary teaches each learner of its partitions a point-in-time
//! snapshot while the learner also receives every live write, so that when the master
//! flips the learner into the replica set it already holds every acknowledged write.
//!
//! Order of events, per (partition, learner, epoch):
//! 1. LearnStart: the learner forgets whatever it held for the partition.
//! 2. Under the partition lock the primary copies the partition and registers the
//!    learner for the live tail; every later write waits for the learner's ack too.
//! 3. Snapshot chunks stream out; the learner keeps, per key, the newer version of
//!    chunk and tail (tombstones stop a chunk from resurrecting a key deleted live).
//! 4. SnapshotDone: the learner drops its tombstones and reports itself caught up.

use super::config::Role;
use super::rpc::{Request, Response};
use crate::node::{Node, TeachProgress};
use crate::storage::{Op, Record};
use std::sync::Arc;
use std::time::Duration;

/// Snapshot chunk bounds.
const CHUNK_KEYS: usize = 512;
const CHUNK_BYTES: usize = 1024 * 1024;
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(10);
const TEACH_RETRY: Duration = Duration::from_millis(200);

impl Node {
    pub(crate) fn spawn_teachers(self: &Arc<Self>, cfg: &super::config::RingConfig) {
        for p in 0..cfg.partitions {
            if cfg.role(&self.id, p) != Role::Primary {
                continue;
            }
            for learner in cfg.learners_of(p) {
                let key = (p, learner.clone());
                {
                    let mut teaching = self.teaching.lock();
                    if teaching.get(&key).is_some_and(|t| t.epoch == cfg.epoch) {
                        continue;
                    }
                    teaching.insert(
                        key,
                        TeachProgress {
                            epoch: cfg.epoch,
                            ..TeachProgress::default()
                        },
                    );
                }
                tokio::spawn(self.clone().teach(p, learner.clone(), cfg.epoch));
            }
        }
    }

    fn progress(&self, p: u32, learner: &str, f: impl FnOnce(&mut TeachProgress)) {
        if let Some(t) = self.teaching.lock().get_mut(&(p, learner.to_string())) {
            f(t);
        }
    }

    /// Teaches `learner` partition `p` for as long as the ring stays at `epoch`.
    async fn teach(self: Arc<Self>, p: u32, learner: String, epoch: u64) {
        loop {
            let Some(cfg) = self.config() else { return };
            if cfg.epoch != epoch {
                return;
            }
            let Some(addr) = cfg.addr_map().get(&learner).cloned() else {
                return;
            };
            // A new primary teaches only once the old primary's lease is over, or a
            // learner could be promoted while that lease still serves reads.
            if self.check_new_primary(p, &cfg).is_err() {
                tokio::time::sleep(TEACH_RETRY).await;
                continue;
            }
            match self.teach_once(p, &learner, &addr, epoch).await {
                Ok(()) => {
                    tracing::info!(partition = p, %learner, epoch, "learner caught up");
                    return;
                }
                Err(e) => {
                    tracing::debug!(partition = p, %learner, error = %e, "teaching failed; retrying");
                    if let Some(part) = self.partition(p) {
                        let mut st = part.state.lock().await;
                        st.sync_learners.remove(&learner);
                    }
                    tokio::time::sleep(TEACH_RETRY).await;
                }
            }
        }
    }

    async fn teach_once(
        &self,
        p: u32,
        learner: &str,
        addr: &str,
        epoch: u64,
    ) -> Result<(), String> {
        let start = Request::LearnStart {
            epoch,
            from: self.id.clone(),
            partition: p,
        };
        expect_ok(self.peers.call(addr, &start, SNAPSHOT_TIMEOUT).await)?;
        let part = self.partition(p).ok_or("no such partition")?;
        let records = {
            let mut st = part.state.lock().await;
            if self.epoch() != epoch {
                return Err("epoch changed".into());
            }
            if st.sync_epoch != epoch {
                st.sync_learners.clear();
                st.sync_epoch = epoch;
            }
            st.sync_learners.insert(learner.to_string());
            st.snapshot()
        };
        let total = records.len() as u64;
        self.progress(p, learner, |t| {
            t.keys_total = total;
            t.keys_sent = 0;
            t.bytes_sent = 0;
            t.done = false;
        });
        let mut chunk: Vec<(Vec<u8>, Record)> = Vec::new();
        let mut chunk_bytes = 0usize;
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            for (k, r) in records.by_ref() {
                chunk_bytes += k.len() + record_size(&r);
                chunk.push((k, r));
                if chunk.len() >= CHUNK_KEYS || chunk_bytes >= CHUNK_BYTES {
                    break;
                }
            }
            let n = chunk.len() as u64;
            let bytes = chunk_bytes as u64;
            let req = Request::SnapshotChunk {
                epoch,
                from: self.id.clone(),
                partition: p,
                records: std::mem::take(&mut chunk),
            };
            chunk_bytes = 0;
            expect_ok(self.peers.call(addr, &req, SNAPSHOT_TIMEOUT).await)?;
            self.progress(p, learner, |t| {
                t.keys_sent += n;
                t.bytes_sent += bytes;
            });
        }
        let done = Request::SnapshotDone {
            epoch,
            from: self.id.clone(),
            partition: p,
        };
        expect_ok(self.peers.call(addr, &done, SNAPSHOT_TIMEOUT).await)?;
        self.progress(p, learner, |t| t.done = true);
        Ok(())
    }

    /// Checks that a teaching request comes from the partition's primary at our epoch
    /// and that we are its learner.
    async fn learner_check(&self, epoch: u64, from: &str, p: u32) -> Result<(), Response> {
        self.fence(epoch).await?;
        let cfg = self.config().ok_or(Response::Behind { current: 0 })?;
        if cfg.epoch != epoch {
            return Err(Response::StaleEpoch { current: cfg.epoch });
        }
        if cfg.primary(p) != Some(from) || cfg.role(&self.id, p) != Role::Learner {
            return Err(Response::NotOwner);
        }
        Ok(())
    }

    pub(crate) async fn handle_learn_start(&self, epoch: u64, from: &str, p: u32) -> Response {
        if let Err(r) = self.learner_check(epoch, from, p).await {
            return r;
        }
        let Some(part) = self.partition(p) else {
            return Response::NotOwner;
        };
        let mut st = part.state.lock().await;
        if self.epoch() != epoch {
            return Response::StaleEpoch {
                current: self.epoch(),
            };
        }
        st.clear();
        st.learning.epoch = epoch;
        st.learning.snapshot_done = false;
        match self
            .storage
            .write(vec![Op::DropPartition { partition: p }])
            .await
        {
            Ok(()) => Response::Ok,
            Err(e) => Response::Error(e.to_string()),
        }
    }

    pub(crate) async fn handle_snapshot_chunk(
        &self,
        epoch: u64,
        from: &str,
        p: u32,
        records: Vec<(Vec<u8>, Record)>,
    ) -> Response {
        if let Err(r) = self.learner_check(epoch, from, p).await {
            return r;
        }
        let Some(part) = self.partition(p) else {
            return Response::NotOwner;
        };
        let mut st = part.state.lock().await;
        if st.learning.epoch != epoch || self.epoch() != epoch {
            return Response::NotOwner;
        }
        let mut ops = Vec::new();
        for (key, record) in records {
            if st.apply(&key, record.version, Some(record.entry.clone()), true) {
                ops.push(Op::Put {
                    partition: p,
                    key,
                    record,
                });
            }
        }
        match self.storage.write(ops).await {
            Ok(()) => Response::Ok,
            Err(e) => Response::Error(e.to_string()),
        }
    }

    pub(crate) async fn handle_snapshot_done(&self, epoch: u64, from: &str, p: u32) -> Response {
        if let Err(r) = self.learner_check(epoch, from, p).await {
            return r;
        }
        let Some(part) = self.partition(p) else {
            return Response::NotOwner;
        };
        let mut st = part.state.lock().await;
        if st.learning.epoch != epoch || self.epoch() != epoch {
            return Response::NotOwner;
        }
        st.drop_tombstones();
        st.learning.snapshot_done = true;
        // Everything applied so far must be on disk before we claim to be caught up.
        match self.storage.flush().await {
            Ok(()) => Response::Ok,
            Err(e) => Response::Error(e.to_string()),
        }
    }
}

fn record_size(r: &Record) -> usize {
    use crate::value::Value;
    match &r.entry.value {
        Value::Str(s) => s.len() + 32,
        Value::Hash(h) => h.iter().map(|(k, v)| k.len() + v.len() + 8).sum::<usize>() + 32,
        Value::Set(s) => s.iter().map(|m| m.len() + 4).sum::<usize>() + 32,
    }
}

fn expect_ok(r: Result<Response, super::rpc::RpcError>) -> Result<(), String> {
    match r {
        Ok(Response::Ok) => Ok(()),
        Ok(other) => Err(format!("{other:?}")),
        Err(e) => Err(e.to_string()),
    }
}
