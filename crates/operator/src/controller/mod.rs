//! The SessionCluster controller: read → validate → build → apply → prune → status.

pub mod apply;
pub mod inputs;
pub mod kinds;
pub mod status_writer;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, DynamicObject};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use std::sync::Mutex;
use tracing::Instrument;

use crate::api::SessionCluster;
use crate::build::BuildError;
use crate::error::{backoff_delay, Error};
use crate::metrics::Metrics;
use crate::ring_driver::decide::Advance;
use crate::ring_driver::health::{Change, FailoverPolicy, HealthBook};
use crate::ring_driver::RingReport;
use crate::status::{Observation, Role, Workload};
use apply::Outcome;
use kinds::{KindKey, Kinds};
use kube::runtime::reflector::ObjectRef;

/// How long an invalid SessionCluster waits before it is looked at again (a spec change
/// triggers a reconcile at once; this is only a safety net, so no hot loop).
pub const INVALID_REQUEUE: Duration = Duration::from_secs(600);
/// Periodic resync of a healthy SessionCluster, to catch drift a watch could miss.
pub const RESYNC: Duration = Duration::from_secs(600);
/// How soon a SessionCluster whose ring is not steady (placing, migrating, draining, or a
/// node to re-push) is looked at again: the nodes' progress is polled, not watched.
pub const RING_REQUEUE: Duration = Duration::from_secs(3);
/// Least time between two writes of the migration's copy counters to the status: a
/// status write wakes the controller, so writing every poll would make polls back to back.
pub const PROGRESS_WRITE_INTERVAL: Duration = Duration::from_secs(10);
/// Label every owned object carries besides the cluster label.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by=sessionplane";

/// Labels of every frontend pod of every SessionCluster.
const FRONTEND_PODS: &str =
    "app.kubernetes.io/managed-by=sessionplane,app.kubernetes.io/component=frontend";

/// Where the controller looks and who it says it is.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Watch only this namespace; all namespaces when `None`.
    pub namespace: Option<String>,
    /// `reportingInstance` of the Events (the leader identity).
    pub instance: String,
    /// Image of store nodes and agents when the spec names none (the operator's own).
    pub default_image: String,
    /// DNS domain of the cluster, for the store nodes' peer addresses.
    pub cluster_domain: String,
    /// How long a staged cookie key waits before it seals (strategy Client): longer than a
    /// Secret takes to reach every frontend's volume.
    pub keyring_propagation: Duration,
    /// When a store node that stops answering is failed over.
    pub failover: FailoverPolicy,
}

/// Shared state of all reconciles.
pub struct Context {
    pub client: Client,
    pub kinds: Kinds,
    pub metrics: Metrics,
    pub default_image: String,
    pub cluster_domain: String,
    pub keyring_propagation: Duration,
    pub failover: FailoverPolicy,
    /// Probe history of every store node, shared with the prober.
    pub health: Arc<HealthBook>,
    recorder: Recorder,
    /// Consecutive failures per object (namespace/name), for the backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// When each object's migration counters were last written to its status.
    progress_written: Mutex<HashMap<String, Instant>>,
    /// Per object, the copy counters last seen (epoch, sessions, bytes), for the metrics.
    copied_seen: Mutex<HashMap<String, (u64, u64, u64)>>,
    /// Per object, the routing placement last warned about: a reconcile that still sees the
    /// old status in the cache must not warn about the same change again.
    remaps_warned: Mutex<HashMap<String, crate::api::RoutingStatus>>,
    /// Generation last advised on, per SessionCluster (advice is said once per change).
    advised: Mutex<HashMap<String, i64>>,
}

impl Context {
    pub fn new(client: Client, kinds: Kinds, metrics: Metrics, config: &ControllerConfig) -> Self {
        let reporter = Reporter {
            controller: "sessionplane-operator".into(),
            instance: Some(config.instance.clone()),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            kinds,
            metrics,
            default_image: config.default_image.clone(),
            cluster_domain: config.cluster_domain.clone(),
            keyring_propagation: config.keyring_propagation,
            failover: config.failover,
            health: Arc::new(HealthBook::default()),
            failures: Mutex::new(HashMap::new()),
            remaps_warned: Mutex::new(HashMap::new()),
            advised: Mutex::new(HashMap::new()),
            progress_written: Mutex::new(HashMap::new()),
            copied_seen: Mutex::new(HashMap::new()),
        }
    }

