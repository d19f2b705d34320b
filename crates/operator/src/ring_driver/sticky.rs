//! Strategy Sticky: the ring is placed over the frontend pods, whose agent sidecars are
//! the nodes. Deployment pods have no stable DNS names, so a node is reached at its pod
//! IP; a pod never comes back under the same name, so one that is terminating is leaving
//! for good: it is no longer wanted (the ring moves its partitions away) but is still asked
//! for its status and pushed epochs until it holds nothing.

use super::pod_ip;
use super::state::RingState;
use crate::build::{ADMIN_PORT, PEER_PORT};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use std::collections::{BTreeMap, BTreeSet};

/// Partitions of a Sticky ring. Fixed: the store engine cannot change the count of a
/// placed ring. Enough for bounded load over a few dozen frontends, and few enough that a
/// handoff moves them in one short step.
pub const PARTITIONS: u32 = 128;

/// Which pods the ring wants as members (id → peer address), and the admin address of
/// every pod that may still answer (id → address), terminating ones included.
pub fn members(pods: &[Pod]) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut want = BTreeMap::new();
    let mut admin = BTreeMap::new();
    for pod in pods {
        let finished = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|phase| phase == "Succeeded" || phase == "Failed");
        let Some(ip) = pod_ip(pod).filter(|_| !finished) else {
            continue;
        };
        let id = pod.name_any();
        admin.insert(id.clone(), format!("{ip}:{ADMIN_PORT}"));
        if pod.metadata.deletion_timestamp.is_none() {
            want.insert(id, format!("{ip}:{PEER_PORT}"));
        }
    }
    (want, admin)
}

