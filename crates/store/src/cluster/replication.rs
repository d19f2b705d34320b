//! Synchronous primary/backup replication of one partition.
//!
//! The primary, holding the partition's lock, executes the command against memory,
//! numbers the resulting mutations, writes them to its own disk while every backup and
//! every registered learner applies them, and only when all of them acknowledged
//! updates its memory and answers. Any failure leaves the primary's memory untouched
//! and the command is retried from scratch: mutations carry resulting state, so a
//! replica that applied a failed attempt is simply overwritten by the retry.
//!
//! Commands that arrive while the partition's lock is held (by a command waiting for
//! its replicas) queue on the partition; the next holder of the lock executes the whole
//! queue in arrival order against memory plus the batch's own earlier changes, ships
//! all their mutations in one `Replicate`, and answers them together once it is
//! acknowledged. One replication round trip then serves many clients instead of one,
//! and each key still sees a single order of operations.

use super::config::{RingConfig, Role};
use super::partition::PartState;
use super::rpc::{Request, Response};
use super::{Retry, REPLICATE_TIMEOUT};
use crate::command::{self, KeyView};
use crate::keymap::KeyMap;
use crate::metrics::ReasonLabels;
use crate::node::{now_ms, Node, Partition};
use crate::reply::Reply;
use crate::storage::Version;
use crate::value::{Entry, Mutation};
use futures::future::join_all;
use std::time::Instant;
use tokio::sync::oneshot;

/// Queued groups folded into one replication round at most.
const MAX_BATCH: usize = 256;

/// Commands (one, or a connection's pipelined group) waiting on their partition for
/// the next replication round, which runs all of them.
pub(crate) struct Queued {
    commands: Vec<Vec<Vec<u8>>>,
    epoch: u64,
    done: oneshot::Sender<Result<Vec<Reply>, Retry>>,
}

/// The partition's memory as seen by a command in the middle of a batch: the changes
/// of the batch's earlier commands over the stored state. Those changes are the batch's
/// own mutations, found through `latest` (key → index of its last mutation) rather
/// than copied: a batch of SETs to one hot key would otherwise copy the key and value
/// once more per command.
struct Overlay<'a> {
    base: &'a mut PartState,
    mutations: Vec<Mutation>,
    latest: KeyMap<Vec<u8>, usize>,
}

impl<'a> Overlay<'a> {
    fn new(base: &'a mut PartState) -> Self {
        Overlay {
            base,
            mutations: Vec::new(),
            latest: KeyMap::default(),
        }
    }

    /// The latest state of `key` written in this batch: `Some(None)` for a delete.
    fn written(&self, key: &[u8]) -> Option<Option<&Entry>> {
        let at = *self.latest.get(key)?;
        Some(match &self.mutations[at] {
            Mutation::Put { entry, .. } => Some(entry),
            Mutation::Delete { .. } => None,
        })
    }

    /// Makes a command's changes visible to the batch's later commands.
    fn absorb(&mut self, mutations: Vec<Mutation>) {
        for m in mutations {
            let at = self.mutations.len();
            let key = match &m {
                Mutation::Put { key, .. } | Mutation::Delete { key } => key,
            };
            match self.latest.get_mut(key.as_slice()) {
                Some(slot) => *slot = at,
                None => {
                    self.latest.insert(key.clone(), at);
                }
            }
            self.mutations.push(m);
        }
    }

    /// Executes commands in order, each seeing the changes of those before it; returns
    /// their replies (their mutations join the batch's).
    fn execute_all(&mut self, commands: &[Vec<Vec<u8>>], now: u64) -> Vec<Reply> {
        let mut replies = Vec::with_capacity(commands.len());
        for args in commands {
            let outcome = command::execute(args, self, now);
            self.absorb(outcome.mutations);
            replies.push(outcome.reply);
        }
        replies
    }
}

