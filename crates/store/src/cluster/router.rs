//! Routing: any node accepts any command, finds the partitions of its keys, runs the
//! part it is primary for and forwards the rest to their primaries; keyspace commands
//! (DBSIZE, SCAN, KEYS) gather from every partition's primary.

use super::partition::SCAN_POSITION_BITS;
use super::pipeline::{self, Step};
use super::rpc::{Request, Response};
use super::{Retry, FORWARD_TIMEOUT};
use crate::command::scan::{scan_reply, ScanArgs};
use crate::command::{self, errors, multikey, Kind};
use crate::node::{now_ms, Node};
use crate::reply::Reply;
use futures::future::join_all;
use futures::stream::{FuturesUnordered, StreamExt};
use sessionplane_ring::partition_of;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

const POSITION_MASK: u64 = (1 << SCAN_POSITION_BITS) - 1;
/// Partitions one SCAN call visits at most, so a call stays short on an empty keyspace.
const SCAN_PARTITIONS_PER_CALL: u32 = 32;
/// KEYS answers at most this many keys (it is a debugging command, as in Redis).
const KEYS_LIMIT: usize = 1_000_000;

/// Growing pause between attempts, cut short when a new configuration arrives.
pub(crate) struct Backoff(Duration);

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff(Duration::from_millis(5))
    }

    pub(crate) async fn pause(&mut self, node: &Node, why: &Retry, deadline: Instant) {
        node.metrics
            .retries
            .get_or_create(&crate::metrics::ReasonLabels {
                reason: why.label().into(),
            })
            .inc();
        let until = (Instant::now() + self.0).min(deadline);
        if let Retry::StaleEpoch(current) = why {
            // The fix is on its way from the master: wait for it rather than spin.
            node.wait_epoch(
                *current,
                deadline.min(Instant::now() + Duration::from_secs(2)),
            )
            .await;
        } else {
            let mut rx = node.config_tx.subscribe();
            rx.borrow_and_update();
            let _ = tokio::time::timeout_at(until.into(), rx.changed()).await;
        }
        self.0 = (self.0 * 2).min(Duration::from_millis(200));
    }
}

/// Puts a group's answers at its commands' positions in the pipeline.
fn place(replies: &mut [Option<Reply>], positions: Vec<usize>, answers: Vec<Reply>) {
    for (i, reply) in positions.into_iter().zip(answers) {
        replies[i] = Some(reply);
    }
}

impl Node {
    /// Answers a data command from a client connection.
    pub(crate) async fn dispatch(&self, args: Vec<Vec<u8>>) -> Reply {
        let Some(name) = args.first() else {
            return errors::err("ERR empty command");
        };
        let Some(spec) = command::spec(name) else {
            return errors::unknown_command(&args);
        };
        if !spec.arity_ok(args.len()) {
            return errors::wrong_arity(spec.name);
        }
        let Some(partitions) = self.partition_count().await else {
            return errors::err("CLUSTERDOWN the node has no ring configuration yet");
        };
        match spec.kind {
            Kind::Keyspace => match spec.name {
                "dbsize" => self.dbsize().await,
                "scan" => self.scan(&args).await,
                "keys" => self.keys(&args).await,
                other => errors::err(&format!("ERR '{other}' is not supported by this store")),
            },
            Kind::Keyed => {
                if let Some(p) =
                    multikey::single_partition(&args, spec, |k| partition_of(k, partitions))
                {
                    return self.route(p, args).await;
                }
                let parts = match multikey::split(&args, spec, |k| partition_of(k, partitions)) {
                    Ok(parts) => parts,
                    Err(reply) => return reply,
                };
                match parts.len() {
                    // Keyless after all (e.g. a malformed call): let execute word the error.
                    0 => {
                        let mut empty = HashMap::new();
                        command::execute(&args, &mut empty, now_ms()).reply
                    }
                    1 => {
                        let p = parts[0].partition;
                        self.route(p, parts.into_iter().next().map(|x| x.args).unwrap_or(args))
                            .await
                    }
                    _ => {
                        let keys = spec.key_indices(args.len()).len();
                        let replies = join_all(parts.into_iter().map(|part| async move {
                            let reply = self.route(part.partition, part.args).await;
                            (part.positions, reply)
                        }))
                        .await;
                        multikey::merge(spec, keys, replies)
                    }
                }
            }
            Kind::Connection | Kind::Server => errors::err(&format!(
                "ERR '{}' is answered by the connection, not the data path",
                spec.name
            )),
        }
    }

