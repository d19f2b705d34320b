//! One binary, one image: every role of sessionplane is a subcommand.

use clap::{Parser, Subcommand};

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
    /// Run the session agent sidecar of a frontend pod (strategies Sticky and Replicated).
    Agent(AgentArgs),
    /// Print the SessionCluster CustomResourceDefinition as YAML.
    Crd,
}

/// Which engine the agent runs: the operator writes SESSIONPLANE_STRATEGY into the
/// cluster's config ConfigMap, which the sidecar reads through envFrom.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum AgentStrategy {
    #[value(name = "Sticky")]
    Sticky,
    #[value(name = "Replicated")]
    Replicated,
}

#[derive(clap::Args)]
struct AgentArgs {
    #[arg(long, env = "SESSIONPLANE_STRATEGY", value_enum)]
    strategy: AgentStrategy,
    #[command(flatten)]
    sticky: sessionplane_store::sticky::StickyArgs,
}

async fn run_agent(args: AgentArgs) -> anyhow::Result<()> {
    match args.strategy {
        AgentStrategy::Sticky => sessionplane_store::sticky::run(args.sticky).await,
        // Dispatch point of the Replicated engine (built on another branch).
        AgentStrategy::Replicated => anyhow::bail!("Replicated agent not built in this binary"),
    }
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
        Command::Agent(args) => {
            init_tracing();
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(run_agent(args))
        }
        Command::Store(args) => {
            init_tracing();
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(sessionplane_store::run(args))
        }
    }
}
