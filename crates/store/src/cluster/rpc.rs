//! Internal RPC between store nodes: forwarding, replication, snapshots, gathers.
//!
//! Length-delimited frames carrying postcard messages, one request in flight per
//! connection; a small pool of connections per peer gives concurrency. Every request
//! carries the sender's epoch so the receiver can fence stale senders.
//!
//! With a [`PeerKey`] (every node of a cluster derives it from the store password) a
//! connection starts with a challenge: the listener sends a fresh nonce, the caller
//! answers with HMAC-SHA256(key, nonce), and only then are requests read. Forwarding,
//! replication and snapshots write sessions without going through the Redis port's
//! AUTH, so without it anyone on the pod network could. The password never crosses
//! the wire, and a recorded answer is worth nothing for another nonce.

use crate::reply::Reply;
use crate::storage::{Record, Version};
use crate::value::Mutation;
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
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
/// How long a listener waits for a caller's answer to its challenge.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Starts the challenge frame. Its first byte is not a variant of any message enum, so
/// a caller that expected no challenge fails to decode it instead of misreading it.
const CHALLENGE_MAGIC: &[u8; 8] = b"SPAUTH1\0";
const NONCE_BYTES: usize = 32;
const ACCEPTED: &[u8] = b"SPOK";
const REFUSED: &[u8] = b"SPNO";

/// The secret peers prove they share when they connect.
#[derive(Clone)]
pub struct PeerKey(hmac::Key);

impl PeerKey {
    /// The key of a cluster whose nodes share `password`.
    pub fn from_password(password: &str) -> Self {
        PeerKey(hmac::Key::new(hmac::HMAC_SHA256, password.as_bytes()))
    }

    /// `None` without a password (a node that needs none on its Redis port asks none
    /// of its peers either).
    pub fn from_optional(password: Option<&str>) -> Option<Self> {
        password.filter(|p| !p.is_empty()).map(Self::from_password)
    }

    fn answer(&self, challenge: &[u8]) -> hmac::Tag {
        hmac::sign(&self.0, challenge)
    }

    fn verify(&self, challenge: &[u8], answer: &[u8]) -> bool {
        // Constant time: ring compares the tags without an early exit.
        hmac::verify(&self.0, challenge, answer).is_ok()
    }
}

impl std::fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerKey(..)")
    }
}

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
    /// `ForwardBatch` with what is left of the sender's command timeout: the primary
    /// starts no attempt after `budget_ms`, so nothing runs after the sender answered
    /// its client. Answered with `Replies`. (Last, so older variants keep their encoding.)
    ForwardWithin {
        epoch: u64,
        partition: u32,
        budget_ms: u32,
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
            | Request::ForwardWithin { epoch, .. }
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
    /// Before the request went out (the peer's handshake took too long).
    #[error("request to {0} timed out")]
    Timeout(String),
    /// The request went out and no answer came back: the peer may or may not have
    /// executed it (see `outcome_unknown`).
    #[error("{0} did not answer: {1}")]
    Unanswered(String, String),
    #[error("{0} refused this node's peer credentials (is every node given the same password?)")]
    Refused(String),
    #[error("{0} answered the peer handshake with something else: {1}")]
    Handshake(String, &'static str),
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
            RpcError::Unanswered(..) => "unanswered",
            RpcError::Refused(_) => "refused",
            RpcError::Handshake(..) => "handshake",
            RpcError::Encoding(_) => "encoding",
        }
    }

    /// The request was sent and may have been executed. Every other error means the
    /// peer never got it, so sending it again (to the same peer or another) cannot
    /// execute it twice; after this one, a write sent again could land twice, the
    /// second time after writes that came in between.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, RpcError::Unanswered(..))
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
    key: Option<PeerKey>,
}

impl Peers {
    /// Connections that answer the listeners' challenge with `key` (none without one).
    pub fn new(key: Option<PeerKey>) -> Self {
        Peers {
            idle: Mutex::default(),
            key,
        }
    }