    async fn event(
        &self,
        sc: &SessionCluster,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
        related: Option<ObjectReference>,
    ) {
        // The recorder folds Events with the same reason, action and related object into
        // one series (keeping the first note), so each touched object is named as related.
        let ev = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate(note, 1000)),
            action: action.to_owned(),
            secondary: related,
        };
        if let Err(err) = self.recorder.publish(&ev, &sc.object_ref(&())).await {
            tracing::warn!(error = %err, reason, "publishing an Event failed");
        }
    }
}

/// The owned kinds as discovery keys.
pub fn owned_kind_keys() -> Vec<KindKey> {
    crate::build::owned_kinds()
        .into_iter()
        .map(|(api_version, kind)| KindKey::new(api_version, kind))
        .collect()
}

/// Runs the controller until `shutdown` resolves, then lets running reconciles finish.
/// `on_synced` is called once the SessionCluster cache has its first full list.
pub async fn run(
    client: Client,
    config: ControllerConfig,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    on_synced: impl FnOnce() + Send + 'static,
) -> Result<(), Error> {
    let kinds = Kinds::discover(&client, &owned_kind_keys()).await?;
    tracing::info!(
        served = kinds.served().count(),
        missing = ?kinds.missing().iter().map(ToString::to_string).collect::<Vec<_>>(),
        "discovered the owned kinds"
    );
    let sc_api: Api<SessionCluster> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let owned_config = watcher::Config::default().labels(MANAGED_BY);
    let mut controller = Controller::new(sc_api, watcher::Config::default());
    for (_key, ar) in kinds.served() {
        let api: Api<DynamicObject> = match &config.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
            None => Api::all_with(client.clone(), ar),
        };
        controller = controller.owns_with(api, ar.clone(), owned_config.clone());
    }
    // Strategy Sticky places its ring over the frontend pods, which the Deployment's
    // ReplicaSets own, not the SessionCluster: a pod that appears, gets its IP or starts
    // terminating must wake its SessionCluster at once (a leaving pod's handoff runs
    // against its grace period).
    let pods: Api<k8s_openapi::api::core::v1::Pod> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let frontend_pods = watcher::Config::default().labels(FRONTEND_PODS);
    controller = controller.watches(pods, frontend_pods, |pod| {
        let cluster = pod.labels().get(crate::build::CLUSTER_LABEL)?.clone();
        Some(ObjectRef::new(&cluster).within(&pod.namespace()?))
    });
    let ctx = Arc::new(Context::new(client, kinds, metrics, &config));
    let (wake_tx, wake_rx) = futures::channel::mpsc::unbounded();
    let prober = tokio::spawn(probe_store_nodes(ctx.health.clone(), ctx.failover, wake_tx));
    let controller = controller.reconcile_on(wake_rx);
    let store = controller.store();
    tokio::spawn(async move {
        // Polled rather than awaited: the store's readiness signal keeps a single waker,
        // and the controller's own runner waits on it too, so a second waiter may never
        // be woken (kube-runtime 5). A poll after the first list always sees it.
        loop {
            match store.wait_until_ready().now_or_never() {
                Some(Ok(())) => return on_synced(),
                Some(Err(_)) => return,
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _action)) => tracing::debug!(object = %obj, "reconciled"),
                Err(err) => tracing::warn!(error = %err, "controller stream error"),
            }
        })
        .await;
    prober.abort();
    Ok(())
}

