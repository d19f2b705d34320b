//! The session store: one node of a sharded, replicated store speaking the Redis protocol.

pub mod admin;
pub mod backend;
pub mod cluster;
pub mod command;
pub mod keymap;
pub mod loadgen;
pub mod local_ports;
pub mod metrics;
pub mod node;
pub mod replicated;
pub mod reply;
pub mod resp;
pub mod server;
pub mod sticky;
pub mod storage;
pub mod value;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Command-line arguments of `sessionplane store`.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Address the Redis protocol listens on.
    #[arg(long, env = "SESSIONPLANE_LISTEN", default_value = "0.0.0.0:6379")]
    pub listen: SocketAddr,
    /// This node's id in the ring configuration: any unique string (a pod name, say).
    #[arg(long, env = "SESSIONPLANE_NODE_ID")]
    pub id: String,
    /// Address of the internal RPC (forwarding, replication, migration) between nodes.
    #[arg(long, env = "SESSIONPLANE_PEER_LISTEN", default_value = "0.0.0.0:7379")]
    pub peer_listen: SocketAddr,
    /// Address of the admin HTTP API (probes, status, ring configuration, metrics).
    #[arg(
        long,
        env = "SESSIONPLANE_ADMIN_LISTEN",
        default_value = "0.0.0.0:9379"
    )]
    pub admin: SocketAddr,
    /// Directory of the node's database.
    #[arg(long, env = "SESSIONPLANE_DATA_DIR", default_value = "/data")]
    pub data_dir: PathBuf,
    /// `always`: fsync before acknowledging a write; `everysec`: fsync once a second.
    #[arg(long, env = "SESSIONPLANE_FSYNC", value_enum, default_value = "always")]
    pub fsync: storage::FsyncPolicy,
    /// Milliseconds a command may spend in the cluster (retries through a new ring
    /// configuration or a lost owner included) before its client gets an error. Keep it
    /// below the clients' own timeouts: nothing a command does happens after its answer,
    /// but a client that gives up before the answer may see its write land later.
    #[arg(
        long,
        env = "SESSIONPLANE_COMMAND_TIMEOUT_MS",
        default_value_t = cluster::DEFAULT_COMMAND_TIMEOUT_MS,
        value_parser = clap::value_parser!(u64).range(100..=600_000)
    )]
    pub command_timeout_ms: u64,
    #[command(flatten)]
    pub server: server::ServerArgs,
}

/// The cluster side of a running node: its state and the listeners it serves.
pub struct Cluster {
    pub node: Arc<node::Node>,
    pub peer_addr: SocketAddr,
    pub admin_addr: SocketAddr,
}

/// Opens the node's data and starts its internal RPC, admin API, active expiry and
/// (with `everysec`) the flush ticker. Everything stops when `shutdown` fires.
pub async fn start_cluster(
    args: &StoreArgs,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Cluster> {
    let metrics = Arc::new(metrics::Metrics::new());
    // Peers prove the Redis password to each other (cluster::rpc), so a node without
    // it cannot forward, replicate or teach into this one.
    let peer_key = cluster::rpc::PeerKey::from_optional(args.server.password.as_deref());
    let node = node::Node::open(
        node::NodeOptions {
            id: args.id.clone(),
            data_dir: args.data_dir.clone(),
            fsync: args.fsync,
            peer_key: peer_key.clone(),
            command_timeout: std::time::Duration::from_millis(args.command_timeout_ms),
        },
        metrics,
    )?;
    node.mark_running().await?;
    let peer = tokio::net::TcpListener::bind(args.peer_listen).await?;
    let admin_listener = tokio::net::TcpListener::bind(args.admin).await?;
    let peer_addr = peer.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    let rpc_node = node.clone();
    tokio::spawn(cluster::rpc::serve(
        peer,
        peer_key,
        move |req| rpc_node.clone().handle_rpc(req),
        stopped(shutdown.clone()),
    ));
    let admin_auth = admin::AdminAuth::from_optional(args.server.password.as_deref())
        .map_err(|_| anyhow::anyhow!("no randomness for the admin API's password check"))?;
    tokio::spawn(admin::serve(
        admin_listener,
        node.clone(),
        admin_auth,
        stopped(shutdown.clone()),
    ));
    let expiring = node.clone();
    let expiry_stop = stopped(shutdown.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = expiring.expire_loop() => {}
            _ = expiry_stop => {}
        }
    });
    if args.fsync == storage::FsyncPolicy::Everysec {
        let storage = node.storage().clone();
        let stop = stopped(shutdown.clone());
        tokio::spawn(async move {
            tokio::pin!(stop);
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = storage.flush().await {
                            tracing::error!(error = %e, "periodic flush failed");
                        }
                    }
                    _ = &mut stop => return,
                }
            }
        });
    }
    tracing::info!(id = %args.id, peer = %peer_addr, admin = %admin_addr, "store node started");
    Ok(Cluster {
        node,
        peer_addr,
        admin_addr,
    })
}

pub(crate) async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Runs a store node until SIGTERM or Ctrl-C, then flushes its storage.
pub async fn run(args: StoreArgs) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let cluster = start_cluster(&args, stop_rx).await?;
    let config = server::ServerConfig::from_args(args.listen, &args.server)?;
    let backend: Arc<dyn backend::Backend> = cluster.node.clone();
    server::serve(config, backend, shutdown_signal()).await?;
    stop_tx.send_replace(true);
    cluster.node.shutdown().await?;
    tracing::info!("store node stopped");
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