    /// Answers a connection's consecutive commands, replies in order. Each partition's
    /// commands go as one group (one lock and one replication round on the primary, one
    /// forward when the primary is another node), and the groups of different partitions
    /// run at the same time (`cluster::pipeline` says why that keeps the pipeline's
    /// meaning); a command not confined to one partition runs alone, in its place.
    pub(crate) async fn dispatch_batch(&self, commands: Vec<Vec<Vec<u8>>>) -> Vec<Reply> {
        let Some(partitions) = self.partition_count().await else {
            return commands
                .iter()
                .map(|_| errors::err("CLUSTERDOWN the node has no ring configuration yet"))
                .collect();
        };
        let confined: Vec<Option<u32>> = commands
            .iter()
            .map(|args| {
                let spec = command::spec(args.first()?)?;
                if spec.kind != Kind::Keyed || !spec.arity_ok(args.len()) {
                    return None;
                }
                multikey::single_partition(args, spec, |k| partition_of(k, partitions))
            })
            .collect();
        let mut commands: Vec<Option<Vec<Vec<u8>>>> = commands.into_iter().map(Some).collect();
        let mut replies: Vec<Option<Reply>> = vec![None; commands.len()];
        for step in pipeline::plan(&confined) {
            match step {
                Step::Alone(i) => {
                    if let Some(args) = commands[i].take() {
                        replies[i] = Some(self.dispatch(args).await);
                    }
                }
                Step::Groups(mut groups) if groups.len() == 1 => {
                    if let Some(g) = groups.pop() {
                        let run = g.positions.iter().filter_map(|&i| commands[i].take());
                        let answers = self.route_group(g.partition, run.collect()).await;
                        place(&mut replies, g.positions, answers);
                    }
                }
                Step::Groups(groups) => {
                    let runs = groups.into_iter().map(|g| {
                        let run: Vec<Vec<Vec<u8>>> = g
                            .positions
                            .iter()
                            .filter_map(|&i| commands[i].take())
                            .collect();
                        async move { (g.positions, self.route_group(g.partition, run).await) }
                    });
                    // Polls only the groups that were woken, not all of them each time.
                    let mut running: FuturesUnordered<_> = runs.collect();
                    while let Some((positions, answers)) = running.next().await {
                        place(&mut replies, positions, answers);
                    }
                }
            }
        }
        replies
            .into_iter()
            .map(|r| r.unwrap_or_else(|| errors::err("ERR the store lost this command's reply")))
            .collect()
    }

    /// The partition count, waiting briefly for a first configuration.
    async fn partition_count(&self) -> Option<u32> {
        if let Some(cfg) = self.config() {
            return Some(cfg.partitions);
        }
        self.wait_epoch(1, Instant::now() + Duration::from_secs(2))
            .await;
        self.config().map(|c| c.partitions)
    }

    /// Runs a single-partition command on the partition's primary, retrying through
    /// configuration changes and failures until the command timeout.
    pub(crate) async fn route(&self, p: u32, args: Vec<Vec<u8>>) -> Reply {
        let mut replies = self.route_group(p, vec![args]).await;
        replies
            .pop()
            .unwrap_or_else(|| errors::err("ERR no reply from the partition"))
    }

    /// Runs commands of partition `p` in order as one unit on its primary (all of them
    /// or, on failure, none, then retried), until the command timeout. One reply per
    /// command. No attempt starts after the deadline, and a write whose forward went
    /// unanswered is not sent again: either could apply it after its client's answer.
    pub(crate) async fn route_group(&self, p: u32, mut commands: Vec<Vec<Vec<u8>>>) -> Vec<Reply> {
        let deadline = Instant::now() + self.command_timeout;
        let mut backoff = Backoff::new();
        let mut last = Retry::Deadline;
        loop {
            if Instant::now() >= deadline {
                self.gave_up(&Retry::Deadline);
                return commands
                    .iter()
                    .map(|_| Reply::Error(format!("TRYAGAIN partition {p}: {last}")))
                    .collect();
            }
            let why = match self.attempt(p, &mut commands, deadline).await {
                Ok(replies) => return replies,
                Err(why) => why,
            };
            if let Retry::OutcomeUnknown(cause) = &why {
                if commands.iter().any(|c| is_write(c)) {
                    self.gave_up(&why);
                    return commands
                        .iter()
                        .map(|_| {
                            Reply::Error(format!(
                                "ERR outcome unknown: the primary of partition {p} did not answer ({cause}); \
                                 the write may or may not have been applied"
                            ))
                        })
                        .collect();
                }
            }
            backoff.pause(self, &why, deadline).await;
            last = why;
        }
    }

    fn gave_up(&self, why: &Retry) {
        self.metrics
            .gave_up
            .get_or_create(&crate::metrics::ReasonLabels {
                reason: why.label().into(),
            })
            .inc();
    }

