//! What the Redis-protocol front is configured with: arguments, and the loaded config.

use crate::resp::Limits;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Command-line arguments of the Redis-protocol front, to be flattened into the store's
/// arguments. The plain listen address is not here: the node's arguments own it.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Password clients must send with AUTH (or HELLO AUTH) before any other command.
    #[arg(long, env = "SESSIONPLANE_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Address of a TLS listener, served next to the plain one; needs --tls-cert and --tls-key.
    #[arg(long, env = "SESSIONPLANE_TLS_LISTEN", requires_all = ["tls_cert", "tls_key"])]
    pub tls_listen: Option<SocketAddr>,
    /// PEM file with the TLS certificate chain.
    #[arg(long, env = "SESSIONPLANE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the TLS private key.
    #[arg(long, env = "SESSIONPLANE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Most connected clients; one more gets "ERR max number of clients reached".
    #[arg(long, env = "SESSIONPLANE_MAX_CLIENTS", default_value_t = 10_000)]
    pub max_clients: usize,
    /// Largest value (bulk string) a client may send, in bytes.
    #[arg(long, env = "SESSIONPLANE_MAX_VALUE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_value_bytes: usize,
    /// Largest key, in bytes.
    #[arg(long, env = "SESSIONPLANE_MAX_KEY_BYTES", default_value_t = 64 * 1024)]
    pub max_key_bytes: usize,
    /// Most arguments in one command.
    #[arg(long, env = "SESSIONPLANE_MAX_ARGS", default_value_t = 1024 * 1024)]
    pub max_args: usize,
    /// Most bytes of arguments in one command.
    #[arg(long, env = "SESSIONPLANE_MAX_REQUEST_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_request_bytes: usize,
    /// Seconds a started request may take to arrive completely (slow-client defence).
    #[arg(long, env = "SESSIONPLANE_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Seconds an idle client is kept; 0 keeps it forever, as Redis's `timeout 0`.
    #[arg(long, env = "SESSIONPLANE_IDLE_TIMEOUT_SECS", default_value_t = 0)]
    pub idle_timeout_secs: u64,
}

impl Default for ServerArgs {
    fn default() -> Self {
        ServerArgs {
            password: None,
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            max_clients: 10_000,
            max_value_bytes: 16 * 1024 * 1024,
            max_key_bytes: 64 * 1024,
            max_args: 1024 * 1024,
            max_request_bytes: 64 * 1024 * 1024,
            request_timeout_secs: 30,
            idle_timeout_secs: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no certificate in {0}")]
    NoCertificate(PathBuf),
    #[error("no private key in {0}")]
    NoKey(PathBuf),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("--tls-listen needs both --tls-cert and --tls-key")]
    TlsIncomplete,
}

impl ConfigError {
    pub fn label(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "read",
            ConfigError::NoCertificate(_) => "no_certificate",
            ConfigError::NoKey(_) => "no_key",
            ConfigError::Tls(_) => "tls",
            ConfigError::TlsIncomplete => "tls_incomplete",
        }
    }
}

/// The loaded configuration of the front.
#[derive(Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub tls: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
    pub password: Option<String>,
    pub max_clients: usize,
    pub max_key_bytes: usize,
    pub limits: Limits,
    pub request_timeout: Duration,
    /// `None`: never close an idle client.
    pub idle_timeout: Option<Duration>,
}

impl ServerConfig {
    /// A plain listener with default limits and no password (tests, examples).
    pub fn plain(listen: SocketAddr) -> Self {
        Self::build(listen, &ServerArgs::default(), None)
    }

    /// Loads the configuration, reading the TLS files if TLS is asked for.
    pub fn from_args(listen: SocketAddr, args: &ServerArgs) -> Result<Self, ConfigError> {
        let tls = match (args.tls_listen, &args.tls_cert, &args.tls_key) {
            (None, _, _) => None,
            (Some(addr), Some(cert), Some(key)) => Some((addr, super::tls::load(cert, key)?)),
            (Some(_), _, _) => return Err(ConfigError::TlsIncomplete),
        };
        Ok(Self::build(listen, args, tls))
    }

    fn build(
        listen: SocketAddr,
        args: &ServerArgs,
        tls: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
    ) -> Self {
        ServerConfig {
            listen,
            tls,
            password: args.password.clone().filter(|p| !p.is_empty()),
            max_clients: args.max_clients,
            max_key_bytes: args.max_key_bytes,
            limits: Limits {
                max_bulk_len: args.max_value_bytes.max(args.max_key_bytes),
                max_multibulk_len: args.max_args,
                max_request_bytes: args.max_request_bytes,
                ..Limits::default()
            },
            request_timeout: Duration::from_secs(args.request_timeout_secs.max(1)),
            idle_timeout: (args.idle_timeout_secs > 0)
                .then(|| Duration::from_secs(args.idle_timeout_secs)),
        }
    }
}
