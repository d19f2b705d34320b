//! Internal RPC between store nodes: forwarding, replication, snapshots, gathers.
//!
//! Length-delimited frames carrying postcard messages, one request in flight per
//! connection; a small pool of connections per peer gives concurrency. Every request
//! carries the sender's epoch so the receiver can fence stale senders.

use crate::reply::Reply;
use crate::storage::{Record, Version};
use crate::value::Mutation;
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Largest frame either side accepts; snapshots are chunked well below it.
pub const MAX_FRAME: usize = 64 * 1024 * 1024;
/// Idle connections kept per peer: as many as requests a busy node has in flight to one
/// peer, so a burst does not open (and drop) a connection per request.
const POOL_IDLE: usize = 128;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Execute a data command on the partition's primary.
    Forward {
        epoch: u64,
        partition: u32,
        args: Vec<Vec<u8>>,
    },
    /// Apply the primary's mutations, in order.
    Replicate {
        epoch: u64,
        from: String,
        partition: u32,
        mutations: Vec<(Version, Mutation)>,
    },
    /// The primary starts teaching a learner: the learner forgets the partition.
    LearnStart {
        epoch: u64,
        from: String,
        partition: u32,
    },
    SnapshotChunk {
        epoch: u64,
        from: String,
        partition: u32,
        records: Vec<(Vec<u8>, Record)>,
    },
    SnapshotDone {
        epoch: u64,
        from: String,
        partition: u32,
    },
    /// Keys held in these partitions (the receiver is their primary).
    Count { epoch: u64, partitions: Vec<u32> },
    /// One page of a partition, keys ordered by their scan position.
    Scan {
        epoch: u64,
        partition: u32,
        position: u64,
        count: u32,
        pattern: Option<Vec<u8>>,
        kind: Option<String>,
    },
    /// The receiver's current ring configuration (a node that learned from a peer's
    /// `StaleEpoch` that it is behind catches up without waiting for the master).
    FetchConfig,
    /// The primary of `partitions` at `epoch` asks a backup or learner of them for a
    /// read lease (see `cluster::lease`); answered with `Granted`.
    LeaseRenew {
        epoch: u64,
        from: String,
        partitions: Vec<u32>,
    },
    /// A new primary asks the node it granted a lease to which epoch it serves; once
    /// that is `epoch` or newer, the old lease can no longer be used and need not be
    /// waited out. Answered with `Epoch`.
    EpochOf { epoch: u64, from: String },
    /// Execute a connection's consecutive commands for one partition on its primary, in
    /// order and as one unit; answered with `Replies`, one per command. (A variant of
    /// its own, last, so that `Forward` keeps its encoding.)
    ForwardBatch {
        epoch: u64,
        partition: u32,
        commands: Vec<Vec<Vec<u8>>>,
    },
}

impl Request {
    pub fn epoch(&self) -> u64 {
        match self {
            Request::FetchConfig => 0,
            Request::LeaseRenew { epoch, .. } | Request::EpochOf { epoch, .. } => *epoch,
            Request::Forward { epoch, .. }
            | Request::ForwardBatch { epoch, .. }
            | Request::Replicate { epoch, .. }
            | Request::LearnStart { epoch, .. }
            | Request::SnapshotChunk { epoch, .. }
            | Request::SnapshotDone { epoch, .. }
            | Request::Count { epoch, .. }
            | Request::Scan { epoch, .. } => *epoch,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Response {
    Reply(Reply),
    Ok,
    Count(u64),
    /// Keys of a page, and the position to continue from (None: partition done).
    Scan {
        keys: Vec<Vec<u8>>,
        next: Option<u64>,
    },
    /// JSON of a `RingConfig`.
    Config(String),
    /// The partitions of a `LeaseRenew` the receiver granted a lease for.
    Granted(Vec<u32>),
    /// The epoch the receiver serves.
    Epoch(u64),
    /// The sender's epoch is older than the receiver's.
    StaleEpoch {
        current: u64,
    },
    /// The receiver has not yet seen the sender's epoch.
    Behind {
        current: u64,
    },
    /// The receiver does not hold the role the request needs.
    NotOwner,
    Error(String),
    /// The replies to a `ForwardBatch`, in order.
    Replies(Vec<Reply>),
}

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("connect to {0}: timed out")]
    ConnectTimeout(String),
    #[error("io with {0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0} closed the connection")]
    Closed(String),
    #[error("request to {0} timed out")]
    Timeout(String),
    #[error("encoding: {0}")]
    Encoding(#[from] postcard::Error),
}

impl RpcError {
    pub fn label(&self) -> &'static str {
        match self {
            RpcError::Connect(..) => "connect",
            RpcError::ConnectTimeout(_) => "connect_timeout",
            RpcError::Io(..) => "io",
            RpcError::Closed(_) => "closed",
            RpcError::Timeout(_) => "timeout",
            RpcError::Encoding(_) => "encoding",
        }
    }
}

type Conn = Framed<TcpStream, LengthDelimitedCodec>;

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

/// Pooled client connections to peers, by address.
#[derive(Default)]
pub struct Peers {
    idle: Mutex<HashMap<String, Vec<Conn>>>,
}

impl Peers {
    pub async fn call(
        &self,
        addr: &str,
        req: &Request,
        timeout: Duration,
    ) -> Result<Response, RpcError> {
        self.call_as(addr, req, timeout).await
    }

