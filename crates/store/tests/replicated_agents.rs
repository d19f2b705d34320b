//! Strategy Replicated with real processes and real Redis clients: agents started as
//! `replicated-agent` processes on loopback, listing each other as peers, written and
//! read with redis-cli and redis-py.
//!
//! Needs: redis-tools (redis-cli) and python3 with `redis` (pip).

mod support;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};
use support::agents::{fleet, fleet_in, newcomer, AgentProc, PEER_TIMEOUT_MS};
use support::eventually;
use support::netns::Net;

const LIMIT: Duration = Duration::from_secs(20);

async fn reads_back(agent: &AgentProc, key: &str, want: &str) {
    eventually(LIMIT, &format!("{key}={want} on {}", agent.id), || async {
        agent.cli(&["GET", key]) == want
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_writes_spread_to_every_agent_with_ttls_and_deletes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agents = fleet(dir.path(), 3, "Async").await;
    assert_eq!(
        agents[0].cli(&["SET", "sess:a", "alice", "EX", "300"]),
        "OK"
    );
    assert_eq!(
        agents[1].cli(&["HSET", "sess:h", "user", "bob", "n", "1"]),
        "2"
    );
    assert_eq!(agents[2].cli(&["SET", "sess:gone", "x"]), "OK");
    for a in &agents {
        reads_back(a, "sess:a", "alice").await;
        eventually(LIMIT, "hash spread", || async {
            a.cli(&["HGET", "sess:h", "user"]) == "bob"
        })
        .await;
        reads_back(a, "sess:gone", "x").await;
    }
    let ttl: i64 = agents[2].cli(&["TTL", "sess:a"]).parse().expect("ttl");
    assert!(
        (290..=300).contains(&ttl),
        "the TTL travels with the value: {ttl}"
    );
    // A delete is a write too (a tombstone), and wins over the older value everywhere.
    assert_eq!(agents[1].cli(&["DEL", "sess:gone"]), "1");
    for a in &agents {
        reads_back(a, "sess:gone", "").await;
    }
    // An expiry is decided by each agent at the same wall time, with no message.
    assert_eq!(
        agents[0].cli(&["SET", "sess:short", "v", "PX", "300"]),
        "OK"
    );
    reads_back(&agents[2], "sess:short", "v").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    for a in &agents {
        assert_eq!(a.cli(&["GET", "sess:short"]), "", "{} expired it", a.id);
    }
    assert_eq!(
        agents[0].metric("sessionplane_agent_writes_total").await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_writes_read_back_on_every_agent_as_soon_as_they_are_acked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agents = fleet(dir.path(), 3, "Sync").await;
    for i in 0..30 {
        let writer = &agents[i % 3];
        let value = format!("v{i}");
        assert_eq!(writer.cli(&["SET", "sess:sync", &value]), "OK");
        for reader in &agents {
            assert_eq!(
                reader.cli(&["GET", "sess:sync"]),
                value,
                "{} right after {}'s acked write {i}",
                reader.id,
                writer.id
            );
        }
    }
    let mut sent = 0.0;
    for a in &agents {
        sent += a
            .metric("sessionplane_agent_push_messages_sent_total")
            .await;
        assert_eq!(
            a.metric("sessionplane_agent_sync_writes_degraded_total")
                .await,
            0.0
        );
    }
    // One client writing in turn: every write is one message to each of the 2 peers.
    assert_eq!(sent, 60.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_restarted_pulls_every_session_before_it_is_ready() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut agents = fleet(dir.path(), 3, "Async").await;
    let mut pipe = String::new();
    for i in 0..300 {
        pipe.push_str(&format!("SET sess:{i} value-{i} EX 600\n"));
    }
    run_pipe(&agents[0], &pipe);
    eventually(LIMIT, "300 keys on agent-2", || async {
        agents[2].cli(&["DBSIZE"]) == "300"
    })
    .await;
    agents[2].kill9();
    // Written while agent-2 is gone: only a bootstrap (or anti-entropy) brings these.
    assert_eq!(agents[1].cli(&["SET", "sess:late", "after-kill"]), "OK");
    assert_eq!(agents[1].cli(&["DEL", "sess:7"]), "1");
    agents[2].start();
    agents[2].wait_ready().await;
    // Ready means the state is already there, not that it will arrive.
    assert_eq!(agents[2].cli(&["DBSIZE"]), "300");
    assert_eq!(agents[2].cli(&["GET", "sess:late"]), "after-kill");
    assert_eq!(agents[2].cli(&["GET", "sess:7"]), "");
    assert_eq!(agents[2].cli(&["GET", "sess:299"]), "value-299");
    assert!(
        agents[2]
            .metric("sessionplane_agent_bootstrap_keys_total")
            .await
            >= 300.0,
        "{}",
        agents[2].log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_agent_the_others_do_not_list_yet_gets_sync_writes_from_its_first_ping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agents = fleet(dir.path(), 2, "Sync").await;
    assert_eq!(agents[0].cli(&["SET", "sess:before", "old"]), "OK");
    let mut late = newcomer(dir.path(), &agents, "Sync", 0);
    late.start();
    late.wait_ready().await;
    assert_eq!(
        late.cli(&["GET", "sess:before"]),
        "old",
        "pulled at bootstrap"
    );
    for (i, a) in agents.iter().enumerate() {
        let value = format!("new-{i}");
        assert_eq!(a.cli(&["SET", "sess:after", &value]), "OK");
        assert_eq!(
            late.cli(&["GET", "sess:after"]),
            value,
            "{} pushes to the newcomer it learned from its ping\n{}",
            a.id,
            a.log()
        );
    }
}

/// A scale-up starts several pods at once, and the DNS answer each gets may list none
/// of the others: they must still hear of each other (through the agents they all
/// ping) before they serve, or a Sync write acked by one is missing on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_that_join_together_push_to_each_other_before_they_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agents = fleet(dir.path(), 2, "Sync").await;
    let mut joining: Vec<AgentProc> = (0..2)
        .map(|nth| newcomer(dir.path(), &agents, "Sync", nth))
        .collect();
    for a in &mut joining {
        a.start();
    }
    for a in &mut joining {
        a.wait_ready().await;
    }
    for round in 0..20 {
        let (writer, reader) = (&joining[round % 2], &joining[(round + 1) % 2]);
        let value = format!("v{round}");
        assert_eq!(writer.cli(&["SET", "sess:joined", &value]), "OK");
        assert_eq!(
            reader.cli(&["GET", "sess:joined"]),
            value,
            "a Sync write acked by {} is read on {} right after\n{}\n{}",
            writer.id,
            reader.id,
            writer.log(),
            reader.log()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_stopped_right_after_async_writes_hands_them_on_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut agents = fleet(dir.path(), 3, "Async").await;
    let mut pipe = String::new();
    for i in 0..500 {
        pipe.push_str(&format!("SET last:{i} v{i}\n"));
    }
    run_pipe(&agents[0], &pipe);
    let status = agents[0].terminate();
    assert!(status.success(), "{status}\n{}", agents[0].log());
    // Nobody else took these writes: only agent-0's pushes can have brought them.
    for a in &agents[1..] {
        assert_eq!(a.cli(&["DBSIZE"]), "500", "{}", agents[0].log());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_a_paused_agent_missed_are_repaired_by_anti_entropy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agents = fleet(dir.path(), 3, "Async").await;
    agents[2].pause();
    let mut pipe = String::new();
    for i in 0..50 {
        pipe.push_str(&format!("SET missed:{i} m{i}\n"));
    }
    run_pipe(&agents[0], &pipe);
    // Past the failure-detector timeout the paused agent is no longer pushed to.
    tokio::time::sleep(Duration::from_millis(PEER_TIMEOUT_MS * 3)).await;
    run_pipe(&agents[1], &pipe.replace("missed:", "later:"));
    assert!(
        agents[1]
            .metric("sessionplane_agent_push_skipped_total")
            .await
            > 0.0
    );
    agents[2].resume();
    eventually(LIMIT, "agent-2 repaired", || async {
        agents[2].cli(&["DBSIZE"]) == "100"
    })
    .await;
    assert_eq!(agents[2].cli(&["GET", "later:49"]), "m49");
    let mut repaired = 0.0;
    for a in &agents {
        repaired += a
            .metric("sessionplane_agent_anti_entropy_keys_repaired_total")
            .await;
    }
    assert!(repaired >= 50.0, "anti-entropy repaired {repaired} keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_to_one_key_converge_to_one_value_everywhere() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agents = fleet(dir.path(), 3, "Async").await;
    let ports: Vec<&str> = agents
        .iter()
        .map(|a| a.resp.rsplit_once(':').expect("port").1)
        .collect();
    // redis-py: one thread per agent, all writing the same key as fast as they can.
    let script = format!(
        r#"
import redis, threading
def hammer(port):
    r = redis.Redis(host="127.0.0.1", port=port)
    for i in range(300):
        r.set("sess:contended", f"{{port}}-{{i}}")
        r.hset("sess:contended-hash", "last", f"{{port}}-{{i}}")
threads = [threading.Thread(target=hammer, args=(p,)) for p in ({},)]
for t in threads: t.start()
for t in threads: t.join()
"#,
        ports.join(",")
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 (with the redis package)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(LIMIT, "one value everywhere", || async {
        let values: Vec<(String, String)> = agents
            .iter()
            .map(|a| {
                (
                    a.cli(&["GET", "sess:contended"]),
                    a.cli(&["HGET", "sess:contended-hash", "last"]),
                )
            })
            .collect();
        values.iter().all(|v| *v == values[0])
    })
    .await;
    let winner = agents[0].cli(&["GET", "sess:contended"]);
    assert!(
        winner.ends_with("-299"),
        "the winner is some writer's last write: {winner}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_write_waits_the_peer_timeout_for_an_unreachable_peer_then_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agents = fleet(dir.path(), 3, "Sync").await;
    agents[2].pause();
    let started = Instant::now();
    assert_eq!(agents[0].cli(&["SET", "sess:p", "during"]), "OK");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(PEER_TIMEOUT_MS),
        "the write waited for the unreachable peer's ack up to the timeout: {waited:?}"
    );
    // The reachable peer acked: it reads the write back right away.
    assert_eq!(agents[1].cli(&["GET", "sess:p"]), "during");
    assert_eq!(
        agents[0]
            .metric("sessionplane_agent_sync_writes_degraded_total")
            .await,
        1.0
    );
    // The unreachable peer is out of Sync writes now: the next ones do not wait for it.
    for i in 0..5 {
        assert_eq!(agents[0].cli(&["SET", &format!("sess:q{i}"), "next"]), "OK");
    }
    assert_eq!(
        agents[0]
            .metric("sessionplane_agent_sync_writes_degraded_total")
            .await,
        1.0
    );
    agents[2].resume();
    reads_back(&agents[2], "sess:p", "during").await;
    reads_back(&agents[2], "sess:q4", "next").await;
}

/// A real partition: each agent in its own network namespace, agent-2's firewall drops
/// every packet from and to the other two (the test still reaches all three). Sync writes
/// on both sides answer OK after the peer timeout; each side reads its own writes and a
/// stale value from the other side; after the heal every agent holds every write and the
/// key written on both sides holds the later write everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_agent_keeps_serving_and_converges_after_the_heal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let net = Net::new(3);
    let agents = fleet_in(dir.path(), 3, "Sync", Some(&net)).await;
    assert_eq!(agents[0].cli(&["SET", "sess:both", "before"]), "OK");
    assert_eq!(agents[2].cli(&["GET", "sess:both"]), "before");
    net.drop_peer(2, net.node_ip(0));
    net.drop_peer(2, net.node_ip(1));
    assert_eq!(agents[2].cli(&["SET", "sess:both", "isolated-side"]), "OK");
    assert_eq!(agents[0].cli(&["SET", "sess:majority", "m"]), "OK");
    // Written later than the isolated side's write: the winner after the heal.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(agents[1].cli(&["SET", "sess:both", "majority-side"]), "OK");
    assert_eq!(agents[2].cli(&["SET", "sess:isolated", "i"]), "OK");
    assert_eq!(agents[0].cli(&["GET", "sess:both"]), "majority-side");
    assert_eq!(
        agents[2].cli(&["GET", "sess:both"]),
        "isolated-side",
        "stale across the partition"
    );
    assert_eq!(
        agents[2].cli(&["GET", "sess:majority"]),
        "",
        "not across the partition"
    );
    assert!(
        agents[2]
            .metric("sessionplane_agent_sync_writes_degraded_total")
            .await
            >= 1.0
    );
    // Agent-0 no longer waits for agent-2: the failure detector dropped it.
    let (_, status) = support::http(&agents[0].admin, "GET", "/v1/status", None)
        .await
        .expect("status");
    assert!(
        status.contains(r#""id":"agent-2","live":false"#),
        "{status}"
    );
    assert_eq!(agents[0].metric("sessionplane_agent_peers_live").await, 1.0);
    net.heal_firewall(2);
    for a in &agents {
        reads_back(a, "sess:both", "majority-side").await;
        reads_back(a, "sess:majority", "m").await;
        reads_back(a, "sess:isolated", "i").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_closes_one_connection_and_the_agent_serves_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut agents = fleet(dir.path(), 2, "Async").await;
    // Redis port: a broken multibulk header.
    let mut s = std::net::TcpStream::connect(&agents[0].resp).expect("connect");
    s.write_all(b"*1\r\n$-7x\r\n").expect("write");
    assert!(closed_after_reply(&mut s), "the RESP connection is closed");
    // Peer port: a frame that is not a message gets an error and the connection lives;
    // a frame longer than the limit closes that connection only.
    let mut p = std::net::TcpStream::connect(&agents[0].peer).expect("connect");
    p.write_all(&[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff])
        .expect("write");
    let mut head = [0u8; 4];
    p.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    p.read_exact(&mut head)
        .expect("an error reply to an undecodable frame");
    p.write_all(&[0x7f, 0xff, 0xff, 0xff]).expect("write");
    assert!(closed_after_reply(&mut p), "the peer connection is closed");
    assert!(agents[0].is_running());
    assert_eq!(agents[0].cli(&["SET", "sess:after", "fine"]), "OK");
    reads_back(&agents[1], "sess:after", "fine").await;
}

/// Reads until the server closes; false if it keeps the connection open for 5 s.
fn closed_after_reply(s: &mut std::net::TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Sends newline-separated commands through one redis-cli connection.
fn run_pipe(agent: &AgentProc, commands: &str) {
    let (host, port) = agent.resp.rsplit_once(':').expect("host:port");
    let mut child = Command::new("redis-cli")
        .args(["-h", host, "-p", port])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("redis-cli");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(commands.as_bytes())
        .expect("write commands");
    let out = child.wait_with_output().expect("redis-cli output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("ERR"),
        "redis-cli replies: {}",
        &text[..text.len().min(500)]
    );
}

/// With the store password, agents replicate to each other as usual, and their peer port
/// takes nothing from a caller that cannot prove it: no ping, no push, no fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_sharing_a_password_replicate_and_a_caller_without_it_gets_nothing_in() {
    use sessionplane_store::cluster::rpc::{PeerKey, Peers};
    use sessionplane_store::replicated::wire::{PeerRequest, PeerResponse};
    const PASSWORD: &str = "shared-secret";
    let dir = tempfile::tempdir().unwrap();
    let agents = support::agents::fleet_with(dir.path(), 2, "Sync", None, Some(PASSWORD)).await;
    assert_eq!(agents[0].cli(&["SET", "sess:a", "v1"]), "OK");
    reads_back(&agents[1], "sess:a", "v1").await;

    let ping = PeerRequest::Ping {
        from: "intruder".into(),
        addr: None,
    };
    let timeout = Duration::from_secs(5);
    for stranger in [
        Peers::new(None),
        Peers::new(Some(PeerKey::from_password("guess"))),
    ] {
        let answer = stranger
            .call_as::<_, PeerResponse>(&agents[1].peer, &ping, timeout)
            .await;
        assert!(answer.is_err(), "{answer:?}");
    }
    let friend = Peers::new(Some(PeerKey::from_password(PASSWORD)));
    let answer = friend
        .call_as::<_, PeerResponse>(&agents[1].peer, &ping, timeout)
        .await;
    assert!(
        matches!(answer, Ok(PeerResponse::Pong { .. })),
        "{answer:?}"
    );
    // The refused callers left nothing behind: the agents still agree.
    assert_eq!(agents[1].cli(&["SET", "sess:b", "v2"]), "OK");
    reads_back(&agents[0], "sess:b", "v2").await;
}
