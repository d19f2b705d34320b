//! The operator process: leader election, the HTTP endpoints, and the controller, which
//! runs only while this replica leads. Shuts down gracefully on request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use crate::controller::{self, ControllerConfig};
use crate::http::{self, Health};
use crate::leader::{LeaderElector, Leadership, Timings};
use crate::metrics::Metrics;

/// Everything the operator process needs besides the client.
#[derive(Debug, Clone)]
pub struct Settings {
    pub metrics_addr: SocketAddr,
    /// Watch only this namespace; all namespaces when `None`.
    pub watch_namespace: Option<String>,
    /// Where the leader Lease lives.
    pub lease_namespace: String,
    pub lease_name: String,
    /// `holderIdentity` of this replica.
    pub identity: String,
    /// Take part in leader election; when false this replica always leads (one replica only!).
    pub leader_election: bool,
    /// Image of store nodes and agents when a spec names none.
    pub image: String,
    /// DNS domain of the cluster (store peer addresses).
    pub cluster_domain: String,
    /// Seconds a staged cookie key waits before it seals (strategy Client).
    pub keyring_propagation: std::time::Duration,
    pub timings: Timings,
    /// When a store node that stops answering is failed over.
    pub failover: crate::ring_driver::health::FailoverPolicy,
}

/// A running operator, for callers that start it in-process (the integration tests).
pub struct Running {
    /// The address the metrics server actually bound (useful with port 0).
    pub metrics_addr: SocketAddr,
    pub leadership: watch::Receiver<Leadership>,
    pub ready: Arc<AtomicBool>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Asks for a graceful shutdown and waits for it (Lease released, reconciles finished).
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.send_replace(true);
        self.task.await?
    }
}

/// Binds the metrics address and starts the operator in the background.
pub async fn start(client: Client, settings: Settings) -> anyhow::Result<Running> {
    let listener = TcpListener::bind(settings.metrics_addr).await?;
    let metrics_addr = listener.local_addr()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (lead_tx, lead_rx) = watch::channel(Leadership::Unknown);
    let ready = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(operate(
        client,
        settings,
        listener,
        ready.clone(),
        (lead_tx, lead_rx.clone()),
        shutdown_rx,
    ));
    Ok(Running {
        metrics_addr,
        leadership: lead_rx,
        ready,
        shutdown: shutdown_tx,
        task,
    })
}

/// Runs until SIGTERM or SIGINT.
pub async fn run_until_signal(client: Client, settings: Settings) -> anyhow::Result<()> {
    let running = start(client, settings).await?;
    tracing::info!(metrics = %running.metrics_addr, "operator started");
    wait_for_signal().await?;
    tracing::info!("shutdown requested");
    running.stop().await
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}

async fn wait_true(mut rx: watch::Receiver<bool>) {
    // A dropped sender also means "stop".
    let _ = rx.wait_for(|v| *v).await;
}

async fn operate(
    client: Client,
    settings: Settings,
    listener: TcpListener,
    ready: Arc<AtomicBool>,
    (lead_tx, leadership): (watch::Sender<Leadership>, watch::Receiver<Leadership>),
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    let health = Health {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let http_task = tokio::spawn(http::serve(listener, health, wait_true(shutdown.clone())));

    // Without election the sender stays here, so watchers of the state keep working.
    let (election, _fixed_state) = if settings.leader_election {
        let leases: Api<Lease> = Api::namespaced(client.clone(), &settings.lease_namespace);
        let elector = LeaderElector::new(
            leases,
            &settings.lease_name,
            &settings.identity,
            settings.timings.clone(),
        );
        (
            Some(tokio::spawn(elector.run(lead_tx, shutdown.clone()))),
            None,
        )
    } else {
        tracing::warn!("leader election disabled: run exactly one replica");
        lead_tx.send_replace(Leadership::Leader);
        (None, Some(lead_tx))
    };
    let standby_ready = tokio::spawn(track_standby_readiness(leadership.clone(), ready.clone()));

    lead_loop(client, &settings, &metrics, &ready, leadership, shutdown).await;
    metrics.set_leader(false);
    if let Some(Err(err)) = match election {
        Some(task) => Some(task.await),
        None => None,
    } {
        tracing::warn!(error = %err, "leader election task failed");
    }
    standby_ready.abort();
    if let Err(err) = http_task.await {
        tracing::warn!(error = %err, "metrics server task failed");
    }
    tracing::info!("operator stopped");
    Ok(())
}

/// A standby is ready as soon as it knows who leads: it has nothing else to wait for.
async fn track_standby_readiness(
    mut leadership: watch::Receiver<Leadership>,
    ready: Arc<AtomicBool>,
) {
    loop {
        match &*leadership.borrow_and_update() {
            Leadership::Standby { .. } => ready.store(true, Ordering::Release),
            Leadership::Unknown => ready.store(false, Ordering::Release),
            // The leader becomes ready when its caches are synced (see lead_loop).
            Leadership::Leader => {}
        }
        if leadership.changed().await.is_err() {
            return;
        }
    }
}

/// Waits for leadership, runs the controller while it lasts, and repeats until shutdown.
async fn lead_loop(
    client: Client,
    settings: &Settings,
    metrics: &Metrics,
    ready: &Arc<AtomicBool>,
    mut leadership: watch::Receiver<Leadership>,
    shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = leadership.wait_for(Leadership::is_leader) => if r.is_err() { return },
            _ = wait_true(shutdown.clone()) => return,
        }
        tracing::info!(identity = %settings.identity, "leading: starting the controller");
        metrics.set_leader(true);
        ready.store(false, Ordering::Release);

        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let mut lost = leadership.clone();
        let sd = shutdown.clone();
        let bridge = tokio::spawn(async move {
            // Shutdown first: on the way out the elector also steps down, which is not a loss.
            tokio::select! {
                biased;
                _ = wait_true(sd) => {}
                r = lost.wait_for(|l| !l.is_leader()) => match r {
                    Ok(_) => tracing::warn!("leadership lost: stopping the controller"),
                    Err(_) => tracing::debug!("leader election ended: stopping the controller"),
                },
            }
            let _ = stop_tx.send(());
        });
        let synced = ready.clone();
        let config = ControllerConfig {
            namespace: settings.watch_namespace.clone(),
            instance: settings.identity.clone(),
            default_image: settings.image.clone(),
            cluster_domain: settings.cluster_domain.clone(),
            keyring_propagation: settings.keyring_propagation,
            failover: settings.failover,
        };
        let outcome = controller::run(
            client.clone(),
            config,
            metrics.clone(),
            async move {
                let _ = stop_rx.await;
            },
            move || synced.store(true, Ordering::Release),
        )
        .await;
        bridge.abort();
        metrics.set_leader(false);
        if let Err(err) = outcome {
            metrics.error(err.label());
            tracing::error!(error = %err, "controller could not start; retrying");
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                _ = wait_true(shutdown.clone()) => return,
            }
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
