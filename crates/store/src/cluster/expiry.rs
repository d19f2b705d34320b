//! Active TTL expiry on primaries. Replicas never expire on their own: the primary
//! replicates each delete, so replicas stay identical to it; expired entries a replica
//! still holds are treated as absent by `execute` once it becomes primary.

use super::config::Role;
use crate::node::{now_ms, Node};
use crate::value::Mutation;
use std::sync::Arc;
use std::time::Duration;

pub const EXPIRY_TICK: Duration = Duration::from_millis(100);
/// Keys deleted per partition per tick at most, so expiry never starves clients.
const PER_TICK: usize = 64;

impl Node {
    /// Runs until the node is dropped: every tick, deletes expired keys of the
    /// partitions this node is primary of (skipping partitions busy with a command).
    pub async fn expire_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(EXPIRY_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(cfg) = self.config() else { continue };
            for p in 0..cfg.partitions {
                if cfg.role(&self.id, p) != Role::Primary {
                    continue;
                }
                let Some(part) = self.partition(p) else {
                    continue;
                };
                let Ok(mut st) = part.state.try_lock() else {
                    continue;
                };
                let expired = st.expired(now_ms(), PER_TICK);
                if expired.is_empty() {
                    continue;
                }
                let n = expired.len() as u64;
                let deletes = expired
                    .into_iter()
                    .map(|key| Mutation::Delete { key })
                    .collect();
                if self.config().is_some_and(|c| c.epoch == cfg.epoch)
                    && self.commit_locked(p, &mut st, &cfg, deletes).await.is_ok()
                {
                    self.metrics.expired_keys.inc_by(n);
                }
            }
        }
    }
}
