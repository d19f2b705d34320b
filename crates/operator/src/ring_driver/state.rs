//! The ring configuration the operator has decided, as it is kept in the Kubernetes API.
//!
//! The operator is the only writer. The state lives in a ConfigMap owned by the
//! SessionCluster and is replaced with a resourceVersion precondition, so two operator
//! replicas (or an old leader that has not yet noticed it lost its Lease) can never both
//! advance the epoch from the same starting point.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Data key of the ring ConfigMap.
pub const STATE_KEY: &str = "ring.json";

/// Everything needed to resume a ring change after an operator restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RingState {
    /// Epoch of the configuration in force; every change makes a new one.
    pub epoch: u64,
    pub partitions: u32,
    pub replication_factor: u32,
    /// Every node the configuration lists (serving, learning or draining): id → peer address.
    pub members: BTreeMap<String, String>,
    /// Per partition, the in-sync replica set, primary first.
    pub replicas: Vec<Vec<String>>,
    /// Per partition, nodes being taught a snapshot and the live tail.
    #[serde(default)]
    pub learners: Vec<Vec<String>>,
    /// The placement being moved to while learners catch up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Vec<Vec<String>>>,
    /// Nodes moved off that must report, from their own status, that they hold nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub draining: Vec<String>,
    /// Nodes a failover removed (they stopped answering). Placement goes on without them
    /// while they stay silent; one that answers again rejoins as a learner. A failed node
    /// is still listed as a member only while it is the primary of a partition that no
    /// surviving replica could be proven to hold (that partition waits for it).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub failed: BTreeSet<String>,
    /// When this epoch was decided (RFC 3339), for migration duration and time left.
    /// Written by the driver when it persists the state; not part of the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
}

impl RingState {
    /// The configuration as store nodes accept it on `POST /v1/ring`.
    pub fn node_config(&self) -> Value {
        let members: Vec<Value> = self
            .members
            .iter()
            .map(|(id, addr)| json!({"id": id, "addr": addr}))
            .collect();
        let learners = if self.learners.is_empty() {
            vec![Vec::<String>::new(); self.replicas.len()]
        } else {
            self.learners.clone()
        };
        json!({
            "epoch": self.epoch,
            "partitions": self.partitions,
            "members": members,
            "replicas": self.replicas,
            "learners": learners,
        })
    }

    /// Nodes holding a replica of at least one partition in the configuration in force.
    pub fn serving(&self) -> BTreeSet<String> {
        self.replicas.iter().flatten().cloned().collect()
    }

    /// Learner slots still to fill: how many partition replicas are being copied.
    pub fn learner_slots(&self) -> usize {
        self.learners.iter().map(Vec::len).sum()
    }

    /// Partitions whose primary is a failed node: no surviving replica was proven to
    /// hold every acknowledged write, so nobody serves them until that node answers.
    pub fn unavailable(&self) -> Vec<u32> {
        self.replicas
            .iter()
            .enumerate()
            .filter(|(_, reps)| reps.first().is_some_and(|p| self.failed.contains(p)))
            .filter_map(|(p, _)| u32::try_from(p).ok())
            .collect()
    }

    /// The same decision, whenever it was made (`decided_at` aside).
    pub fn same_decision(&self, other: &RingState) -> bool {
        let strip = |s: &RingState| RingState {
            decided_at: None,
            ..s.clone()
        };
        strip(self) == strip(other)
    }
}
