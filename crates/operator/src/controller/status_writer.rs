//! Writes the SessionCluster status by server-side apply to the status subresource,
//! and only when it differs from what is there (a status write is a watch event, so an
//! unconditional write would make every reconcile trigger the next).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::{json, Value};

use crate::api::{
    FrontendStatus, MigrationStatus, Phase, RingStatus, RoutingStatus, SessionCluster,
    SessionClusterStatus, StoreStatus,
};
use crate::controller::apply::FIELD_MANAGER;
use crate::error::Error;
use crate::ring_driver::RingReport;
use crate::routing_change::Change;
use crate::status::{self, Observation, Role, Workload, DEGRADED};

/// The routing placement this reconcile applied, and how it compares with the remembered one.
pub struct RoutingUpdate {
    pub placement: RoutingStatus,
    pub change: Change,
}

/// Status after a successful apply, from the live workloads.
pub async fn write_observed(
    client: &Client,
    sc: &SessionCluster,
    obs: &Observation,
    workloads: &[(Workload, Value)],
    ring: Option<&RingReport>,
    refresh_counters: bool,
    routing: &RoutingUpdate,
) -> Result<(), Error> {
    let previous = sc.status.clone().unwrap_or_default();
    let now = now();
    let summary = status::summarize(obs, &previous.conditions, &now);
    let mut next = observed_status(&previous, obs.generation, summary, workloads);
    next.routing = Some(routing.placement.clone());
    next.conditions.extend(status::routing_remapped(
        &previous.conditions,
        &routing.change,
        obs.generation,
        &now,
    ));
    if let Some(r) = ring {
        next.ring = Some(ring_status(r));
        next.migration = migration_status(previous.migration.as_ref(), r, refresh_counters);
    }
    write(client, sc, &previous, next).await
}

pub fn ring_status(r: &RingReport) -> RingStatus {
    RingStatus {
        epoch: i64::try_from(r.epoch).unwrap_or(i64::MAX),
        members: r.members.clone(),
        failed: r.failed.clone(),
        unavailable_partitions: i32::try_from(r.unavailable).unwrap_or(i32::MAX),
    }
}

/// The migration part of the status. The copy counters move with every poll and a status
/// write wakes the controller, so unless `refresh_counters` (the caller rate-limits it)
/// they keep the values already written for the same migration; replica counts and the
/// migration's start and end are always written at once.
pub fn migration_status(
    previous: Option<&MigrationStatus>,
    r: &RingReport,
    refresh_counters: bool,
) -> Option<MigrationStatus> {
    let replicas = r.progress?;
    let elapsed = r
        .decided_at
        .and_then(|t| Timestamp::now().duration_since(t).try_into().ok());
    let p = crate::ring_driver::progress::progress(
        replicas,
        r.copying.keys_sent,
        r.copying.keys_total,
        r.copying.bytes_sent,
        elapsed,
    );
    let big = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let small = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);
    let target_epoch = big(r.epoch.saturating_add(1));
    let mut next = MigrationStatus {
        target_epoch,
        partitions_moved: small(p.replicas_moved),
        partitions_total: small(p.replicas_total),
        progress: p.short(),
        sessions_moved: big(p.sessions_moved),
        sessions_total: big(p.sessions_total),
        bytes_moved: big(p.bytes_moved),
        eta_seconds: p.eta_seconds.map(big),
    };
    if let Some(prev) = previous.filter(|m| m.target_epoch == target_epoch && !refresh_counters) {
        next.sessions_moved = prev.sessions_moved;
        next.sessions_total = prev.sessions_total;
        next.bytes_moved = prev.bytes_moved;
        next.eta_seconds = prev.eta_seconds;
    }
    Some(next)
}

/// Status of an invalid spec: phase Invalid, Degraded with the message; counts kept.
pub async fn write_invalid(
    client: &Client,
    sc: &SessionCluster,
    message: &str,
) -> Result<(), Error> {
    let previous = sc.status.clone().unwrap_or_default();
    let obs = Observation {
        generation: sc.metadata.generation.unwrap_or_default(),
        invalid: Some(message.to_owned()),
        ..Default::default()
    };
    let summary = status::summarize(&obs, &previous.conditions, &now());
    let next = SessionClusterStatus {
        observed_generation: Some(obs.generation),
        conditions: summary.conditions,
        phase: Some(summary.phase),
        ..previous.clone()
    };
    write(client, sc, &previous, next).await
}

/// Status after a failed reconcile: Degraded with the error.
pub async fn write_failure(
    client: &Client,
    sc: &SessionCluster,
    failure: Option<(String, String)>,
) -> Result<(), Error> {
    let Some((reason, message)) = failure else {
        return Ok(());
    };
    let previous = sc.status.clone().unwrap_or_default();
    let generation = sc.metadata.generation.unwrap_or_default();
    let summary = status::failed(&previous.conditions, generation, &reason, &message, &now());
    let next = SessionClusterStatus {
        conditions: summary.conditions,
        phase: Some(summary.phase),
        ..previous.clone()
    };
    write(client, sc, &previous, next).await
}

