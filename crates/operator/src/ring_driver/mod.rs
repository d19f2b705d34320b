//! The operator's side of the ring: it decides every configuration (epochs) of a
//! SessionCluster's store, keeps it in the Kubernetes API, and pushes it to the store nodes.
//!
//! read (pods, the persisted state, each node's own status) → decide (pure) → persist the
//! new epoch with a resourceVersion precondition → push. Called once per reconcile of a
//! `Store` SessionCluster; a ring change spans several reconciles, and each one resumes
//! from what the API and the nodes say, so a killed operator never starts over.

pub mod decide;
pub mod health;
pub mod node_api;
pub mod progress;
pub mod state;
pub mod sticky;

#[cfg(test)]
mod decide_tests;

use crate::api::{SessionCluster, Strategy};
use crate::build::{names, selector_for, Component, ADMIN_PORT, PEER_PORT};
use decide::{decide, Advance, Copying, NodeView, Step, Want};
use futures::future::join_all;
use health::{FailoverPolicy, HealthBook};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::{Resource, ResourceExt};
use sessionplane_ring::PlacementError;
use state::{RingState, STATE_KEY};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

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
    /// Snapshot copying the primaries report for the epoch in force.
    pub copying: Copying,
    /// When the epoch in force was decided.
    pub decided_at: Option<Timestamp>,
    /// Nodes removed by a failover that have not answered since.
    pub failed: Vec<String>,
    /// Partitions nobody serves: their failed primary was the only proven holder.
    pub unavailable: usize,
    /// What the failover in this call did, when there was one.
    pub failover: Option<FailoverReport>,
    /// A migration finished in this call (flip), and how long it took from its learners.
    pub migration_took: Option<Duration>,
    /// Partitions given up in this call (Sticky: their only holder's pod is gone).
    pub given_up: Vec<u32>,
}

/// A failover epoch, for the Event and the metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverReport {
    pub dead: Vec<String>,
    /// (partition, from, to) of every primary handed over.
    pub promoted: Vec<(u32, String, String)>,
    pub unavailable: Vec<u32>,
}

/// Whether the operator drives a ring for this strategy: the store nodes' (Store) or the
/// frontend agents' (Sticky).
pub fn drives(strategy: Strategy) -> bool {
    matches!(strategy, Strategy::Store | Strategy::Sticky)
}

/// Key of a SessionCluster in the health book.
pub fn cluster_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// Name of the ConfigMap holding a SessionCluster's ring state.
pub fn state_name(cluster: &str) -> String {
    format!("{cluster}-ring")
}

