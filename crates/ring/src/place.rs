//! Placement: members + previous assignment → new assignment, with bounded loads,
//! zone spreading and minimal movement.
//!
//! Algorithm (docs/ring.md explains the why):
//! 1. Keep: every (partition, node) pair of `previous` whose node is still a member is
//!    kept, as long as the node stays within the ε cap and the partition within its
//!    replica count. Pairs are considered primary first, then by their position in the
//!    previous replica set, then by rendezvous score, so a node that must shed sheds the
//!    pairs it is least attached to.
//! 2. Fill: empty slots are filled in rounds (every partition gets its k-th replica
//!    before any gets its k+1-th), each with the highest rendezvous score node that is
//!    not yet a replica, preferring a new zone, then nodes below the floor share
//!    `floor(slots/N)`, then below the balanced share `ceil(slots/N)`; only when no
//!    node within the balanced share fits, a node below the cap. Zone spreading never
//!    pushes a node past the balanced share: that would leave another node below the
//!    floor, and pulling it back up would cost extra moves.
//! 3. Repair: a slot no node can take directly is filled by an augmenting path (shift
//!    one replica along a chain of partitions to a node with room): first shifting only
//!    pairs added in step 2 and only to nodes within the balanced share (free: those
//!    pairs are copies anyway), then any pair up to the cap. A feasible placement always
//!    exists under the cap, so this always succeeds.
//! 4. Pull: a node still below the floor share (typically a new node) takes replicas
//!    from the most loaded nodes until it reaches it, so a scale-up actually moves load.
//!    Every result has each node's load in [floor share, cap], and any assignment in
//!    that band is kept unchanged by `place` with the same members (idempotent).
//! 5. Primaries: the previous primary stays primary if it is still a replica and under
//!    the primary cap; other partitions take their least-loaded replica as primary;
//!    augmenting paths resolve the rest (Hall's condition holds, see docs/ring.md).
//!    Then nodes below the primary floor `floor(partitions/N)` take over primary roles
//!    of partitions they already hold (a hand-over, no copy), best effort.

use std::collections::{HashMap, VecDeque};

use crate::assignment::{load_cap, Assignment, Member, NodeId};
use crate::hash::{rendezvous_score, xxh64, NODE_SEED};

/// Why a placement could not be computed. Every variant is an input error except
/// `Unplaceable`, which would be a bug in this module.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlacementError {
    #[error("no members to place partitions on")]
    NoMembers,
    #[error("partition count must be at least 1")]
    ZeroPartitions,
    #[error("replication factor must be at least 1")]
    ZeroReplicationFactor,
    #[error("epsilon must be a finite number >= 0, got {0}")]
    InvalidEpsilon(f64),
    #[error("member id must not be empty")]
    EmptyMemberId,
    #[error("member {0:?} is listed more than once")]
    DuplicateMember(NodeId),
    #[error("previous assignment has {previous} partitions, requested {requested}; the partition count is immutable")]
    PartitionCountChanged { previous: u32, requested: u32 },
    #[error("no placement found for partition {0} (internal error)")]
    Unplaceable(u32),
}

impl PlacementError {
    /// Stable short label for metrics and events.
    pub fn label(&self) -> &'static str {
        match self {
            PlacementError::NoMembers => "no_members",
            PlacementError::ZeroPartitions => "zero_partitions",
            PlacementError::ZeroReplicationFactor => "zero_replication_factor",
            PlacementError::InvalidEpsilon(_) => "invalid_epsilon",
            PlacementError::EmptyMemberId => "empty_member_id",
            PlacementError::DuplicateMember(_) => "duplicate_member",
            PlacementError::PartitionCountChanged { .. } => "partition_count_changed",
            PlacementError::Unplaceable(_) => "unplaceable",
        }
    }
}

/// The limits a placement honours, derived from the inputs. Exposed so callers and
/// tests check exactly what `place` enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Replicas per partition: `min(replication_factor, members)`.
    pub replicas: u32,
    /// Floor share of replica slots, `floor(partitions·replicas / members)`: every
    /// node ends with at least this many.
    pub floor_share: u64,
    /// Balanced share of replica slots, `ceil(partitions·replicas / members)`.
    pub balanced_share: u64,
    /// Hard bound on replica slots per node, `ceil((1+ε)·mean)`.
    pub replica_cap: u64,
    /// Hard bound on primaries per node, `ceil((1+ε)·partitions/members)`.
    pub primary_cap: u64,
}

