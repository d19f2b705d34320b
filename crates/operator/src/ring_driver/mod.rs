//! The operator's side of the ring: it decides every configuration (epochs) of a
//! SessionCluster's store, keeps it in the Kubernetes API, and pushes it to the store nodes.
//!
//! read (pods, the persisted state, each node's own status) → decide (pure) → persist the
//! new epoch with a resourceVersion precondition → push. Called once per reconcile of a
//! `Store` SessionCluster; a ring change spans several reconciles, and each one resumes
//! from what the API and the nodes say, so a killed operator never starts over.

pub mod decide;
pub mod node_api;
pub mod state;

#[cfg(test)]
mod decide_tests;

use crate::api::SessionCluster;
use crate::build::{names, selector_for, Component, ADMIN_PORT, PEER_PORT};
use decide::{decide, Advance, NodeView, Step, Want};
use futures::future::join_all;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::{Resource, ResourceExt};
use sessionplane_ring::PlacementError;
use state::{RingState, STATE_KEY};
use std::collections::BTreeMap;

/// Label on the ring ConfigMap. Deliberately not `sessionplane.dev/cluster`: the ring
/// state is not a desired object, so pruning of undesired owned objects must not see it.
pub const RING_LABEL: &str = "sessionplane.dev/ring-of";

#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("reading or writing {what}: {source}")]
    Kube { what: String, source: kube::Error },
    #[error("the ring ConfigMap {name} holds an unreadable state: {source}")]
    CorruptState {
        name: String,
        source: serde_json::Error,
    },
    #[error("placing partitions: {0}")]
    Placement(#[from] PlacementError),
    #[error("the SessionCluster has no {0}")]
    MissingMetadata(&'static str),
}

impl RingError {
    pub fn label(&self) -> &'static str {
        match self {
            RingError::Kube { .. } => "ring_kube",
            RingError::CorruptState { .. } => "ring_corrupt_state",
            RingError::Placement(e) => e.label(),
            RingError::MissingMetadata(_) => "ring_missing_metadata",
        }
    }
}

/// What the driver did and where the ring stands, for status, events and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct RingReport {
    /// Epoch in force (0 before the first placement).
    pub epoch: u64,
    /// Nodes serving a replica in the epoch in force.
    pub members: Vec<String>,
    /// A partition move is under way (learners or draining nodes).
    pub migrating: bool,
    /// Partition replicas copied so far and in all, while learners catch up.
    pub progress: Option<(u64, u64)>,
    /// The epoch advanced in this call, and why.
    pub advanced: Option<Advance>,
    /// Why nothing more happened, when the ring is not steady.
    pub waiting: Option<String>,
    /// Store pods that must keep running (drain before shrink).
    pub pods_needed: usize,
    /// The ring is what is wanted and every node serves its epoch.
    pub steady: bool,
}

/// Name of the ConfigMap holding a SessionCluster's ring state.
pub fn state_name(cluster: &str) -> String {
    format!("{cluster}-ring")
}

/// Advances the ring of one SessionCluster by at most one step.
pub async fn sync(
    client: &kube::Client,
    sc: &SessionCluster,
    cluster_domain: &str,
) -> Result<RingReport, RingError> {
    let ns = sc
        .metadata
        .namespace
        .clone()
        .ok_or(RingError::MissingMetadata("metadata.namespace"))?;
    let name = sc.name_any();
    let store = &sc.spec.store;
    let wanted = usize::try_from(store.replicas.max(0)).unwrap_or(0);
    let sts = names::store(&name);
    let headless = names::store_headless(&name);
    let peer_addr = |pod: &str| format!("{pod}.{headless}.{ns}.svc.{cluster_domain}:{PEER_PORT}");
    let want = Want {
        members: (0..wanted)
            .map(|i| {
                let pod = format!("{sts}-{i}");
                let addr = peer_addr(&pod);
                (pod, addr)
            })
            .collect(),
        partitions: u32::try_from(store.partitions.max(1)).unwrap_or(1),
        replication_factor: u32::try_from(store.replication_factor.max(1)).unwrap_or(1),
    };

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let cm_name = state_name(&name);
    let existing = cms
        .get_opt(&cm_name)
        .await
        .map_err(|source| RingError::Kube {
            what: format!("ConfigMap {ns}/{cm_name}"),
            source,
        })?;
    let state = match &existing {
        Some(cm) => match cm.data.as_ref().and_then(|d| d.get(STATE_KEY)) {
            Some(json) => Some(serde_json::from_str::<RingState>(json).map_err(|source| {
                RingError::CorruptState {
                    name: cm_name.clone(),
                    source,
                }
            })?),
            None => None,
        },
        None => None,
    };

    let admin = store_admin_addrs(client, &ns, &name).await?;
    let mut ids: Vec<String> = want.members.keys().cloned().collect();
    if let Some(s) = &state {
        ids.extend(s.members.keys().cloned());
    }
    ids.sort();
    ids.dedup();
    let views: BTreeMap<String, NodeView> = join_all(ids.into_iter().map(|id| {
        let addr = admin.get(&id).cloned();
        async move {
            let view = match addr {
                Some(a) => node_api::view(&a).await,
                None => NodeView::default(),
            };
            (id, view)
        }
    }))
    .await
    .into_iter()
    .collect();

    let step = decide(&want, state.as_ref(), &views)?;
    let mut report = report_of(state.as_ref(), wanted);
    match step {
        Step::Steady => report.steady = true,
        Step::Wait(why) => report.waiting = Some(why),
        Step::Repush(lagging) => {
            if let Some(s) = &state {
                push_all(s, &lagging, &admin).await;
            }
        }
        Step::Advance { state: next, why } => {
            save(&cms, sc, &cm_name, existing.as_ref(), &next).await?;
            tracing::info!(
                cluster = %name, epoch = next.epoch, step = why.label(),
                "ring epoch advanced"
            );
            let everyone: Vec<String> = next.members.keys().cloned().collect();
            push_all(&next, &everyone, &admin).await;
            report = report_of(Some(&next), wanted);
            report.advanced = Some(why);
        }
    }
    Ok(report)
}

