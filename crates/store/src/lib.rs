//! The session store: one node of a sharded, replicated store speaking the Redis protocol.

pub mod backend;
pub mod server;
pub mod command;
pub mod reply;
pub mod resp;
pub mod value;

/// Command-line arguments of `sessionplane store`.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Address the Redis protocol listens on.
    #[arg(long, env = "SESSIONPLANE_LISTEN", default_value = "0.0.0.0:6379")]
    pub listen: std::net::SocketAddr,
}

/// Runs a store node until it is told to stop.
pub async fn run(_args: StoreArgs) -> anyhow::Result<()> {
    anyhow::bail!("store node: under construction")
}
