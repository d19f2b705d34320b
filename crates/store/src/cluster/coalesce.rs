//! Forwards to a partition's primary, coalesced across client connections.
//!
//! A node that is not the primary of a command's partition forwards it. With one
//! forward per client command, every write cost the forwarding node an RPC send and
//! receive and the primary the same again, per command: under 50 clients most of the
//! replicated write path's CPU went to the kernel's loopback TCP (docs/benchmarks.md).
//! So at most `IN_FLIGHT` forwards per partition are out at once; commands that arrive
//! meanwhile wait in the partition's lane, and the next free slot sends all of them
//! (up to `MAX_BATCH_COMMANDS`) as one `ForwardBatch`. The primary already runs a
//! forwarded batch as one unit and folds concurrent units into one replication round
//! (`cluster::replication`), so nothing about ordering, acknowledgement or leases
//! changes: commands of different connections are concurrent, any order between them
//! is one a client could have seen, and a batch that fails is retried by each of its
//! callers on its own, as a single forward would be.
//!
//! Two slots rather than one: while the primary replicates one batch, the next is
//! already on its way and queues on the partition there, so the primary's replication
//! rounds follow each other without waiting for a round trip to this node.

use super::rpc::{Request, Response};
use super::{Retry, FORWARD_ANSWER_GRACE, FORWARD_TIMEOUT};
use crate::command::errors;
use crate::node::Node;
use crate::reply::Reply;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{oneshot, Semaphore};

/// Forwards per partition that may be in flight at once.
const IN_FLIGHT: usize = 2;
/// Commands sent in one coalesced forward at most (the rest wait for the next slot).
const MAX_BATCH_COMMANDS: usize = 1024;

type Commands = Vec<Vec<Vec<u8>>>;

/// The commands a caller waits to have forwarded, and where its answer goes: the
/// replies, or the reason to retry, with its commands given back for the retry.
struct Waiting {
    epoch: u64,
    addr: String,
    /// When the caller's command timeout runs out.
    deadline: Instant,
    commands: Commands,
    done: oneshot::Sender<(Commands, Result<Vec<Reply>, Retry>)>,
}

/// One partition's forwards from this node.
pub(crate) struct Lane {
    queue: Mutex<Vec<Waiting>>,
    slots: Semaphore,
}

impl Default for Lane {
    fn default() -> Self {
        Lane {
            queue: Mutex::new(Vec::new()),
            slots: Semaphore::new(IN_FLIGHT),
        }
    }
}

impl Node {
    fn lane(&self, p: u32) -> Arc<Lane> {
        self.forward_lanes.lock().entry(p).or_default().clone()
    }

    /// Forwards `commands` of partition `p` to its primary at `addr` (as of `epoch`),
    /// alone when a slot is free and nobody waits, else with whatever else waits for
    /// the partition; nothing runs on the primary after `deadline`. `commands` are
    /// given back for a retry.
    pub(crate) async fn forward(
        &self,
        p: u32,
        epoch: u64,
        addr: String,
        commands: &mut Commands,
        deadline: Instant,
    ) -> Result<Vec<Reply>, Retry> {
        let lane = self.lane(p);
        if lane.queue.lock().is_empty() {
            if let Ok(_slot) = lane.slots.try_acquire() {
                return self.forward_now(p, epoch, &addr, commands, deadline).await;
            }
        }
        let sent = commands.len();
        let (done, answer) = oneshot::channel();
        lane.queue.lock().push(Waiting {
            epoch,
            addr,
            deadline,
            commands: std::mem::take(commands),
            done,
        });
        // Whoever gets a slot next sends everything waiting, ours included, or it was
        // already sent; each waiter takes a slot once, so none is stranded.
        // (The semaphore is never closed, so acquiring does not fail.)
        if let Ok(_slot) = lane.slots.acquire().await {
            let batch = take_batch(&lane);
            if !batch.is_empty() {
                self.forward_batch(p, batch).await;
            }
        }
        match answer.await {
            Ok((back, result)) => {
                *commands = back;
                result
            }
            // The sender was dropped with the request out (its task was cancelled): the
            // commands may or may not have run, which is an answer, not a retry.
            Err(_) => Ok((0..sent)
                .map(|_| errors::err("ERR the forward to the partition's primary was abandoned"))
                .collect()),
        }
    }

