//! The receiving side of the internal RPC, and epoch fencing.

use super::config::Role;
use super::rpc::{Request, Response};
use super::{Backoff, FORWARDED_DEADLINE};
use crate::command::scan::ScanArgs;
use crate::node::Node;
use crate::reply::Reply;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a node waits for the master's newer configuration when a peer is ahead.
const CATCH_UP_WAIT: Duration = Duration::from_secs(1);

impl Node {
    /// Refuses a request tagged with an epoch older than ours; waits briefly when the
    /// sender is ahead (the master is pushing the new epoch to us too).
    pub(crate) async fn fence(&self, epoch: u64) -> Result<(), Response> {
        let mine = self.epoch();
        if epoch < mine {
            return Err(Response::StaleEpoch { current: mine });
        }
        if epoch > mine && !self.wait_epoch(epoch, Instant::now() + CATCH_UP_WAIT).await {
            return Err(Response::Behind {
                current: self.epoch(),
            });
        }
        let now = self.epoch();
        if epoch < now {
            return Err(Response::StaleEpoch { current: now });
        }
        Ok(())
    }

    /// Answers one RPC request.
    pub async fn handle_rpc(self: Arc<Self>, req: Request) -> Response {
        match req {
            Request::Forward {
                epoch,
                partition,
                args,
            } => match self
                .handle_forward(epoch, partition, vec![args], FORWARDED_DEADLINE)
                .await
            {
                Ok(mut replies) if replies.len() == 1 => {
                    Response::Reply(replies.pop().unwrap_or(Reply::Nil))
                }
                Ok(_) => Response::Error("no reply from the partition".into()),
                Err(resp) => resp,
            },
            Request::ForwardBatch {
                epoch,
                partition,
                commands,
            } => match self
                .handle_forward(epoch, partition, commands, FORWARDED_DEADLINE)
                .await
            {
                Ok(replies) => Response::Replies(replies),
                Err(resp) => resp,
            },
            Request::ForwardWithin {
                epoch,
                partition,
                budget_ms,
                commands,
            } => {
                let budget = Duration::from_millis(budget_ms.into()).min(FORWARDED_DEADLINE);
                match self
                    .handle_forward(epoch, partition, commands, budget)
                    .await
                {
                    Ok(replies) => Response::Replies(replies),
                    Err(resp) => resp,
                }
            }
            Request::Replicate {
                epoch,
                from,
                partition,
                mutations,
            } => {
                self.handle_replicate(epoch, &from, partition, mutations)
                    .await
            }
            Request::LearnStart {
                epoch,
                from,
                partition,
            } => self.handle_learn_start(epoch, &from, partition).await,
            Request::SnapshotChunk {
                epoch,
                from,
                partition,
                records,
            } => {
                self.handle_snapshot_chunk(epoch, &from, partition, records)
                    .await
            }
            Request::SnapshotDone {
                epoch,
                from,
                partition,
            } => self.handle_snapshot_done(epoch, &from, partition).await,
            Request::LeaseRenew {
                epoch,
                from,
                partitions,
            } => self.handle_lease_renew(epoch, &from, &partitions).await,
            Request::EpochOf { epoch, from } => self.handle_epoch_of(epoch, &from),
            Request::FetchConfig => match self.config() {
                Some(cfg) => match serde_json::to_string(&*cfg) {
                    Ok(json) => Response::Config(json),
                    Err(e) => Response::Error(e.to_string()),
                },
                None => Response::Behind { current: 0 },
            },
            Request::Count { epoch, partitions } => {
                if let Err(resp) = self.fence(epoch).await {
                    return resp;
                }
                match self.count_local(&partitions, epoch).await {
                    Ok(n) => Response::Count(n),
                    Err(why) => retry_response(self.epoch(), epoch, why),
                }
            }
            Request::Scan {
                epoch,
                partition,
                position,
                count,
                pattern,
                kind,
            } => {
                if let Err(resp) = self.fence(epoch).await {
                    return resp;
                }
                let sa = ScanArgs {
                    cursor: 0,
                    pattern,
                    count: count as usize,
                    type_name: kind,
                };
                match self
                    .scan_local(partition, position, count as usize, &sa, epoch)
                    .await
                {
                    Ok((keys, next)) => Response::Scan { keys, next },
                    Err(why) => retry_response(self.epoch(), epoch, why),
                }
            }
        }
    }

    /// Commands forwarded by a node that believes this one is the primary: their
    /// replies, or the answer that sends the sender back to routing. No attempt starts
    /// after `budget` (what the sender's deadline left): the sender answers its client
    /// then, and the commands must not run after that.
    async fn handle_forward(
        &self,
        epoch: u64,
        p: u32,
        commands: Vec<Vec<Vec<u8>>>,
        budget: Duration,
    ) -> Result<Vec<Reply>, Response> {
        let deadline = Instant::now() + budget;
        self.fence(epoch).await?;
        let mut backoff = Backoff::new();
        let mut last: Option<super::Retry> = None;
        loop {
            if Instant::now() >= deadline {
                // Not run: the sender retries if its own deadline allows (a batch gets
                // the earliest of its callers'), else answers its client.
                let why = last.map_or_else(|| "no attempt".to_string(), |why| why.to_string());
                return Err(Response::Error(format!(
                    "the forward's deadline passed on the primary of partition {p} ({why})"
                )));
            }
            let Some(cfg) = self.config() else {
                return Err(Response::Behind { current: 0 });
            };
            if cfg.epoch > epoch {
                // The ring moved while we retried: the sender must re-route.
                return Err(Response::StaleEpoch { current: cfg.epoch });
            }
            if cfg.role(&self.id, p) != Role::Primary {
                return Err(Response::NotOwner);
            }
            let why = match self.execute_local(p, &commands, cfg.epoch).await {
                Ok(replies) => return Ok(replies),
                Err(why) => why,
            };
            backoff.pause(self, &why, deadline).await;
            last = Some(why);
        }
    }
}

fn retry_response(mine: u64, asked: u64, why: super::Retry) -> Response {
    if mine > asked {
        Response::StaleEpoch { current: mine }
    } else {
        match why {
            super::Retry::NotOwner => Response::NotOwner,
            other => Response::Error(other.to_string()),
        }
    }
}
