//! Synchronous primary/backup replication of one partition.
//!
//! The primary, holding the partition's lock, executes the command against memory,
//! numbers the resulting mutations, writes them to its own disk while every backup and
//! every registered learner applies them, and only when all of them acknowledged
//! updates its memory and answers. Any failure leaves the primary's memory untouched
//! and the command is retried from scratch: mutations carry resulting state, so a
//! replica that applied a failed attempt is simply overwritten by the retry.

use super::config::{RingConfig, Role};
use super::partition::PartState;
use super::rpc::{Request, Response};
use super::{Retry, REPLICATE_TIMEOUT};
use crate::command;
use crate::metrics::ReasonLabels;
use crate::node::{now_ms, Node};
use crate::reply::Reply;
use crate::storage::Version;
use crate::value::Mutation;
use futures::future::join_all;
use std::time::Instant;

impl Node {
    /// Executes a command on a partition this node is primary of at `epoch`.
    pub(crate) async fn execute_local(
        &self,
        p: u32,
        args: &[Vec<u8>],
        epoch: u64,
    ) -> Result<Reply, Retry> {
        let part = self.partition(p).ok_or(Retry::NotOwner)?;
        let mut st = part.state.lock().await;
        let cfg = self.config().ok_or(Retry::NoConfig)?;
        if cfg.epoch != epoch {
            return Err(Retry::ConfigChanged);
        }
        if cfg.role(&self.id, p) != Role::Primary {
            return Err(Retry::NotOwner);
        }
        self.check_new_primary(p, &cfg)?;
        let outcome = command::execute(args, &mut *st, now_ms());
        if outcome.mutations.is_empty() {
            // Nothing to replicate, so no replica vouches for this answer: the lease
            // must (cluster::lease).
            self.check_lease(p, &cfg)?;
        } else {
            self.commit_locked(p, &mut st, &cfg, outcome.mutations)
                .await?;
        }
        Ok(outcome.reply)
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
        let addrs = cfg.addr_map();
        let started = Instant::now();
        let local = self.storage.write(PartState::storage_ops(p, &versioned));
        let remote = async {
            if targets.is_empty() {
                return Vec::new();
            }
            let req = Request::Replicate {
                epoch: cfg.epoch,
                from: self.id.clone(),
                partition: p,
                mutations: versioned.clone(),
            };
            let req = &req;
            join_all(targets.iter().map(|t| {
                let addr = addrs.get(t).cloned();
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
            }))
            .await
        };
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
        if !targets.is_empty() {
            self.metrics
                .replication_ack
                .observe(started.elapsed().as_secs_f64());
        }
        st.apply_mutations(p, &versioned, false);
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
        let ops = st.apply_mutations(p, &mutations, tombstones);
        match self.storage.write(ops).await {
            Ok(()) => Response::Ok,
            Err(e) => Response::Error(e.to_string()),
        }
    }
}
