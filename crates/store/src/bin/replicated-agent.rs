//! A Replicated agent on its own, for tests and the message-count measurement that start
//! N of them on loopback. Same arguments as `sessionplane agent` with
//! SESSIONPLANE_STRATEGY=Replicated.

use clap::Parser;

#[derive(Parser)]
#[command(name = "replicated-agent", about = "One agent of strategy Replicated")]
struct Cli {
    #[command(flatten)]
    args: sessionplane_store::replicated::ReplicatedArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .init();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(sessionplane_store::replicated::run(cli.args))
}
