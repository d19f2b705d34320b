//! The admin HTTP API: probes, status, ring configuration and metrics.
//!
//! - `GET /healthz`: the process is alive.
//! - `GET /readyz`: the node serves a ring configuration at least as new as the one it
//!   had persisted (every partition it serves as primary or replica is in sync by
//!   construction; learners do not serve).
//! - `GET /v1/status`: JSON per-partition roles, keys and migration progress.
//! - `POST /v1/ring`: a new ring configuration (JSON `RingConfig`) from the master. When
//!   the node has a password it must come as `Authorization: Bearer <password>`: a ring
//!   configuration decides what the node keeps and drops, so nobody else on the pod
//!   network may send one. The GET endpoints stay open for probes and Prometheus.
//! - `GET /metrics`: Prometheus text format.

use crate::cluster::config::RingConfig;
use crate::node::Node;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Largest configuration body accepted (a 2048-partition ring with long ids fits).
const MAX_BODY: usize = 8 * 1024 * 1024;

pub async fn serve(
    listener: TcpListener,
    node: Arc<Node>,
    auth: Option<AdminAuth>,
    shutdown: impl Future<Output = ()>,
) {
    let auth = Arc::new(auth);
    serve_with(
        listener,
        move |req| handle(node.clone(), auth.clone(), req),
        shutdown,
    )
    .await
}

/// Who may change the node: a caller that sends the node's password as a bearer token.
pub struct AdminAuth {
    // The password's tag under a key drawn at startup: comparing tags with ring's
    // constant-time check tells nothing about the password through timing.
    key: ring::hmac::Key,
    tag: ring::hmac::Tag,
}

impl AdminAuth {
    /// `None` without a password (every caller may change the node).
    pub fn from_optional(password: Option<&str>) -> Result<Option<Self>, ring::error::Unspecified> {
        let Some(password) = password.filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        let rng = ring::rand::SystemRandom::new();
        let key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)?;
        let tag = ring::hmac::sign(&key, password.as_bytes());
        Ok(Some(AdminAuth { key, tag }))
    }

    fn allows(&self, req: &Request<Incoming>) -> bool {
        let Some(token) = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        ring::hmac::verify(&self.key, token.as_bytes(), self.tag.as_ref()).is_ok()
    }
}

/// Serves HTTP/1 on `listener` with `handle` until `shutdown` resolves (the store node's
/// admin API and the replicated agent's share it).
pub async fn serve_with<H, F>(listener: TcpListener, handle: H, shutdown: impl Future<Output = ()>)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(handle);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "admin connection ended");
            }
        });
    }
}

pub(crate) fn reply(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

pub(crate) fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(body) => reply(status, "application/json", body),
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            e.to_string(),
        ),
    }
}

async fn handle(
    node: Arc<Node>,
    auth: Arc<Option<AdminAuth>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let resp = match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => reply(StatusCode::OK, "text/plain", "ok\n"),
        (&Method::GET, "/readyz") => {
            if node.ready() {
                reply(StatusCode::OK, "text/plain", "ready\n")
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "waiting for a ring configuration\n",
                )
            }
        }
        (&Method::GET, "/v1/status") => json(StatusCode::OK, &node.status().await),
        (&Method::POST, "/v1/ring") => match auth.as_ref() {
            Some(auth) if !auth.allows(&req) => json(
                StatusCode::UNAUTHORIZED,
                &ErrorBody {
                    error: "a ring configuration needs the node's password as \"Authorization: Bearer <password>\"".into(),
                    reason: "unauthorized",
                },
            ),
            _ => push_ring(node, req).await,
        },
        (&Method::GET, "/metrics") => {
            node.refresh_metrics().await;
            reply(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                node.metrics.encode(),
            )
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    };
    Ok(resp)
}

#[derive(serde::Serialize)]
struct ErrorBody {
    error: String,
    reason: &'static str,
}

async fn push_ring(node: Arc<Node>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return json(
                StatusCode::PAYLOAD_TOO_LARGE,
                &ErrorBody {
                    error: e.to_string(),
                    reason: "body",
                },
            )
        }
    };
    let cfg: RingConfig = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return json(
                StatusCode::BAD_REQUEST,
                &ErrorBody {
                    error: e.to_string(),
                    reason: "malformed",
                },
            )
        }
    };
    match node.apply_config(cfg).await {
        Ok(epoch) => json(StatusCode::OK, &serde_json::json!({ "epoch": epoch })),
        Err(e) => {
            let status = match &e {
                crate::node::NodeError::Config(_) => StatusCode::CONFLICT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            json(
                status,
                &ErrorBody {
                    error: e.to_string(),
                    reason: e.label(),
                },
            )
        }
    }
}
