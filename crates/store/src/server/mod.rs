//! The Redis-protocol front: listeners (plain and TLS), connections, per-connection state,
//! limits, AUTH, and the commands answered without the backend (PING, HELLO, INFO, ...).

pub mod config;
mod conn;
mod info;
pub mod memory;
mod session;
mod shared;
mod tls;

pub use config::{ConfigError, ServerArgs, ServerConfig};
pub use info::{rss_bytes, REDIS_VERSION};
pub use memory::MemoryBackend;

use crate::backend::Backend;
use crate::command::errors::MAX_CLIENTS;
use shared::Shared;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Bound listeners, ready to serve.
pub struct Server {
    shared: Arc<Shared>,
    plain: TcpListener,
    tls: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
}

impl Server {
    /// Binds the listeners (port 0 picks a free port: see `local_addr`).
    pub async fn bind(config: ServerConfig) -> std::io::Result<Server> {
        let plain = TcpListener::bind(config.listen).await?;
        let tls = match &config.tls {
            Some((addr, tls_config)) => Some((
                TcpListener::bind(addr).await?,
                tokio_rustls::TlsAcceptor::from(tls_config.clone()),
            )),
            None => None,
        };
        let mut config = config;
        config.listen = plain.local_addr()?;
        Ok(Server {
            shared: Arc::new(Shared::new(config)),
            plain,
            tls,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.config.listen
    }

    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Accepts clients until `shutdown` completes; then stops accepting and closes every
    /// connection between two requests.
    pub async fn run(self, backend: Arc<dyn Backend>, shutdown: impl Future<Output = ()>) {
        let Server { shared, plain, tls } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let plain = accept_loop(
            plain,
            None,
            shared.clone(),
            backend.clone(),
            stop_rx.clone(),
        );
        let tls = async {
            if let Some((listener, acceptor)) = tls {
                accept_loop(
                    listener,
                    Some(acceptor),
                    shared.clone(),
                    backend.clone(),
                    stop_rx.clone(),
                )
                .await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            _ = plain => {}
            _ = tls => {}
            _ = shutdown => {}
        }
        let _ = stop_tx.send(true);
    }
}

/// Binds and serves until `shutdown` completes.
pub async fn serve(
    config: ServerConfig,
    backend: Arc<dyn Backend>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let server = Server::bind(config).await?;
    tracing::info!(listen = %server.local_addr(), tls = ?server.tls_local_addr(), "redis protocol listening");
    server.run(backend, shutdown).await;
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    backend: Arc<dyn Backend>,
    stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let backend = backend.clone();
        let stop = stop.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let Some(slot) = shared.admit() else {
                reject(stream, tls, &shared).await;
                return;
            };
            let result = match tls {
                None => conn::serve(stream, peer, shared.clone(), backend, stop).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        shared.config.request_timeout,
                        acceptor.accept(stream),
                    )
                    .await;
                    match handshake {
                        Ok(Ok(tls_stream)) => {
                            conn::serve(tls_stream, peer, shared.clone(), backend, stop).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => Ok(()),
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
}

/// Tells a client over the limit why, then closes.
async fn reject(stream: TcpStream, tls: Option<tokio_rustls::TlsAcceptor>, shared: &Shared) {
    async fn say<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) {
        let line = format!("-{MAX_CLIENTS}\r\n");
        let _ = s.write_all(line.as_bytes()).await;
        let _ = s.shutdown().await;
    }
    match tls {
        None => say(stream).await,
        Some(acceptor) => {
            if let Ok(Ok(s)) =
                tokio::time::timeout(shared.config.request_timeout, acceptor.accept(stream)).await
            {
                say(s).await;
            }
        }
    }
}