    /// One request/response exchange of any message pair (the replicated agents speak
    /// their own messages over the same framing and pool).
    pub async fn call_as<Q: Serialize, R: DeserializeOwned>(
        &self,
        addr: &str,
        req: &Q,
        timeout: Duration,
    ) -> Result<R, RpcError> {
        let frame = postcard::to_allocvec(req)?;
        let pooled = self.idle.lock().get_mut(addr).and_then(Vec::pop);
        // A pooled connection may have been closed by a restarted peer: retry once fresh.
        // A timeout is not retried: the peer may have executed the request.
        if let Some(conn) = pooled {
            match tokio::time::timeout(timeout, exchange(addr, conn, &frame)).await {
                Ok(Ok((resp, conn))) => {
                    self.put_back(addr, conn);
                    return Ok(resp);
                }
                Ok(Err(_)) => {}
                Err(_) => return Err(RpcError::Timeout(addr.to_string())),
            }
        }
        let conn = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                Framed::new(s, codec())
            }
            Ok(Err(e)) => return Err(RpcError::Connect(addr.to_string(), e)),
            Err(_) => return Err(RpcError::ConnectTimeout(addr.to_string())),
        };
        match tokio::time::timeout(timeout, exchange(addr, conn, &frame)).await {
            Ok(Ok((resp, conn))) => {
                self.put_back(addr, conn);
                Ok(resp)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(RpcError::Timeout(addr.to_string())),
        }
    }

    /// Drops the idle connections to `addr` (a peer that left or restarted).
    pub fn forget(&self, addr: &str) {
        self.idle.lock().remove(addr);
    }

    fn put_back(&self, addr: &str, conn: Conn) {
        let mut idle = self.idle.lock();
        let list = idle.entry(addr.to_string()).or_default();
        if list.len() < POOL_IDLE {
            list.push(conn);
        }
    }
}

async fn exchange<R: DeserializeOwned>(
    addr: &str,
    mut conn: Conn,
    frame: &[u8],
) -> Result<(R, Conn), RpcError> {
    conn.send(bytes::Bytes::copy_from_slice(frame))
        .await
        .map_err(|e| RpcError::Io(addr.to_string(), e))?;
    match conn.next().await {
        Some(Ok(buf)) => Ok((postcard::from_bytes(&buf)?, conn)),
        Some(Err(e)) => Err(RpcError::Io(addr.to_string(), e)),
        None => Err(RpcError::Closed(addr.to_string())),
    }
}

/// Serves RPC connections until `shutdown` resolves; `handle` answers each request.
pub async fn serve<H, F>(listener: TcpListener, handle: H, shutdown: impl Future<Output = ()>)
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    serve_as(listener, handle, shutdown, |e| {
        Response::Error(format!("undecodable request: {e}"))
    })
    .await
}

/// Serves connections of any message pair: `handle` answers each request, `undecodable`
/// answers a frame that is not one (the connection stays open; an oversized or broken
/// frame closes that connection only).
pub async fn serve_as<Q, R, H, F>(
    listener: TcpListener,
    handle: H,
    shutdown: impl Future<Output = ()>,
    undecodable: fn(postcard::Error) -> R,
) where
    Q: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    H: Fn(Q) -> F + Send + Sync + 'static,
    F: Future<Output = R> + Send + 'static,
{
    let handle = Arc::new(handle);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            a = listener.accept() => a,
        };
        let (stream, _) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "rpc accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut conn = Framed::new(stream, codec());
            while let Some(Ok(buf)) = conn.next().await {
                let resp = match postcard::from_bytes::<Q>(&buf) {
                    Ok(req) => handle(req).await,
                    Err(e) => undecodable(e),
                };
                let Ok(out) = postcard::to_allocvec(&resp) else {
                    break;
                };
                if conn.send(bytes::Bytes::from(out)).await.is_err() {
                    break;
                }
            }
        });
    }
}