impl Limits {
    pub fn new(members: u32, partitions: u32, replication_factor: u32, epsilon: f64) -> Self {
        let replicas = replication_factor.min(members);
        let slots = u64::from(partitions) * u64::from(replicas);
        Limits {
            replicas,
            floor_share: slots / u64::from(members.max(1)),
            balanced_share: slots.div_ceil(u64::from(members.max(1))),
            replica_cap: load_cap(slots, members, epsilon),
            primary_cap: load_cap(u64::from(partitions), members, epsilon),
        }
    }
}

/// Place `partitions` partitions with `replication_factor` replicas each on `members`.
///
/// Every partition gets `min(replication_factor, members)` distinct nodes: a replication
/// factor above the member count is not an error but a degraded placement (the operator
/// compares and reports it), so a cluster can still be placed while it is scaling up or
/// has lost nodes. No node gets more than [`Limits::replica_cap`] slots or
/// [`Limits::primary_cap`] primaries. The result depends on the set of members, not their
/// order.
pub fn place(
    previous: Option<&Assignment>,
    members: &[Member],
    partitions: u32,
    replication_factor: u32,
    epsilon: f64,
) -> Result<Assignment, PlacementError> {
    validate(previous, members, partitions, replication_factor, epsilon)?;
    let nodes = Nodes::new(members)?;
    let n = u32::try_from(nodes.ids.len()).map_err(|_| PlacementError::Unplaceable(0))?;
    let limits = Limits::new(n, partitions, replication_factor, epsilon);
    let mut state = State::new(&nodes, partitions, limits);
    if let Some(prev) = previous {
        state.keep(prev);
    }
    let (floor, share, cap) = (
        limits.floor_share,
        limits.balanced_share,
        limits.replica_cap,
    );
    state.fill(&[(true, floor), (true, share)]);
    state.repair(share, Shift::FreshSameZoneRule);
    state.fill(&[(false, floor), (false, share)]);
    if !state.repair(share, Shift::Fresh) {
        state.fill(&[(false, cap)]);
        if !state.repair(cap, Shift::Any) {
            let short = state
                .sets
                .iter()
                .position(|s| s.len() < limits.replicas as usize);
            return Err(PlacementError::Unplaceable(short.unwrap_or(0) as u32));
        }
    }
    state.pull_to_floor();
    let primaries = state.choose_primaries(previous)?;
    Ok(state.into_assignment(&primaries))
}

fn validate(
    previous: Option<&Assignment>,
    members: &[Member],
    partitions: u32,
    replication_factor: u32,
    epsilon: f64,
) -> Result<(), PlacementError> {
    if members.is_empty() {
        return Err(PlacementError::NoMembers);
    }
    if partitions == 0 {
        return Err(PlacementError::ZeroPartitions);
    }
    if replication_factor == 0 {
        return Err(PlacementError::ZeroReplicationFactor);
    }
    if !epsilon.is_finite() || epsilon < 0.0 {
        return Err(PlacementError::InvalidEpsilon(epsilon));
    }
    if let Some(prev) = previous {
        if prev.partitions.len() != partitions as usize {
            return Err(PlacementError::PartitionCountChanged {
                previous: prev.partition_count(),
                requested: partitions,
            });
        }
    }
    Ok(())
}

/// Members sorted by id (the canonical order every decision is made in), with their id
/// hashes and interned zones.
struct Nodes {
    ids: Vec<NodeId>,
    hashes: Vec<u64>,
    /// Zone index per node; a node without a zone gets a zone of its own.
    zones: Vec<usize>,
    index: HashMap<NodeId, usize>,
}