/// Probes every tracked store node each `probe_interval` and wakes the controller for a
/// SessionCluster when one of its nodes turns suspect, down, or answers again, so a dead
/// node is failed over within the window even while the ring is otherwise steady.
async fn probe_store_nodes(
    health: Arc<HealthBook>,
    policy: FailoverPolicy,
    wake: futures::channel::mpsc::UnboundedSender<ObjectRef<SessionCluster>>,
) {
    let mut tick = tokio::time::interval(policy.probe_interval.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let timeout = policy.probe_interval.max(Duration::from_millis(500));
    loop {
        tick.tick().await;
        for (cluster, nodes) in health.targets() {
            let probes = nodes.into_iter().map(|(id, addr)| async move {
                let answered = match &addr {
                    Some(a) => crate::ring_driver::node_api::probe(a, timeout).await,
                    None => false,
                };
                (id, answered)
            });
            let now = Instant::now();
            let mut wake_it = false;
            for (id, answered) in futures::future::join_all(probes).await {
                let change = health.record(&cluster, &id, answered, now, &policy);
                match change {
                    Change::None => {}
                    Change::Suspect => {
                        tracing::info!(%cluster, node = %id, "store node did not answer its probe");
                        wake_it = true;
                    }
                    Change::Down => {
                        tracing::warn!(%cluster, node = %id, window = ?policy.window(), "store node down");
                        wake_it = true;
                    }
                    Change::Recovered => {
                        tracing::info!(%cluster, node = %id, "store node answers again");
                        wake_it = true;
                    }
                }
            }
            if wake_it {
                if let Some((ns, name)) = cluster.split_once('/') {
                    let _ = wake.unbounded_send(ObjectRef::new(name).within(ns));
                }
            }
        }
    }
}

fn key_of(sc: &SessionCluster) -> String {
    format!("{}/{}", sc.namespace().unwrap_or_default(), sc.name_any())
}

/// One reconcile, with its span, metrics and failure bookkeeping.
pub async fn reconcile(sc: Arc<SessionCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = tracing::info_span!(
        "reconcile",
        name = %sc.name_any(),
        namespace = %sc.namespace().unwrap_or_default(),
        generation = sc.metadata.generation.unwrap_or_default()
    );
    async move {
        let started = Instant::now();
        let result = reconcile_pipeline(&sc, &ctx).await;
        let took = started.elapsed();
        match &result {
            Ok(Reconciled::Applied | Reconciled::RingBusy | Reconciled::KeyringDue(_)) => {
                lock(&ctx.failures).remove(&key_of(&sc));
                ctx.metrics.reconciled("ok", took);
            }
            Ok(Reconciled::Invalid) => {
                lock(&ctx.failures).remove(&key_of(&sc));
                ctx.metrics.reconciled("invalid", took);
            }
            Ok(Reconciled::Deleting) => ctx.metrics.reconciled("ok", took),
            Err(err) => {
                ctx.metrics.reconciled("error", took);
                ctx.metrics.error(err.label());
                tracing::warn!(error = %err, label = err.label(), "reconcile failed");
                ctx.event(&sc, EventType::Warning, err.reason(), "Reconcile", err.to_string(), None).await;
                let failure = Some((err.reason().to_owned(), err.to_string()));
                if let Err(status_err) = status_writer::write_failure(&ctx.client, &sc, failure).await {
                    tracing::warn!(error = %status_err, "recording the failure in the status failed");
                }
            }
        }
        result.map(|r| match r {
            Reconciled::Applied => Action::requeue(RESYNC),
            Reconciled::RingBusy => Action::requeue(RING_REQUEUE),
            Reconciled::KeyringDue(after) => Action::requeue(after.min(RESYNC)),
            Reconciled::Invalid => Action::requeue(INVALID_REQUEUE),
            Reconciled::Deleting => Action::await_change(),
        })
    }
    .instrument(span)
    .await
}

/// Per-object exponential backoff.
pub fn error_policy(sc: Arc<SessionCluster>, _err: &Error, ctx: Arc<Context>) -> Action {
    let mut failures = lock(&ctx.failures);
    let n = failures.entry(key_of(&sc)).or_insert(0);
    *n = n.saturating_add(1);
    Action::requeue(backoff_delay(*n))
}

enum Reconciled {
    Applied,
    /// Applied; the store's ring is still moving and must be polled again soon.
    RingBusy,
    /// Applied; the cookie keyring's next rotation step is due after this long.
    KeyringDue(Duration),
    Invalid,
    Deleting,
}

async fn reconcile_pipeline(sc: &SessionCluster, ctx: &Context) -> Result<Reconciled, Error> {
    let namespace = sc
        .namespace()
        .ok_or_else(|| Error::MissingNamespace(sc.name_any()))?;
    if sc.meta().deletion_timestamp.is_some() {
        // Owner references hand the owned objects to the garbage collector.
        ctx.health.forget(&key_of(sc));
        lock(&ctx.advised).remove(&key_of(sc));
        return Ok(Reconciled::Deleting);
    }

    let name = sc.name_any();
    let checked =
        crate::validate::validate_name(&name).and_then(|()| crate::validate::validate(&sc.spec));
    if let Err(invalid) = checked {
        return report_invalid(sc, ctx, invalid.to_string()).await;
    }
    advise_once(sc, ctx).await;

    let is_store = sc.spec.strategy == crate::api::Strategy::Store;
    let has_ring = crate::ring_driver::drives(sc.spec.strategy);
    let now = unix_now();
    let inputs::Inputs {
        build: mut inputs,
        keyring,
    } = inputs::read_or_generate(
        &ctx.client,
        sc,
        &ctx.default_image,
        now,
        i64::try_from(ctx.keyring_propagation.as_secs()).unwrap_or(i64::MAX),
    )
    .await?;
    if !has_ring {
        ctx.health.forget(&key_of(sc));
    }
    if is_store {
        inputs.store_pods_floor = crate::ring_driver::pods_floor(&ctx.client, sc).await?;
    }
    let desired = match crate::build::desired_objects(sc, &inputs) {
        Ok(d) => d,
        // Mistakes in the spec that only the builders see are the user's to fix, like
        // the ones validate() finds: report them, do not retry in a loop.
        Err(e @ (BuildError::Invalid(_) | BuildError::AnnotationConflict { .. })) => {
            return report_invalid(sc, ctx, e.to_string()).await;
        }
        Err(e) => return Err(Error::Build(e)),
    };

    let mut keep: BTreeMap<KindKey, BTreeSet<String>> = BTreeMap::new();
    let mut workloads = Vec::new();
    for d in &desired {
        let key = KindKey::new(&d.api_version, &d.kind);
        keep.entry(key.clone()).or_default().insert(d.name.clone());
        let Some(ar) = ctx.kinds.get(&key) else {
            tracing::warn!(kind = %key, name = %d.name, "kind not served by the API server; skipped");
            ctx.event(
                sc,
                EventType::Warning,
                "KindNotInstalled",
                "Apply",
                format!(
                    "{} {} skipped: {key} is not served by the API server (install its CRD)",
                    d.kind, d.name
                ),
                Some(reference(
                    &d.api_version,
                    &d.kind,
                    &namespace,
                    &d.name,
                    None,
                )),
            )
            .await;
            continue;
        };
        let (outcome, live) = apply::apply(&ctx.client, ar, &namespace, &d.name, &d.object).await?;
        let related = || {
            Some(reference(
                &d.api_version,
                &d.kind,
                &namespace,
                &d.name,
                live.metadata.uid.clone(),
            ))
        };
        match outcome {
            Outcome::Created => {
                tracing::info!(kind = %d.kind, name = %d.name, "created");
                ctx.event(
                    sc,
                    EventType::Normal,
                    "Created",
                    "Apply",
                    format!("created {} {}", d.kind, d.name),
                    related(),
                )
                .await;
            }
            Outcome::Updated => {
                tracing::info!(kind = %d.kind, name = %d.name, "updated");
                ctx.event(
                    sc,
                    EventType::Normal,
                    "Updated",
                    "Apply",
                    format!("updated {} {}", d.kind, d.name),
                    related(),
                )
                .await;
            }
            Outcome::Unchanged => tracing::debug!(kind = %d.kind, name = %d.name, "unchanged"),
        }
        let role = match d.kind.as_str() {
            "Deployment" => Some(Role::Frontend),
            "StatefulSet" => Some(Role::Store),
            _ => None,
        };
        if let Some(role) = role {
            let value = serde_json::to_value(&live).map_err(|source| Error::Serialize {
                what: format!("{} {}", d.kind, d.name),
                source,
            })?;
            workloads.push((Workload::from_object(role, &value), value));
        }
    }

    let uid = sc.uid().unwrap_or_default();
    for (key, ar) in ctx.kinds.served() {
        let empty = BTreeSet::new();
        let keep_names = keep.get(key).unwrap_or(&empty);
        let deleted = apply::prune(
            &ctx.client,
            ar,
            &namespace,
            &sc.name_any(),
            &uid,
            keep_names,
        )
        .await?;
        for name in deleted {
            tracing::info!(kind = %key.kind, %name, "pruned");
            ctx.event(
                sc,
                EventType::Normal,
                "Deleted",
                "Prune",
                format!("deleted {} {name}: no longer desired", key.kind),
                Some(reference(
                    &key.api_version,
                    &key.kind,
                    &namespace,
                    &name,
                    None,
                )),
            )
            .await;
        }
    }

    if let Some(step) = &keyring {
        report_keyring_step(sc, ctx, step).await;
    }

    let ring = if has_ring {
        Some(drive_ring(sc, ctx, &inputs.store_password).await?)
    } else {
        None
    };
    let observation = Observation {
        generation: sc.metadata.generation.unwrap_or_default(),
        workloads: workloads.iter().map(|(w, _)| w.clone()).collect(),
        invalid: None,
        failure: None,
        ring: ring.as_ref().map(|r| crate::status::RingObservation {
            epoch: r.epoch,
            migrating: r.migrating,
            waiting: r.waiting.clone(),
        }),
    };
    let routing = routing_update(sc, ctx).await;
    let refresh_counters = progress_due(ctx, &key_of(sc));
    status_writer::write_observed(
        &ctx.client,
        sc,
        &observation,
        &workloads,
        ring.as_ref(),
        refresh_counters,
        &routing,
    )
    .await?;
    let busy = ring
        .as_ref()
        .is_some_and(|r| r.migrating || r.waiting.is_some() || r.advanced.is_some() || !r.steady);
    Ok(if busy {
        Reconciled::RingBusy
    } else if let Some(step) = keyring {
        // A second late at most: the step is due when its second has passed.
        let wait = u64::try_from(step.next_due.saturating_sub(now)).unwrap_or(0) + 1;
        Reconciled::KeyringDue(Duration::from_secs(wait))
    } else {
        Reconciled::Applied
    })
}

/// Warns (log and Event) about a valid spec that will still hurt users, once per
/// generation.
async fn advise_once(sc: &SessionCluster, ctx: &Context) {
    let generation = sc.metadata.generation.unwrap_or_default();
    if lock(&ctx.advised).insert(key_of(sc), generation) == Some(generation) {
        return;
    }
    for advice in crate::advice::advise(&sc.spec.frontend) {
        tracing::warn!(reason = advice.reason, message = %advice.message, "spec advice");
        ctx.event(
            sc,
            EventType::Warning,
            advice.reason,
            "Validate",
            advice.message,
            None,
        )
        .await;
    }
}

/// Compares the routing just applied with the one remembered in the status, and warns
/// (log, metric, Event) when the change sends users with affinity to other frontends.
async fn routing_update(sc: &SessionCluster, ctx: &Context) -> status_writer::RoutingUpdate {
    let placement = crate::routing_change::placement(&sc.spec.routing);
    let remembered = sc.status.as_ref().and_then(|s| s.routing.as_ref());
    let change = crate::routing_change::assess(remembered, &placement, sc.spec.strategy);
    let first_warning = |p: &crate::api::RoutingStatus| {
        lock(&ctx.remaps_warned)
            .insert(key_of(sc), p.clone())
            .as_ref()
            != Some(p)
    };
    if let crate::routing_change::Change::Remapped { reason, message } = &change {
        if !first_warning(&placement) {
            return status_writer::RoutingUpdate { placement, change };
        }
        tracing::warn!(reason = reason.label(), %message, "routing change remaps users");
        ctx.metrics.routing_remap(reason.label());
        ctx.event(
            sc,
            EventType::Warning,
            reason.label(),
            "Route",
            message.clone(),
            None,
        )
        .await;
    }
    status_writer::RoutingUpdate { placement, change }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The Event and metric of a cookie-keyring rotation step (strategy Client); the Secret
/// carrying it was applied above.
async fn report_keyring_step(sc: &SessionCluster, ctx: &Context, step: &inputs::KeyringStep) {
    use crate::keyring::Rotation;
    let Some(rotation) = &step.rotation else {
        return;
    };
    ctx.metrics.keyring_step(rotation.label());
    let secret = crate::build::names::keyring(&sc.name_any());
    let (reason, note) = match rotation {
        Rotation::Staged { key } => (
            "KeyStaged",
            format!(
                "cookie key {key} added to Secret {secret}: frontends can open cookies sealed \
                 with it; it seals new cookies in {} s",
                ctx.keyring_propagation.as_secs()
            ),
        ),
        Rotation::Promoted { key, retired } if retired.is_empty() => (
            "KeyRotated",
            format!("cookie key {key} now seals new cookies (Secret {secret})"),
        ),
        Rotation::Promoted { key, retired } => (
            "KeyRotated",
            format!(
                "cookie key {key} now seals new cookies (Secret {secret}); retired key(s) {}",
                retired
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    };
    tracing::info!(reason, %note, "keyring");
    let key = match rotation {
        Rotation::Staged { key } | Rotation::Promoted { key, .. } => key,
    };
    let related = sc.namespace().map(|ns| {
        part_of(
            reference("v1", "Secret", &ns, &secret, None),
            format!("data.key-{key}"),
        )
    });
    ctx.event(
        sc,
        EventType::Normal,
        reason,
        "RotateKeyring",
        note,
        related,
    )
    .await;
}

/// One step of the store's ring, with its Event and metrics. `password` is the nodes'
/// (their admin API takes a configuration only with it).
async fn drive_ring(
    sc: &SessionCluster,
    ctx: &Context,
    password: &str,
) -> Result<RingReport, Error> {
    let report = crate::ring_driver::sync(
        &ctx.client,
        sc,
        &ctx.cluster_domain,
        &ctx.health,
        &ctx.failover,
        password,
    )
    .await?;
    ctx.metrics
        .ring_learning(report.progress.map_or(0, |(_, total)| total));
    ctx.metrics.ring_failures(
        u64::try_from(report.failed.len()).unwrap_or(u64::MAX),
        u64::try_from(report.unavailable).unwrap_or(u64::MAX),
    );
    count_copied(ctx, &key_of(sc), &report);
    if let Some(took) = report.migration_took {
        ctx.metrics.migration_finished(took);
    }
    if let Some(f) = &report.failover {
        ctx.metrics.ring_epoch(Advance::Failover.label());
        ctx.metrics
            .ring_promoted(u64::try_from(f.promoted.len()).unwrap_or(u64::MAX));
        let note = format!(
            "ring epoch {}: store nodes {} stopped answering for {:?} and left their replica sets; {} primaries handed to replicas proven caught up{}",
            report.epoch,
            f.dead.join(", "),
            ctx.failover.window(),
            f.promoted.len(),
            if f.unavailable.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} partitions have no proven replica and wait for their primary",
                    f.unavailable.len()
                )
            }
        );
        let type_ = if f.unavailable.is_empty() {
            EventType::Normal
        } else {
            EventType::Warning
        };
        let related = ring_reference(sc, report.epoch);
        ctx.event(sc, type_, "Failover", "Ring", note, related)
            .await;
    }
    if !report.given_up.is_empty() {
        ctx.metrics.ring_epoch(Advance::GiveUp.label());
        let note = format!(
            "ring epoch {}: {} partitions had their only copy in frontend pods that are gone \
             without a handoff (killed, node lost); they start again empty on the survivors \
             and their sessions are lost (replicationFactor 2 keeps a copy)",
            report.epoch,
            report.given_up.len()
        );
        let related = ring_reference(sc, report.epoch);
        ctx.event(
            sc,
            EventType::Warning,
            "SessionsLost",
            "Ring",
            note,
            related,
        )
        .await;
    }
    if let Some(step) = report
        .advanced
        .filter(|s| !matches!(s, Advance::Failover | Advance::GiveUp))
    {
        ctx.metrics.ring_epoch(step.label());
        let message = match step {
            Advance::Bootstrap => format!(
                "ring epoch {}: placed the partitions on {}",
                report.epoch,
                report.members.join(", ")
            ),
            Advance::AddLearners => format!(
                "ring epoch {}: new owners joined as learners, copying {} partition replicas",
                report.epoch,
                report.progress.map_or(0, |(_, total)| total)
            ),
            Advance::Flip => format!(
                "ring epoch {}: learners caught up, the new placement serves ({})",
                report.epoch,
                report.members.join(", ")
            ),
            Advance::RemoveDrained => format!(
                "ring epoch {}: drained nodes hold nothing and left the ring",
                report.epoch
            ),
            Advance::Rejoin => format!(
                "ring epoch {}: a node restarted without every acknowledged write on disk re-learns its partitions",
                report.epoch
            ),
            // Reported above, with what it did.
            Advance::Failover | Advance::GiveUp => String::new(),
        };
        ctx.event(
            sc,
            EventType::Normal,
            "RingEpoch",
            "Ring",
            message,
            ring_reference(sc, report.epoch),
        )
        .await;
    }
    Ok(report)
}

/// Adds what the store nodes copied since the last look to the throughput counters.
/// Copying restarts with every epoch, and so do the nodes' counters.
fn count_copied(ctx: &Context, key: &str, report: &RingReport) {
    let now = (
        report.epoch,
        report.copying.keys_sent,
        report.copying.bytes_sent,
    );
    let before = lock(&ctx.copied_seen).insert(key.to_owned(), now);
    let (sessions, bytes) = match before {
        Some((epoch, keys, bytes)) if epoch == now.0 => {
            (now.1.saturating_sub(keys), now.2.saturating_sub(bytes))
        }
        _ => (now.1, now.2),
    };
    ctx.metrics.migration_copied(sessions, bytes);
}

/// Whether the migration's copy counters may be written to the status now (rate-limited:
/// see PROGRESS_WRITE_INTERVAL).
fn progress_due(ctx: &Context, key: &str) -> bool {
    let mut written = lock(&ctx.progress_written);
    let now = Instant::now();
    match written.get(key) {
        Some(at) if now.duration_since(*at) < PROGRESS_WRITE_INTERVAL => false,
        _ => {
            written.insert(key.to_owned(), now);
            true
        }
    }
}

async fn report_invalid(
    sc: &SessionCluster,
    ctx: &Context,
    message: String,
) -> Result<Reconciled, Error> {
    tracing::warn!(%message, "SessionCluster is invalid");
    let already = status_writer::is_invalid_with(sc, &message);
    status_writer::write_invalid(&ctx.client, sc, &message).await?;
    if !already {
        ctx.event(sc, EventType::Warning, "Invalid", "Validate", message, None)
            .await;
    }
    Ok(Reconciled::Invalid)
}

fn reference(
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
    uid: Option<String>,
) -> ObjectReference {
    ObjectReference {
        api_version: Some(api_version.to_owned()),
        kind: Some(kind.to_owned()),
        namespace: Some(namespace.to_owned()),
        name: Some(name.to_owned()),
        uid,
        ..Default::default()
    }
}

/// `reference` narrowed to one part of the object. The Event recorder folds Events with the
/// same reason, action and related object into one series that keeps the first note, so
/// a step that should stay readable on its own (each ring epoch, each cookie key) names
/// its part.
fn part_of(mut r: ObjectReference, field_path: String) -> ObjectReference {
    r.field_path = Some(field_path);
    r
}

/// The ring ConfigMap at `epoch`, as the related object of a ring Event.
fn ring_reference(sc: &SessionCluster, epoch: u64) -> Option<ObjectReference> {
    let ns = sc.namespace()?;
    let name = crate::ring_driver::state_name(&sc.name_any());
    Some(part_of(
        reference("v1", "ConfigMap", &ns, &name, None),
        format!("epoch {epoch}"),
    ))
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// The failure counts stay usable even if a reconcile panicked while holding the lock.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