    /// The key this side proves (the same one its own listener asks for).
    pub fn key(&self) -> Option<&PeerKey> {
        self.key.as_ref()
    }

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
        let conn = match self.take_idle(addr) {
            Some(conn) => conn,
            None => self.connect(addr, timeout).await?,
        };
        // Once the frame is out there is no second try here: the peer may have executed
        // it, and only the caller knows whether running it again is harmless.
        match tokio::time::timeout(timeout, exchange(addr, conn, &frame)).await {
            Ok(Ok((resp, conn))) => {
                self.put_back(addr, conn);
                Ok(resp)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(RpcError::Unanswered(
                addr.to_string(),
                format!("no answer within {timeout:?}"),
            )),
        }
    }

    /// A pooled connection the peer has not closed. A restarted peer closed its end of
    /// every old connection; sending on one would fail after the frame went out, which
    /// callers must treat as an unknown outcome, so closed ones are dropped here first.
    fn take_idle(&self, addr: &str) -> Option<Conn> {
        let mut idle = self.idle.lock();
        let list = idle.get_mut(addr)?;
        while let Some(conn) = list.pop() {
            if still_open(&conn) {
                return Some(conn);
            }
        }
        None
    }

    /// A fresh connection that passed the handshake.
    async fn connect(&self, addr: &str, timeout: Duration) -> Result<Conn, RpcError> {
        let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                Framed::new(s, codec())
            }
            Ok(Err(e)) => return Err(RpcError::Connect(addr.to_string(), e)),
            Err(_) => return Err(RpcError::ConnectTimeout(addr.to_string())),
        };
        if let Some(key) = &self.key {
            match tokio::time::timeout(timeout, answer_challenge(addr, &mut conn, key)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(RpcError::Timeout(addr.to_string())),
            }
        }
        Ok(conn)
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

/// The caller's side of the handshake on a fresh connection.
async fn answer_challenge(addr: &str, conn: &mut Conn, key: &PeerKey) -> Result<(), RpcError> {
    let challenge = next_frame(addr, conn).await?;
    if challenge.len() != CHALLENGE_MAGIC.len() + NONCE_BYTES
        || !challenge.starts_with(CHALLENGE_MAGIC)
    {
        return Err(RpcError::Handshake(
            addr.to_string(),
            "no challenge (does it run without a password?)",
        ));
    }
    let tag = key.answer(&challenge);
    conn.send(bytes::Bytes::copy_from_slice(tag.as_ref()))
        .await
        .map_err(|e| RpcError::Io(addr.to_string(), e))?;
    match &next_frame(addr, conn).await?[..] {
        ACCEPTED => Ok(()),
        REFUSED => Err(RpcError::Refused(addr.to_string())),
        _ => Err(RpcError::Handshake(addr.to_string(), "an unknown verdict")),
    }
}

async fn next_frame(addr: &str, conn: &mut Conn) -> Result<bytes::BytesMut, RpcError> {
    match conn.next().await {
        Some(Ok(buf)) => Ok(buf),
        Some(Err(e)) => Err(RpcError::Io(addr.to_string(), e)),
        None => Err(RpcError::Closed(addr.to_string())),
    }
}

/// The listener's side: challenges the caller; true when it proved it holds `key`.
async fn challenge_caller(conn: &mut Conn, key: &PeerKey) -> bool {
    let mut challenge = [0u8; CHALLENGE_MAGIC.len() + NONCE_BYTES];
    challenge[..CHALLENGE_MAGIC.len()].copy_from_slice(CHALLENGE_MAGIC);
    if SystemRandom::new()
        .fill(&mut challenge[CHALLENGE_MAGIC.len()..])
        .is_err()
    {
        tracing::error!("no randomness for a peer challenge; refusing the connection");
        return false;
    }
    if conn
        .send(bytes::Bytes::copy_from_slice(&challenge))
        .await
        .is_err()
    {
        return false;
    }
    let answer = match tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.next()).await {
        Ok(Some(Ok(buf))) => buf,
        _ => return false,
    };
    let ok = key.verify(&challenge, &answer);
    let verdict = if ok { ACCEPTED } else { REFUSED };
    let _ = conn.send(bytes::Bytes::from_static(verdict)).await;
    ok
}

