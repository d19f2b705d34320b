//! Whether a store node is down: the operator's own probes of its admin API, counted
//! over time. One missed answer (a slow GC, a dropped packet) is not a failure; a node
//! is down only after several consecutive failed probes spanning the failover window.
//!
//! The verdicts live in memory. An operator that restarts starts counting again, so a
//! failover can only come later after a restart, never sooner or from stale evidence.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a deposed primary may go on serving reads after it lost contact, once the
/// store has a read lease. The store has none yet (TODO(read-lease): set this to the
/// store's lease once it lands, so that no failover makes a new primary while the old
/// one may still answer reads from its lease); the window below is already longer than
/// any lease the store is expected to use.
pub const STORE_READ_LEASE: Option<Duration> = None;
/// Clock drift and scheduling slack added to the lease.
pub const LEASE_MARGIN: Duration = Duration::from_secs(1);

/// When the operator declares a store node down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailoverPolicy {
    /// How often every store node is probed (`GET /healthz` on the admin port).
    pub probe_interval: Duration,
    /// Consecutive failed probes needed.
    pub failed_probes: u32,
    /// And for at least this long since the first of them.
    pub after: Duration,
}

impl Default for FailoverPolicy {
    fn default() -> Self {
        FailoverPolicy {
            probe_interval: Duration::from_secs(1),
            failed_probes: 5,
            after: Duration::from_secs(8),
        }
    }
}

impl FailoverPolicy {
    /// The time a node must stay silent: `after`, and never less than the store's read
    /// lease plus a margin (a deposed primary must have stopped serving first).
    pub fn window(&self) -> Duration {
        match STORE_READ_LEASE {
            Some(lease) => self.after.max(lease + LEASE_MARGIN),
            None => self.after,
        }
    }
}

/// What one probe changed, for logs and for waking the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    /// First failed probe after answers.
    Suspect,
    /// The failure now meets the policy.
    Down,
    /// Answered after failing.
    Recovered,
}

/// Probe history of one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeHealth {
    failures: u32,
    failing_since: Option<Instant>,
    down: bool,
}

impl NodeHealth {
    /// Records one probe at `now`.
    pub fn record(&mut self, answered: bool, now: Instant, policy: &FailoverPolicy) -> Change {
        if answered {
            let was_failing = self.failures > 0;
            *self = NodeHealth::default();
            return if was_failing {
                Change::Recovered
            } else {
                Change::None
            };
        }
        self.failures = self.failures.saturating_add(1);
        let since = *self.failing_since.get_or_insert(now);
        let down = self.failures >= policy.failed_probes.max(1)
            && now.saturating_duration_since(since) >= policy.window();
        let became_down = down && !self.down;
        self.down = down;
        if became_down {
            Change::Down
        } else if self.failures == 1 {
            Change::Suspect
        } else {
            Change::None
        }
    }

