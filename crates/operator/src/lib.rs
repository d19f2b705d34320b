//! The SessionCluster API and the controller that reconciles it.

pub mod api;
pub mod build;
pub mod validate;

/// Command-line arguments of `sessionplane operator`.
#[derive(Debug, Clone, clap::Args)]
pub struct OperatorArgs {
    /// Address of the metrics and health HTTP server.
    #[arg(
        long,
        env = "SESSIONPLANE_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_addr: std::net::SocketAddr,
}

/// The CustomResourceDefinition YAML, as written to `crds/`.
pub fn crd_yaml() -> anyhow::Result<String> {
    use kube::CustomResourceExt;
    Ok(serde_yaml::to_string(&api::SessionCluster::crd())?)
}

/// Runs the operator until SIGTERM.
pub async fn run(_args: OperatorArgs) -> anyhow::Result<()> {
    anyhow::bail!("operator: under construction")
}