    /// One try of `route_group`. `commands` are lent to the forward request and given
    /// back for a retry.
    async fn attempt(
        &self,
        p: u32,
        commands: &mut Vec<Vec<Vec<u8>>>,
        deadline: Instant,
    ) -> Result<Vec<Reply>, Retry> {
        let cfg = self.config().ok_or(Retry::NoConfig)?;
        let primary = cfg.primary(p).ok_or(Retry::NotOwner)?;
        if primary == self.id {
            return self.execute_local(p, commands, cfg.epoch).await;
        }
        let addr = cfg
            .members
            .iter()
            .find(|m| m.id == primary)
            .map(|m| m.addr.clone())
            .ok_or(Retry::NotOwner)?;
        self.metrics.forwarded.inc_by(commands.len() as u64);
        self.forward(p, cfg.epoch, addr, commands, deadline).await
    }

    /// The retry a non-answer from the peer at `addr` calls for; a peer on a newer
    /// epoch is also asked for its configuration.
    pub(crate) fn retry_from(&self, addr: &str, resp: Response) -> Retry {
        if let Response::StaleEpoch { current } = resp {
            self.refresh_from(addr, current);
        }
        retry_of(resp)
    }

    /// Asks each primary for its partitions' key counts and sums them.
    async fn dbsize(&self) -> Reply {
        let deadline = Instant::now() + self.command_timeout;
        let mut backoff = Backoff::new();
        loop {
            let why = match self.dbsize_once().await {
                Ok(n) => return Reply::Integer(n as i64),
                Err(why) => why,
            };
            if Instant::now() >= deadline {
                return Reply::Error(format!("TRYAGAIN dbsize: {why}"));
            }
            backoff.pause(self, &why, deadline).await;
        }
    }

    async fn dbsize_once(&self) -> Result<u64, Retry> {
        let cfg = self.config().ok_or(Retry::NoConfig)?;
        let mut by_owner: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for p in 0..cfg.partitions {
            let owner = cfg.primary(p).ok_or(Retry::NotOwner)?;
            by_owner.entry(owner).or_default().push(p);
        }
        let addrs = cfg.addr_map();
        let counts = join_all(by_owner.into_iter().map(|(owner, parts)| {
            let addrs = &addrs;
            let epoch = cfg.epoch;
            async move {
                if owner == self.id {
                    return self.count_local(&parts, epoch).await;
                }
                let addr = addrs.get(owner).ok_or(Retry::NotOwner)?;
                let req = Request::Count {
                    epoch,
                    partitions: parts,
                };
                match self.peers.call(addr, &req, FORWARD_TIMEOUT).await {
                    Ok(Response::Count(n)) => Ok(n),
                    Ok(other) => Err(self.retry_from(addr, other)),
                    Err(e) => Err(Retry::Unreachable(e.to_string())),
                }
            }
        }))
        .await;
        counts.into_iter().sum()
    }

    /// Keys in `parts`, which this node must be primary of at `epoch`.
    pub(crate) async fn count_local(&self, parts: &[u32], epoch: u64) -> Result<u64, Retry> {
        let mut total = 0;
        for &p in parts {
            let part = self.partition(p).ok_or(Retry::NotOwner)?;
            let st = part.state.lock().await;
            let cfg = self.config().ok_or(Retry::NoConfig)?;
            if cfg.epoch != epoch {
                return Err(Retry::ConfigChanged);
            }
            if cfg.primary(p) != Some(self.id.as_str()) {
                return Err(Retry::NotOwner);
            }
            self.check_new_primary(p, &cfg)?;
            total += st.keys();
            self.check_lease(p, &cfg)?;
        }
        Ok(total)
    }

    /// SCAN over the whole keyspace. The cursor holds the partition index above
    /// `SCAN_POSITION_BITS` bits of position inside it, so it fits an i64 for clients
    /// that parse it as a signed integer.
    async fn scan(&self, args: &[Vec<u8>]) -> Reply {
        let sa = match ScanArgs::parse(args) {
            Ok(sa) => sa,
            Err(reply) => return reply,
        };
        let Some(partitions) = self.config().map(|c| c.partitions) else {
            return errors::err("CLUSTERDOWN the node has no ring configuration yet");
        };
        let mut p = (sa.cursor >> SCAN_POSITION_BITS) as u32;
        let mut position = sa.cursor & POSITION_MASK;
        if p >= partitions {
            return scan_reply(0, Vec::new());
        }
        let mut keys = Vec::new();
        let mut visited = 0;
        loop {
            let want = sa.count.saturating_sub(keys.len()).max(1);
            let (page, next) = match self.scan_partition(p, position, want, &sa).await {
                Ok(x) => x,
                Err(reply) => return reply,
            };
            keys.extend(page);
            visited += 1;
            match next {
                Some(next) => return scan_reply((u64::from(p) << SCAN_POSITION_BITS) | next, keys),
                None => {
                    p += 1;
                    position = 0;
                    if p >= partitions {
                        return scan_reply(0, keys);
                    }
                    if keys.len() >= sa.count || visited >= SCAN_PARTITIONS_PER_CALL {
                        return scan_reply(u64::from(p) << SCAN_POSITION_BITS, keys);
                    }
                }
            }
        }
    }