/// True when an idle connection shows neither the peer's close nor stray bytes.
fn still_open(conn: &Conn) -> bool {
    if !conn.read_buffer().is_empty() {
        return false;
    }
    let mut probe = [0u8; 1];
    matches!(conn.get_ref().try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// Sends `frame` and reads the answer. A failed send wrote no complete frame (the peer
/// cannot have decoded it); anything that goes wrong after it is `Unanswered`.
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
        Some(Err(e)) => Err(RpcError::Unanswered(addr.to_string(), e.to_string())),
        None => Err(RpcError::Unanswered(
            addr.to_string(),
            "it closed the connection".to_string(),
        )),
    }
}

/// Serves RPC connections until `shutdown` resolves; `handle` answers each request of a
/// caller that proved it holds `key` (every caller without one).
pub async fn serve<H, F>(
    listener: TcpListener,
    key: Option<PeerKey>,
    handle: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    serve_as(listener, key, handle, shutdown, |e| {
        Response::Error(format!("undecodable request: {e}"))
    })
    .await
}

/// Serves connections of any message pair: `handle` answers each request, `undecodable`
/// answers a frame that is not one (the connection stays open; an oversized or broken
/// frame closes that connection only).
pub async fn serve_as<Q, R, H, F>(
    listener: TcpListener,
    key: Option<PeerKey>,
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
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "rpc accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handle = handle.clone();
        let key = key.clone();
        tokio::spawn(async move {
            let mut conn = Framed::new(stream, codec());
            if let Some(key) = &key {
                if !challenge_caller(&mut conn, key).await {
                    tracing::warn!(%peer, "peer connection refused: it did not prove the cluster's password");
                    return;
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const WAIT: Duration = Duration::from_secs(5);

    /// A listener answering every `Count` with the number of its partitions, and how
    /// many requests it handled.
    async fn listener(key: Option<PeerKey>) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        let handled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = handled.clone();
        tokio::spawn(serve(
            l,
            key,
            move |req| {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    match req {
                        Request::Count { partitions, .. } => {
                            Response::Count(partitions.len() as u64)
                        }
                        _ => Response::NotOwner,
                    }
                }
            },
            std::future::pending::<()>(),
        ));
        (addr, handled)
    }

    fn count(n: u32) -> Request {
        Request::Count {
            epoch: 1,
            partitions: (0..n).collect(),
        }
    }

    #[tokio::test]
    async fn peers_with_the_password_are_served_on_fresh_and_pooled_connections() {
        let key = PeerKey::from_password("s3cret");
        let (addr, handled) = listener(Some(key.clone())).await;
        let peers = Peers::new(Some(key));
        for n in 1..=3 {
            match peers.call(&addr, &count(n), WAIT).await {
                Ok(Response::Count(c)) => assert_eq!(c, u64::from(n)),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(handled.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_peer_with_another_password_is_refused_and_nothing_is_handled() {
        let (addr, handled) = listener(Some(PeerKey::from_password("s3cret"))).await;
        let wrong = Peers::new(Some(PeerKey::from_password("guess")));
        let err = wrong
            .call(&addr, &count(1), WAIT)
            .await
            .expect_err("refused");
        assert!(matches!(err, RpcError::Refused(_)), "{err}");
        assert_eq!(err.label(), "refused");
        assert!(err.to_string().contains("same password"), "{err}");
        // A caller with no key reads the challenge where it expects an answer.
        let none = Peers::new(None);
        let err = none.call(&addr, &count(1), WAIT).await.expect_err("no key");
        assert!(matches!(err, RpcError::Encoding(_)), "{err}");
        assert_eq!(handled.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_raw_connection_must_answer_the_challenge_before_any_request_is_read() {
        let (addr, handled) = listener(Some(PeerKey::from_password("s3cret"))).await;
        let mut raw = TcpStream::connect(&addr).await.expect("connect");
        // A well-formed request frame where the answer belongs.
        let frame = postcard::to_allocvec(&count(2)).expect("encode");
        raw.write_all(&(frame.len() as u32).to_be_bytes())
            .await
            .expect("write");
        raw.write_all(&frame).await.expect("write");
        let mut rest = Vec::new();
        tokio::time::timeout(WAIT, raw.read_to_end(&mut rest))
            .await
            .expect("the listener closes")
            .expect("read");
        assert!(rest.ends_with(REFUSED), "{rest:?}");
        assert_eq!(handled.load(std::sync::atomic::Ordering::SeqCst), 0);
        // The listener goes on serving callers that know the password.
        let peers = Peers::new(Some(PeerKey::from_password("s3cret")));
        assert!(matches!(
            peers.call(&addr, &count(4), WAIT).await,
            Ok(Response::Count(4))
        ));
    }

    #[tokio::test]
    async fn a_caller_that_never_answers_is_dropped_after_the_handshake_timeout() {
        let (addr, _) = listener(Some(PeerKey::from_password("s3cret"))).await;
        let mut raw = TcpStream::connect(&addr).await.expect("connect");
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(
            HANDSHAKE_TIMEOUT + Duration::from_secs(5),
            raw.read_to_end(&mut rest),
        )
        .await;
        assert!(closed.is_ok(), "the listener keeps a silent caller forever");
        assert!(rest.len() >= CHALLENGE_MAGIC.len() + NONCE_BYTES);
    }

    #[tokio::test]
    async fn without_a_password_no_challenge_is_sent() {
        let (addr, handled) = listener(None).await;
        let peers = Peers::new(None);
        assert!(matches!(
            peers.call(&addr, &count(2), WAIT).await,
            Ok(Response::Count(2))
        ));
        assert_eq!(handled.load(std::sync::atomic::Ordering::SeqCst), 1);
        // A caller that expects a challenge from a listener that sends none never sends
        // its request: it times out (every node of a cluster gets the same password).
        let keyed = Peers::new(Some(PeerKey::from_password("s3cret")));
        let err = keyed
            .call(&addr, &count(1), Duration::from_millis(500))
            .await
            .expect_err("no challenge");
        assert!(matches!(err, RpcError::Timeout(_)), "{err}");
    }

    /// A peer without a password that, per accepted connection, answers the first
    /// `answers` requests with `Count`, then (with `read_one_more`) reads one more
    /// request, and closes the connection; counts the requests it read.
    async fn closing_peer(
        answers: usize,
        read_one_more: bool,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        let read = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = read.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = l.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut conn = Framed::new(stream, codec());
                    for _ in 0..answers {
                        if conn.next().await.is_none() {
                            return;
                        }
                        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let out = postcard::to_allocvec(&Response::Count(7)).expect("encode");
                        if conn.send(bytes::Bytes::from(out)).await.is_err() {
                            return;
                        }
                    }
                    if read_one_more && conn.next().await.is_some() {
                        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        });
        (addr, read)
    }

    #[tokio::test]
    async fn a_request_read_and_never_answered_is_an_unknown_outcome_and_not_sent_again() {
        let (addr, read) = closing_peer(0, true).await;
        let peers = Peers::new(None);
        let err = peers
            .call(&addr, &count(1), WAIT)
            .await
            .expect_err("closed");
        assert!(err.outcome_unknown(), "{err}");
        assert_eq!(err.label(), "unanswered");
        assert_eq!(
            read.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "sent once"
        );
        // Refused before anything went out: known not to have run.
        let gone = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let gone_addr = gone.local_addr().expect("addr").to_string();
        drop(gone);
        let err = peers
            .call(&gone_addr, &count(1), WAIT)
            .await
            .expect_err("refused");
        assert!(!err.outcome_unknown(), "{err}");
    }

    #[tokio::test]
    async fn a_request_without_an_answer_in_time_is_an_unknown_outcome() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        // Accepts and reads, never answers.
        tokio::spawn(async move {
            let (stream, _) = l.accept().await.expect("accept");
            let mut conn = Framed::new(stream, codec());
            while conn.next().await.is_some() {}
        });
        let err = Peers::new(None)
            .call(&addr, &count(1), Duration::from_millis(300))
            .await
            .expect_err("no answer");
        assert!(err.outcome_unknown(), "{err}");
    }

    #[tokio::test]
    async fn a_pooled_connection_its_peer_closed_is_passed_over_for_a_fresh_one() {
        // Each connection answers one request and is closed by the peer (as a restarted
        // peer's old connections are): sending on it again would go unanswered.
        let (addr, read) = closing_peer(1, false).await;
        let peers = Peers::new(None);
        for _ in 0..3 {
            assert!(matches!(
                peers.call(&addr, &count(1), WAIT).await,
                Ok(Response::Count(7))
            ));
            // The peer's close reaches this side.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(read.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
