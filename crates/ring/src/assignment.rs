//! The placement result: for every partition, its ordered replica set.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A node's stable identity (for a StatefulSet pod, its name; for an embedded node, any
/// unique string). Placement never interprets it beyond hashing and comparing.
pub type NodeId = String;

/// A node that may hold partitions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Member {
    pub id: NodeId,
    /// Failure domain (e.g. `topology.kubernetes.io/zone`). Replicas of a partition go to
    /// distinct zones when the load caps allow. `None` means "its own domain".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

impl Member {
    pub fn new(id: impl Into<NodeId>) -> Self {
        Member {
            id: id.into(),
            zone: None,
        }
    }

    pub fn in_zone(id: impl Into<NodeId>, zone: impl Into<String>) -> Self {
        Member {
            id: id.into(),
            zone: Some(zone.into()),
        }
    }
}

/// Per partition (index = partition number), its replica set; index 0 is the primary.
/// An empty replica set means the partition has no holder (only after failures).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Assignment {
    pub partitions: Vec<Vec<NodeId>>,
}

impl Assignment {
    pub fn partition_count(&self) -> u32 {
        u32::try_from(self.partitions.len()).unwrap_or(u32::MAX)
    }

    /// The primary of `partition`, if it has one.
    pub fn primary(&self, partition: u32) -> Option<&NodeId> {
        self.replicas(partition).first()
    }

    /// The replica set of `partition` (empty if out of range).
    pub fn replicas(&self, partition: u32) -> &[NodeId] {
        self.partitions
            .get(partition as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Replica slots per node (primaries included), for every node that holds any.
    pub fn replica_loads(&self) -> BTreeMap<&str, u32> {
        let mut loads = BTreeMap::new();
        for set in &self.partitions {
            for node in set {
                *loads.entry(node.as_str()).or_insert(0) += 1;
            }
        }
        loads
    }

    /// Primaries per node, for every node that is primary of any partition.
    pub fn primary_loads(&self) -> BTreeMap<&str, u32> {
        let mut loads = BTreeMap::new();
        for set in &self.partitions {
            if let Some(primary) = set.first() {
                *loads.entry(primary.as_str()).or_insert(0) += 1;
            }
        }
        loads
    }

    /// Partitions that `node` holds, in order, with whether it is their primary.
    pub fn partitions_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = (u32, bool)> + 'a {
        self.partitions
            .iter()
            .enumerate()
            .filter_map(move |(p, set)| {
                let pos = set.iter().position(|n| n == node)?;
                Some((u32::try_from(p).ok()?, pos == 0))
            })
    }

    /// Total replica slots over all partitions.
    pub fn slot_count(&self) -> u64 {
        self.partitions.iter().map(|s| s.len() as u64).sum()
    }
}

/// Largest load allowed by a bound of `(1+ε)·mean`, rounded up, where the mean is
/// `items / nodes`: `ceil((1+ε)·items/nodes)`, never below the balanced share
/// `ceil(items/nodes)`. Placement enforces this for replica slots (items = partitions ×
/// replicas) and for primaries (items = partitions); tests assert it with this same fn.
pub fn load_cap(items: u64, nodes: u32, epsilon: f64) -> u64 {
    if nodes == 0 {
        return items;
    }
    let balanced = items.div_ceil(u64::from(nodes));
    let eps = if epsilon.is_finite() && epsilon > 0.0 {
        epsilon
    } else {
        0.0
    };
    // items and nodes are far below 2^52, so the f64 arithmetic is exact enough; the
    // max() guards against rounding below the balanced share.
    let bounded = ((1.0 + eps) * items as f64 / f64::from(nodes)).ceil();
    if bounded.is_finite() && bounded >= 0.0 && bounded < u64::MAX as f64 {
        (bounded as u64).max(balanced)
    } else {
        balanced
    }
}