impl KeyView for Overlay<'_> {
    fn get(&mut self, key: &[u8]) -> Option<Entry> {
        match self.written(key) {
            Some(state) => state.cloned(),
            None => self.base.get(key),
        }
    }

    fn contains(&mut self, key: &[u8]) -> bool {
        match self.written(key) {
            Some(state) => state.is_some(),
            None => self.base.contains(key),
        }
    }
}

impl Node {
    /// Executes commands, in order and as one unit (all applied and replicated in one
    /// round, or none), on a partition this node is primary of at `epoch`.
    pub(crate) async fn execute_local(
        &self,
        p: u32,
        commands: &[Vec<Vec<u8>>],
        epoch: u64,
    ) -> Result<Vec<Reply>, Retry> {
        let part = self.partition(p).ok_or(Retry::NotOwner)?;
        // Nobody ahead: execute alone, without queueing a copy of the arguments.
        if let Ok(mut st) = part.state.try_lock() {
            if part.queue.lock().is_empty() {
                return self.execute_group(p, &mut st, commands, epoch).await;
            }
        }
        let (done, answer) = oneshot::channel();
        part.queue.lock().push(Queued {
            commands: commands.to_vec(),
            epoch,
            done,
        });
        // Whoever holds the lock next runs every queued group, ours included, or
        // already ran it; each queued group takes the lock once, so none is stranded.
        {
            let mut st = part.state.lock().await;
            self.run_queue(p, &part, &mut st).await;
        }
        answer.await.unwrap_or(Err(Retry::ConfigChanged))
    }

    async fn execute_group(
        &self,
        p: u32,
        st: &mut PartState,
        commands: &[Vec<Vec<u8>>],
        epoch: u64,
    ) -> Result<Vec<Reply>, Retry> {
        let cfg = self.config().ok_or(Retry::NoConfig)?;
        if cfg.epoch != epoch {
            return Err(Retry::ConfigChanged);
        }
        if cfg.role(&self.id, p) != Role::Primary {
            return Err(Retry::NotOwner);
        }
        self.check_new_primary(p, &cfg)?;
        let now = now_ms();
        let (replies, mutations) = match commands {
            // Alone: straight against memory, no overlay to keep.
            [args] => {
                let outcome = command::execute(args, st, now);
                (vec![outcome.reply], outcome.mutations)
            }
            _ => {
                let mut overlay = Overlay::new(&mut *st);
                let replies = overlay.execute_all(commands, now);
                (replies, overlay.mutations)
            }
        };
        if mutations.is_empty() {
            // Nothing to replicate, so no replica vouches for these answers: the lease
            // must (cluster::lease).
            self.check_lease(p, &cfg)?;
        } else {
            self.commit_locked(p, st, &cfg, mutations).await?;
        }
        Ok(replies)
    }

    /// Runs up to `MAX_BATCH` queued groups as one replication round; the caller
    /// holds the partition's lock.
    async fn run_queue(&self, p: u32, part: &Partition, st: &mut PartState) {
        let batch: Vec<Queued> = {
            let mut queue = part.queue.lock();
            let n = queue.len().min(MAX_BATCH);
            queue.drain(..n).collect()
        };
        if batch.is_empty() {
            return;
        }
        let cfg = match self.config() {
            Some(cfg) => cfg,
            None => {
                for q in batch {
                    let _ = q.done.send(Err(Retry::NoConfig));
                }
                return;
            }
        };
        let primary = cfg.role(&self.id, p) == Role::Primary;
        // A promoted primary first waits out the lease it granted its predecessor
        // (cluster::lease); the whole batch waits with it.
        let fenced = if primary {
            self.check_new_primary(p, &cfg).err()
        } else {
            None
        };
        let now = now_ms();
        let mut overlay = Overlay::new(&mut *st);
        let mut answers = Vec::with_capacity(batch.len());
        for q in batch {
            if q.epoch != cfg.epoch {
                let _ = q.done.send(Err(Retry::ConfigChanged));
                continue;
            }
            if !primary {
                let _ = q.done.send(Err(Retry::NotOwner));
                continue;
            }
            if let Some(why) = &fenced {
                let _ = q.done.send(Err(why.clone()));
                continue;
            }
            let replies = overlay.execute_all(&q.commands, now);
            answers.push((q.done, replies));
        }
        let mutations = overlay.mutations;
        // Replicated changes are vouched for by the replicas' acks, and so are the reads
        // answered in the same round; a round of reads alone needs the lease.
        let vouched = if mutations.is_empty() {
            if answers.is_empty() {
                Ok(())
            } else {
                self.check_lease(p, &cfg)
            }
        } else {
            self.commit_locked(p, st, &cfg, mutations).await
        };
        if let Err(why) = vouched {
            for (done, _) in answers {
                let _ = done.send(Err(why.clone()));
            }
            return;
        }
        for (done, reply) in answers {
            let _ = done.send(Ok(reply));
        }
    }

