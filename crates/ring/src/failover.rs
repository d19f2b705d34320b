//! Failover: drop dead nodes from replica sets and promote only proven caught-up replicas.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::assignment::{Assignment, NodeId};

/// A primary hand-over caused by the primary's death.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    pub partition: u32,
    pub from: NodeId,
    pub to: NodeId,
}

/// The result of [`failover`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FailoverOutcome {
    /// The assignment without the dead nodes, except as primaries of unavailable
    /// partitions (see [`failover`]).
    pub assignment: Assignment,
    pub promoted: Vec<Promotion>,
    /// Partitions with no live caught-up replica (or no replica at all). They must stay
    /// unavailable until a holder of their data comes back: promoting a replica that is
    /// not caught up would serve lost writes as if they never happened.
    pub unavailable: Vec<u32>,
    /// Replica slots removed because their node is dead.
    pub replicas_removed: u64,
}

/// Remove `dead` nodes from every replica set. Where the primary is dead, promote the
/// surviving replica for which `caught_up(partition, node)` holds that has the fewest
/// primaries so far (ties: replica-set order). Where none does, the partition is listed in `unavailable` and keeps its dead
/// primary at index 0 (so no node serves it: unavailable rather than wrong, and a restart
/// of that node from its volume restores it); its dead secondaries are removed.
///
/// The replica sets in the returned assignment are below the replication factor; the
/// operator restores it with `place(Some(&outcome.assignment), live_members, ..)`. Note
/// that `place` treats every listed replica as in sync, so it must not be called without
/// the dead primary of an unavailable partition until that partition is resolved.
pub fn failover(
    assignment: &Assignment,
    dead: &[NodeId],
    caught_up: impl Fn(u32, &str) -> bool,
) -> FailoverOutcome {
    let is_dead = |node: &NodeId| dead.contains(node);
    let mut outcome = FailoverOutcome::default();
    // Primaries per live node, kept current as promotions happen, so the orphaned
    // primaries spread over the survivors instead of piling onto the first in line.
    let mut primaries: HashMap<&str, u64> = HashMap::new();
    for set in &assignment.partitions {
        if let Some(primary) = set.first().filter(|n| !is_dead(n)) {
            *primaries.entry(primary.as_str()).or_insert(0) += 1;
        }
    }
    for (p, set) in assignment.partitions.iter().enumerate() {
        let partition = u32::try_from(p).unwrap_or(u32::MAX);
        let survivors: Vec<NodeId> = set.iter().filter(|n| !is_dead(n)).cloned().collect();
        outcome.replicas_removed += (set.len() - survivors.len()) as u64;
        let Some(primary) = set.first() else {
            outcome.unavailable.push(partition);
            outcome.assignment.partitions.push(Vec::new());
            continue;
        };
        if !is_dead(primary) {
            outcome.assignment.partitions.push(survivors);
            continue;
        }
        let successor = survivors
            .iter()
            .enumerate()
            .filter(|(_, node)| caught_up(partition, node.as_str()))
            .min_by_key(|(i, node)| (primaries.get(node.as_str()).copied().unwrap_or(0), *i))
            .map(|(i, _)| i);
        match successor {
            Some(i) => {
                let mut new_set = survivors;
                let to = new_set.remove(i);
                if let Some(name) = set.iter().find(|n| **n == to) {
                    *primaries.entry(name.as_str()).or_insert(0) += 1;
                }
                outcome.promoted.push(Promotion {
                    partition,
                    from: primary.clone(),
                    to: to.clone(),
                });
                new_set.insert(0, to);
                outcome.assignment.partitions.push(new_set);
            }
            None => {
                outcome.unavailable.push(partition);
                // The dead primary was counted as removed above, but it stays.
                outcome.replicas_removed -= 1;
                let mut new_set = Vec::with_capacity(survivors.len() + 1);
                new_set.push(primary.clone());
                new_set.extend(survivors);
                outcome.assignment.partitions.push(new_set);
            }
        }
    }
    outcome
}
