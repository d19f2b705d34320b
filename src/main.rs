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
    /// Run the session agent sidecar of a frontend pod: the engine of strategy Sticky or
    /// Replicated, chosen by SESSIONPLANE_STRATEGY (the operator's ConfigMap). The engine's
    /// own flags follow (`SESSIONPLANE_STRATEGY=Sticky sessionplane agent --help`).
    #[command(disable_help_flag = true)]
    Agent {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Print the SessionCluster CustomResourceDefinition as YAML.
    Crd,
}

// The two engines share flag names (--listen, --id, ...), so the agent reads its strategy
// first and then parses the rest with that engine's flags alone.
#[derive(Parser)]
struct StickyAgent {
    #[command(flatten)]
    args: sessionplane_store::sticky::StickyArgs,
}

#[derive(Parser)]
struct ReplicatedAgent {
    #[command(flatten)]
    args: sessionplane_store::replicated::ReplicatedArgs,
}

fn run_agent(args: Vec<String>) -> anyhow::Result<()> {
    let strategy = std::env::var("SESSIONPLANE_STRATEGY").unwrap_or_default();
    let argv = std::iter::once(format!("sessionplane agent (strategy {strategy})")).chain(args);
    match strategy.as_str() {
        "Sticky" => {
            let agent = StickyAgent::parse_from(argv);
            init_tracing();
            tokio::runtime::Runtime::new()?.block_on(sessionplane_store::sticky::run(agent.args))
        }
        "Replicated" => {
            let agent = ReplicatedAgent::parse_from(argv);
            init_tracing();
            tokio::runtime::Runtime::new()?
                .block_on(sessionplane_store::replicated::run(agent.args))
        }
        other => anyhow::bail!(
            "sessionplane agent runs strategy Sticky or Replicated, named by SESSIONPLANE_STRATEGY; got {other:?}"
        ),
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
        Command::Agent { args } => run_agent(args),
        Command::Store(args) => {
            init_tracing();
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(sessionplane_store::run(args))
        }
    }
}
