//! A standalone store node on one in-memory partition: the protocol front without the
//! cluster, for protocol tests, real-client tests and the single-node benchmark.

use clap::Parser;
use sessionplane_store::server::{self, MemoryBackend, ServerArgs, ServerConfig};
use std::sync::Arc;

// Pipelined traffic allocates and frees many small buffers per command; glibc's malloc
// spent a third of the node's CPU on them (docs/benchmarks.md), mimalloc a fraction.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// Address the Redis protocol listens on.
    #[arg(long, default_value = "127.0.0.1:6379")]
    listen: std::net::SocketAddr,
    #[command(flatten)]
    server: ServerArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = ServerConfig::from_args(args.listen, &args.server)?;
    let backend = Arc::new(MemoryBackend::new());
    let sweeper = backend.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
        loop {
            tick.tick().await;
            sweeper.expire_sample(server::memory::now_ms(), 20);
        }
    });
    let srv = server::Server::bind(config).await?;
    // The first line tells a test harness which port was picked.
    println!("listening {}", srv.local_addr());
    if let Some(tls) = srv.tls_local_addr() {
        println!("listening-tls {tls}");
    }
    srv.run(backend, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}
