//! Pure status computation: from the observed workloads (and what went wrong, if anything)
//! to the phase and the `Ready` / `Progressing` / `Degraded` conditions.
//!
//! Deterministic on purpose: the same inputs give the same output, and a condition's
//! `lastTransitionTime` only moves when its `status` changes, so writing the status never
//! triggers another reconcile that would write it again.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{Condition, Phase, CONDITION_MIGRATING, CONDITION_ROUTING_REMAPPED};
use crate::routing_change::Change;
use serde_json::Value;

pub use crate::api::{
    CONDITION_DEGRADED as DEGRADED, CONDITION_PROGRESSING as PROGRESSING, CONDITION_READY as READY,
};

/// What a workload is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Frontend,
    Store,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Frontend => "frontend",
            Role::Store => "store",
        }
    }
}

/// The readiness of one owned Deployment or StatefulSet, as its own controller reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub role: Role,
    pub name: String,
    pub desired: i32,
    pub ready: i32,
    pub updated: i32,
    /// The workload controller has seen the latest spec (`status.observedGeneration >= metadata.generation`).
    pub observed_current: bool,
    /// A failure the workload controller reported (progress deadline exceeded, replica failure).
    pub failure: Option<String>,
}

impl Workload {
    /// Reads a Deployment's or StatefulSet's readiness from its JSON form.
    pub fn from_object(role: Role, obj: &Value) -> Workload {
        let int = |v: &Value| v.as_i64().and_then(|n| i32::try_from(n).ok());
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let desired = int(&obj["spec"]["replicas"]).unwrap_or(1);
        let status = &obj["status"];
        let ready = int(&status["readyReplicas"]).unwrap_or(0);
        let updated = int(&status["updatedReplicas"]).unwrap_or(0);
        let generation = obj["metadata"]["generation"].as_i64().unwrap_or(0);
        let observed = status["observedGeneration"].as_i64().unwrap_or(0);
        let failure = status["conditions"].as_array().and_then(|cs| {
            cs.iter().find_map(|c| {
                let kind = c["type"].as_str().unwrap_or_default();
                let state = c["status"].as_str().unwrap_or_default();
                let reason = c["reason"].as_str().unwrap_or_default();
                let failed = (kind == "Progressing"
                    && state == "False"
                    && reason == "ProgressDeadlineExceeded")
                    || (kind == "ReplicaFailure" && state == "True");
                failed.then(|| {
                    let msg = c["message"].as_str().unwrap_or(reason);
                    format!("{} {name}: {msg}", role.name())
                })
            })
        });
        Workload {
            role,
            name,
            desired,
            ready,
            updated,
            observed_current: observed >= generation && generation > 0,
            failure,
        }
    }

    fn is_ready(&self) -> bool {
        self.observed_current && self.ready >= self.desired && self.updated >= self.desired
    }
}

/// What this reconcile learned.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub generation: i64,
    pub workloads: Vec<Workload>,
    /// The spec failed validation, with the message for the user.
    pub invalid: Option<String>,
    /// The reconcile failed: (reason, message).
    pub failure: Option<(String, String)>,
    /// Where the ring stands (strategies Store and Sticky).
    pub ring: Option<RingObservation>,
}

/// The ring driver's account, as far as conditions need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RingObservation {
    pub epoch: u64,
    /// Partitions are moving (learners copying, or nodes draining).
    pub migrating: bool,
    /// Why the ring is not steady, when it is not.
    pub waiting: Option<String>,
}

/// The computed phase and conditions.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub phase: Phase,
    pub conditions: Vec<Condition>,
}

/// Counts for one role: (ready, desired), summed over its workloads.
pub fn counts(workloads: &[Workload], role: Role) -> (i32, i32) {
    workloads
        .iter()
        .filter(|w| w.role == role)
        .fold((0, 0), |(r, d), w| {
            (
                r.saturating_add(w.ready.min(w.desired)),
                d.saturating_add(w.desired),
            )
        })
}