/// Advances the ring of one SessionCluster by at most one step. `password` is the
/// nodes' (from the `<name>-store-auth` Secret): their admin API takes a configuration
/// only with it.
pub async fn sync(
    client: &kube::Client,
    sc: &SessionCluster,
    cluster_domain: &str,
    health: &HealthBook,
    policy: &FailoverPolicy,
    password: &str,
) -> Result<RingReport, RingError> {
    let ns = sc
        .metadata
        .namespace
        .clone()
        .ok_or(RingError::MissingMetadata("metadata.namespace"))?;
    let name = sc.name_any();
    let Fleet { want, admin } = match sc.spec.strategy {
        Strategy::Sticky => sticky_fleet(client, sc, &ns, &name).await?,
        _ => store_fleet(client, sc, &ns, &name, cluster_domain).await?,
    };
    let wanted = want.members.len();
    let nodes = NodeAdmin {
        addrs: &admin,
        token: Some(password).filter(|p| !p.is_empty()),
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

    let mut ids: Vec<String> = want.members.keys().cloned().collect();
    if let Some(s) = &state {
        ids.extend(s.members.keys().cloned());
    }
    ids.sort();
    ids.dedup();
    let key = cluster_key(&ns, &name);
    health.track(&key, ids.clone(), admin.clone());
    let mut views: BTreeMap<String, NodeView> = join_all(ids.into_iter().map(|id| {
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
    // This status call is a probe too; the verdict is the probes', over time.
    let now = Instant::now();
    for (id, view) in views.iter_mut() {
        health.record(&key, id, view.reachable, now, policy);
        view.down = health.is_down(&key, id);
    }

    if sc.spec.strategy == Strategy::Sticky {
        let present = admin.keys().cloned().collect();
        if let Some((next, lost)) = state
            .as_ref()
            .and_then(|s| sticky::abandon_gone(s, &present))
        {
            tracing::error!(
                cluster = %name, partitions = lost.len(),
                "frontend pods gone without a handoff were the only holders: their sessions are lost"
            );
            let why = Advance::GiveUp;
            let next = advance(&cms, sc, &cm_name, existing.as_ref(), next, &nodes, why).await?;
            let mut report = report_of(Some(&next), wanted, &views);
            report.advanced = Some(why);
            report.given_up = lost;
            return Ok(report);
        }
    }
    let step = decide(&want, state.as_ref(), &views)?;
    let mut report = report_of(state.as_ref(), wanted, &views);
    match step {
        Step::Steady => report.steady = true,
        Step::Wait(why) => report.waiting = Some(why),
        Step::Repush(lagging) => {
            if let Some(s) = &state {
                push_all(s, &lagging, &nodes).await;
            }
        }
        Step::Advance { state: next, why } => {
            let next = advance(&cms, sc, &cm_name, existing.as_ref(), next, &nodes, why).await?;
            report = report_of(Some(&next), wanted, &views);
            report.advanced = Some(why);
            if why == Advance::Flip {
                report.migration_took = state
                    .as_ref()
                    .and_then(decided_at)
                    .and_then(|then| Timestamp::now().duration_since(then).try_into().ok());
            }
        }
        Step::Failover {
            state: next,
            dead,
            promoted,
            unavailable,
        } => {
            tracing::warn!(
                cluster = %name, dead = ?dead, promoted = promoted.len(),
                unavailable = unavailable.len(), "store nodes down: failing over"
            );
            let next = advance(
                &cms,
                sc,
                &cm_name,
                existing.as_ref(),
                next,
                &nodes,
                Advance::Failover,
            )
            .await?;
            report = report_of(Some(&next), wanted, &views);
            report.advanced = Some(Advance::Failover);
            report.failover = Some(FailoverReport {
                dead,
                promoted: promoted
                    .into_iter()
                    .map(|p| (p.partition, p.from, p.to))
                    .collect(),
                unavailable,
            });
        }
    }
    Ok(report)
}

/// Persists a new epoch (stamped with the time it was decided), then pushes it to every
/// member.
async fn advance(
    cms: &Api<ConfigMap>,
    sc: &SessionCluster,
    cm_name: &str,
    existing: Option<&ConfigMap>,
    mut next: RingState,
    nodes: &NodeAdmin<'_>,
    why: Advance,
) -> Result<RingState, RingError> {
    next.decided_at = Some(Timestamp::now().to_string());
    save(cms, sc, cm_name, existing, &next).await?;
    tracing::info!(
        cluster = %sc.name_any(), epoch = next.epoch, step = why.label(),
        "ring epoch advanced"
    );
    let everyone: Vec<String> = next.members.keys().cloned().collect();
    push_all(&next, &everyone, nodes).await;
    Ok(next)
}

fn decided_at(state: &RingState) -> Option<Timestamp> {
    state.decided_at.as_deref()?.parse().ok()
}

fn report_of(
    state: Option<&RingState>,
    wanted: usize,
    views: &BTreeMap<String, NodeView>,
) -> RingReport {
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
            copying: Copying::default(),
            decided_at: None,
            failed: Vec::new(),
            unavailable: 0,
            failover: None,
            migration_took: None,
            given_up: Vec::new(),
        };
    };
    let copying = views
        .values()
        .filter(|v| v.reachable && v.epoch == Some(s.epoch))
        .fold(Copying::default(), |acc, v| Copying {
            keys_sent: acc.keys_sent + v.copying.keys_sent,
            keys_total: acc.keys_total + v.copying.keys_total,
            bytes_sent: acc.bytes_sent + v.copying.bytes_sent,
        });
    let to_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    RingReport {
        epoch: s.epoch,
        members: s.serving().into_iter().collect(),
        migrating: s.target.is_some() || !s.draining.is_empty(),
        progress: s.target.as_ref().map(|_| {
            let (done, total) = decide::learner_progress(s, views);
            (to_u64(done), to_u64(total))
        }),
        advanced: None,
        waiting: None,
        pods_needed: decide::pods_needed(Some(s), wanted),
        steady: false,
        copying,
        decided_at: decided_at(s),
        failed: s.failed.iter().cloned().collect(),
        unavailable: s.unavailable().len(),
        failover: None,
        migration_took: None,
        given_up: Vec::new(),
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

/// The nodes a ring is placed on: who should serve (with peer addresses) and where each
/// node that has a pod answers its admin API.
struct Fleet {
    want: Want,
    admin: BTreeMap<String, String>,
}

/// Strategy Store: the StatefulSet's pods `<sts>-0..replicas`, at their stable DNS names.
async fn store_fleet(
    client: &kube::Client,
    sc: &SessionCluster,
    ns: &str,
    name: &str,
    cluster_domain: &str,
) -> Result<Fleet, RingError> {
    let store = &sc.spec.store;
    let wanted = usize::try_from(store.replicas.max(0)).unwrap_or(0);
    let sts = names::store(name);
    let headless = names::store_headless(name);
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
    let pods = list_pods(client, ns, name, Component::Store).await?;
    // A terminating store pod comes back under the same name: it is not asked anything
    // until it does.
    let admin = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| Some((p.name_any(), format!("{}:{ADMIN_PORT}", pod_ip(p)?))))
        .collect();
    Ok(Fleet { want, admin })
}

/// Strategy Sticky: the frontend pods, whose agents are the nodes (see `sticky`).
async fn sticky_fleet(
    client: &kube::Client,
    sc: &SessionCluster,
    ns: &str,
    name: &str,
) -> Result<Fleet, RingError> {
    let pods = list_pods(client, ns, name, Component::Frontend).await?;
    let rf = sc
        .spec
        .sticky
        .clone()
        .unwrap_or_default()
        .replication_factor;
    let (members, admin) = sticky::members(&pods);
    Ok(Fleet {
        want: Want {
            members,
            partitions: sticky::PARTITIONS,
            replication_factor: u32::try_from(rf.max(1)).unwrap_or(1),
        },
        admin,
    })
}

pub(crate) fn pod_ip(pod: &Pod) -> Option<&str> {
    pod.status
        .as_ref()?
        .pod_ip
        .as_deref()
        .filter(|ip| !ip.is_empty())
}

async fn list_pods(
    client: &kube::Client,
    ns: &str,
    cluster: &str,
    component: Component,
) -> Result<Vec<Pod>, RingError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let selector = selector_for(cluster, component)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| RingError::Kube {
            what: format!("{} pods in {ns}", component.as_str()),
            source,
        })?;
    Ok(list.items)
}

/// Where the members' admin APIs are (id → address), and the password they want.
struct NodeAdmin<'a> {
    addrs: &'a BTreeMap<String, String>,
    token: Option<&'a str>,
}

async fn push_all(state: &RingState, to: &[String], nodes: &NodeAdmin<'_>) {
    let token = nodes.token;
    let config = state.node_config();
    let pushes = to.iter().filter_map(|id| {
        let addr = nodes.addrs.get(id)?.clone();
        let config = &config;
        Some(async move { (id, node_api::push(&addr, config, token).await) })
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