impl Nodes {
    fn new(members: &[Member]) -> Result<Self, PlacementError> {
        let mut sorted: Vec<&Member> = members.iter().collect();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        let mut ids = Vec::with_capacity(sorted.len());
        let mut zones = Vec::with_capacity(sorted.len());
        let mut zone_index: HashMap<&str, usize> = HashMap::new();
        // Unzoned nodes get indices past any real zone's, so they never collide.
        let unzoned_base = members.len();
        for (i, m) in sorted.iter().enumerate() {
            if m.id.is_empty() {
                return Err(PlacementError::EmptyMemberId);
            }
            if ids.last() == Some(&m.id) {
                return Err(PlacementError::DuplicateMember(m.id.clone()));
            }
            ids.push(m.id.clone());
            zones.push(match &m.zone {
                Some(z) => {
                    let next = zone_index.len();
                    *zone_index.entry(z.as_str()).or_insert(next)
                }
                None => unzoned_base + i,
            });
        }
        let hashes = ids
            .iter()
            .map(|id| xxh64(id.as_bytes(), NODE_SEED))
            .collect();
        let index = ids
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, id)| (id, i))
            .collect();
        Ok(Nodes {
            ids,
            hashes,
            zones,
            index,
        })
    }
}

/// How much a pull prefers a partition of a donor: keeps zones spread, restores a
/// previous pair, leaves the previous primary alone, rendezvous score.
type PullPreference = (bool, bool, bool, u64);

/// Which replicas an augmenting path may shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shift {
    /// Only pairs added by this placement, and only where zones stay distinct.
    FreshSameZoneRule,
    /// Only pairs added by this placement (shifting them costs no extra copy).
    Fresh,
    /// Any pair, kept ones included (last resort; costs extra copies).
    Any,
}

/// Working state: replica sets as node indices, and per-node loads.
struct State<'a> {
    nodes: &'a Nodes,
    limits: Limits,
    sets: Vec<Vec<usize>>,
    load: Vec<u64>,
    /// The previous replica sets restricted to current members, in previous order.
    previous: Vec<Vec<usize>>,
}

impl<'a> State<'a> {
    fn new(nodes: &'a Nodes, partitions: u32, limits: Limits) -> Self {
        State {
            nodes,
            limits,
            sets: vec![Vec::with_capacity(limits.replicas as usize); partitions as usize],
            load: vec![0; nodes.ids.len()],
            previous: vec![Vec::new(); partitions as usize],
        }
    }

    fn score(&self, partition: usize, node: usize) -> u64 {
        rendezvous_score(self.nodes.hashes[node], partition as u32)
    }

