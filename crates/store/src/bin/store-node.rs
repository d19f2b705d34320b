//! A store node on its own, for tests that start N of them on loopback without building
//! the whole `sessionplane` binary. Same arguments as `sessionplane store`.

use clap::Parser;

// Pipelined traffic allocates and frees many small buffers per command; glibc's malloc
// spent a third of the node's CPU on them (docs/benchmarks.md), mimalloc a fraction.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "store-node", about = "One node of the sessionplane store")]
struct Cli {
    #[command(flatten)]
    args: sessionplane_store::StoreArgs,
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
    rt.block_on(sessionplane_store::run(cli.args))
}