/// Gives up the partitions whose only holder is gone for good. After a failover, a
/// partition no surviving replica was proven to hold waits for its failed primary (a
/// store pod comes back under its name, with its disk). A frontend pod that is no longer
/// in the API never comes back: its agent was killed without a handoff (node loss, a
/// forced deletion), and with replication factor 1 its sessions went with it. Each such
/// partition gets a surviving replica as primary if one is listed, else a serving node,
/// and starts again from what that node holds (nothing): the sessions are lost, the ring
/// serves again. None when no partition waits for a gone node, or nobody is left.
/// Returns the partitions given up.
pub fn abandon_gone(
    state: &RingState,
    present: &BTreeSet<String>,
) -> Option<(RingState, Vec<u32>)> {
    let gone = |id: &str| !present.contains(id);
    let lost: Vec<u32> = state
        .unavailable()
        .into_iter()
        .filter(|p| {
            state
                .replicas
                .get(*p as usize)
                .and_then(|r| r.first())
                .is_some_and(|primary| gone(primary))
        })
        .collect();
    if lost.is_empty() {
        return None;
    }
    let heirs: Vec<String> = state
        .serving()
        .into_iter()
        .filter(|id| !gone(id) && !state.failed.contains(id))
        .collect();
    if heirs.is_empty() {
        return None;
    }
    let mut next = state.clone();
    for (i, p) in lost.iter().enumerate() {
        let p = *p as usize;
        let Some(reps) = next.replicas.get_mut(p) else {
            continue;
        };
        reps.retain(|id| !gone(id));
        if reps.is_empty() {
            // A learner of the partition keeps what it copied before its source went.
            let learner = state
                .learners
                .get(p)
                .into_iter()
                .flatten()
                .find(|id| heirs.contains(id));
            reps.push(learner.unwrap_or(&heirs[i % heirs.len()]).clone());
        }
    }
    // A move in flight was planned around the gone pods (a pod deleted with force while it
    // handed off): start over from the ring as it now stands, as a failover that involves
    // a dead node does, and let the next decision plan the move again. Keeping it would
    // name an heir as both primary and learner, which every node refuses.
    next.target = None;
    next.learners = Vec::new();
    next.draining.retain(|id| !gone(id));
    let named: BTreeSet<String> = next
        .replicas
        .iter()
        .chain(&next.learners)
        .flatten()
        .cloned()
        .collect();
    next.members.retain(|id, _| !gone(id) || named.contains(id));
    next.failed.retain(|id| !gone(id));
    next.epoch += 1;
    Some((next, lost))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn pod(name: &str, ip: Option<&str>, phase: &str, terminating: bool) -> Pod {
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {"phase": phase, "podIP": ip},
        }))
        .expect("pod");
        if terminating {
            p.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        }
        p
    }

    #[test]
    fn running_pods_with_an_ip_are_wanted_at_their_ip() {
        let (want, admin) = members(&[
            pod("web-a", Some("10.0.0.1"), "Running", false),
            pod("web-b", Some("10.0.0.2"), "Pending", false),
        ]);
        assert_eq!(
            want,
            BTreeMap::from([
                ("web-a".into(), format!("10.0.0.1:{PEER_PORT}")),
                ("web-b".into(), format!("10.0.0.2:{PEER_PORT}")),
            ])
        );
        assert_eq!(admin["web-a"], format!("10.0.0.1:{ADMIN_PORT}"));
    }

    #[test]
    fn a_terminating_pod_is_leaving_but_still_asked() {
        let (want, admin) = members(&[
            pod("web-a", Some("10.0.0.1"), "Running", true),
            pod("web-b", Some("10.0.0.2"), "Running", false),
        ]);
        assert!(!want.contains_key("web-a"));
        assert!(want.contains_key("web-b"));
        assert_eq!(admin["web-a"], format!("10.0.0.1:{ADMIN_PORT}"));
    }

    #[test]
    fn pods_without_an_ip_or_finished_are_not_nodes() {
        let (want, admin) = members(&[
            pod("web-a", None, "Pending", false),
            pod("web-b", Some("10.0.0.2"), "Failed", false),
            pod("web-c", Some("10.0.0.3"), "Succeeded", false),
            pod("web-d", Some(""), "Pending", false),
        ]);
        assert!(want.is_empty());
        assert!(admin.is_empty());
    }

    fn ring(replicas: Vec<Vec<&str>>, failed: &[&str]) -> RingState {
        let ids: BTreeSet<&str> = replicas.iter().flatten().copied().collect();
        RingState {
            epoch: 7,
            partitions: u32::try_from(replicas.len()).expect("few"),
            replication_factor: 1,
            members: ids
                .iter()
                .map(|id| (id.to_string(), format!("{id}:7379")))
                .collect(),
            replicas: replicas
                .into_iter()
                .map(|r| r.into_iter().map(String::from).collect())
                .collect(),
            learners: Vec::new(),
            target: None,
            draining: Vec::new(),
            failed: failed.iter().map(|s| s.to_string()).collect(),
            decided_at: None,
        }
    }

    fn present(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn partitions_waiting_for_a_gone_pod_are_given_to_survivors() {
        let state = ring(vec![vec!["a"], vec!["b"], vec!["a"], vec!["c"]], &["a"]);
        let (next, lost) = abandon_gone(&state, &present(&["b", "c"])).expect("gives up");
        assert_eq!(lost, vec![0, 2]);
        assert_eq!(next.epoch, 8);
        assert!(!next.members.contains_key("a"));
        assert!(next.failed.is_empty());
        assert_eq!(next.replicas[1], vec!["b"]);
        assert_eq!(next.replicas[3], vec!["c"]);
        // Spread over the survivors, deterministically.
        assert_eq!(next.replicas[0], vec!["b"]);
        assert_eq!(next.replicas[2], vec!["c"]);
    }

    #[test]
    fn an_unproven_replica_left_is_better_than_nothing() {
        let state = ring(vec![vec!["a", "b"], vec!["b", "c"]], &["a"]);
        let (next, lost) = abandon_gone(&state, &present(&["b", "c"])).expect("gives up");
        assert_eq!(lost, vec![0]);
        assert_eq!(next.replicas[0], vec!["b"]);
    }

    /// The end-to-end comparison found this: a pod force-deleted while its handoff had
    /// started (learners copying its partitions, a target placed) left the ring at an
    /// epoch every node refused ("partition 2 names node … twice") for minutes.
    #[test]
    fn a_pod_gone_during_its_handoff_restarts_the_move_without_naming_a_node_twice() {
        let mut state = ring(vec![vec!["a"], vec!["b"], vec!["a"], vec!["c"]], &["a"]);
        state.learners = vec![vec!["b".into()], vec![], vec!["c".into()], vec![]];
        state.target = Some(vec![
            vec!["b".into()],
            vec!["b".into()],
            vec!["c".into()],
            vec!["c".into()],
        ]);
        state.draining = vec!["a".into()];
        let (next, lost) = abandon_gone(&state, &present(&["b", "c"])).expect("gives up");
        assert_eq!(lost, vec![0, 2]);
        // The learners inherit what they copied.
        assert_eq!(next.replicas[0], vec!["b"]);
        assert_eq!(next.replicas[2], vec!["c"]);
        assert!(next.learners.iter().all(Vec::is_empty));
        assert_eq!(next.target, None);
        assert!(next.draining.is_empty());
        for (p, reps) in next.replicas.iter().enumerate() {
            let learners = next.learners.get(p).cloned().unwrap_or_default();
            let all: Vec<&String> = reps.iter().chain(&learners).collect();
            let unique: BTreeSet<&String> = all.iter().copied().collect();
            assert_eq!(all.len(), unique.len(), "partition {p} names a node twice");
            assert!(all.iter().all(|id| next.members.contains_key(*id)));
        }
    }

    #[test]
    fn a_failed_pod_that_still_exists_is_waited_for() {
        // Its agent may restart in the same pod, with its emptyDir and its sessions.
        let state = ring(vec![vec!["a"], vec!["b"]], &["a"]);
        assert_eq!(abandon_gone(&state, &present(&["a", "b"])), None);
    }

    #[test]
    fn nothing_to_give_up_without_a_failed_primary_or_a_survivor() {
        let healthy = ring(vec![vec!["a"], vec!["b"]], &[]);
        assert_eq!(abandon_gone(&healthy, &present(&["b"])), None);
        let alone = ring(vec![vec!["a"], vec!["a"]], &["a"]);
        assert_eq!(abandon_gone(&alone, &present(&[])), None);
    }
}
