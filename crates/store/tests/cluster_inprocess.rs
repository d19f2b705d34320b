//! Cluster behaviour with several nodes in one process, driven through the `Backend`
//! seam (no RESP): routing, forwarding, multi-key gathers, migration to a learner,
//! draining, and epoch fencing of configurations and RPC traffic.

mod support;

use sessionplane_store::backend::Backend;
use sessionplane_store::cluster::rpc::{Peers, Request, Response};
use sessionplane_store::reply::Reply;
use sessionplane_store::storage::FsyncPolicy;
use sessionplane_store::{start_cluster, Cluster, StoreArgs};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::http;
use support::master::{Addrs, Master};

/// The nodes' command timeout (the default).
const COMMAND_TIMEOUT: Duration =
    Duration::from_millis(sessionplane_store::cluster::DEFAULT_COMMAND_TIMEOUT_MS);

fn args(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}

async fn start(
    dir: &std::path::Path,
    id: &str,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Cluster {
    start_with_password(dir, id, stop, None).await
}

async fn start_with_password(
    dir: &std::path::Path,
    id: &str,
    stop: tokio::sync::watch::Receiver<bool>,
    password: Option<&str>,
) -> Cluster {
    let server = sessionplane_store::server::ServerArgs {
        password: password.map(str::to_string),
        ..Default::default()
    };
    let args = StoreArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        id: id.to_string(),
        peer_listen: "127.0.0.1:0".parse().unwrap(),
        admin: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.join(id),
        fsync: FsyncPolicy::Always,
        command_timeout_ms: COMMAND_TIMEOUT.as_millis() as u64,
        server,
    };
    start_cluster(&args, stop).await.expect("node starts")
}

fn enroll(master: &mut Master, id: &str, c: &Cluster) {
    master.members.insert(
        id.to_string(),
        Addrs {
            peer: c.peer_addr.to_string(),
            admin: c.admin_addr.to_string(),
        },
    );
}

