//! One binary, one image: every role of sessionplane is a subcommand.

use clap::{Parser, Subcommand};

// Pipelined traffic allocates and frees many small buffers per command; glibc's malloc
// spent a third of the node's CPU on them (docs/benchmarks.md), mimalloc a fraction.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "sessionplane",
    version,
    about = "Session consistency for replicated web frontends"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Kubernetes operator that reconciles SessionCluster resources.
    Operator(sessionplane_operator::OperatorArgs),
    /// Run one node of the session store (Redis protocol).
    Store(sessionplane_store::StoreArgs),
    /// Run the agent sidecar of a frontend pod; the strategy comes from
    /// SESSIONPLANE_STRATEGY (set by the operator's ConfigMap).
    Agent(sessionplane_store::replicated::ReplicatedArgs),
    /// Print the SessionCluster CustomResourceDefinition as YAML.
    Crd,
}

fn init_tracing() {
    use tracing_subscriber::{fmt, EnvFilter};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("SESSIONPLANE_LOG_FORMAT").is_ok_and(|v| v == "json");
    if json {
        fmt().json().with_env_filter(filter).init();
    } else {
        fmt().with_env_filter(filter).init();
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!("{}", sessionplane_operator::crd_yaml()?);
            Ok(())
        }
        Command::Operator(args) => {
            init_tracing();
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(sessionplane_operator::run(args))
        }
        Command::Store(args) => {
            init_tracing();
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(sessionplane_store::run(args))
        }
        Command::Agent(args) => {
            init_tracing();
            match std::env::var("SESSIONPLANE_STRATEGY").as_deref() {
                Ok("Replicated") => {
                    let rt = tokio::runtime::Runtime::new()?;
                    rt.block_on(sessionplane_store::replicated::run(args))
                }
                other => anyhow::bail!("no agent for strategy {other:?} in this build"),
            }
        }
    }
}
