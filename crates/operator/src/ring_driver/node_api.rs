//! The store nodes' admin API, as the ring driver uses it: read a node's own account of
//! itself, push a configuration.

use super::decide::{Copying, NodeView};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::time::Duration;
use tokio::net::TcpStream;

/// How long one admin call may take: a node that is slower than this is "not answering".
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Admin responses are small JSON documents; anything bigger is refused.
const MAX_RESPONSE_BYTES: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum NodeApiError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr} did not answer within {CALL_TIMEOUT:?}")]
    Timeout { addr: String },
    #[error("HTTP exchange with {addr}: {source}")]
    Http { addr: String, source: hyper::Error },
    #[error("{addr} answered {status}: {body}")]
    Refused {
        addr: String,
        status: StatusCode,
        body: String,
    },
    #[error("{addr} sent a response larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge { addr: String },
    #[error("{addr} sent a status that is not JSON: {source}")]
    Decode {
        addr: String,
        source: serde_json::Error,
    },
}

impl NodeApiError {
    pub fn label(&self) -> &'static str {
        match self {
            NodeApiError::Connect { .. } => "connect",
            NodeApiError::Timeout { .. } => "timeout",
            NodeApiError::Http { .. } => "http",
            NodeApiError::Refused { .. } => "refused",
            NodeApiError::TooLarge { .. } => "too_large",
            NodeApiError::Decode { .. } => "decode",
        }
    }
}

async fn call(
    addr: &str,
    method: Method,
    path: &str,
    body: Option<String>,
    token: Option<&str>,
) -> Result<Bytes, NodeApiError> {
    let exchange = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| NodeApiError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        let http = |source| NodeApiError::Http {
            addr: addr.to_string(),
            source,
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http)?;
        let driver = tokio::spawn(conn);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr)
            .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| NodeApiError::Refused {
                addr: addr.to_string(),
                status: StatusCode::BAD_REQUEST,
                body: e.to_string(),
            })?;
        let response = sender.send_request(request).await.map_err(http)?;
        let status = response.status();
        let limited = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES);
        let bytes = limited
            .collect()
            .await
            .map_err(|_| NodeApiError::TooLarge {
                addr: addr.to_string(),
            })?
            .to_bytes();
        driver.abort();
        if !status.is_success() {
            return Err(NodeApiError::Refused {
                addr: addr.to_string(),
                status,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        Ok(bytes)
    };
    tokio::time::timeout(CALL_TIMEOUT, exchange)
        .await
        .map_err(|_| NodeApiError::Timeout {
            addr: addr.to_string(),
        })?
}

/// A node's account of itself; an unreachable node is a view with `reachable: false`.
pub async fn view(admin_addr: &str) -> NodeView {
    match status(admin_addr).await {
        Ok(status) => view_of(&status),
        Err(e) => {
            tracing::debug!(addr = admin_addr, error = %e, "store node status unavailable");
            NodeView::default()
        }
    }
}

pub async fn status(admin_addr: &str) -> Result<Value, NodeApiError> {
    let bytes = call(admin_addr, Method::GET, "/v1/status", None, None).await?;
    serde_json::from_slice(&bytes).map_err(|source| NodeApiError::Decode {
        addr: admin_addr.to_string(),
        source,
    })
}

/// Reads the fields the driver decides on from `GET /v1/status`.
pub fn view_of(status: &Value) -> NodeView {
    let caught_up = status["partitions"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter(|p| p["caught_up"].as_bool() == Some(true))
                .filter_map(|p| p["partition"].as_u64())
                .filter_map(|p| u32::try_from(p).ok())
                .collect()
        })
        .unwrap_or_default();
    let disk_complete = status["disk_complete"].as_bool().unwrap_or(true);
    // Primary or replica, with every acknowledged write (a store that does not report
    // `complete` yet vouches with its disk).
    let in_sync = status["partitions"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter(|p| matches!(p["role"].as_str(), Some("primary" | "replica")))
                .filter(|p| p["complete"].as_bool().unwrap_or(disk_complete))
                .filter_map(|p| {
                    let partition = u32::try_from(p["partition"].as_u64()?).ok()?;
                    Some((partition, p["applied_seq"].as_u64().unwrap_or(0)))
                })
                .collect()
        })
        .unwrap_or_default();
    let migration = &status["migration"];
    let copying = Copying {
        keys_sent: migration["keys_sent"].as_u64().unwrap_or(0),
        keys_total: migration["keys_total"].as_u64().unwrap_or(0),
        bytes_sent: migration["bytes_sent"].as_u64().unwrap_or(0),
    };
    let roles = &status["roles"];
    let holds_nothing = status["partitions_held"].as_u64() == Some(0)
        && ["primary", "replica", "learner"]
            .iter()
            .all(|r| roles[r].as_u64() == Some(0));
    NodeView {
        reachable: true,
        epoch: status["epoch"].as_u64(),
        caught_up,
        holds_nothing,
        disk_complete,
        down: false,
        in_sync,
        copying,
    }
}