    /// KEYS pattern: a full scan, bounded.
    async fn keys(&self, args: &[Vec<u8>]) -> Reply {
        let pattern = args.get(1).cloned().filter(|p| p.as_slice() != b"*");
        let sa = ScanArgs {
            cursor: 0,
            pattern,
            count: 1000,
            type_name: None,
        };
        let Some(partitions) = self.config().map(|c| c.partitions) else {
            return errors::err("CLUSTERDOWN the node has no ring configuration yet");
        };
        let mut out = Vec::new();
        for p in 0..partitions {
            let mut position = 0;
            loop {
                let (page, next) = match self.scan_partition(p, position, 1000, &sa).await {
                    Ok(x) => x,
                    Err(reply) => return reply,
                };
                out.extend(page.into_iter().map(Reply::Bulk));
                if out.len() > KEYS_LIMIT {
                    return errors::err("ERR KEYS would return too many keys; use SCAN");
                }
                match next {
                    Some(n) => position = n,
                    None => break,
                }
            }
        }
        Reply::Array(out)
    }

    async fn scan_partition(
        &self,
        p: u32,
        position: u64,
        count: usize,
        sa: &ScanArgs,
    ) -> Result<(Vec<Vec<u8>>, Option<u64>), Reply> {
        let deadline = Instant::now() + self.command_timeout;
        let mut backoff = Backoff::new();
        loop {
            let why = match self.scan_partition_once(p, position, count, sa).await {
                Ok(x) => return Ok(x),
                Err(why) => why,
            };
            if Instant::now() >= deadline {
                return Err(Reply::Error(format!("TRYAGAIN scan: {why}")));
            }
            backoff.pause(self, &why, deadline).await;
        }
    }

    async fn scan_partition_once(
        &self,
        p: u32,
        position: u64,
        count: usize,
        sa: &ScanArgs,
    ) -> Result<(Vec<Vec<u8>>, Option<u64>), Retry> {
        let cfg = self.config().ok_or(Retry::NoConfig)?;
        let primary = cfg.primary(p).ok_or(Retry::NotOwner)?;
        if primary == self.id {
            return self.scan_local(p, position, count, sa, cfg.epoch).await;
        }
        let addr = cfg
            .addr_map()
            .get(primary)
            .cloned()
            .ok_or(Retry::NotOwner)?;
        let req = Request::Scan {
            epoch: cfg.epoch,
            partition: p,
            position,
            count: count.min(u32::MAX as usize) as u32,
            pattern: sa.pattern.clone(),
            kind: sa.type_name.clone(),
        };
        match self.peers.call(&addr, &req, FORWARD_TIMEOUT).await {
            Ok(Response::Scan { keys, next }) => Ok((keys, next)),
            Ok(other) => Err(self.retry_from(&addr, other)),
            Err(e) => Err(Retry::Unreachable(e.to_string())),
        }
    }

    pub(crate) async fn scan_local(
        &self,
        p: u32,
        position: u64,
        count: usize,
        sa: &ScanArgs,
        epoch: u64,
    ) -> Result<(Vec<Vec<u8>>, Option<u64>), Retry> {
        let part = self.partition(p).ok_or(Retry::NotOwner)?;
        let st = part.state.lock().await;
        let cfg = self.config().ok_or(Retry::NoConfig)?;
        if cfg.epoch != epoch {
            return Err(Retry::ConfigChanged);
        }
        if cfg.primary(p) != Some(self.id.as_str()) {
            return Err(Retry::NotOwner);
        }
        self.check_new_primary(p, &cfg)?;
        let page = st.scan_page(position, count, now_ms(), |k, e| sa.accepts(k, &e.value));
        self.check_lease(p, &cfg)?;
        Ok(page)
    }
}

/// The retry a non-answer from a peer calls for.
pub(crate) fn retry_of(resp: Response) -> Retry {
    match resp {
        Response::StaleEpoch { current } => Retry::StaleEpoch(current),
        Response::Behind { .. } => Retry::PeerBehind,
        Response::NotOwner => Retry::NotOwner,
        Response::Error(e) => Retry::Unreachable(e),
        other => Retry::Unreachable(format!("unexpected answer {other:?}")),
    }
}

/// True for a command that changes data (by the command table; unknown ones count as
/// writes, the safe side for deciding whether to send a command twice).
fn is_write(args: &[Vec<u8>]) -> bool {
    args.first()
        .and_then(|name| command::spec(name))
        .is_none_or(|spec| !spec.is_readonly())
}