/// Three nodes in one ring of 16 partitions, replicationFactor 2 (the master is dropped
/// once it pushed the first configuration).
async fn three_nodes(
    dir: &std::path::Path,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Vec<(String, Cluster)> {
    let mut master = Master::new(16, 2, 0.25);
    let mut nodes = Vec::new();
    for i in 0..3 {
        let id = format!("n{i}");
        let c = start(dir, &id, stop.clone()).await;
        enroll(&mut master, &id, &c);
        nodes.push((id, c));
    }
    let ids: Vec<String> = nodes.iter().map(|(id, _)| id.clone()).collect();
    master.bootstrap(&ids).await;
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_gathers_migrates_and_fences() {
    let dir = tempfile::tempdir().unwrap();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut master = Master::new(16, 2, 0.25);
    let mut nodes = Vec::new();
    for i in 0..4 {
        let id = format!("n{i}");
        let c = start(dir.path(), &id, stop.clone()).await;
        nodes.push((id, c));
    }
    for (id, c) in &nodes[..3] {
        enroll(&mut master, id, c);
    }
    let ids: Vec<String> = nodes[..3].iter().map(|(id, _)| id.clone()).collect();
    master.bootstrap(&ids).await;
    let n = |i: usize| nodes[i].1.node.clone();

    // Any node answers for any key.
    for i in 0..40 {
        let key = format!("sess:{i}");
        let value = format!("v{i}");
        assert_eq!(
            n(i % 3).call(args(&["SET", &key, &value])).await,
            Reply::Simple("OK".into())
        );
    }
    for i in 0..40 {
        let key = format!("sess:{i}");
        assert_eq!(
            n((i + 1) % 3).call(args(&["GET", &key])).await,
            Reply::Bulk(format!("v{i}").into_bytes())
        );
    }
    // Multi-key commands split by partition and gather.
    assert_eq!(
        n(0).call(args(&["MSET", "a", "1", "b", "2", "c", "3"]))
            .await,
        Reply::Simple("OK".into())
    );
    assert_eq!(
        n(1).call(args(&["MGET", "a", "nope", "c", "b"])).await,
        Reply::Array(vec![
            Reply::Bulk(b"1".to_vec()),
            Reply::Nil,
            Reply::Bulk(b"3".to_vec()),
            Reply::Bulk(b"2".to_vec())
        ])
    );
    assert_eq!(
        n(2).call(args(&["EXISTS", "a", "b", "zz"])).await,
        Reply::Integer(2)
    );
    assert_eq!(n(2).call(args(&["DBSIZE"])).await, Reply::Integer(43));
    assert_eq!(
        n(1).call(args(&["DEL", "a", "b", "c"])).await,
        Reply::Integer(3)
    );
    assert_eq!(n(0).call(args(&["DBSIZE"])).await, Reply::Integer(40));

    // SCAN with a small COUNT visits every key exactly once.
    let mut cursor = "0".to_string();
    let mut seen = BTreeSet::new();
    for _ in 0..1000 {
        let reply = n(1)
            .call(args(&["SCAN", &cursor, "MATCH", "sess:*", "COUNT", "3"]))
            .await;
        let Reply::Array(parts) = reply else {
            panic!("SCAN reply {reply:?}")
        };
        let Reply::Bulk(next) = &parts[0] else {
            panic!("cursor {parts:?}")
        };
        let Reply::Array(keys) = &parts[1] else {
            panic!("keys {parts:?}")
        };
        for k in keys {
            let Reply::Bulk(k) = k else {
                panic!("key {k:?}")
            };
            assert!(seen.insert(k.clone()), "SCAN returned a key twice");
        }
        cursor = String::from_utf8(next.clone()).unwrap();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 40);

    // A TTL set before a migration holds after it.
    assert_eq!(
        n(0).call(args(&["SET", "ttl-key", "x", "PX", "600000"]))
            .await,
        Reply::Simple("OK".into())
    );

    // Scale 3 -> 4: learners get snapshot + tail, then the flip.
    let (id3, c3) = &nodes[3];
    enroll(&mut master, id3, c3);
    let all: Vec<String> = nodes.iter().map(|(id, _)| id.clone()).collect();
    let moved = master.migrate_to(&all, &[]).await;
    assert!(moved.replicas_moved > 0, "a new node takes some replicas");
    let status = master.status("n3").await.expect("status of n3");
    assert!(
        status["roles"]["primary"].as_u64().unwrap() + status["roles"]["replica"].as_u64().unwrap()
            > 0
    );
    for i in 0..40 {
        let key = format!("sess:{i}");
        assert_eq!(
            n(3).call(args(&["GET", &key])).await,
            Reply::Bulk(format!("v{i}").into_bytes())
        );
    }
    let Reply::Integer(pttl) = n(3).call(args(&["PTTL", "ttl-key"])).await else {
        panic!("PTTL")
    };
    assert!(
        pttl > 500_000 && pttl <= 600_000,
        "TTL survives migration: {pttl}"
    );

    // Scale 4 -> 3 without n0: n0 drains, then owns nothing.
    let rest: Vec<String> = all[1..].to_vec();
    master.migrate_to(&rest, &[]).await;
    assert!(
        master.drained("n0").await,
        "n0 holds nothing after the flip"
    );
    assert_eq!(n(1).call(args(&["DBSIZE"])).await, Reply::Integer(41));
    for i in 0..40 {
        let key = format!("sess:{i}");
        assert_eq!(
            n(1 + i % 3).call(args(&["GET", &key])).await,
            Reply::Bulk(format!("v{i}").into_bytes())
        );
    }

    // A node that missed a push is refused by its peers (stale epoch), fetches the
    // newer configuration from them and retries: the client only sees latency.
    let same = master.assignment.clone();
    master
        .push(&same, &vec![Vec::new(); 16], &["n1".to_string()])
        .await;
    assert!(n(1).epoch() < master.epoch, "n1 missed the push");
    for i in 0..40 {
        let key = format!("sess:{i}");
        assert_eq!(
            n(1).call(args(&["GET", &key])).await,
            Reply::Bulk(format!("v{i}").into_bytes())
        );
    }
    assert_eq!(n(1).epoch(), master.epoch, "n1 caught up from a peer");

    // Fencing: an older configuration is refused ...
    let admin = nodes[1].1.admin_addr.to_string();
    let old = serde_json::json!({
        "epoch": 1, "partitions": 16,
        "members": [{"id": "n1", "addr": "127.0.0.1:1"}],
        "replicas": vec![vec!["n1"]; 16],
    });
    let (code, body) = http(&admin, "POST", "/v1/ring", Some(&old.to_string()))
        .await
        .unwrap();
    assert_eq!(code, 409, "stale config refused: {body}");
    assert!(body.contains("stale"), "{body}");
    // ... and so is RPC traffic tagged with an older epoch.
    let peers = Peers::default();
    let resp = peers
        .call(
            &nodes[1].1.peer_addr.to_string(),
            &Request::Forward {
                epoch: 1,
                partition: 0,
                args: args(&["GET", "sess:1"]),
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert!(
        matches!(resp, Response::StaleEpoch { current } if current == master.epoch),
        "{resp:?}"
    );
    let resp = peers
        .call(
            &nodes[1].1.peer_addr.to_string(),
            &Request::Replicate {
                epoch: 2,
                from: "n0".into(),
                partition: 0,
                mutations: vec![],
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert!(matches!(resp, Response::StaleEpoch { .. }), "{resp:?}");
}

/// A connection's pipelined commands (`call_batch`), from a node that is the primary of
/// their partition and from nodes that forward them: replies in order, as the same
/// commands one by one would give, each command seeing the ones before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_commands_answer_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let nodes = three_nodes(dir.path(), &stop).await;
    let ok = || Reply::Simple("OK".into());
    let bulk = |s: &str| Reply::Bulk(s.as_bytes().to_vec());
    for (i, (_, c)) in nodes.iter().enumerate() {
        let k = format!("pipe:{i}");
        let other = format!("pipe:other:{i}");
        let commands: Vec<Vec<Vec<u8>>> = [
            vec!["SET", &k, "1"],
            vec!["INCR", &k],
            vec!["GET", &k],
            vec!["HSET", &k, "f", "v"],
            vec!["SET", &other, "x"],
            vec!["MSET", "pa", "1", "pb", "2", "pc", "3"],
            vec!["APPEND", &k, "0"],
            vec!["GET", &k],
            vec!["MGET", "pa", "pb", "pc"],
            vec!["GETDEL", &k],
            vec!["GET", &k],
            vec!["SET", &k, "last"],
        ]
        .iter()
        .map(|words| args(words))
        .collect();
        let replies = c.node.call_batch(commands).await;
        assert_eq!(
            replies,
            vec![
                ok(),
                Reply::Integer(2),
                bulk("2"),
                Reply::Error(
                    "WRONGTYPE Operation against a key holding the wrong kind of value".into()
                ),
                ok(),
                ok(),
                Reply::Integer(2),
                bulk("20"),
                Reply::Array(vec![bulk("1"), bulk("2"), bulk("3")]),
                bulk("20"),
                Reply::Nil,
                ok(),
            ],
            "pipeline through n{i}"
        );
    }
    // Acknowledged in the pipeline, readable through every node.
    for (i, _) in nodes.iter().enumerate() {
        for (_, c) in &nodes {
            assert_eq!(
                c.node.call(args(&["GET", &format!("pipe:{i}")])).await,
                bulk("last")
            );
            assert_eq!(
                c.node
                    .call(args(&["GET", &format!("pipe:other:{i}")]))
                    .await,
                bulk("x")
            );
        }
    }
}

/// Many concurrent commands for one partition, sent to every node: the nodes that are not
/// its primary coalesce them into shared forwards (`cluster::coalesce`), and each caller
/// must still get its own reply, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalesced_forwards_answer_each_caller() {
    let dir = tempfile::tempdir().unwrap();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let nodes = three_nodes(dir.path(), &stop).await;
    let n = |i: usize| nodes[i].1.node.clone();
    // One hash tag: every key below is in the same partition, so in the same lane.
    for i in 0..150 {
        let key = format!("{{t}}k{i}");
        let value = format!("v{i}");
        assert_eq!(
            n(0).call(args(&["SET", &key, &value])).await,
            Reply::Simple("OK".into())
        );
    }
    let calls = (0..300).map(|i| {
        let node = n(i % 3);
        async move {
            let reply = if i % 2 == 0 {
                node.call(args(&["INCR", "{t}counter"])).await
            } else {
                node.call(args(&["GET", &format!("{{t}}k{}", i / 2)])).await
            };
            (i, reply)
        }
    });
    let mut counts = BTreeSet::new();
    for (i, reply) in futures::future::join_all(calls).await {
        if i % 2 == 0 {
            match reply {
                Reply::Integer(v) => assert!(counts.insert(v), "INCR answered {v} twice"),
                other => panic!("INCR answered {other:?}"),
            }
        } else {
            assert_eq!(
                reply,
                Reply::Bulk(format!("v{}", i / 2).into_bytes()),
                "GET {i}"
            );
        }
    }
    assert_eq!(counts, (1..=150).collect::<BTreeSet<i64>>());
}

/// With a password, a node takes a ring configuration only from a caller that sends it,
/// and takes forwards only from peers that prove it; nodes that share it work as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_guards_the_admin_api_and_the_peer_port() {
    const PASSWORD: &str = "cluster-secret";
    let dir = tempfile::tempdir().unwrap();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut master = Master::new(16, 1, 0.25);
    let mut nodes = Vec::new();
    for i in 0..2 {
        let id = format!("n{i}");
        let c = start_with_password(dir.path(), &id, stop.clone(), Some(PASSWORD)).await;
        enroll(&mut master, &id, &c);
        nodes.push((id, c));
    }
    let admin = nodes[0].1.admin_addr.to_string();
    let config = serde_json::json!({
        "epoch": 1, "partitions": 16,
        "members": [{"id": "n0", "addr": nodes[0].1.peer_addr.to_string()}],
        "replicas": vec![vec!["n0"]; 16],
    })
    .to_string();
    for token in [None, Some("wrong")] {
        let (code, body) = support::http_authorized(
            token,
            None,
            Duration::from_secs(10),
            &admin,
            "POST",
            "/v1/ring",
            Some(&config),
        )
        .await
        .unwrap();
        assert_eq!(code, 401, "{token:?}: {body}");
        assert!(body.contains("Authorization: Bearer"), "{body}");
    }
    assert_eq!(
        nodes[0].1.node.epoch(),
        0,
        "an unauthorized push changes nothing"
    );
    // Probes stay open.
    let (code, _) = http(&admin, "GET", "/healthz", None).await.unwrap();
    assert_eq!(code, 200);

    master.token = Some(PASSWORD.into());
    let ids: Vec<String> = nodes.iter().map(|(id, _)| id.clone()).collect();
    master.bootstrap(&ids).await;
    // Every key written through n0 reaches its primary, half of them on n1: forwarding
    // between nodes that share the password works.
    let n0 = &nodes[0].1.node;
    for i in 0..40 {
        let key = format!("k{i}");
        assert_eq!(
            n0.call(args(&["SET", &key, "v"])).await,
            Reply::Simple("OK".into())
        );
        assert_eq!(
            nodes[1].1.node.call(args(&["GET", &key])).await,
            Reply::Bulk(b"v".to_vec())
        );
    }
    // A peer without the password gets nothing in, whatever it sends.
    let forged = Request::Forward {
        epoch: master.epoch,
        partition: 0,
        args: args(&["SET", "k0", "forged"]),
    };
    let guess = sessionplane_store::cluster::rpc::PeerKey::from_password("guess");
    for stranger in [Peers::default(), Peers::new(Some(guess))] {
        let refused = stranger
            .call(
                &nodes[1].1.peer_addr.to_string(),
                &forged,
                Duration::from_secs(5),
            )
            .await;
        assert!(refused.is_err(), "{refused:?}");
    }
    assert_eq!(
        n0.call(args(&["GET", "k0"])).await,
        Reply::Bulk(b"v".to_vec())
    );
}

/// A stand-in primary at a peer address: it reads each forward it is sent, counts it,
/// and closes the connection without an answer (a primary that died mid-request).
async fn unanswering_primary() -> (String, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let read = Arc::new(AtomicUsize::new(0));
    let seen = read.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = l.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut len = [0u8; 4];
                if stream.read_exact(&mut len).await.is_err() {
                    return;
                }
                let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
                if stream.read_exact(&mut frame).await.is_ok() {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    (addr, read)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_forward_went_unanswered_is_not_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let n0 = start(dir.path(), "n0", stop.clone()).await;
    let (ghost_addr, forwards_read) = unanswering_primary().await;
    let mut master = Master::new(1, 1, 0.25);
    enroll(&mut master, "n0", &n0);
    master.members.insert(
        "ghost".to_string(),
        Addrs {
            peer: ghost_addr,
            admin: "127.0.0.1:1".to_string(),
        },
    );
    // The only partition's primary is the ghost; n0 forwards everything to it.
    let replicas = sessionplane_ring::Assignment {
        partitions: vec![vec!["ghost".to_string()]],
    };
    master
        .push(&replicas, &[Vec::new()], &["ghost".to_string()])
        .await;

    // The forward went out and no answer came: the write may have been applied, so it
    // is neither sent again nor left retrying; the client hears so at once.
    let started = std::time::Instant::now();
    let reply = n0.node.call(args(&["SET", "k", "v"])).await;
    let Reply::Error(text) = &reply else {
        panic!("SET answered {reply:?}")
    };
    assert!(text.starts_with("ERR outcome unknown"), "{text}");
    assert!(text.contains("may or may not have been applied"), "{text}");
    assert!(
        started.elapsed() < COMMAND_TIMEOUT,
        "answered without retrying"
    );
    assert_eq!(forwards_read.load(Ordering::SeqCst), 1, "sent once");

    // A read is harmless to send again: it retries until the command timeout, and no
    // attempt starts after it.
    let started = std::time::Instant::now();
    let reply = n0.node.call(args(&["GET", "k"])).await;
    let elapsed = started.elapsed();
    let Reply::Error(text) = &reply else {
        panic!("GET answered {reply:?}")
    };
    assert!(text.starts_with("TRYAGAIN partition 0"), "{text}");
    assert!(
        forwards_read.load(Ordering::SeqCst) > 2,
        "the read was retried"
    );
    assert!(elapsed >= COMMAND_TIMEOUT, "gave up early: {elapsed:?}");
    // The bound is the timeout plus what one last attempt may take (the forward's
    // answer grace), not the 15 s nodes used to retry for.
    assert!(
        elapsed < COMMAND_TIMEOUT + sessionplane_store::cluster::FORWARD_ANSWER_GRACE,
        "retried past the command timeout: {elapsed:?}"
    );
    let (_, metrics) = http(&n0.admin_addr.to_string(), "GET", "/metrics", None)
        .await
        .unwrap();
    for reason in ["outcome_unknown", "deadline"] {
        assert!(
            metrics.contains(&format!(
                "sessionplane_store_commands_given_up_total{{reason=\"{reason}\"}} 1"
            )),
            "{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_runs_no_forward_whose_budget_is_spent() {
    let dir = tempfile::tempdir().unwrap();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let n0 = start(dir.path(), "n0", stop.clone()).await;
    let mut master = Master::new(1, 1, 0.25);
    enroll(&mut master, "n0", &n0);
    master.bootstrap(&["n0".to_string()]).await;
    let peers = Peers::default();
    let forward = |budget_ms, value: &str| Request::ForwardWithin {
        epoch: master.epoch,
        partition: 0,
        budget_ms,
        commands: vec![args(&["SET", "k", value])],
    };
    // The sender's deadline has passed: the primary does not run it (the sender has
    // answered its client, or is about to).
    let resp = peers
        .call(
            &n0.peer_addr.to_string(),
            &forward(0, "late"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert!(
        matches!(&resp, Response::Error(e) if e.contains("deadline passed")),
        "{resp:?}"
    );
    assert_eq!(n0.node.call(args(&["GET", "k"])).await, Reply::Nil);
    // With time left it runs.
    let resp = peers
        .call(
            &n0.peer_addr.to_string(),
            &forward(2000, "in time"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert!(
        matches!(&resp, Response::Replies(r) if r == &vec![Reply::Simple("OK".into())]),
        "{resp:?}"
    );
    assert_eq!(
        n0.node.call(args(&["GET", "k"])).await,
        Reply::Bulk(b"in time".to_vec())
    );
}
