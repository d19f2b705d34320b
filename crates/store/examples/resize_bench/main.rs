//! Benchmark (a report, not a test): resize 3 → 4 nodes holding N sessions, under a
//! recording client, on sessionplane's store and on Redis Cluster, in the same run.
//!
//! `hack/bench-resize.sh` starts and stops the processes; this program drives them:
//!
//! - `redis`: `redis-cli --cluster create` over three masters, load the sessions,
//!   then, while the load generator reads and writes through a cluster client,
//!   `redis-cli --cluster add-node` + `rebalance --cluster-use-empty-masters` (timed);
//! - `store`: bootstrap three store nodes with the process tests' master
//!   (`tests/support/master.rs`, the operator's stand-in), load the sessions, then under
//!   the same load `Master::migrate_to` four nodes: the new node is pushed as a learner,
//!   the master waits until it reports itself caught up, then flips the epoch (timed);
//! - `report`: the markdown table from the two JSON outcomes.

#[path = "../../tests/support/http_client.rs"]
mod http_client;
mod load;
mod outcome;
mod redis;
mod store;

/// The process tests' master, reused as is: the same code that drives the resize test
/// (it takes `http` from its parent module).
#[allow(dead_code)]
#[path = "../../tests/support/master.rs"]
mod master;
use http_client::{http, http_authorized, http_from};

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "Resize 3 → 4 with N sessions: sessionplane store vs Redis Cluster")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Redis Cluster: create over the first three addresses, reshard onto the fourth.
    Redis {
        /// Four `host:port` of cluster-enabled redis-servers.
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// sessionplane store: three nodes, then a migration to four.
    Store {
        /// Four `id=resp=peer=admin` store nodes (started, not configured).
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        #[arg(long, default_value_t = 1024)]
        partitions: u32,
        /// Replication factor (1: each session once, as Redis Cluster masters without
        /// replicas hold it).
        #[arg(long, default_value_t = 1)]
        rf: u32,
        #[arg(long, default_value_t = 0.25)]
        epsilon: f64,
        #[command(flatten)]
        common: Common,
    },
    /// Prints the markdown table from the outcomes written by `redis` and `store`.
    Report { redis: PathBuf, store: PathBuf },
}

#[derive(Args, Clone)]
pub struct Common {
    /// Sessions loaded before the resize.
    #[arg(long, default_value_t = 1_000_000)]
    sessions: u64,
    /// Bytes per session value.
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// Concurrent connections of the bulk loader.
    #[arg(long, default_value_t = 48)]
    load_connections: usize,
    /// Load-generator workers during the resize (each one request at a time).
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// Pause between one worker's requests, in milliseconds.
    #[arg(long, default_value_t = 2)]
    pace_ms: u64,
    /// Where the outcome (JSON) is written.
    #[arg(long)]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Redis { nodes, common } => {
            if nodes.len() != 4 {
                anyhow::bail!("--nodes takes four addresses, got {}", nodes.len());
            }
            let outcome = redis::run(&nodes, &common).await?;
            outcome.write(&common.out)
        }
        Cmd::Store {
            nodes,
            partitions,
            rf,
            epsilon,
            common,
        } => {
            let nodes = store::parse_nodes(&nodes)?;
            let outcome = store::run(&nodes, partitions, rf, epsilon, &common).await?;
            outcome.write(&common.out)
        }
        Cmd::Report { redis, store } => {
            let redis = outcome::Outcome::read(&redis)?;
            let store = outcome::Outcome::read(&store)?;
            print!("{}", outcome::table(&redis, &store));
            Ok(())
        }
    }
}
