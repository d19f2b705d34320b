//! `status`: what the operator observed. Deterministic (counts, epochs, no
//! per-pass timestamps) so that writing it never triggers another reconcile.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition type: every owned workload is ready and the spec is applied.
pub const CONDITION_READY: &str = "Ready";
/// Condition type: a change is being rolled out.
pub const CONDITION_PROGRESSING: &str = "Progressing";
/// Condition type: something is wrong (invalid spec, failed apply, pods not ready for long).
pub const CONDITION_DEGRADED: &str = "Degraded";
/// Condition type: partitions are moving between store nodes.
pub const CONDITION_MIGRATING: &str = "Migrating";
/// Condition type: the last change of spec.routing sent users with affinity to other
/// frontends (True, with what happens to their sessions) or kept them (False).
pub const CONDITION_ROUTING_REMAPPED: &str = "RoutingRemapped";

/// Observed state of a SessionCluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionClusterStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, Progressing, Degraded, Migrating and RoutingRemapped, one entry per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Desired and ready frontend pods, and their label selector (for the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontend: Option<FrontendStatus>,

    /// Desired and ready store pods (strategy Store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreStatus>,

    /// The ring configuration the store nodes follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring: Option<RingStatus>,

    /// Short summary: Pending, Progressing, Ready, Degraded, Migrating or Invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// Progress of a partition migration, while one runs. Kept here so an
    /// operator restart resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationStatus>,

    /// The routing placement last applied, remembered so that a change of provider or
    /// affinity key is recognised as remapping users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<RoutingStatus>,
}

/// Which proxy places users on frontends, and by what.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoutingStatus {
    /// Service, Ingress/<dialect> or GatewayAPI.
    #[serde(default)]
    pub provider: String,

    /// None, ClientIP, Cookie or Hash.
    #[serde(default)]
    pub affinity: String,

    /// What the placement is keyed on (for example "header X-User"); empty for None.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
}

/// One condition, in the shape of metav1.Condition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Ready, Progressing, Degraded or Migrating.
    #[serde(rename = "type")]
    pub type_: String,

    /// True, False or Unknown.
    pub status: String,

    /// One CamelCase word saying why (for example StoreNotReady).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,

    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,

    /// When status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,

    /// The metadata.generation the condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Frontend pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FrontendStatus {
    /// Pods the frontend Deployment has (status.replicas).
    #[serde(default)]
    pub replicas: i32,

    /// Pods that are ready.
    #[serde(default)]
    pub ready_replicas: i32,

    /// Label selector of the frontend pods, as a string (for the scale subresource and HPAs).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
}

/// Store pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreStatus {
    /// Pods the store StatefulSet has.
    #[serde(default)]
    pub replicas: i32,

    /// Pods that are ready.
    #[serde(default)]
    pub ready_replicas: i32,
}

/// The ring configuration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RingStatus {
    /// Epoch of the configuration in force; every change makes a new one.
    #[serde(default)]
    pub epoch: i64,

    /// Nodes in the ring, by pod name: store pods (Store) or frontend pods (Sticky).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,

    /// Store nodes a failover removed because they stopped answering; they rejoin as
    /// learners when they answer again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,

    /// Partitions nobody serves: their failed primary was the only replica proven to
    /// hold every acknowledged write, so they wait for it to come back.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unavailable_partitions: i32,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// Short summary of the state: Pending, Progressing, Ready, Degraded,
/// Migrating or Invalid (the spec is invalid; see the Degraded condition).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Phase {
    /// Accepted, nothing created yet.
    Pending,
    /// Objects created or changed, workloads not all ready.
    Progressing,
    /// Everything ready.
    Ready,
    /// Something failed; see the Degraded condition.
    Degraded,
    /// Partitions are moving between store nodes.
    Migrating,
    /// The spec is invalid; see the Degraded condition's message.
    Invalid,
}

/// Progress of a partition migration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationStatus {
    /// Epoch the migration leads to.
    #[serde(default)]
    pub target_epoch: i64,

    /// Partition replicas whose new owner caught up so far.
    #[serde(default)]
    pub partitions_moved: i32,

    /// Partition replicas to move in all.
    #[serde(default)]
    pub partitions_total: i32,

    /// partitionsMoved/partitionsTotal, for the printer column.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub progress: String,

    /// Sessions copied so far.
    #[serde(default)]
    pub sessions_moved: i64,

    /// Sessions to copy in all (as the copying primaries counted them).
    #[serde(default)]
    pub sessions_total: i64,

    /// Bytes copied so far.
    #[serde(default)]
    pub bytes_moved: i64,

    /// Estimated seconds left, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<i64>,
}