    fn keep(&mut self, previous: &Assignment) {
        // (position in previous set, partition, node); primary is position 0.
        let mut pairs: Vec<(usize, usize, usize)> = Vec::new();
        for (p, set) in previous.partitions.iter().enumerate() {
            let mut seen: Vec<usize> = Vec::with_capacity(set.len());
            for id in set {
                if let Some(&node) = self.nodes.index.get(id) {
                    if !seen.contains(&node) {
                        pairs.push((seen.len(), p, node));
                        seen.push(node);
                    }
                }
            }
            self.previous[p] = seen;
        }
        pairs.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| self.score(b.1, b.2).cmp(&self.score(a.1, a.2)))
                .then_with(|| a.1.cmp(&b.1))
        });
        for (_, p, node) in pairs {
            if self.sets[p].len() < self.limits.replicas as usize
                && self.load[node] < self.limits.replica_cap
            {
                self.sets[p].push(node);
                self.load[node] += 1;
            }
        }
    }

    fn fill(&mut self, tiers: &[(bool, u64)]) {
        let replicas = self.limits.replicas as usize;
        for &(new_zone_only, limit) in tiers {
            for round in 0..replicas {
                for p in 0..self.sets.len() {
                    if self.sets[p].len() == round {
                        if let Some(node) = self.best_candidate(p, new_zone_only, limit) {
                            self.sets[p].push(node);
                            self.load[node] += 1;
                        }
                    }
                }
            }
        }
    }

    fn best_candidate(&self, p: usize, new_zone_only: bool, limit: u64) -> Option<usize> {
        let set = &self.sets[p];
        (0..self.nodes.ids.len())
            .filter(|&node| self.load[node] < limit && !set.contains(&node))
            .filter(|&node| {
                !new_zone_only
                    || set
                        .iter()
                        .all(|&other| self.nodes.zones[other] != self.nodes.zones[node])
            })
            .max_by_key(|&node| (self.score(p, node), std::cmp::Reverse(node)))
    }

    /// Fill the slots greedy filling left empty with augmenting paths that reach a node
    /// below `limit`. Returns whether all slots are filled.
    fn repair(&mut self, limit: u64, shift: Shift) -> bool {
        let replicas = self.limits.replicas as usize;
        let mut complete = true;
        // Nodes a failed search explored, from which no path was found. Skipping them as
        // starting points makes a hopeless pass (e.g. zones too unbalanced to spread)
        // cost one search instead of one per slot. Edges via the searched partition
        // are excluded, so this is a heuristic: only the best-effort passes use it.
        let mut dead_ends = vec![false; self.nodes.ids.len()];
        let use_dead_ends = shift != Shift::Any;
        for p in 0..self.sets.len() {
            while self.sets[p].len() < replicas {
                let skip = if use_dead_ends {
                    Some(&mut dead_ends)
                } else {
                    None
                };
                if !self.augment_replica(p, limit, shift, skip) {
                    complete = false;
                    break;
                }
            }
        }
        complete
    }

    /// Give partition `p` one more replica by a shortest chain of shifts: a node X0 not
    /// in `p` joins `p` and hands one of its partitions q0 to X1, which hands q1 to X2,
    /// ..., ending at a node below `limit`. Every node's load is unchanged except the
    /// last, which gains one, and every replica set stays distinct.
    fn augment_replica(
        &mut self,
        p: usize,
        limit: u64,
        shift: Shift,
        mut dead_ends: Option<&mut Vec<bool>>,
    ) -> bool {
        let n = self.nodes.ids.len();
        let cap = limit;
        let fresh_only = shift != Shift::Any;
        let zone_rule = shift == Shift::FreshSameZoneRule;
        let mut parent: Vec<Option<(usize, usize)>> = vec![None; n];
        let starts: Vec<usize> = (0..n)
            .filter(|&x| !self.sets[p].contains(&x))
            .filter(|&x| !zone_rule || self.zone_fits(p, x, None))
            .filter(|&x| dead_ends.as_ref().is_none_or(|d| !d[x]))
            .collect();
        // With the zone rule, each partition is shifted at most once per search, so
        // the zone checks made against the current sets stay valid for the whole path.
        let mut used_partition = vec![false; self.sets.len()];
        if let Some(&x) = starts.iter().find(|&&x| self.load[x] < cap) {
            self.sets[p].push(x);
            self.load[x] += 1;
            return true;
        }
        let mut visited = vec![false; n];
        for &x in &starts {
            visited[x] = true;
        }
        let mut queue: VecDeque<usize> = starts.into();
        let mut end = None;
        'search: while let Some(x) = queue.pop_front() {
            for (q, used) in used_partition.iter_mut().enumerate() {
                if q == p
                    || !self.sets[q].contains(&x)
                    || (fresh_only && self.previous[q].contains(&x))
                    || (zone_rule && *used)
                {
                    continue;
                }
                for y in 0..n {
                    if visited[y]
                        || self.sets[q].contains(&y)
                        || (zone_rule && !self.zone_fits(q, y, Some(x)))
                    {
                        continue;
                    }
                    *used = true;
                    visited[y] = true;
                    parent[y] = Some((x, q));
                    if self.load[y] < cap {
                        end = Some(y);
                        break 'search;
                    }
                    queue.push_back(y);
                }
            }
        }
        if let Some(y) = end {
            self.shift_along(p, y, &parent);
            if let Some(dead) = dead_ends.as_mut() {
                dead.fill(false);
            }
            return true;
        }
        if let Some(dead) = dead_ends.as_mut() {
            for (d, v) in dead.iter_mut().zip(&visited) {
                *d |= *v;
            }
        }
        false
    }

    /// Whether `node` joining partition `p` (in place of `replacing`, if given) keeps
    /// the replicas of `p` in distinct zones.
    fn zone_fits(&self, p: usize, node: usize, replacing: Option<usize>) -> bool {
        self.sets[p]
            .iter()
            .filter(|&&o| Some(o) != replacing)
            .all(|&o| self.nodes.zones[o] != self.nodes.zones[node])
    }

    fn shift_along(&mut self, p: usize, end: usize, parent: &[Option<(usize, usize)>]) {
        self.load[end] += 1;
        let mut node = end;
        while let Some((from, q)) = parent[node] {
            if let Some(slot) = self.sets[q].iter_mut().find(|s| **s == from) {
                *slot = node;
            }
            node = from;
        }
        self.sets[p].push(node);
    }

    /// Raise every node below the floor share to it by replacing, in some partition, a
    /// replica on a node above the floor. Such a partition always exists: the donor holds
    /// more partitions than the receiver. Each step lowers the total deficit by one.
    /// Zone-keeping replacements come first; among them, the most loaded donor gives.
    fn pull_to_floor(&mut self) {
        let floor = self.limits.floor_share;
        let n = self.nodes.ids.len();
        while let Some(u) = (0..n)
            .filter(|&u| self.load[u] < floor)
            .min_by_key(|&u| (self.load[u], u))
        {
            // Candidates per donor, best last. Pulling into one partition does not change
            // any other, so the preferences stay valid while `u` is being filled.
            let mut by_donor: Vec<Vec<(PullPreference, usize)>> = vec![Vec::new(); n];
            for (q, set) in self.sets.iter().enumerate() {
                if set.contains(&u) {
                    continue;
                }
                for &v in set {
                    let key = (
                        self.zone_fits(q, u, Some(v)),
                        self.previous[q].contains(&u),
                        self.previous[q].first() != Some(&v),
                        self.score(q, u),
                    );
                    by_donor[v].push((key, q));
                }
            }
            for list in &mut by_donor {
                list.sort();
            }
            let before = self.load[u];
            for zone_pass in [true, false] {
                while self.load[u] < floor {
                    let donor = (0..n)
                        .filter(|&v| self.load[v] > floor)
                        .filter(|&v| {
                            by_donor[v]
                                .iter()
                                .any(|(k, q)| (k.0 || !zone_pass) && !self.sets[*q].contains(&u))
                        })
                        .max_by_key(|&v| (self.load[v], std::cmp::Reverse(v)));
                    let Some(v) = donor else { break };
                    let pick = by_donor[v]
                        .iter()
                        .rposition(|(k, q)| (k.0 || !zone_pass) && !self.sets[*q].contains(&u));
                    let Some(i) = pick else { break };
                    let (_, q) = by_donor[v].remove(i);
                    if let Some(slot) = self.sets[q].iter_mut().find(|s| **s == v) {
                        *slot = u;
                    }
                    self.load[v] -= 1;
                    self.load[u] += 1;
                }
            }
            if self.load[u] == before {
                // Cannot happen (see above); never loop forever if it somehow does.
                return;
            }
        }
    }

    fn choose_primaries(
        &self,
        previous: Option<&Assignment>,
    ) -> Result<Vec<usize>, PlacementError> {
        let partitions = self.sets.len();
        let cap = self.limits.primary_cap;
        let mut primary: Vec<Option<usize>> = vec![None; partitions];
        let mut pload = vec![0u64; self.nodes.ids.len()];

        if let Some(prev) = previous {
            let mut kept: Vec<(usize, usize)> = Vec::new();
            for (p, set) in prev.partitions.iter().enumerate() {
                let old = set.first().and_then(|id| self.nodes.index.get(id));
                if let Some(&node) = old {
                    if self.sets[p].contains(&node) {
                        kept.push((p, node));
                    }
                }
            }
            // Over the cap, a node keeps the primaries it scores highest on.
            kept.sort_by(|a, b| {
                self.score(b.0, b.1)
                    .cmp(&self.score(a.0, a.1))
                    .then_with(|| a.0.cmp(&b.0))
            });
            for (p, node) in kept {
                if pload[node] < cap {
                    primary[p] = Some(node);
                    pload[node] += 1;
                }
            }
        }

        for p in 0..partitions {
            if primary[p].is_some() {
                continue;
            }
            // The first minimum in replica-set order: kept replicas come first, so ties
            // favour a node that already has the data.
            let least = self.sets[p]
                .iter()
                .copied()
                .filter(|&node| pload[node] < cap)
                .min_by_key(|&node| pload[node]);
            match least {
                Some(node) => {
                    primary[p] = Some(node);
                    pload[node] += 1;
                }
                None => {
                    if !self.augment_primary(p, &mut primary, &mut pload) {
                        return Err(PlacementError::Unplaceable(p as u32));
                    }
                }
            }
        }
        self.pull_primaries_to_floor(&mut primary, &mut pload);
        primary
            .into_iter()
            .enumerate()
            .map(|(p, node)| node.ok_or(PlacementError::Unplaceable(p as u32)))
            .collect()
    }

    /// Raise every node below the primary floor `floor(partitions/N)` (typically a new
    /// node, which keeping primaries in place would leave with none) by taking over the
    /// primary role of a partition it holds, from the most loaded primary possible, by a
    /// chain when no direct donor is above the floor. Best effort: a node whose
    /// partitions offer no such chain stays below (the cap is still honoured).
    fn pull_primaries_to_floor(&self, primary: &mut [Option<usize>], pload: &mut [u64]) {
        let n = self.nodes.ids.len();
        let floor = primary.len() as u64 / n as u64;
        let mut holds: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (q, set) in self.sets.iter().enumerate() {
            for &x in set {
                holds[x].push(q);
            }
        }
        let mut stuck = vec![false; n];
        loop {
            let receiver = (0..n)
                .filter(|&u| pload[u] < floor && !stuck[u])
                .min_by_key(|&u| (pload[u], u));
            let Some(u) = receiver else { return };
            if !self.pull_primary(u, floor, &holds, primary, pload) {
                stuck[u] = true;
            }
        }
    }

    fn pull_primary(
        &self,
        u: usize,
        floor: u64,
        holds: &[Vec<usize>],
        primary: &mut [Option<usize>],
        pload: &mut [u64],
    ) -> bool {
        let n = self.nodes.ids.len();
        // parent[v] = (x, q): x takes over the primary role of q from v.
        let mut parent: Vec<Option<(usize, usize)>> = vec![None; n];
        let mut visited = vec![false; n];
        visited[u] = true;
        let mut queue = VecDeque::from([u]);
        while let Some(x) = queue.pop_front() {
            let mut best: Option<((u64, u64), usize, usize)> = None;
            let mut next = Vec::new();
            for &q in &holds[x] {
                let Some(v) = primary[q] else { continue };
                if v == x || visited[v] {
                    continue;
                }
                if pload[v] > floor {
                    let key = (pload[v], self.score(q, x));
                    if best.as_ref().is_none_or(|(k, _, _)| key > *k) {
                        best = Some((key, q, v));
                    }
                } else if !next.contains(&v) {
                    next.push(v);
                    parent[v] = Some((x, q));
                }
            }
            if let Some((_, q, donor)) = best {
                pload[donor] -= 1;
                pload[u] += 1;
                primary[q] = Some(x);
                let mut node = x;
                while let Some((taker, q)) = parent[node] {
                    primary[q] = Some(taker);
                    node = taker;
                }
                return true;
            }
            for v in next {
                visited[v] = true;
                queue.push_back(v);
            }
        }
        false
    }

    /// Make some replica of `p` its primary by moving primaries along a chain: X0 (a
    /// replica of `p`) becomes primary of `p` and hands its primary role in q0 to X1, a
    /// replica of q0, and so on to a node under the primary cap.
    fn augment_primary(&self, p: usize, primary: &mut [Option<usize>], pload: &mut [u64]) -> bool {
        let n = self.nodes.ids.len();
        let cap = self.limits.primary_cap;
        let mut parent: Vec<Option<(usize, usize)>> = vec![None; n];
        let mut visited = vec![false; n];
        let mut queue = VecDeque::new();
        for &x in &self.sets[p] {
            visited[x] = true;
            queue.push_back(x);
        }
        while let Some(x) = queue.pop_front() {
            for q in 0..primary.len() {
                if primary[q] != Some(x) {
                    continue;
                }
                for &y in &self.sets[q] {
                    if visited[y] {
                        continue;
                    }
                    visited[y] = true;
                    parent[y] = Some((x, q));
                    if pload[y] < cap {
                        pload[y] += 1;
                        let mut node = y;
                        while let Some((from, q)) = parent[node] {
                            primary[q] = Some(node);
                            node = from;
                        }
                        primary[p] = Some(node);
                        return true;
                    }
                    queue.push_back(y);
                }
            }
        }
        false
    }

    fn into_assignment(self, primaries: &[usize]) -> Assignment {
        let partitions = self
            .sets
            .iter()
            .zip(primaries)
            .map(|(set, &primary)| {
                let mut ids = Vec::with_capacity(set.len());
                ids.push(self.nodes.ids[primary].clone());
                ids.extend(
                    set.iter()
                        .filter(|&&node| node != primary)
                        .map(|&node| self.nodes.ids[node].clone()),
                );
                ids
            })
            .collect();
        Assignment { partitions }
    }
}