    /// Sends waiting callers' commands as one forward and answers each of them. The
    /// forward gets the earliest of their deadlines, so none of them runs after its
    /// own; a caller with time left retries if that cut the batch short.
    async fn forward_batch(&self, p: u32, batch: Vec<Waiting>) {
        let (epoch, addr) = (batch[0].epoch, batch[0].addr.clone());
        let mut counts = Vec::with_capacity(batch.len());
        let mut dones = Vec::with_capacity(batch.len());
        let mut all = Vec::new();
        let mut deadline: Option<Instant> = None;
        let now = Instant::now();
        for mut w in batch {
            // Routed under another configuration: let the caller route again.
            if w.epoch != epoch || w.addr != addr {
                let _ = w.done.send((w.commands, Err(Retry::ConfigChanged)));
                continue;
            }
            // Out of time while it waited: it gets its error without running.
            if w.deadline <= now {
                let _ = w.done.send((w.commands, Err(Retry::Deadline)));
                continue;
            }
            deadline = Some(deadline.map_or(w.deadline, |d| d.min(w.deadline)));
            counts.push(w.commands.len());
            all.append(&mut w.commands);
            dones.push(w.done);
        }
        let Some(deadline) = deadline else {
            return;
        };
        let result = self.forward_now(p, epoch, &addr, &mut all, deadline).await;
        let mut back = all.into_iter();
        let mut answers = match result {
            Ok(replies) => Ok(replies.into_iter()),
            Err(why) => Err(why),
        };
        for (done, n) in dones.into_iter().zip(counts) {
            let commands: Commands = back.by_ref().take(n).collect();
            let result = match &mut answers {
                Ok(it) => Ok(it.by_ref().take(n).collect()),
                Err(why) => Err(why.clone()),
            };
            let _ = done.send((commands, result));
        }
    }

    /// One `ForwardWithin` RPC of `commands` (given back afterwards) with the time
    /// left until `deadline`. A reply count that does not match gives errors.
    async fn forward_now(
        &self,
        p: u32,
        epoch: u64,
        addr: &str,
        commands: &mut Commands,
        deadline: Instant,
    ) -> Result<Vec<Reply>, Retry> {
        let sent = commands.len();
        let budget = deadline.saturating_duration_since(Instant::now());
        if budget.is_zero() {
            return Err(Retry::Deadline);
        }
        let req = Request::ForwardWithin {
            epoch,
            partition: p,
            budget_ms: u32::try_from(budget.as_millis()).unwrap_or(u32::MAX),
            commands: std::mem::take(commands),
        };
        // The primary may begin its last attempt just before the budget runs out: its
        // answer is worth waiting for, or the outcome would be unknown.
        let wait = (budget + FORWARD_ANSWER_GRACE).min(FORWARD_TIMEOUT);
        let answer = self.peers.call(addr, &req, wait).await;
        if let Request::ForwardWithin { commands: lent, .. } = req {
            *commands = lent;
        }
        match answer {
            Ok(Response::Replies(replies)) if replies.len() == sent => Ok(replies),
            // The primary executed something, so this is an answer, not a retry.
            Ok(Response::Reply(_) | Response::Replies(_)) => Ok(commands
                .iter()
                .map(|_| errors::err("ERR the partition's primary answered out of step"))
                .collect()),
            Ok(other) => Err(self.retry_from(addr, other)),
            Err(e) if e.outcome_unknown() => Err(Retry::OutcomeUnknown(e.to_string())),
            Err(e) => Err(Retry::Unreachable(e.to_string())),
        }
    }
}

/// Waiting callers, in arrival order, up to `MAX_BATCH_COMMANDS` commands (at least one
/// caller, however many commands it has).
fn take_batch(lane: &Lane) -> Vec<Waiting> {
    let mut queue = lane.queue.lock();
    let mut total = 0;
    let mut n = 0;
    for w in queue.iter() {
        if n > 0 && total + w.commands.len() > MAX_BATCH_COMMANDS {
            break;
        }
        total += w.commands.len();
        n += 1;
    }
    queue.drain(..n).collect()
}
