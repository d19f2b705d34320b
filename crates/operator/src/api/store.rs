//! `spec.store`: the sharded, replicated session store of strategy Store.

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Default number of partitions the keyspace is split into.
pub const DEFAULT_PARTITIONS: i32 = 1024;

/// The session store: a StatefulSet of store nodes speaking the Redis protocol.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(
    validation = Rule::new("self.replicationFactor <= self.replicas").message("spec.store.replicationFactor must be at most spec.store.replicas: each replica of a partition needs its own node"),
    validation = Rule::new("has(self.persistence) == has(oldSelf.persistence)").message("spec.store.persistence cannot be added or removed after creation: StatefulSet volumeClaimTemplates are immutable"),
)]
#[serde(rename_all = "camelCase")]
pub struct StoreSpec {
    /// Number of store nodes (StatefulSet replicas).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 256))]
    pub replicas: i32,

    /// Copies of each partition, on distinct nodes (and zones when nodes carry
    /// zone labels). At most replicas. A partition survives replicationFactor-1 node losses.
    #[serde(default = "default_replication_factor")]
    #[schemars(range(min = 1, max = 5))]
    pub replication_factor: i32,

    /// Number of partitions the keyspace is split into; partitions, not keys,
    /// move between nodes. Immutable once set.
    #[serde(default = "default_partitions")]
    #[schemars(range(min = 16, max = 16384))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.store.partitions is immutable"))]
    pub partitions: i32,

    /// Durable storage of each node. Unset: sessions are kept in memory only
    /// (an emptyDir), and a node restart relies on the other replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<PersistenceSpec>,

    /// CPU and memory requests and limits of each store container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Store image. Default: the operator's own image (one binary, subcommand store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// Seconds a command may spend in the store, retries through a ring change or a
    /// lost node included, before its client gets a TRYAGAIN error. Keep it below the
    /// frontends' own request timeouts: a write the store still retried after the
    /// frontend had given up would land after the user's next request, over it. Raise
    /// it to have writes wait out a crashed node's failover (about 8 s) instead.
    #[serde(default = "default_command_timeout_seconds")]
    #[schemars(range(min = 1, max = 600))]
    pub command_timeout_seconds: i32,
}

impl Default for StoreSpec {
    fn default() -> Self {
        Self {
            replicas: default_replicas(),
            replication_factor: default_replication_factor(),
            partitions: default_partitions(),
            persistence: None,
            resources: None,
            image: None,
            command_timeout_seconds: default_command_timeout_seconds(),
        }
    }
}

fn default_command_timeout_seconds() -> i32 {
    4
}

fn default_replicas() -> i32 {
    3
}

fn default_replication_factor() -> i32 {
    2
}

fn default_partitions() -> i32 {
    DEFAULT_PARTITIONS
}

/// Durable storage of each store node: one PersistentVolumeClaim per node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(
    validation = Rule::new("self.size == oldSelf.size").message("spec.store.persistence.size is immutable: StatefulSet volumeClaimTemplates cannot change"),
    validation = Rule::new("has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)").message("spec.store.persistence.storageClassName is immutable: StatefulSet volumeClaimTemplates cannot change"),
)]
#[serde(rename_all = "camelCase")]
pub struct PersistenceSpec {
    /// Volume size of each node, as a Kubernetes quantity (for example 1Gi).
    #[schemars(length(min = 1, max = 32), regex(pattern = super::patterns::SIZE_QUANTITY))]
    pub size: String,

    /// StorageClass of the volumes. Unset: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = super::patterns::DNS1123_SUBDOMAIN))]
    pub storage_class_name: Option<String>,

    /// When a write reaches the disk: Always (before the reply; slowest, loses
    /// nothing) or EverySec (default; at most about one second of writes lost on
    /// a power failure, replicas cover a single node).
    #[serde(default)]
    pub fsync: Fsync,
}

/// The fsync policy of the store's log.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
pub enum Fsync {
    /// fsync before each write is acknowledged.
    Always,
    /// fsync once per second.
    #[default]
    EverySec,
}
