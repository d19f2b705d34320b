//! Connection-level behaviour: AUTH, HELLO and RESP3, CLIENT, limits on clients, TLS,
//! QUIT/RESET, INFO, against an in-process server.

mod protocol_support;

use protocol_support::{error_text, Conn, TestServer};
use sessionplane_store::reply::Reply;
use sessionplane_store::server::ServerArgs;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn ok() -> Reply {
    Reply::Simple("OK".into())
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(s.as_bytes().to_vec())
}

#[tokio::test]
async fn auth_is_required_when_a_password_is_set() {
    let s = TestServer::start(ServerArgs {
        password: Some("s3cret".into()),
        ..ServerArgs::default()
    });
    let mut c = Conn::connect(s.addr).await;
    assert_eq!(
        error_text(&c.cmd(&["GET", "k"]).await),
        "NOAUTH Authentication required."
    );
    assert_eq!(
        error_text(&c.cmd(&["PING"]).await),
        "NOAUTH Authentication required."
    );
    assert_eq!(
        error_text(&c.cmd(&["AUTH", "wrong"]).await),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(
        error_text(&c.cmd(&["AUTH", "someone", "s3cret"]).await),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(
        error_text(&c.cmd(&["HELLO", "3"]).await),
        "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"
    );
    assert_eq!(c.cmd(&["AUTH", "s3cret"]).await, ok());
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, ok());
    assert_eq!(c.cmd(&["RESET"]).await, Reply::Simple("RESET".into()));
    assert_eq!(
        error_text(&c.cmd(&["GET", "k"]).await),
        "NOAUTH Authentication required."
    );
    assert_eq!(c.cmd(&["AUTH", "default", "s3cret"]).await, ok());
    assert_eq!(c.cmd(&["GET", "k"]).await, bulk("v"));

    let mut c = Conn::connect(s.addr).await;
    let hello = c
        .cmd(&["HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "app"])
        .await;
    assert!(matches!(hello, Reply::Map(_)), "{hello:?}");
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]).await, bulk("app"));
    assert_eq!(c.cmd(&["GET", "k"]).await, bulk("v"));
}

#[tokio::test]
async fn auth_without_a_password() {
    let s = TestServer::start(ServerArgs::default());
    let mut c = Conn::connect(s.addr).await;
    assert_eq!(
        error_text(&c.cmd(&["AUTH", "x"]).await),
        "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
    );
    assert_eq!(c.cmd(&["AUTH", "default", "anything"]).await, ok());
}

