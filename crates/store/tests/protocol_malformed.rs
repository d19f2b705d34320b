//! Hostile and malformed input: every case gets an error and a closed connection (or, for
//! requests that are merely wrong, an error and a usable connection), and the server goes
//! on serving new clients.

mod protocol_support;

use protocol_support::{error_text, Conn, TestServer};
use sessionplane_store::reply::Reply;
use sessionplane_store::server::ServerArgs;
use std::time::{Duration, Instant};

fn small_limits() -> ServerArgs {
    ServerArgs {
        max_value_bytes: 1024,
        max_key_bytes: 16,
        max_args: 100,
        request_timeout_secs: 2,
        ..ServerArgs::default()
    }
}

async fn expect_protocol_error(server: &TestServer, input: &[u8], text: &str) {
    let mut c = Conn::connect(server.addr).await;
    c.send_raw(input).await;
    let reply = c.read().await;
    assert_eq!(
        error_text(&reply),
        text,
        "input {:?}",
        String::from_utf8_lossy(&input[..input.len().min(40)])
    );
    c.assert_closed(Duration::from_secs(5)).await;
    server.assert_alive().await;
}

#[tokio::test]
async fn huge_and_negative_lengths() {
    let s = TestServer::start(small_limits());
    let cases: &[(&[u8], &str)] = &[
        (
            b"*99999999999999999999\r\n",
            "ERR Protocol error: invalid multibulk length",
        ),
        (b"*101\r\n", "ERR Protocol error: invalid multibulk length"),
        (
            b"*1\r\n$9223372036854775807\r\n",
            "ERR Protocol error: invalid bulk length",
        ),
        (
            b"*1\r\n$1025\r\n",
            "ERR Protocol error: invalid bulk length",
        ),
        (b"*1\r\n$-5\r\n", "ERR Protocol error: invalid bulk length"),
        (
            b"*2\r\n$3\r\nGET\r\n$x\r\n",
            "ERR Protocol error: invalid bulk length",
        ),
        (
            b"*1\r\n$3\r\nabcdef\r\n",
            "ERR Protocol error: expected CRLF after bulk data",
        ),
    ];
    for (input, text) in cases {
        expect_protocol_error(&s, input, text).await;
    }
}

#[tokio::test]
async fn nesting_is_not_a_request() {
    let s = TestServer::start(small_limits());
    let deep = b"*1\r\n".repeat(10_000);
    expect_protocol_error(&s, &deep, "ERR Protocol error: expected '$', got '*'").await;
}

#[tokio::test]
async fn endless_lines() {
    let s = TestServer::start(small_limits());
    let header = [b"*".as_slice(), &vec![b'1'; 100_000]].concat();
    expect_protocol_error(
        &s,
        &header,
        "ERR Protocol error: too big mbulk count string",
    )
    .await;
    let inline = vec![b'x'; 100_000];
    expect_protocol_error(&s, &inline, "ERR Protocol error: too big inline request").await;
    expect_protocol_error(
        &s,
        b"SET \"abc\r\n",
        "ERR Protocol error: unbalanced quotes in request",
    )
    .await;
}

#[tokio::test]
async fn garbage_bytes() {
    let s = TestServer::start(small_limits());
    // A deterministic stream of arbitrary bytes: the connection ends with a protocol
    // error or the garbage reads as unknown inline commands; never a crash.
    let mut state: u32 = 12345;
    for _ in 0..20 {
        let garbage: Vec<u8> = (0..4096)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (state >> 16) as u8
            })
            .collect();
        let mut c = Conn::connect(s.addr).await;
        c.send_raw(&garbage).await;
        // Read until the server closes or goes quiet.
        while let Ok(Some(_)) = tokio::time::timeout(
            Duration::from_millis(500),
            c.try_read(Duration::from_secs(5)),
        )
        .await
        {}
    }
    s.assert_alive().await;
}

#[tokio::test]
async fn wrong_requests_keep_the_connection() {
    let s = TestServer::start(small_limits());
    let mut c = Conn::connect(s.addr).await;
    assert_eq!(
        error_text(&c.cmd(&["NOPE", "x"]).await),
        "ERR unknown command 'NOPE', with args beginning with: 'x' "
    );
    assert_eq!(
        error_text(&c.cmd(&["GET"]).await),
        "ERR wrong number of arguments for 'get' command"
    );
    let long_key = "k".repeat(17);
    assert!(
        error_text(&c.cmd(&["SET", &long_key, "v"]).await).contains("maximum key size of 16 bytes")
    );
    c.send_raw(b"\x01\x02 garbage\r\n").await;
    assert!(error_text(&c.read().await).starts_with("ERR unknown command"));
    assert_eq!(c.cmd(&["PING"]).await, Reply::Simple("PONG".into()));
}