/// Computes the phase and conditions; `previous` are the conditions currently in the status.
pub fn summarize(obs: &Observation, previous: &[Condition], now: &Time) -> Summary {
    let gen = Some(obs.generation);
    let cond = |type_: &str, status: bool, reason: &str, message: String| {
        transition(previous, type_, status, reason, message, gen, now)
    };

    if let Some(msg) = &obs.invalid {
        return Summary {
            phase: Phase::Invalid,
            conditions: vec![
                cond(
                    READY,
                    false,
                    "Invalid",
                    "the spec is invalid; nothing was applied".into(),
                ),
                cond(
                    PROGRESSING,
                    false,
                    "Invalid",
                    "waiting for a valid spec".into(),
                ),
                cond(DEGRADED, true, "Invalid", msg.clone()),
            ],
        };
    }

    let ring_steady = obs
        .ring
        .as_ref()
        .is_none_or(|r| r.waiting.is_none() && r.epoch > 0);
    let all_ready = obs.workloads.iter().all(Workload::is_ready) && ring_steady;
    let readiness = match obs.ring.as_ref().and_then(|r| r.waiting.as_ref()) {
        Some(why) => format!("{}; ring: {why}", readiness_message(&obs.workloads)),
        None => readiness_message(&obs.workloads),
    };
    let workload_failure = obs.workloads.iter().find_map(|w| w.failure.clone());
    let degraded = match (&obs.failure, &workload_failure) {
        (Some((reason, msg)), _) => Some((reason.clone(), msg.clone())),
        (None, Some(msg)) => Some(("WorkloadFailed".to_owned(), msg.clone())),
        (None, None) => None,
    };

    let ready = if all_ready && degraded.is_none() {
        cond(READY, true, "AllReplicasReady", readiness.clone())
    } else {
        cond(READY, false, "ReplicasNotReady", readiness.clone())
    };
    let progressing = if all_ready {
        cond(
            PROGRESSING,
            false,
            "Stable",
            "all workloads are up to date".into(),
        )
    } else {
        cond(
            PROGRESSING,
            true,
            "RollingOut",
            format!("waiting for replicas: {readiness}"),
        )
    };
    let degraded_cond = match &degraded {
        Some((reason, msg)) => cond(DEGRADED, true, reason, msg.clone()),
        None => cond(DEGRADED, false, "AsExpected", "no failures".into()),
    };

    let any_ready = obs.workloads.iter().any(|w| w.ready > 0);
    let migrating = obs.ring.as_ref().is_some_and(|r| r.migrating);
    let phase = if degraded.is_some() {
        Phase::Degraded
    } else if migrating {
        Phase::Migrating
    } else if all_ready {
        Phase::Ready
    } else if any_ready {
        Phase::Progressing
    } else {
        Phase::Pending
    };
    let mut conditions = vec![ready, progressing, degraded_cond];
    if let Some(ring) = &obs.ring {
        conditions.push(if ring.migrating {
            cond(
                CONDITION_MIGRATING,
                true,
                "PartitionsMoving",
                ring.waiting
                    .clone()
                    .unwrap_or_else(|| format!("moving partitions (epoch {})", ring.epoch)),
            )
        } else {
            cond(
                CONDITION_MIGRATING,
                false,
                "Settled",
                format!("ring epoch {}: no partition is moving", ring.epoch),
            )
        });
    }
    Summary { phase, conditions }
}

/// The status after a failed reconcile: `Degraded` with the error, `Ready` false, and
/// `Progressing` as it was (the workloads were not observed this time).
pub fn failed(
    previous: &[Condition],
    generation: i64,
    reason: &str,
    message: &str,
    now: &Time,
) -> Summary {
    let gen = Some(generation);
    let progressing = previous
        .iter()
        .find(|c| c.type_ == PROGRESSING)
        .cloned()
        .unwrap_or_else(|| {
            transition(
                previous,
                PROGRESSING,
                true,
                "Reconciling",
                "reconcile in progress".into(),
                gen,
                now,
            )
        });
    Summary {
        phase: Phase::Degraded,
        conditions: vec![
            transition(
                previous,
                READY,
                false,
                "ReconcileFailed",
                "see the Degraded condition".into(),
                gen,
                now,
            ),
            progressing,
            transition(
                previous,
                DEGRADED,
                true,
                reason,
                message.to_owned(),
                gen,
                now,
            ),
        ],
    }
}

/// The RoutingRemapped condition after comparing the remembered routing with the spec's:
/// set by a change (True when it remapped users), carried over while nothing changes.
pub fn routing_remapped(
    previous: &[Condition],
    change: &Change,
    generation: i64,
    now: &Time,
) -> Option<Condition> {
    let cond = |status: bool, reason: &str, message: &str| {
        transition(
            previous,
            CONDITION_ROUTING_REMAPPED,
            status,
            reason,
            message.to_owned(),
            Some(generation),
            now,
        )
    };
    match change {
        Change::First | Change::Unchanged => previous
            .iter()
            .find(|c| c.type_ == CONDITION_ROUTING_REMAPPED)
            .cloned(),
        Change::Harmless { message } => Some(cond(false, "NoPlacementLost", message)),
        Change::Remapped { reason, message } => Some(cond(true, reason.label(), message)),
    }
}

