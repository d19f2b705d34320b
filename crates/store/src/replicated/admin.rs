//! The agent's admin HTTP API.
//!
//! - `GET /healthz`: the process is alive.
//! - `GET /readyz`: 200 once the agent pulled a full state from a peer (or found it has
//!   none to pull from); 503 before. The sidecar's startup and readiness probes.
//! - `GET /v1/status`: JSON id, readiness, keys and peers with their liveness.
//! - `GET /metrics`: Prometheus text format.

use super::agent::Agent;
use crate::admin::{json, reply, serve_with};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

pub async fn serve(listener: TcpListener, agent: Arc<Agent>, shutdown: impl Future<Output = ()>) {
    serve_with(listener, move |req| handle(agent.clone(), req), shutdown).await
}

async fn handle(
    agent: Arc<Agent>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let resp = match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => reply(StatusCode::OK, "text/plain", "ok\n"),
        (&Method::GET, "/readyz") if agent.is_ready() => {
            reply(StatusCode::OK, "text/plain", "ready\n")
        }
        (&Method::GET, "/readyz") => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "pulling sessions from a peer\n",
        ),
        (&Method::GET, "/v1/status") => json(StatusCode::OK, &agent.status()),
        (&Method::GET, "/metrics") => {
            agent.update_peer_gauges();
            reply(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                agent.metrics.encode(),
            )
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    };
    Ok(resp)
}
