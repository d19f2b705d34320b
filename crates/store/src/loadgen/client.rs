//! A minimal RESP2 client over TCP: one request at a time, with a timeout.

use crate::reply::Reply;
use crate::resp::{encode_request, parse_reply, Limits};
use bytes::BytesMut;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connect {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("server closed the connection")]
    Closed,
    #[error("timed out")]
    Timeout,
    #[error("protocol: {0}")]
    Protocol(String),
}

impl ClientError {
    pub fn label(&self) -> &'static str {
        match self {
            ClientError::Connect(..) => "connect",
            ClientError::Io(_) => "io",
            ClientError::Closed => "closed",
            ClientError::Timeout => "timeout",
            ClientError::Protocol(_) => "protocol",
        }
    }
}

pub struct RespClient {
    stream: TcpStream,
    buf: BytesMut,
    addr: String,
    limits: Limits,
}

impl RespClient {
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Self, ClientError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(ClientError::Connect(addr.to_string(), e)),
            Err(_) => return Err(ClientError::Timeout),
        };
        let _ = stream.set_nodelay(true);
        Ok(RespClient {
            stream,
            buf: BytesMut::with_capacity(4096),
            addr: addr.to_string(),
            limits: Limits::default(),
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one command and waits for its reply.
    pub async fn call(&mut self, args: &[&[u8]], timeout: Duration) -> Result<Reply, ClientError> {
        let owned: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
        match tokio::time::timeout(timeout, self.exchange(&owned)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout),
        }
    }

    async fn exchange(&mut self, args: &[Vec<u8>]) -> Result<Reply, ClientError> {
        let mut out = BytesMut::new();
        encode_request(args, &mut out);
        self.stream.write_all(&out).await?;
        loop {
            match parse_reply(&self.buf, &self.limits) {
                Ok(Some((reply, used))) => {
                    let _ = self.buf.split_to(used);
                    return Ok(reply);
                }
                Ok(None) => {}
                Err(e) => return Err(ClientError::Protocol(e.to_string())),
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(ClientError::Closed);
            }
        }
    }
}