    /// Replicates and persists mutations of partition `p`, whose lock the caller holds,
    /// then applies them to memory.
    pub(crate) async fn commit_locked(
        &self,
        p: u32,
        st: &mut PartState,
        cfg: &RingConfig,
        mutations: Vec<Mutation>,
    ) -> Result<(), Retry> {
        let versioned: Vec<(Version, Mutation)> = mutations
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                (
                    Version {
                        epoch: cfg.epoch,
                        seq: st.seq + 1 + i as u64,
                    },
                    m,
                )
            })
            .collect();
        let mut targets: Vec<String> = cfg.backups(p).to_vec();
        if st.sync_epoch == cfg.epoch {
            targets.extend(st.sync_learners.iter().cloned());
        }
        let local = self.storage.write(PartState::storage_ops(p, &versioned));
        if targets.is_empty() {
            local.await.map_err(|e| Retry::Storage(e.to_string()))?;
            apply_owned(st, versioned);
            return Ok(());
        }
        let addrs = cfg.addr_map();
        let started = Instant::now();
        // The request owns the mutations while it is out; memory gets them back after.
        let req = Request::Replicate {
            epoch: cfg.epoch,
            from: self.id.clone(),
            partition: p,
            mutations: versioned,
        };
        let remote = join_all(targets.iter().map(|t| {
            let addr = addrs.get(t).cloned();
            let req = &req;
            async move {
                match addr {
                    Some(addr) => self
                        .peers
                        .call(&addr, req, REPLICATE_TIMEOUT)
                        .await
                        .map_err(|e| e.to_string()),
                    None => Err(format!("{t} has no address")),
                }
            }
        }));
        let (local, acks) = tokio::join!(local, remote);
        local.map_err(|e| Retry::Storage(e.to_string()))?;
        for (target, ack) in targets.iter().zip(acks) {
            let failure = match ack {
                Ok(Response::Ok) => continue,
                Ok(Response::StaleEpoch { current }) => {
                    if let Some(addr) = addrs.get(target) {
                        self.refresh_from(addr, current);
                    }
                    Retry::StaleEpoch(current)
                }
                Ok(Response::Behind { .. }) => Retry::PeerBehind,
                Ok(other) => Retry::Replication(format!("{target}: {other:?}")),
                Err(e) => Retry::Replication(format!("{target}: {e}")),
            };
            self.metrics
                .replication_errors
                .get_or_create(&ReasonLabels {
                    reason: failure.label().into(),
                })
                .inc();
            tracing::debug!(partition = p, %target, error = %failure, "replica did not acknowledge");
            return Err(failure);
        }
        self.metrics
            .replication_ack
            .observe(started.elapsed().as_secs_f64());
        if let Request::Replicate { mutations, .. } = req {
            apply_owned(st, mutations);
        }
        Ok(())
    }

    /// A backup or learner applies mutations from the partition's primary.
    pub(crate) async fn handle_replicate(
        &self,
        epoch: u64,
        from: &str,
        p: u32,
        mutations: Vec<(Version, Mutation)>,
    ) -> Response {
        if let Err(resp) = self.fence(epoch).await {
            return resp;
        }
        let Some(part) = self.partition(p) else {
            return Response::NotOwner;
        };
        let mut st = part.state.lock().await;
        let Some(cfg) = self.config() else {
            return Response::Behind { current: 0 };
        };
        if cfg.epoch != epoch {
            return Response::StaleEpoch { current: cfg.epoch };
        }
        if cfg.primary(p) != Some(from) {
            return Response::NotOwner;
        }
        let tombstones = match cfg.role(&self.id, p) {
            Role::Replica => false,
            Role::Learner if st.learning.epoch == epoch => !st.learning.snapshot_done,
            _ => return Response::NotOwner,
        };
        let ops = st.apply_mutations(p, mutations, tombstones);
        match self.storage.write(ops).await {
            Ok(()) => Response::Ok,
            Err(e) => Response::Error(e.to_string()),
        }
    }
}

