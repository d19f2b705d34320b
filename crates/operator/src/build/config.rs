//! The `<name>-config` ConfigMap: the session settings every process of the
//! cluster reads (store nodes and agents through envFrom, tools by name).

use super::labels::Component;
use super::{names, object, Desired, Owner};
use crate::api::{Fsync, Propagation, Strategy};
use crate::validate::effective_max_session_bytes;
use serde_json::json;
use std::collections::BTreeMap;

/// Annotation on pod templates holding `config_hash` of the ConfigMap, so a
/// settings change rolls the pods that read it through envFrom.
pub const CONFIG_HASH_ANNOTATION: &str = "sessionplane.dev/config-hash";

pub(crate) fn settings(owner: &Owner<'_>) -> BTreeMap<String, String> {
    let spec = &owner.sc.spec;
    let mut data = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        data.insert(k.to_string(), v);
    };
    put("SESSIONPLANE_CLUSTER", owner.name.to_string());
    put("SESSIONPLANE_NAMESPACE", owner.namespace.to_string());
    put("SESSIONPLANE_STRATEGY", strategy_name(spec.strategy).into());
    put(
        "SESSIONPLANE_SESSION_TTL_SECONDS",
        spec.sessions.default_ttl_seconds.to_string(),
    );
    put(
        "SESSIONPLANE_MAX_SESSION_BYTES",
        effective_max_session_bytes(spec).to_string(),
    );
    match spec.strategy {
        Strategy::Store => {
            put("SESSIONPLANE_PARTITIONS", spec.store.partitions.to_string());
            // No replication factor here: store nodes take it from each ring epoch the
            // operator pushes, and as part of the hashed settings a change of it rolled
            // every frontend and store pod in the middle of the re-replication (e2e).
            put(
                "SESSIONPLANE_PEER_SERVICE",
                names::store_headless(owner.name),
            );
            let fsync = spec
                .store
                .persistence
                .as_ref()
                .map(|p| p.fsync)
                .unwrap_or_default();
            // The store's --fsync takes the lowercase names.
            put(
                "SESSIONPLANE_FSYNC",
                match fsync {
                    Fsync::Always => "always",
                    Fsync::EverySec => "everysec",
                }
                .into(),
            );
        }
        Strategy::Sticky => {
            let sticky = spec.sticky.clone().unwrap_or_default();
            put(
                "SESSIONPLANE_REPLICATION_FACTOR",
                sticky.replication_factor.to_string(),
            );
            put("SESSIONPLANE_PEER_SERVICE", names::peers(owner.name));
        }
        Strategy::Replicated => {
            let p = spec
                .replicated
                .as_ref()
                .map(|r| r.propagation)
                .unwrap_or_default();
            put(
                "SESSIONPLANE_PROPAGATION",
                match p {
                    Propagation::Async => "Async",
                    Propagation::Sync => "Sync",
                }
                .into(),
            );
            put("SESSIONPLANE_PEER_SERVICE", names::peers(owner.name));
        }
        Strategy::Client => {
            let (interval, keys) = spec.client.as_ref().map_or((86_400, 3), |c| {
                (c.rotation_interval_seconds, c.retained_keys)
            });
            put("SESSIONPLANE_KEY_ROTATION_SECONDS", interval.to_string());
            put("SESSIONPLANE_RETAINED_KEYS", keys.to_string());
            put(
                "SESSIONPLANE_KEYRING_DIR",
                super::KEYRING_MOUNT_PATH.to_string(),
            );
        }
    }
    data
}

pub(crate) fn strategy_name(s: Strategy) -> &'static str {
    match s {
        Strategy::Store => "Store",
        Strategy::Sticky => "Sticky",
        Strategy::Replicated => "Replicated",
        Strategy::Client => "Client",
    }
}

pub(crate) fn config_map(owner: &Owner<'_>) -> Desired {
    object(
        owner,
        "v1",
        "ConfigMap",
        names::config(owner.name),
        Component::Config,
        BTreeMap::new(),
        json!({ "data": settings(owner) }),
    )
}

/// FNV-1a (64 bit) of the ConfigMap's data, as 16 hex digits. Stable across
/// runs and Rust versions, unlike `std`'s hasher.
pub fn config_hash(config: &Desired) -> String {
    let text = config.object["data"].to_string();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}
