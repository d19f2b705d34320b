//! The `SessionCluster` custom resource (`sessionplane.dev/v1alpha1`).
//!
//! Every field carries a doc comment because the derive turns it into the
//! schema description that `kubectl explain` prints. Rules the API server can
//! check are in the schema (OpenAPI ranges, enums, patterns and CEL
//! `x-kubernetes-validations`); `crate::validate` re-checks them and the rest
//! in Rust so a resource admitted under an older schema still gets a clear error.

mod frontend;
pub(crate) mod patterns;
mod routing;
mod status;
mod store;
mod strategy;

pub use frontend::{FrontendSpec, PodTemplate};
pub use routing::{
    AffinityMode, AffinitySpec, CookieSpec, GatewayApiSpec, HashSource, HashSpec, IngressDialect,
    IngressSpec, ParentRef, ProviderSpec, ProviderType, RoutingSpec, SameSite,
};
pub use status::{
    Condition, FrontendStatus, MigrationStatus, Phase, RingStatus, RoutingStatus,
    SessionClusterStatus, StoreStatus, CONDITION_DEGRADED, CONDITION_MIGRATING,
    CONDITION_PROGRESSING, CONDITION_READY, CONDITION_ROUTING_REMAPPED,
};
pub use store::{Fsync, PersistenceSpec, StoreSpec};
pub use strategy::{ClientSpec, Propagation, ReplicatedSpec, SessionsSpec, StickySpec, Strategy};

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// API group of every sessionplane resource.
pub const GROUP: &str = "sessionplane.dev";
/// Served and stored version of `SessionCluster`.
pub const VERSION: &str = "v1alpha1";
/// Longest `SessionCluster` name: the longest derived name, `<name>-store-headless`,
/// and the StatefulSet's `controller-revision-hash` label must stay within 63 characters.
pub const MAX_NAME_LEN: usize = 40;

/// Desired state of a SessionCluster: the frontends, how requests reach them,
/// and where their sessions live.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sessionplane.dev",
    version = "v1alpha1",
    kind = "SessionCluster",
    plural = "sessionclusters",
    namespaced,
    cel,
    status = "SessionClusterStatus",
    derive = "PartialEq",
    // Not "sc": that is StorageClass's short name, and kubectl would resolve it there.
    shortname = "scl",
    category = "sessionplane",
    category = "all",
    doc = "A SessionCluster runs replicated web frontends whose sessions stay consistent, with one of four strategies: Store, Sticky, Replicated or Client.",
    scale(
        spec_replicas_path = ".spec.frontend.replicas",
        status_replicas_path = ".status.frontend.replicas",
        label_selector_path = ".status.frontend.selector"
    ),
    printcolumn(name = "Strategy", type_ = "string", json_path = ".spec.strategy", description = "Where sessions live"),
    printcolumn(name = "Affinity", type_ = "string", json_path = ".spec.routing.affinity.mode", description = "Routing affinity mode"),
    printcolumn(name = "Frontend", type_ = "integer", json_path = ".status.frontend.readyReplicas", description = "Ready frontend pods"),
    printcolumn(name = "Store", type_ = "integer", json_path = ".status.store.readyReplicas", description = "Ready store pods"),
    printcolumn(name = "Epoch", type_ = "integer", json_path = ".status.ring.epoch", description = "Ring configuration epoch"),
    printcolumn(name = "Migration", type_ = "string", json_path = ".status.migration.progress", description = "Partition replicas moved of total, while a migration runs"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase", description = "Short summary of the state"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 40").message("metadata.name must be at most 40 characters: sessionplane names objects <name>-store-headless and so on, which must fit in 63"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter): Services are named after it"),
)]
#[x_kube(
    validation = Rule::new("!has(self.client) || self.strategy == 'Client'").message("spec.client is only allowed when spec.strategy is Client"),
    validation = Rule::new("!has(self.replicated) || self.strategy == 'Replicated'").message("spec.replicated is only allowed when spec.strategy is Replicated"),
    validation = Rule::new("!has(self.sticky) || self.strategy == 'Sticky'").message("spec.sticky is only allowed when spec.strategy is Sticky"),
    validation = Rule::new("self.strategy != 'Sticky' || self.routing.affinity.mode != 'None'").message("spec.routing.affinity.mode must be ClientIP, Cookie or Hash when spec.strategy is Sticky: sticky sessions need affinity routing"),
    validation = Rule::new("self.strategy != 'Client' || !has(self.sessions.maxSessionBytes) || self.sessions.maxSessionBytes <= 4096").message("spec.sessions.maxSessionBytes must be at most 4096 when spec.strategy is Client: browsers cap a cookie at about 4 KiB"),
    validation = Rule::new("self.strategy != 'Client' || (has(self.client) ? self.client.rotationIntervalSeconds * (self.client.retainedKeys - 1) : 172800) >= self.sessions.defaultTTLSeconds").message("spec.client.rotationIntervalSeconds × (spec.client.retainedKeys - 1) must be at least spec.sessions.defaultTTLSeconds (defaults 86400 and 3): otherwise a key rotation logs out sessions that are still valid"),
)]
#[serde(rename_all = "camelCase")]
pub struct SessionClusterSpec {
    /// Where sessions live. Store (default): a sharded, replicated server-side
    /// store reached over the Redis protocol. Sticky: consistent-hash routing, each
    /// session held next to the frontend that owns it. Replicated: every frontend
    /// holds every session, kept in step by gossip. Client: sessions in signed and
    /// encrypted cookies; the operator keeps the shared keyring.
    #[serde(default)]
    pub strategy: Strategy,

    /// The user's web frontends: replicas, pod template and port.
    pub frontend: FrontendSpec,

    /// How requests reach the frontends: the affinity mode and the provider
    /// (Gateway API, Ingress or Service) that implements it.
    #[serde(default)]
    pub routing: RoutingSpec,

    /// The session store (used by strategy Store): size, replication,
    /// partitioning and persistence.
    #[serde(default)]
    pub store: StoreSpec,

    /// Session lifetime and size limits, for every strategy.
    #[serde(default)]
    pub sessions: SessionsSpec,

    /// Settings of strategy Client (the cookie keyring). Only allowed with strategy Client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientSpec>,

    /// Settings of strategy Replicated. Only allowed with strategy Replicated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicated: Option<ReplicatedSpec>,

    /// Settings of strategy Sticky. Only allowed with strategy Sticky.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<StickySpec>,
}
