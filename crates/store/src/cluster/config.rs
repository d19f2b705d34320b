//! The ring configuration pushed by the external master, and its validation.
//!
//! A node never decides membership: it follows the newest epoch it has been given and
//! fences anything tagged with an older one. Node ids are opaque strings, so a node can
//! be a StatefulSet pod, an embedded engine in a frontend pod, or a test process.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Upper bound on partitions: the SCAN cursor keeps the partition in its top 11 bits.
pub const MAX_PARTITIONS: u32 = 2048;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: String,
    /// host:port of the node's internal RPC listener.
    pub addr: String,
}

/// One epoch of the ring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingConfig {
    pub epoch: u64,
    pub partitions: u32,
    pub members: Vec<Member>,
    /// Per partition, the in-sync replica set, primary first.
    pub replicas: Vec<Vec<String>>,
    /// Per partition, nodes receiving a snapshot and the live tail, not yet serving.
    #[serde(default)]
    pub learners: Vec<Vec<String>>,
}

/// What this node is for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Replica,
    Learner,
    None,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("partitions must be between 1 and {MAX_PARTITIONS}, got {0}")]
    Partitions(u32),
    #[error("replicas has {got} entries for {want} partitions")]
    ReplicaCount { got: usize, want: u32 },
    #[error("learners has {got} entries for {want} partitions")]
    LearnerCount { got: usize, want: u32 },
    #[error("partition {0} has no primary")]
    NoPrimary(u32),
    #[error("partition {0} names unknown node {1}")]
    UnknownNode(u32, String),
    #[error("partition {0} names node {1} twice")]
    Duplicate(u32, String),
    #[error("member {0} listed twice")]
    DuplicateMember(String),
    #[error("epoch {offered} is older than the accepted epoch {current}")]
    Stale { offered: u64, current: u64 },
    #[error("epoch {0} was already accepted with a different configuration")]
    Conflict(u64),
    #[error("the partition count is fixed at {current}, got {offered}")]
    PartitionCountChanged { offered: u32, current: u32 },
    #[error("malformed configuration: {0}")]
    Malformed(String),
}

impl ConfigError {
    pub fn label(&self) -> &'static str {
        match self {
            ConfigError::Partitions(_) => "partitions",
            ConfigError::ReplicaCount { .. } => "replica_count",
            ConfigError::LearnerCount { .. } => "learner_count",
            ConfigError::NoPrimary(_) => "no_primary",
            ConfigError::UnknownNode(..) => "unknown_node",
            ConfigError::Duplicate(..) => "duplicate",
            ConfigError::DuplicateMember(_) => "duplicate_member",
            ConfigError::Stale { .. } => "stale",
            ConfigError::Conflict(_) => "conflict",
            ConfigError::PartitionCountChanged { .. } => "partition_count_changed",
            ConfigError::Malformed(_) => "malformed",
        }
    }
}

impl RingConfig {
    /// Checks internal consistency; fills `learners` when it was left out.
    pub fn validate(mut self) -> Result<Self, ConfigError> {
        if self.partitions == 0 || self.partitions > MAX_PARTITIONS {
            return Err(ConfigError::Partitions(self.partitions));
        }
        if self.replicas.len() != self.partitions as usize {
            return Err(ConfigError::ReplicaCount {
                got: self.replicas.len(),
                want: self.partitions,
            });
        }
        if self.learners.is_empty() {
            self.learners = vec![Vec::new(); self.partitions as usize];
        }
        if self.learners.len() != self.partitions as usize {
            return Err(ConfigError::LearnerCount {
                got: self.learners.len(),
                want: self.partitions,
            });
        }
        let mut ids = HashSet::new();
        for m in &self.members {
            if !ids.insert(m.id.as_str()) {
                return Err(ConfigError::DuplicateMember(m.id.clone()));
            }
        }
        for (p, (reps, learners)) in self.replicas.iter().zip(&self.learners).enumerate() {
            let p = p as u32;
            if reps.is_empty() {
                return Err(ConfigError::NoPrimary(p));
            }
            let mut seen = HashSet::new();
            for n in reps.iter().chain(learners) {
                if !ids.contains(n.as_str()) {
                    return Err(ConfigError::UnknownNode(p, n.clone()));
                }
                if !seen.insert(n.as_str()) {
                    return Err(ConfigError::Duplicate(p, n.clone()));
                }
            }
        }
        Ok(self)
    }

