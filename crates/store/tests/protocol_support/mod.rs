//! Helpers of the protocol tests: an in-process server on a loopback port with its own
//! runtime, and a raw RESP client that can send anything, well-formed or not.

#![allow(dead_code)]

use bytes::BytesMut;
use sessionplane_store::reply::Reply;
use sessionplane_store::resp::{encode_request, parse_reply, Limits};
use sessionplane_store::server::{MemoryBackend, Server, ServerArgs, ServerConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A server on its own thread and runtime, so blocking client processes can use it.
pub struct TestServer {
    pub addr: SocketAddr,
    pub tls_addr: Option<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start(args: ServerArgs) -> TestServer {
        let config =
            ServerConfig::from_args("127.0.0.1:0".parse().unwrap(), &args).expect("config");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let server = Server::bind(config).await.expect("bind");
                ready_tx
                    .send((server.local_addr(), server.tls_local_addr()))
                    .expect("ready");
                let backend = Arc::new(MemoryBackend::new());
                server
                    .run(backend, async {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        });
        let (addr, tls_addr) = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server did not start");
        TestServer {
            addr,
            tls_addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn default_args() -> ServerArgs {
        ServerArgs::default()
    }

    /// The server is still serving: a fresh connection answers PING (or, with a
    /// password configured, asks for AUTH).
    pub async fn assert_alive(&self) {
        let mut c = Conn::connect(self.addr).await;
        let reply = c.cmd(&["PING"]).await;
        assert!(
            reply == Reply::Simple("PONG".into())
                || reply == Reply::Error("NOAUTH Authentication required.".into()),
            "{reply:?}"
        );
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A raw client connection.
pub struct Conn {
    pub stream: TcpStream,
    buf: BytesMut,
}

const READ_LIMIT: Duration = Duration::from_secs(10);

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Conn {
            stream,
            buf: BytesMut::new(),
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    pub async fn send(&mut self, args: &[&str]) {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        let mut out = BytesMut::new();
        encode_request(&args, &mut out);
        self.send_raw(&out).await;
    }

    /// The next reply; panics on EOF or after 10 s.
    pub async fn read(&mut self) -> Reply {
        self.try_read(READ_LIMIT)
            .await
            .expect("connection closed before a reply")
    }

    /// The next reply, or `None` on EOF. Panics when nothing arrives within `limit`.
    pub async fn try_read(&mut self, limit: Duration) -> Option<Reply> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some((reply, used)) =
                parse_reply(&self.buf, &Limits::default()).expect("bad reply")
            {
                let _ = self.buf.split_to(used);
                return Some(reply);
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf))
                .await
                .expect("timed out waiting for the server")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
        }
    }

    pub async fn cmd(&mut self, args: &[&str]) -> Reply {
        self.send(args).await;
        self.read().await
    }

    /// Asserts the server closes the connection (EOF or reset) within `limit`, with no
    /// further reply.
    pub async fn assert_closed(&mut self, limit: Duration) {
        let got = tokio::time::timeout(limit, self.stream.read_buf(&mut self.buf)).await;
        match got {
            Ok(Ok(0)) | Ok(Err(_)) => {}
            Ok(Ok(n)) => panic!("expected close, got {n} more bytes: {:?}", self.buf),
            Err(_) => panic!("connection still open after {limit:?}"),
        }
    }
}

pub fn error_text(reply: &Reply) -> &str {
    match reply {
        Reply::Error(t) => t,
        other => panic!("expected an error reply, got {other:?}"),
    }
}