/// Applies acknowledged mutations to the primary's memory, moving their values in
/// (the primary has already queued its own storage writes).
fn apply_owned(st: &mut PartState, mutations: Vec<(Version, Mutation)>) {
    for (version, m) in mutations {
        match m {
            Mutation::Put { key, entry } => st.apply_owned(key, version, Some(entry), false),
            Mutation::Delete { key } => st.apply_owned(key, version, None, false),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn run(overlay: &mut Overlay, commands: &[&[&str]]) -> Vec<Reply> {
        let commands: Vec<Vec<Vec<u8>>> = commands
            .iter()
            .map(|c| c.iter().map(|a| a.as_bytes().to_vec()).collect())
            .collect();
        overlay.execute_all(&commands, 1_000)
    }

    fn stored(v: &str) -> Option<Entry> {
        Some(Entry {
            value: Value::Str(v.as_bytes().to_vec()),
            expires_at_ms: None,
        })
    }

    #[test]
    fn each_command_of_a_batch_sees_the_ones_before_it_and_memory_stays_untouched() {
        let mut st = PartState::default();
        st.apply(b"held", Version { epoch: 1, seq: 1 }, stored("old"), false);
        let mut overlay = Overlay::new(&mut st);
        let replies = run(
            &mut overlay,
            &[
                &["GET", "held"],
                &["SET", "k", "a"],
                &["GET", "k"],
                &["SET", "k", "b", "GET"],
                &["DEL", "held"],
                &["EXISTS", "held", "k"],
                &["GET", "held"],
                &["SET", "held", "new", "NX"],
                &["SET", "k", "c", "XX"],
            ],
        );
        assert_eq!(
            replies,
            vec![
                Reply::Bulk(b"old".to_vec()),
                Reply::Simple("OK".into()),
                Reply::Bulk(b"a".to_vec()),
                Reply::Bulk(b"a".to_vec()),
                Reply::Integer(1),
                Reply::Integer(1),
                Reply::Nil,
                Reply::Simple("OK".into()),
                Reply::Simple("OK".into()),
            ]
        );
        // A second group in the same round (run_queue) continues from the first's state.
        assert_eq!(
            run(&mut overlay, &[&["GET", "k"], &["GET", "held"]]),
            vec![Reply::Bulk(b"c".to_vec()), Reply::Bulk(b"new".to_vec())]
        );
        let last: Vec<(Vec<u8>, Option<Entry>)> = overlay
            .latest
            .iter()
            .map(|(k, &at)| {
                let state = match &overlay.mutations[at] {
                    Mutation::Put { entry, .. } => Some(entry.clone()),
                    Mutation::Delete { .. } => None,
                };
                (k.clone(), state)
            })
            .collect();
        assert_eq!(overlay.mutations.len(), 5, "{:?}", overlay.mutations);
        assert_eq!(last.len(), 2);
        assert!(last.contains(&(b"k".to_vec(), stored("c"))));
        assert!(last.contains(&(b"held".to_vec(), stored("new"))));
        // Nothing reaches memory before the round is acknowledged.
        assert_eq!(st.get(b"held"), stored("old"));
        assert!(!st.contains(b"k"));
    }
}