#[tokio::test]
async fn unterminated_request_times_out() {
    let s = TestServer::start(small_limits());
    let mut c = Conn::connect(s.addr).await;
    let started = Instant::now();
    c.send_raw(b"*2\r\n$3\r\nGET\r\n$5\r\nab").await;
    let reply = c.read().await;
    assert_eq!(
        error_text(&reply),
        "ERR Protocol error: request not completed within 2 seconds"
    );
    assert!(started.elapsed() >= Duration::from_millis(1900));
    c.assert_closed(Duration::from_secs(5)).await;
    s.assert_alive().await;
}

#[tokio::test]
async fn one_byte_a_second_is_cut_off() {
    let s = TestServer::start(small_limits());
    let mut c = Conn::connect(s.addr).await;
    let request = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
    let started = Instant::now();
    let mut closed_at = None;
    for &b in request.iter().take(8) {
        if c.stream.try_write(&[b]).is_err() {
            break;
        }
        if let Ok(got) =
            tokio::time::timeout(Duration::from_secs(1), c.try_read(Duration::from_secs(5))).await
        {
            let reply = got.expect("an error reply before the close");
            assert_eq!(
                error_text(&reply),
                "ERR Protocol error: request not completed within 2 seconds"
            );
            closed_at = Some(started.elapsed());
            break;
        }
    }
    let closed_at = closed_at.expect("the server waited for the slow request");
    assert!(
        closed_at < Duration::from_secs(4),
        "closed after {closed_at:?}"
    );
    c.assert_closed(Duration::from_secs(5)).await;
    s.assert_alive().await;
}

#[tokio::test]
async fn idle_timeout_closes_silently_and_zero_means_never() {
    let s = TestServer::start(ServerArgs {
        idle_timeout_secs: 1,
        ..small_limits()
    });
    let mut c = Conn::connect(s.addr).await;
    assert_eq!(c.cmd(&["PING"]).await, Reply::Simple("PONG".into()));
    c.assert_closed(Duration::from_secs(4)).await;

    let s = TestServer::start(small_limits());
    let mut c = Conn::connect(s.addr).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(c.cmd(&["PING"]).await, Reply::Simple("PONG".into()));
}

#[tokio::test]
async fn thousands_of_pipelined_commands() {
    let s = TestServer::start(ServerArgs::default());
    let c = Conn::connect(s.addr).await;
    let (mut rd, mut wr) = c.stream.into_split();
    const N: usize = 20_000;
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut out = bytes::BytesMut::new();
        for i in 0..N {
            let args = vec![
                b"SET".to_vec(),
                format!("k{i}").into_bytes(),
                format!("v{i}").into_bytes(),
            ];
            sessionplane_store::resp::encode_request(&args, &mut out);
            let args = vec![b"GET".to_vec(), format!("k{i}").into_bytes()];
            sessionplane_store::resp::encode_request(&args, &mut out);
        }
        wr.write_all(&out).await.expect("write pipeline");
        wr
    });
    let mut buf = bytes::BytesMut::new();
    let mut replies = Vec::with_capacity(2 * N);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while replies.len() < 2 * N {
        use tokio::io::AsyncReadExt;
        while let Some((reply, used)) =
            sessionplane_store::resp::parse_reply(&buf, &Default::default()).expect("reply")
        {
            let _ = buf.split_to(used);
            replies.push(reply);
        }
        if replies.len() == 2 * N {
            break;
        }
        let n = tokio::time::timeout_at(deadline, rd.read_buf(&mut buf))
            .await
            .expect("pipeline replies too slow")
            .expect("read");
        assert!(n > 0, "closed after {} replies", replies.len());
    }
    let _wr = writer.await.expect("writer");
    for i in 0..N {
        assert_eq!(replies[2 * i], Reply::Simple("OK".into()));
        assert_eq!(
            replies[2 * i + 1],
            Reply::Bulk(format!("v{i}").into_bytes())
        );
    }
}

#[tokio::test]
async fn unauthenticated_clients_get_small_limits() {
    let s = TestServer::start(ServerArgs {
        password: Some("secret".into()),
        ..small_limits()
    });
    expect_protocol_error(
        &s,
        b"*11\r\n",
        "ERR Protocol error: invalid multibulk length",
    )
    .await;
    let mut c = Conn::connect(s.addr).await;
    assert_eq!(c.cmd(&["AUTH", "secret"]).await, Reply::Simple("OK".into()));
    c.send_raw(b"*11\r\n").await;
    assert_eq!(
        error_text(&c.cmd(&["PING"]).await),
        "ERR Protocol error: expected '$', got '*'"
    );
}