/// One liveness probe (`GET /healthz`), bounded by `timeout`: whether the node answered.
pub async fn probe(admin_addr: &str, timeout: std::time::Duration) -> bool {
    matches!(
        tokio::time::timeout(
            timeout,
            call(admin_addr, Method::GET, "/healthz", None, None)
        )
        .await,
        Ok(Ok(_))
    )
}

/// Pushes a configuration with the nodes' password (`token`); the node refuses a
/// stale or conflicting epoch, and any configuration without its password.
pub async fn push(
    admin_addr: &str,
    config: &Value,
    token: Option<&str>,
) -> Result<(), NodeApiError> {
    call(
        admin_addr,
        Method::POST,
        "/v1/ring",
        Some(config.to_string()),
        token,
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[test]
    fn reads_epoch_caught_up_partitions_and_drained() {
        let v = view_of(&json!({
            "node": "s-0", "epoch": 7, "partitions_held": 0,
            "roles": {"primary": 0, "replica": 0, "learner": 0},
            "partitions": [
                {"partition": 3, "role": "learner", "keys": 1, "caught_up": true},
                {"partition": 4, "role": "learner", "keys": 1, "caught_up": false}
            ]
        }));
        assert!(v.reachable);
        assert_eq!(v.epoch, Some(7));
        assert_eq!(v.caught_up.into_iter().collect::<Vec<_>>(), vec![3]);
        assert!(v.holds_nothing);
    }

    #[test]
    fn reads_in_sync_partitions_positions_and_copy_progress() {
        let v = view_of(&json!({
            "epoch": 9, "disk_complete": false, "partitions_held": 3,
            "roles": {"primary": 1, "replica": 1, "learner": 1},
            "migration": {"keys_sent": 40, "keys_total": 100, "bytes_sent": 4096},
            "partitions": [
                {"partition": 0, "role": "primary", "caught_up": true, "applied_seq": 12, "complete": true},
                {"partition": 1, "role": "replica", "caught_up": true, "applied_seq": 7, "complete": false},
                {"partition": 2, "role": "learner", "caught_up": true, "applied_seq": 3, "complete": true},
                {"partition": 3, "role": "replica", "caught_up": true, "applied_seq": 5}
            ]
        }));
        // Partition 1 is not complete, 2 is only learned, 3 has no word and the disk is
        // not complete: only 0 is proven.
        assert_eq!(v.in_sync, BTreeMap::from([(0, 12)]));
        assert_eq!(
            v.copying,
            Copying {
                keys_sent: 40,
                keys_total: 100,
                bytes_sent: 4096
            }
        );
        assert!(!v.down, "a view never says down: the probes decide that");
    }

    #[test]
    fn a_node_with_a_role_does_not_hold_nothing() {
        let v = view_of(&json!({
            "epoch": null, "partitions_held": 0,
            "roles": {"primary": 1, "replica": 0, "learner": 0}, "partitions": []
        }));
        assert_eq!(v.epoch, None);
        assert!(!v.holds_nothing);
    }
}
