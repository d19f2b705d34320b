//! The strategy and its per-strategy settings, and `spec.sessions`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where sessions live.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
pub enum Strategy {
    /// A sharded, replicated server-side store (Redis protocol).
    #[default]
    Store,
    /// Consistent-hash routing; each session lives next to the frontend that owns it.
    Sticky,
    /// Every frontend holds every session, kept in step by gossip.
    Replicated,
    /// Signed and encrypted cookies; the operator keeps the keyring.
    Client,
}

/// Session lifetime and size limits.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionsSpec {
    /// Lifetime of a session without activity, in seconds. Default 86400 (one day).
    #[serde(default = "default_ttl", rename = "defaultTTLSeconds")]
    #[schemars(range(min = 1, max = 31536000))]
    pub default_ttl_seconds: i64,

    /// Largest session, in bytes. Default 65536, or 4096 with strategy Client (at most 4096 there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 64, max = 16777216))]
    pub max_session_bytes: Option<i64>,
}

impl Default for SessionsSpec {
    fn default() -> Self {
        Self {
            default_ttl_seconds: default_ttl(),
            max_session_bytes: None,
        }
    }
}

fn default_ttl() -> i64 {
    86_400
}

/// Settings of strategy Client: the keyring that signs and encrypts session cookies.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientSpec {
    /// Seconds between key rotations. A new key signs new cookies; older keys
    /// still verify until they age out. Default 86400.
    #[serde(default = "default_rotation")]
    #[schemars(range(min = 300, max = 7776000))]
    pub rotation_interval_seconds: i64,

    /// How many keys the keyring holds (the current one and older ones that
    /// still verify). Default 3. Keep rotationIntervalSeconds × (retainedKeys-1)
    /// above the session TTL so no one is logged out by a rotation.
    #[serde(default = "default_retained")]
    #[schemars(range(min = 2, max = 16))]
    pub retained_keys: i32,
}

impl Default for ClientSpec {
    /// The settings of a SessionCluster that leaves `client` out.
    fn default() -> Self {
        ClientSpec {
            rotation_interval_seconds: default_rotation(),
            retained_keys: default_retained(),
        }
    }
}

fn default_rotation() -> i64 {
    86_400
}

fn default_retained() -> i32 {
    3
}

/// Settings of strategy Replicated.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicatedSpec {
    /// Async (default): a write returns at once and spreads by gossip. Sync: a
    /// write returns once every reachable peer has it (slower; stalls on a partition).
    #[serde(default)]
    pub propagation: Propagation,
}

/// How a session write spreads to the other frontends.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
pub enum Propagation {
    /// Acknowledge at once; gossip and anti-entropy converge later.
    #[default]
    Async,
    /// Acknowledge once every reachable peer has the write.
    Sync,
}

/// Settings of strategy Sticky.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StickySpec {
    /// Copies of each session: 1 (only the owning frontend; a pod that dies without
    /// warning loses its sessions) or 2 (also the next one on the ring, so a pod loss
    /// keeps the session). Default 1.
    #[serde(default = "default_sticky_rf")]
    #[schemars(range(min = 1, max = 2))]
    pub replication_factor: i32,

    /// Time a leaving frontend pod is given to hand its sessions to their new owners
    /// before it is killed: the pods' terminationGracePeriodSeconds is at least this.
    /// Default 120.
    #[serde(default = "default_handoff_grace")]
    #[schemars(range(min = 15, max = 3600))]
    pub handoff_grace_period_seconds: i64,
}

impl Default for StickySpec {
    /// The settings of a Sticky SessionCluster that leaves `sticky` out.
    fn default() -> Self {
        StickySpec {
            replication_factor: default_sticky_rf(),
            handoff_grace_period_seconds: default_handoff_grace(),
        }
    }
}

fn default_sticky_rf() -> i32 {
    1
}

fn default_handoff_grace() -> i64 {
    120
}