/// Whether the status already reports this exact invalidity (so the Event is not repeated).
pub fn is_invalid_with(sc: &SessionCluster, message: &str) -> bool {
    let Some(st) = &sc.status else {
        return false;
    };
    st.phase == Some(Phase::Invalid)
        && st.observed_generation == sc.metadata.generation
        && st
            .conditions
            .iter()
            .any(|c| c.type_ == DEGRADED && c.status == "True" && c.message == message)
}

/// The full status for a successful reconcile.
pub fn observed_status(
    previous: &SessionClusterStatus,
    generation: i64,
    summary: status::Summary,
    workloads: &[(Workload, Value)],
) -> SessionClusterStatus {
    let frontend = workloads
        .iter()
        .find(|(w, _)| w.role == Role::Frontend)
        .map(|(w, obj)| FrontendStatus {
            replicas: int(&obj["status"]["replicas"]),
            ready_replicas: w.ready,
            selector: selector_string(&obj["spec"]["selector"]),
        });
    let store_obj = workloads.iter().find(|(w, _)| w.role == Role::Store);
    let store = store_obj.map(|(w, obj)| StoreStatus {
        replicas: int(&obj["status"]["replicas"]),
        ready_replicas: w.ready,
    });
    // The ring issue makes the epoch move; until then the members are the store pods.
    let ring = store_obj.map(|(w, _)| RingStatus {
        epoch: previous.ring.as_ref().map_or(0, |r| r.epoch),
        members: (0..w.desired.max(0))
            .map(|i| format!("{}-{i}", w.name))
            .collect(),
        ..RingStatus::default()
    });
    SessionClusterStatus {
        observed_generation: Some(generation),
        conditions: summary.conditions,
        frontend,
        store,
        ring,
        phase: Some(summary.phase),
        migration: previous.migration.clone(),
        routing: previous.routing.clone(),
    }
}

/// `matchLabels` as a label selector string, sorted (so it is stable).
pub fn selector_string(selector: &Value) -> String {
    let Some(labels) = selector["matchLabels"].as_object() else {
        return String::new();
    };
    let mut pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    pairs.join(",")
}

fn int(v: &Value) -> i32 {
    v.as_i64().and_then(|n| i32::try_from(n).ok()).unwrap_or(0)
}

fn now() -> Time {
    // Whole seconds: that is what the API server stores, so a status read back compares equal.
    let secs = Timestamp::now().as_second();
    Time(Timestamp::from_second(secs).unwrap_or_else(|_| Timestamp::now()))
}

async fn write(
    client: &Client,
    sc: &SessionCluster,
    previous: &SessionClusterStatus,
    next: SessionClusterStatus,
) -> Result<(), Error> {
    if sc.status.is_some() && *previous == next {
        return Ok(());
    }
    let ns = sc.namespace().unwrap_or_default();
    let api: Api<SessionCluster> = Api::namespaced(client.clone(), &ns);
    let body = json!({
        "apiVersion": SessionCluster::api_version(&()),
        "kind": SessionCluster::kind(&()),
        "status": next,
    });
    api.patch_status(
        &sc.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(Error::Status)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_is_sorted_and_joined() {
        let sel = json!({"matchLabels": {"b": "2", "a": "1"}});
        assert_eq!(selector_string(&sel), "a=1,b=2");
        assert_eq!(selector_string(&json!({})), "");
    }

    #[test]
    fn observed_status_carries_counts_ring_and_keeps_the_epoch() {
        let dep = json!({"metadata": {"name": "web", "generation": 1},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"observedGeneration": 1, "replicas": 3, "readyReplicas": 1, "updatedReplicas": 3}});
        let sts = json!({"metadata": {"name": "web-store", "generation": 1},
            "spec": {"replicas": 2}, "status": {"observedGeneration": 1, "replicas": 2}});
        let workloads = vec![
            (Workload::from_object(Role::Frontend, &dep), dep),
            (Workload::from_object(Role::Store, &sts), sts),
        ];
        let previous = SessionClusterStatus {
            ring: Some(RingStatus {
                epoch: 7,
                ..RingStatus::default()
            }),
            ..Default::default()
        };
        let obs = Observation {
            generation: 5,
            workloads: workloads.iter().map(|(w, _)| w.clone()).collect(),
            ..Default::default()
        };
        let summary = status::summarize(&obs, &[], &now());
        let st = observed_status(&previous, 5, summary, &workloads);
        assert_eq!(st.observed_generation, Some(5));
        assert_eq!(
            st.frontend,
            Some(FrontendStatus {
                replicas: 3,
                ready_replicas: 1,
                selector: "app=web".into()
            })
        );
        assert_eq!(
            st.store,
            Some(StoreStatus {
                replicas: 2,
                ready_replicas: 0
            })
        );
        let ring = st.ring.unwrap();
        assert_eq!(ring.epoch, 7);
        assert_eq!(ring.members, vec!["web-store-0", "web-store-1"]);
        assert_eq!(st.phase, Some(Phase::Progressing));
    }
}
