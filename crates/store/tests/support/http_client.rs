//! The admin-API HTTP client of the test master (and of the resize benchmark, which
//! compiles `master.rs` and this file into an example): one request with
//! `Connection: close`, status and body back.
#![allow(dead_code)] // each user needs a different part

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One HTTP/1.1 request with `Connection: close`; returns the status and body.
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String), String> {
    http_from(None, Duration::from_secs(20), addr, method, path, body).await
}

/// `http` from a chosen source address (the master of a partition test has its own),
/// with a timeout for the whole exchange.
pub async fn http_from(
    source: Option<std::net::IpAddr>,
    timeout: Duration,
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String), String> {
    http_authorized(None, source, timeout, addr, method, path, body).await
}

/// `http_from` with `Authorization: Bearer <token>` when a token is given.
pub async fn http_authorized(
    token: Option<&str>,
    source: Option<std::net::IpAddr>,
    timeout: Duration,
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String), String> {
    let fut = async {
        let mut s = match source {
            None => TcpStream::connect(addr).await.map_err(|e| e.to_string())?,
            Some(ip) => {
                let target: std::net::SocketAddr =
                    addr.parse().map_err(|e| format!("{addr}: {e}"))?;
                let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
                socket
                    .bind(std::net::SocketAddr::new(ip, 0))
                    .map_err(|e| e.to_string())?;
                socket.connect(target).await.map_err(|e| e.to_string())?
            }
        };
        let body = body.unwrap_or("");
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out).to_string();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| format!("no status line in {text:?}"))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| format!("{method} {path} on {addr} timed out"))?
}