#[tokio::test]
async fn hello_switches_to_resp3() {
    let s = TestServer::start(ServerArgs::default());
    let mut c = Conn::connect(s.addr).await;
    assert_eq!(c.cmd(&["HSET", "h", "f", "v"]).await, Reply::Integer(1));
    c.send(&["HGETALL", "h"]).await;
    c.send(&["GET", "missing"]).await;
    assert_eq!(c.read().await, Reply::Array(vec![bulk("f"), bulk("v")]));
    assert_eq!(c.read().await, Reply::Nil);
    let Reply::Map(hello) = c.cmd(&["HELLO", "3"]).await else {
        panic!("HELLO 3 answers a map")
    };
    let field = |name: &str| {
        hello
            .iter()
            .find(|(k, _)| *k == bulk(name))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(field("server"), Some(bulk("redis")));
    assert_eq!(field("version"), Some(bulk("7.4.0")));
    assert_eq!(field("proto"), Some(Reply::Integer(3)));
    assert_eq!(field("mode"), Some(bulk("standalone")));
    assert_eq!(field("role"), Some(bulk("master")));
    assert_eq!(field("modules"), Some(Reply::Array(vec![])));
    let Some(Reply::Integer(id)) = field("id") else {
        panic!("id")
    };
    assert_eq!(c.cmd(&["CLIENT", "ID"]).await, Reply::Integer(id));
    assert_eq!(
        c.cmd(&["HGETALL", "h"]).await,
        Reply::Map(vec![(bulk("f"), bulk("v"))])
    );
    assert_eq!(c.cmd(&["SADD", "s", "a"]).await, Reply::Integer(1));
    assert_eq!(c.cmd(&["SMEMBERS", "s"]).await, Reply::Set(vec![bulk("a")]));
    assert!(
        matches!(c.cmd(&["INFO", "server"]).await, Reply::Verbatim(f, t) if f == "txt" && t.contains("redis_version:7.4.0"))
    );
    assert_eq!(
        error_text(&c.cmd(&["HELLO", "4"]).await),
        "NOPROTO unsupported protocol version"
    );
    // Back to RESP2: the map comes as a flat array.
    let Reply::Array(flat) = c.cmd(&["HELLO", "2"]).await else {
        panic!("HELLO 2 answers a flat array")
    };
    assert_eq!(flat.len(), 14);
    assert_eq!(flat[4..6], [bulk("proto"), Reply::Integer(2)]);
    assert_eq!(c.cmd(&["GET", "missing"]).await, Reply::Nil);
}

#[tokio::test]
async fn client_commands_and_ids() {
    let s = TestServer::start(ServerArgs::default());
    let mut a = Conn::connect(s.addr).await;
    let mut b = Conn::connect(s.addr).await;
    let (Reply::Integer(ia), Reply::Integer(ib)) = (
        a.cmd(&["CLIENT", "ID"]).await,
        b.cmd(&["CLIENT", "ID"]).await,
    ) else {
        panic!("integers")
    };
    assert_ne!(ia, ib);
    assert_eq!(a.cmd(&["CLIENT", "GETNAME"]).await, Reply::Nil);
    assert_eq!(a.cmd(&["CLIENT", "SETNAME", "web-1"]).await, ok());
    assert_eq!(a.cmd(&["CLIENT", "GETNAME"]).await, bulk("web-1"));
    assert_eq!(
        error_text(&a.cmd(&["CLIENT", "SETNAME", "a b"]).await),
        "ERR Client names cannot contain spaces, newlines or special characters."
    );
    assert_eq!(
        a.cmd(&["CLIENT", "SETINFO", "LIB-NAME", "redis-py"]).await,
        ok()
    );
    assert_eq!(
        a.cmd(&["CLIENT", "SETINFO", "lib-ver", "5.0.0"]).await,
        ok()
    );
    let Reply::Bulk(info) = a.cmd(&["CLIENT", "INFO"]).await else {
        panic!("bulk")
    };
    let info = String::from_utf8_lossy(&info).into_owned();
    assert!(
        info.contains("name=web-1") && info.contains("lib-name=redis-py"),
        "{info}"
    );
    assert_eq!(
        error_text(&a.cmd(&["CLIENT", "BOGUS"]).await),
        "ERR unknown subcommand 'BOGUS'. Try CLIENT HELP."
    );
    assert_eq!(
        error_text(&a.cmd(&["CLIENT", "SETNAME"]).await),
        "ERR wrong number of arguments for 'client|setname' command"
    );
    assert_eq!(a.cmd(&["SELECT", "0"]).await, ok());
    assert_eq!(
        error_text(&a.cmd(&["SELECT", "1"]).await),
        "ERR DB index is out of range"
    );
    assert_eq!(a.cmd(&["ECHO", "hi"]).await, bulk("hi"));
    assert_eq!(a.cmd(&["PING", "x"]).await, bulk("x"));
    assert_eq!(a.cmd(&["QUIT"]).await, ok());
    a.assert_closed(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn max_clients() {
    let s = TestServer::start(ServerArgs {
        max_clients: 2,
        ..ServerArgs::default()
    });
    let mut a = Conn::connect(s.addr).await;
    let mut b = Conn::connect(s.addr).await;
    assert_eq!(a.cmd(&["PING"]).await, Reply::Simple("PONG".into()));
    assert_eq!(b.cmd(&["PING"]).await, Reply::Simple("PONG".into()));
    let mut c = Conn::connect(s.addr).await;
    assert_eq!(
        error_text(&c.read().await),
        "ERR max number of clients reached"
    );
    c.assert_closed(Duration::from_secs(5)).await;
    drop(a);
    // The slot frees when the server notices the close.
    let mut admitted = false;
    for _ in 0..50 {
        let mut d = Conn::connect(s.addr).await;
        d.send(&["PING"]).await;
        if d.read().await == Reply::Simple("PONG".into()) {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(admitted, "a freed slot admits a new client");
}

#[tokio::test]
async fn info_sections() {
    let s = TestServer::start(ServerArgs::default());
    let mut c = Conn::connect(s.addr).await;
    c.cmd(&["SET", "a", "1", "EX", "100"]).await;
    c.cmd(&["SET", "b", "1"]).await;
    let text = |r: Reply| match r {
        Reply::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("{other:?}"),
    };
    let all = text(c.cmd(&["INFO"]).await);
    for section in [
        "# Server",
        "# Clients",
        "# Memory",
        "# Persistence",
        "# Stats",
        "# Replication",
        "# Keyspace",
    ] {
        assert!(all.contains(section), "{section} missing");
    }
    assert!(all.contains("db0:keys=2,expires=1,avg_ttl=0"), "{all}");
    assert!(all.contains("role:master"));
    let ks = text(c.cmd(&["INFO", "keyspace"]).await);
    assert!(ks.starts_with("# Keyspace") && !ks.contains("# Server"));
    assert_eq!(text(c.cmd(&["INFO", "nosuch"]).await), "");
    assert!(text(c.cmd(&["INFO", "all"]).await).contains("connected_clients:1"));
    assert_eq!(c.cmd(&["DBSIZE"]).await, Reply::Integer(2));
    assert!(matches!(c.cmd(&["COMMAND", "COUNT"]).await, Reply::Integer(n) if n > 50));
    let Reply::Array(info) = c.cmd(&["COMMAND", "INFO", "get", "nosuch"]).await else {
        panic!()
    };
    assert_eq!(info[1], Reply::Nil);
    let Reply::Array(get) = &info[0] else {
        panic!()
    };
    assert_eq!(get[0], bulk("get"));
    assert_eq!(get[1], Reply::Integer(2));
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "save"]).await,
        Reply::Array(vec![bulk("save"), bulk("")])
    );
}

#[tokio::test]
async fn tls_listener() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let cert_path = dir.path().join("tls.crt");
    let key_path = dir.path().join("tls.key");
    std::fs::write(&cert_path, key.cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.signing_key.serialize_pem()).expect("write key");
    let s = TestServer::start(ServerArgs {
        tls_listen: Some("127.0.0.1:0".parse().unwrap()),
        tls_cert: Some(cert_path),
        tls_key: Some(key_path),
        password: Some("pw".into()),
        ..ServerArgs::default()
    });
    let mut roots = rustls::RootCertStore::empty();
    roots.add(key.cert.der().clone()).expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(s.tls_addr.expect("tls addr"))
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    tls.write_all(b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*1\r\n$4\r\nPING\r\n")
        .await
        .expect("write");
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < b"+OK\r\n+PONG\r\n".len() {
        let mut chunk = [0u8; 64];
        let n = tokio::time::timeout_at(deadline, tls.read(&mut chunk))
            .await
            .expect("timely")
            .expect("read");
        assert!(n > 0, "closed");
        got.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(got, b"+OK\r\n+PONG\r\n");
    // Plain TCP to the TLS port is not a session.
    let mut plain = tokio::net::TcpStream::connect(s.tls_addr.unwrap())
        .await
        .expect("connect");
    plain.write_all(b"PING\r\n").await.expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the TLS port closes a plain-text client");
    assert!(!answer.windows(4).any(|w| w == b"PONG"), "{answer:?}");
    s.assert_alive().await;
}