    /// Whether `offered` may replace `current` (the accepted or persisted one).
    pub fn check_successor(
        current: Option<&RingConfig>,
        offered: &RingConfig,
    ) -> Result<(), ConfigError> {
        let Some(cur) = current else { return Ok(()) };
        if offered.partitions != cur.partitions {
            return Err(ConfigError::PartitionCountChanged {
                offered: offered.partitions,
                current: cur.partitions,
            });
        }
        if offered.epoch < cur.epoch {
            return Err(ConfigError::Stale {
                offered: offered.epoch,
                current: cur.epoch,
            });
        }
        if offered.epoch == cur.epoch && offered != cur {
            return Err(ConfigError::Conflict(offered.epoch));
        }
        Ok(())
    }

    pub fn primary(&self, partition: u32) -> Option<&str> {
        self.replicas
            .get(partition as usize)
            .and_then(|r| r.first())
            .map(String::as_str)
    }

    pub fn role(&self, node: &str, partition: u32) -> Role {
        let p = partition as usize;
        match self.replicas.get(p) {
            Some(r) if r.first().is_some_and(|n| n == node) => Role::Primary,
            Some(r) if r.iter().any(|n| n == node) => Role::Replica,
            _ if self
                .learners
                .get(p)
                .is_some_and(|l| l.iter().any(|n| n == node)) =>
            {
                Role::Learner
            }
            _ => Role::None,
        }
    }

    /// Backups of a partition (replicas after the primary).
    pub fn backups(&self, partition: u32) -> &[String] {
        self.replicas
            .get(partition as usize)
            .map(|r| r.get(1..).unwrap_or(&[]))
            .unwrap_or(&[])
    }

    pub fn learners_of(&self, partition: u32) -> &[String] {
        self.learners
            .get(partition as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub fn addr_map(&self) -> HashMap<String, String> {
        self.members
            .iter()
            .map(|m| (m.id.clone(), m.addr.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(epoch: u64) -> RingConfig {
        RingConfig {
            epoch,
            partitions: 2,
            members: vec![
                Member {
                    id: "a".into(),
                    addr: "127.0.0.1:1".into(),
                },
                Member {
                    id: "b".into(),
                    addr: "127.0.0.1:2".into(),
                },
            ],
            replicas: vec![vec!["a".into(), "b".into()], vec!["b".into()]],
            learners: vec![],
        }
    }

    #[test]
    fn roles_and_validation() {
        let c = cfg(1).validate().unwrap();
        assert_eq!(c.role("a", 0), Role::Primary);
        assert_eq!(c.role("b", 0), Role::Replica);
        assert_eq!(c.role("a", 1), Role::None);
        assert_eq!(c.backups(0), ["b".to_string()]);
        let mut bad = cfg(1);
        bad.replicas[1] = vec!["z".into()];
        assert_eq!(
            bad.validate().unwrap_err(),
            ConfigError::UnknownNode(1, "z".into())
        );
        let mut dup = cfg(1);
        dup.learners = vec![vec!["a".into()], vec![]];
        assert_eq!(
            dup.validate().unwrap_err(),
            ConfigError::Duplicate(0, "a".into())
        );
    }

    #[test]
    fn successor_rules_fence_old_epochs() {
        let c2 = cfg(2).validate().unwrap();
        let c1 = cfg(1).validate().unwrap();
        assert!(RingConfig::check_successor(Some(&c2), &c1).is_err());
        assert!(RingConfig::check_successor(Some(&c2), &c2).is_ok());
        assert!(RingConfig::check_successor(Some(&c1), &c2).is_ok());
        let mut other = c2.clone();
        other.replicas[1] = vec!["a".into()];
        assert_eq!(
            RingConfig::check_successor(Some(&c2), &other),
            Err(ConfigError::Conflict(2))
        );
    }
}