    pub fn is_down(&self) -> bool {
        self.down
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// Probe state of one SessionCluster's store nodes.
#[derive(Debug, Clone, Default)]
pub struct ClusterHealth {
    /// Admin address by node id, as of the last ring sync (pods with an IP).
    pub admin: BTreeMap<String, String>,
    /// Nodes to probe: the ring's members and the wanted pods.
    pub ids: Vec<String>,
    pub nodes: BTreeMap<String, NodeHealth>,
}

/// A node to probe: its id and admin address (None: its pod has no IP).
pub type Target = (String, Option<String>);

/// Probe state of every SessionCluster, shared by the prober and the reconciles.
#[derive(Debug, Default)]
pub struct HealthBook {
    clusters: Mutex<BTreeMap<String, ClusterHealth>>,
}

impl HealthBook {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ClusterHealth>> {
        self.clusters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What to probe for `cluster` from now on.
    pub fn track(&self, cluster: &str, ids: Vec<String>, admin: BTreeMap<String, String>) {
        let mut clusters = self.lock();
        let entry = clusters.entry(cluster.to_string()).or_default();
        entry.nodes.retain(|id, _| ids.contains(id));
        entry.ids = ids;
        entry.admin = admin;
    }

    /// Forgets a cluster (deleted, or no longer a Store cluster).
    pub fn forget(&self, cluster: &str) {
        self.lock().remove(cluster);
    }

    /// Every tracked cluster with its nodes' admin addresses (None: no address).
    pub fn targets(&self) -> Vec<(String, Vec<Target>)> {
        self.lock()
            .iter()
            .map(|(cluster, h)| {
                let nodes = h
                    .ids
                    .iter()
                    .map(|id| (id.clone(), h.admin.get(id).cloned()))
                    .collect();
                (cluster.clone(), nodes)
            })
            .collect()
    }

    /// Records one probe of `node` in `cluster`.
    pub fn record(
        &self,
        cluster: &str,
        node: &str,
        answered: bool,
        now: Instant,
        policy: &FailoverPolicy,
    ) -> Change {
        let mut clusters = self.lock();
        let entry = clusters.entry(cluster.to_string()).or_default();
        entry
            .nodes
            .entry(node.to_string())
            .or_default()
            .record(answered, now, policy)
    }

    pub fn is_down(&self, cluster: &str, node: &str) -> bool {
        self.lock()
            .get(cluster)
            .and_then(|c| c.nodes.get(node))
            .is_some_and(NodeHealth::is_down)
    }

    /// Nodes of `cluster` that failed their last probe, with the count of failures.
    pub fn suspects(&self, cluster: &str) -> Vec<(String, u32)> {
        self.lock()
            .get(cluster)
            .map(|c| {
                c.nodes
                    .iter()
                    .filter(|(_, h)| h.failures > 0)
                    .map(|(id, h)| (id.clone(), h.failures))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> FailoverPolicy {
        FailoverPolicy {
            probe_interval: Duration::from_secs(1),
            failed_probes: 3,
            after: Duration::from_secs(5),
        }
    }

    #[test]
    fn down_needs_both_the_count_and_the_time() {
        let p = policy();
        let t0 = Instant::now();
        let mut h = NodeHealth::default();
        assert_eq!(h.record(false, t0, &p), Change::Suspect);
        // Many failures in a burst are not enough: the window has not passed.
        for i in 1..10 {
            assert_eq!(
                h.record(false, t0 + Duration::from_millis(i * 10), &p),
                Change::None
            );
        }
        assert!(!h.is_down());
        // The window passed but this is the first failure since an answer: not enough.
        let mut slow = NodeHealth::default();
        slow.record(false, t0, &p);
        assert_eq!(
            slow.record(true, t0 + Duration::from_secs(4), &p),
            Change::Recovered
        );
        assert_eq!(
            slow.record(false, t0 + Duration::from_secs(6), &p),
            Change::Suspect
        );
        assert!(!slow.is_down());
        // Both hold: down, reported once.
        assert_eq!(
            h.record(false, t0 + Duration::from_secs(5), &p),
            Change::Down
        );
        assert!(h.is_down());
        assert_eq!(
            h.record(false, t0 + Duration::from_secs(6), &p),
            Change::None
        );
        assert!(h.is_down());
        // One answer clears it.
        assert_eq!(
            h.record(true, t0 + Duration::from_secs(7), &p),
            Change::Recovered
        );
        assert!(!h.is_down());
        assert_eq!(h.failures(), 0);
    }

    #[test]
    fn the_window_never_undercuts_the_read_lease() {
        let p = FailoverPolicy {
            after: Duration::ZERO,
            ..policy()
        };
        let floor = STORE_READ_LEASE.map_or(Duration::ZERO, |l| l + LEASE_MARGIN);
        assert!(p.window() >= floor);
        assert!(policy().window() >= policy().after);
    }

    #[test]
    fn the_book_tracks_clusters_and_forgets_nodes_no_longer_listed() {
        let book = HealthBook::default();
        let p = policy();
        let t0 = Instant::now();
        book.track(
            "ns/a",
            vec!["a-0".into(), "a-1".into()],
            BTreeMap::from([("a-0".into(), "10.0.0.1:9379".into())]),
        );
        for i in 0..3 {
            book.record("ns/a", "a-1", false, t0 + Duration::from_secs(3 * i), &p);
        }
        assert!(book.is_down("ns/a", "a-1"));
        assert!(!book.is_down("ns/a", "a-0"));
        assert_eq!(book.suspects("ns/a"), vec![("a-1".to_string(), 3)]);
        let targets = book.targets();
        assert_eq!(
            targets[0].1,
            vec![
                ("a-0".to_string(), Some("10.0.0.1:9379".to_string())),
                ("a-1".to_string(), None)
            ]
        );
        book.track("ns/a", vec!["a-0".into()], BTreeMap::new());
        assert!(!book.is_down("ns/a", "a-1"));
        book.forget("ns/a");
        assert!(book.targets().is_empty());
    }
}