/// "frontend 0/3 ready, store 2/3 ready"
fn readiness_message(workloads: &[Workload]) -> String {
    let mut parts = Vec::new();
    for role in [Role::Frontend, Role::Store] {
        if workloads.iter().any(|w| w.role == role) {
            let (r, d) = counts(workloads, role);
            parts.push(format!("{} {r}/{d} ready", role.name()));
        }
    }
    if parts.is_empty() {
        "no workloads".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Builds a condition, keeping the previous `lastTransitionTime` when `status` is unchanged.
fn transition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    observed_generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if status { "True" } else { "False" };
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .or_else(|| Some(now.clone()));
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation,
        last_transition_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn wl(role: Role, desired: i32, ready: i32) -> Workload {
        Workload {
            role,
            name: format!("{role:?}"),
            desired,
            ready,
            updated: desired,
            observed_current: true,
            failure: None,
        }
    }

    fn find<'a>(s: &'a Summary, type_: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn nothing_ready_is_pending_with_counts_in_the_message() {
        let obs = Observation {
            generation: 4,
            workloads: vec![wl(Role::Frontend, 3, 0), wl(Role::Store, 3, 0)],
            ..Default::default()
        };
        let s = summarize(&obs, &[], &t(100));
        assert_eq!(s.phase, Phase::Pending);
        let ready = find(&s, READY);
        assert_eq!(ready.status, "False");
        assert_eq!(ready.message, "frontend 0/3 ready, store 0/3 ready");
        assert_eq!(ready.observed_generation, Some(4));
        assert_eq!(find(&s, PROGRESSING).status, "True");
        assert_eq!(find(&s, DEGRADED).status, "False");
    }

    #[test]
    fn partly_ready_is_progressing_and_all_ready_is_ready() {
        let mut obs = Observation {
            generation: 1,
            workloads: vec![wl(Role::Frontend, 3, 1)],
            ..Default::default()
        };
        assert_eq!(summarize(&obs, &[], &t(1)).phase, Phase::Progressing);
        obs.workloads = vec![wl(Role::Frontend, 3, 3), wl(Role::Store, 1, 1)];
        let s = summarize(&obs, &[], &t(1));
        assert_eq!(s.phase, Phase::Ready);
        assert_eq!(find(&s, READY).status, "True");
        assert_eq!(find(&s, PROGRESSING).status, "False");
    }

    #[test]
    fn stale_observed_generation_is_not_ready() {
        let mut w = wl(Role::Frontend, 2, 2);
        w.observed_current = false;
        let obs = Observation {
            generation: 1,
            workloads: vec![w],
            ..Default::default()
        };
        let s = summarize(&obs, &[], &t(1));
        assert_eq!(find(&s, READY).status, "False");
        assert_eq!(s.phase, Phase::Progressing);
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let obs0 = Observation {
            generation: 1,
            workloads: vec![wl(Role::Frontend, 2, 0)],
            ..Default::default()
        };
        let first = summarize(&obs0, &[], &t(100));
        // Same status, different message and later clock: times stay.
        let obs1 = Observation {
            generation: 2,
            workloads: vec![wl(Role::Frontend, 2, 1)],
            ..Default::default()
        };
        let second = summarize(&obs1, &first.conditions, &t(200));
        assert_eq!(find(&second, READY).last_transition_time, Some(t(100)));
        assert_eq!(find(&second, READY).message, "frontend 1/2 ready");
        // Ready flips: its time moves; Degraded does not flip, its time stays.
        let obs2 = Observation {
            generation: 2,
            workloads: vec![wl(Role::Frontend, 2, 2)],
            ..Default::default()
        };
        let third = summarize(&obs2, &second.conditions, &t(300));
        assert_eq!(find(&third, READY).last_transition_time, Some(t(300)));
        assert_eq!(find(&third, PROGRESSING).last_transition_time, Some(t(300)));
        assert_eq!(find(&third, DEGRADED).last_transition_time, Some(t(100)));
    }

    #[test]
    fn same_inputs_give_identical_status() {
        let obs = Observation {
            generation: 3,
            workloads: vec![wl(Role::Store, 3, 2)],
            ..Default::default()
        };
        let a = summarize(&obs, &[], &t(10));
        let b = summarize(&obs, &a.conditions, &t(99));
        assert_eq!(a, b);
    }

    #[test]
    fn invalid_spec_is_degraded_with_the_message() {
        let obs = Observation {
            generation: 2,
            invalid: Some("spec.store.replicationFactor: 5 exceeds replicas 3".into()),
            ..Default::default()
        };
        let s = summarize(&obs, &[], &t(1));
        assert_eq!(s.phase, Phase::Invalid);
        let d = find(&s, DEGRADED);
        assert_eq!((d.status.as_str(), d.reason.as_str()), ("True", "Invalid"));
        assert!(d.message.contains("replicationFactor"));
        assert_eq!(find(&s, READY).status, "False");
    }

    #[test]
    fn reconcile_failure_and_workload_failure_are_degraded() {
        let obs = Observation {
            generation: 1,
            workloads: vec![wl(Role::Frontend, 1, 1)],
            failure: Some((
                "ApplyFailed".into(),
                "applying Service web: forbidden".into(),
            )),
            ..Default::default()
        };
        let s = summarize(&obs, &[], &t(1));
        assert_eq!(s.phase, Phase::Degraded);
        assert_eq!(find(&s, DEGRADED).reason, "ApplyFailed");
        assert_eq!(find(&s, READY).status, "False");

        let mut w = wl(Role::Frontend, 1, 0);
        w.failure = Some("frontend web: deadline".into());
        let obs = Observation {
            generation: 1,
            workloads: vec![w],
            ..Default::default()
        };
        let s = summarize(&obs, &[], &t(1));
        assert_eq!(find(&s, DEGRADED).reason, "WorkloadFailed");
    }

    #[test]
    fn reads_workload_json() {
        let d = json!({
            "metadata": {"name": "web", "generation": 3},
            "spec": {"replicas": 4},
            "status": {"observedGeneration": 3, "readyReplicas": 2, "updatedReplicas": 4,
                "conditions": [{"type": "Progressing", "status": "False",
                    "reason": "ProgressDeadlineExceeded", "message": "took too long"}]}
        });
        let w = Workload::from_object(Role::Frontend, &d);
        assert_eq!(
            (w.desired, w.ready, w.updated, w.observed_current),
            (4, 2, 4, true)
        );
        assert_eq!(w.failure.as_deref(), Some("frontend web: took too long"));

        let fresh = json!({"metadata": {"name": "s", "generation": 1}, "spec": {"replicas": 3}});
        let w = Workload::from_object(Role::Store, &fresh);
        assert_eq!((w.desired, w.ready, w.observed_current), (3, 0, false));
        assert_eq!(w.failure, None);
    }

    #[test]
    fn counts_sum_per_role_and_cap_ready_at_desired() {
        let ws = vec![
            wl(Role::Frontend, 2, 5),
            wl(Role::Store, 3, 1),
            wl(Role::Store, 1, 1),
        ];
        assert_eq!(counts(&ws, Role::Frontend), (2, 2));
        assert_eq!(counts(&ws, Role::Store), (2, 4));
    }

    #[test]
    fn failure_keeps_progressing_and_sets_degraded() {
        let obs = Observation {
            generation: 1,
            workloads: vec![wl(Role::Frontend, 2, 2)],
            ..Default::default()
        };
        let ok = summarize(&obs, &[], &t(10));
        let s = failed(
            &ok.conditions,
            2,
            "ApplyFailed",
            "applying Service web: forbidden",
            &t(20),
        );
        assert_eq!(s.phase, Phase::Degraded);
        assert_eq!(find(&s, PROGRESSING), find(&ok, PROGRESSING));
        let d = find(&s, DEGRADED);
        assert_eq!(
            (d.status.as_str(), d.reason.as_str()),
            ("True", "ApplyFailed")
        );
        assert_eq!(d.last_transition_time, Some(t(20)));
        assert_eq!(find(&s, READY).status, "False");
        // The same failure again is byte-for-byte the same status.
        assert_eq!(
            failed(
                &s.conditions,
                2,
                "ApplyFailed",
                "applying Service web: forbidden",
                &t(30)
            ),
            s
        );
    }
}
