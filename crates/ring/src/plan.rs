//! Migration planning: what changes, per partition, between two assignments, and the
//! order the data path must apply it in.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::assignment::{Assignment, Member, NodeId};
use crate::place::Limits;

/// The phases of a partition move, in the only safe order. A joining node must hold a
/// complete copy (snapshot + live tail, caught up) before the epoch that names it a
/// replica is published, and a leaving node may drop its copy only after that epoch,
/// so at every instant some published replica set holds every acknowledged write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Joining nodes start receiving the partition as learners (not yet serving).
    AddLearners,
    /// Learners copy a snapshot from `source`, then apply the live tail until caught up.
    CatchUp,
    /// The operator publishes the new epoch with the `to` replica set (and primary).
    FlipEpoch,
    /// Leaving nodes drop the partition, once they have seen the new epoch.
    RemoveOld,
}

impl Phase {
    /// All phases in the order they must happen.
    pub const ORDER: [Phase; 4] = [
        Phase::AddLearners,
        Phase::CatchUp,
        Phase::FlipEpoch,
        Phase::RemoveOld,
    ];
}

/// The change to one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMove {
    pub partition: u32,
    /// Replica set before (index 0 = primary).
    pub from: Vec<NodeId>,
    /// Replica set after (index 0 = primary).
    pub to: Vec<NodeId>,
    /// Nodes that must be filled as learners (in `to`, not in `from`).
    pub joining: Vec<NodeId>,
    /// Nodes that drop the partition after the flip (in `from`, not in `to`).
    pub leaving: Vec<NodeId>,
    /// Where learners copy from: the old primary. `None` when the partition had no
    /// replica (nothing to copy: the partition starts empty).
    pub source: Option<NodeId>,
    /// Whether the primary changes (costs a hand-over at the flip).
    pub primary_changes: bool,
}

/// Every partition whose replica set or primary changes, with totals.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MigrationPlan {
    pub moves: Vec<PartitionMove>,
    /// Replica slots that must be filled by copying: Σ |joining|.
    pub replicas_moved: u64,
    /// Replica slots dropped: Σ |leaving|.
    pub replicas_dropped: u64,
    /// Partitions whose primary changes.
    pub primaries_changed: u64,
}

impl MigrationPlan {
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty()
    }
}

/// The plan that turns `from` into `to`. A partition missing from one side (different
/// partition counts, which `place` never produces) counts as having no replicas there.
pub fn plan(from: &Assignment, to: &Assignment) -> MigrationPlan {
    let count = from.partitions.len().max(to.partitions.len());
    let empty: Vec<NodeId> = Vec::new();
    let mut result = MigrationPlan::default();
    for p in 0..count {
        let before = from.partitions.get(p).unwrap_or(&empty);
        let after = to.partitions.get(p).unwrap_or(&empty);
        let joining: Vec<NodeId> = after
            .iter()
            .filter(|n| !before.contains(n))
            .cloned()
            .collect();
        let leaving: Vec<NodeId> = before
            .iter()
            .filter(|n| !after.contains(n))
            .cloned()
            .collect();
        let primary_changes = before.first() != after.first();
        if joining.is_empty() && leaving.is_empty() && !primary_changes {
            continue;
        }
        result.replicas_moved += joining.len() as u64;
        result.replicas_dropped += leaving.len() as u64;
        result.primaries_changed += u64::from(primary_changes);
        result.moves.push(PartitionMove {
            partition: u32::try_from(p).unwrap_or(u32::MAX),
            from: before.clone(),
            to: after.clone(),
            joining,
            leaving,
            source: before.first().cloned(),
            primary_changes,
        });
    }
    result
}

/// A lower bound on the replica slots that any placement `place` may return must copy to
/// go from `from` to `to_members` with `replication_factor` and `epsilon`, as the largest
/// of three counts, each valid for every assignment with loads in
/// [`Limits::floor_share`], [`Limits::replica_cap`]:
/// - a node keeps at most `min(old load, cap)` of its slots, so the rest of the new
///   slots must be copied;
/// - a partition keeps at most `min(surviving replicas, rf)` of its replicas;
/// - every node below the floor share must receive at least the difference.
///
/// `plan(from, place(Some(from), to_members, ..)).replicas_moved` divided by this is the
/// movement ratio reported in docs/ring.md.
pub fn minimum_moves(
    from: &Assignment,
    to_members: &[Member],
    replication_factor: u32,
    epsilon: f64,
) -> u64 {
    let members: HashSet<&str> = to_members.iter().map(|m| m.id.as_str()).collect();
    let Ok(n) = u32::try_from(members.len()) else {
        return 0;
    };
    if n == 0 || from.partitions.is_empty() {
        return 0;
    }
    let limits = Limits::new(n, from.partition_count(), replication_factor, epsilon);
    let slots = from.partitions.len() as u64 * u64::from(limits.replicas);

    let mut old_load: HashMap<&str, u64> = HashMap::new();
    let mut keepable_by_partition = 0u64;
    for set in &from.partitions {
        let mut seen: HashSet<&str> = HashSet::new();
        for node in set {
            if members.contains(node.as_str()) && seen.insert(node.as_str()) {
                *old_load.entry(node.as_str()).or_insert(0) += 1;
            }
        }
        keepable_by_partition += (seen.len() as u64).min(u64::from(limits.replicas));
    }
    let keepable_by_node: u64 = old_load.values().map(|&l| l.min(limits.replica_cap)).sum();
    let keepable = keepable_by_node.min(keepable_by_partition).min(slots);
    let deficit: u64 = members
        .iter()
        .map(|id| {
            let old = old_load.get(id).copied().unwrap_or(0);
            limits.floor_share.saturating_sub(old)
        })
        .sum();
    (slots - keepable).max(deficit)
}
