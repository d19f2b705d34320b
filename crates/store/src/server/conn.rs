//! One client connection: read, parse every complete request, answer in order, flush once.

use super::session::{After, Session};
use super::shared::Shared;
use crate::backend::Backend;
use crate::resp::{encode, RequestParser};
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{timeout_at, Instant};

const READ_CHUNK: usize = 16 * 1024;
/// Replies are flushed early when this many bytes are waiting, so a long pipeline does
/// not hold all its answers in memory.
const FLUSH_AT: usize = 64 * 1024;
/// Bounds of one run of pipelined commands handed to the backend together: parsed
/// requests wait in memory until it answers them.
const MAX_RUN: usize = 512;
const MAX_RUN_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl ConnError {
    #[allow(dead_code)]
    pub fn label(&self) -> &'static str {
        match self {
            ConnError::Io(_) => "io",
        }
    }
}

pub(crate) async fn serve<S>(
    mut stream: S,
    peer: SocketAddr,
    shared: Arc<Shared>,
    backend: Arc<dyn Backend>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ConnError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut session = Session::new(&shared, peer);
    let mut parser = RequestParser::new(shared.config.limits);
    parser.set_authenticated(session.authenticated);
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut wbuf = BytesMut::with_capacity(READ_CHUNK);
    // When the request now being received started arriving (slow-client defence).
    let mut partial_since: Option<Instant> = None;
    loop {
        let mut completed = false;
        loop {
            // Consecutive keyed commands already received (a pipeline) go to the
            // backend together; anything else ends the run and is answered on its own.
            let mut run = Vec::new();
            let mut run_bytes = 0;
            let mut other = None;
            while run.len() < MAX_RUN && run_bytes < MAX_RUN_BYTES {
                match parser.next(&mut rbuf) {
                    Ok(Some(args)) => {
                        completed = true;
                        if session.batchable(&args, &shared) {
                            run_bytes += args.iter().map(Vec::len).sum::<usize>();
                            run.push(args);
                        } else {
                            other = Some(Ok(args));
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        other = Some(Err(e));
                        break;
                    }
                }
            }
            let ran = !run.is_empty();
            if ran {
                for reply in session.handle_batch(run, &shared, backend.as_ref()).await {
                    encode(&reply, session.proto, &mut wbuf);
                }
                if wbuf.len() >= FLUSH_AT {
                    stream.write_all(&wbuf).await?;
                    wbuf.clear();
                }
            }
            match other {
                Some(Ok(args)) => {
                    let (reply, after) = session.handle(args, &shared, backend.as_ref()).await;
                    encode(&reply, session.proto, &mut wbuf);
                    parser.set_authenticated(session.authenticated);
                    if after == After::Close {
                        stream.write_all(&wbuf).await?;
                        stream.shutdown().await?;
                        return Ok(());
                    }
                    if wbuf.len() >= FLUSH_AT {
                        stream.write_all(&wbuf).await?;
                        wbuf.clear();
                    }
                }
                Some(Err(e)) => {
                    shared.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, error = %e, label = e.label(), "protocol error, closing");
                    let reply = crate::reply::Reply::Error(e.reply_text());
                    encode(&reply, session.proto, &mut wbuf);
                    stream.write_all(&wbuf).await?;
                    let _ = stream.shutdown().await;
                    return Ok(());
                }
                // The run was cut at its bound: more may be waiting.
                None if ran => {}
                None => break,
            }
        }
        if !wbuf.is_empty() {
            stream.write_all(&wbuf).await?;
            stream.flush().await?;
            wbuf.clear();
        }
        let now = Instant::now();
        partial_since = match (parser.in_progress(&rbuf), completed, partial_since) {
            (false, _, _) => None,
            (true, true, _) | (true, false, None) => Some(now),
            (true, false, Some(since)) => Some(since),
        };
        let deadline = match partial_since {
            Some(since) => Some(since + shared.config.request_timeout),
            None => shared.config.idle_timeout.map(|idle| now + idle),
        };
        if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
            rbuf.reserve(READ_CHUNK);
        }
        let read = async {
            match deadline {
                Some(at) => timeout_at(at, stream.read_buf(&mut rbuf)).await.ok(),
                None => Some(stream.read_buf(&mut rbuf).await),
            }
        };
        let outcome = tokio::select! {
            r = read => r,
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
        };
        match outcome {
            Some(Ok(0)) => return Ok(()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None if partial_since.is_some() => {
                let text = format!(
                    "ERR Protocol error: request not completed within {} seconds",
                    shared.config.request_timeout.as_secs()
                );
                shared.protocol_errors.fetch_add(1, Ordering::Relaxed);
                encode(&crate::reply::Reply::Error(text), session.proto, &mut wbuf);
                let _ = stream.write_all(&wbuf).await;
                let _ = stream.shutdown().await;
                return Ok(());
            }
            // Idle timeout: Redis closes silently.
            None => return Ok(()),
        }
    }
}