fn report_of(state: Option<&RingState>, wanted: usize) -> RingReport {
    let Some(s) = state else {
        return RingReport {
            epoch: 0,
            members: Vec::new(),
            migrating: false,
            progress: None,
            advanced: None,
            waiting: None,
            pods_needed: wanted,
            steady: false,
        };
    };
    RingReport {
        epoch: s.epoch,
        members: s.serving().into_iter().collect(),
        migrating: s.target.is_some() || !s.draining.is_empty(),
        progress: s
            .target
            .as_ref()
            .map(|_| (0, u64::try_from(s.learner_slots()).unwrap_or(u64::MAX))),
        advanced: None,
        waiting: None,
        pods_needed: decide::pods_needed(Some(s), wanted),
        steady: false,
    }
}

/// Store pods the StatefulSet must keep although spec.store.replicas may be lower: the
/// ring still lists them until they are drained.
pub async fn pods_floor(client: &kube::Client, sc: &SessionCluster) -> Result<i32, RingError> {
    let ns = sc
        .metadata
        .namespace
        .clone()
        .ok_or(RingError::MissingMetadata("metadata.namespace"))?;
    let name = state_name(&sc.name_any());
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let cm = cms.get_opt(&name).await.map_err(|source| RingError::Kube {
        what: format!("ConfigMap {ns}/{name}"),
        source,
    })?;
    let Some(json) = cm
        .as_ref()
        .and_then(|c| c.data.as_ref()?.get(STATE_KEY).cloned())
    else {
        return Ok(0);
    };
    let state: RingState =
        serde_json::from_str(&json).map_err(|source| RingError::CorruptState { name, source })?;
    Ok(i32::try_from(decide::pods_needed(Some(&state), 0)).unwrap_or(i32::MAX))
}

/// Admin addresses of the store pods that have an IP, by pod name.
async fn store_admin_addrs(
    client: &kube::Client,
    ns: &str,
    cluster: &str,
) -> Result<BTreeMap<String, String>, RingError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let selector = selector_for(cluster, Component::Store)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| RingError::Kube {
            what: format!("store pods in {ns}"),
            source,
        })?;
    Ok(list
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let ip = p.status.as_ref()?.pod_ip.clone()?;
            Some((p.name_any(), format!("{ip}:{ADMIN_PORT}")))
        })
        .collect())
}

async fn push_all(state: &RingState, to: &[String], admin: &BTreeMap<String, String>) {
    let config = state.node_config();
    let pushes = to.iter().filter_map(|id| {
        let addr = admin.get(id)?.clone();
        let config = &config;
        Some(async move { (id, node_api::push(&addr, config).await) })
    });
    for (id, result) in join_all(pushes).await {
        if let Err(e) = result {
            // The next reconcile sees the node lagging and pushes again.
            tracing::warn!(node = %id, epoch = state.epoch, error = %e, label = e.label(), "ring push failed");
        }
    }
}

/// Persists a new epoch. The resourceVersion precondition makes a concurrent writer
/// (a deposed leader) fail instead of overwriting.
async fn save(
    cms: &Api<ConfigMap>,
    sc: &SessionCluster,
    name: &str,
    existing: Option<&ConfigMap>,
    state: &RingState,
) -> Result<(), RingError> {
    let json = serde_json::to_string(state).map_err(|source| RingError::CorruptState {
        name: name.to_string(),
        source,
    })?;
    let kube_err = |source| RingError::Kube {
        what: format!("ConfigMap {name}"),
        source,
    };
    let mut cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([(RING_LABEL.to_string(), sc.name_any())])),
            owner_references: sc.controller_owner_ref(&()).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(STATE_KEY.to_string(), json)])),
        ..ConfigMap::default()
    };
    match existing {
        None => {
            cms.create(&PostParams::default(), &cm)
                .await
                .map_err(kube_err)?;
        }
        Some(old) => {
            cm.metadata.resource_version = old.metadata.resource_version.clone();
            cms.replace(name, &PostParams::default(), &cm)
                .await
                .map_err(kube_err)?;
        }
    }
    Ok(())
}
