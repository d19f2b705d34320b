//! Restart of every node from disk; a node removed while down and re-added learns a
//! fresh copy (deleted keys do not come back); restarted nodes serve nothing until the
//! master's configuration arrives and refuse one older than what they had accepted.

mod support;

use sessionplane_store::loadgen::client::RespClient;
use sessionplane_store::reply::Reply;
use std::time::Duration;
use support::http;
use support::procs::Fleet;

const T: Duration = Duration::from_secs(20);

async fn cmd(c: &mut RespClient, args: &[&str]) -> Reply {
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    c.call(&a, T).await.expect("request")
}

async fn client(fleet: &Fleet, id: &str) -> RespClient {
    RespClient::connect(&fleet.resp(id), T)
        .await
        .expect("connect")
}

fn ok() -> Reply {
    Reply::Simple("OK".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_all_from_disk_and_readd_a_removed_node() {
    let mut fleet = Fleet::new(32, 2, 0.25);
    let all = ["s1", "s2", "s3"];
    fleet.start(&all).await;
    let ids: Vec<String> = all.iter().map(|s| s.to_string()).collect();
    fleet.master.bootstrap(&ids).await;

    let mut c = client(&fleet, "s1").await;
    for i in 0..150 {
        assert_eq!(
            cmd(&mut c, &["SET", &format!("k{i}"), &format!("v{i}")]).await,
            ok()
        );
    }
    for i in 0..30 {
        assert_eq!(
            cmd(&mut c, &["SET", &format!("ttl{i}"), "t", "EX", "3600"]).await,
            ok()
        );
    }
    for i in 0..20 {
        assert_eq!(
            cmd(&mut c, &["SET", &format!("short{i}"), "s", "PX", "2500"]).await,
            ok()
        );
    }
    assert_eq!(
        cmd(&mut c, &["HSET", "h", "f1", "a", "f2", "b"]).await,
        Reply::Integer(2)
    );
    drop(c);

    // Every node dies at once; acknowledged writes were fsynced.
    for id in &ids {
        fleet.nodes.get_mut(id).expect("node").kill9();
    }
    for id in &ids {
        fleet
            .nodes
            .get_mut(id)
            .expect("node")
            .start_and_wait()
            .await;
    }
    // Not ready, and not serving, until the master speaks again.
    let admin = fleet.master.members["s1"].admin.clone();
    assert_eq!(
        http(&admin, "GET", "/readyz", None)
            .await
            .expect("readyz")
            .0,
        503
    );
    let status = fleet.master.status("s1").await.expect("status");
    assert_eq!(
        status["disk_complete"], true,
        "fsync always: disk complete after kill -9"
    );
    assert_eq!(status["ready"], false);
    let mut c = client(&fleet, "s2").await;
    let Reply::Error(e) = cmd(&mut c, &["GET", "k1"]).await else {
        panic!("a node without configuration must not answer from its disk")
    };
    assert!(e.starts_with("CLUSTERDOWN"), "{e}");
    // A configuration older than the one persisted is refused.
    let stale_epoch_config = serde_json::json!({
        "epoch": fleet.master.epoch - 1, "partitions": 32,
        "members": [{"id": "s1", "addr": "127.0.0.1:1"}],
        "replicas": vec![vec!["s1"]; 32],
    });
    let (code, body) = http(
        &admin,
        "POST",
        "/v1/ring",
        Some(&stale_epoch_config.to_string()),
    )
    .await
    .expect("push");
    assert_eq!(code, 409, "{body}");

    let same = fleet.master.assignment.clone();
    let learners = vec![Vec::new(); 32];
    fleet.master.push(&same, &learners, &[]).await;
    assert_eq!(
        http(&admin, "GET", "/readyz", None)
            .await
            .expect("readyz")
            .0,
        200
    );
    for i in 0..150 {
        assert_eq!(
            cmd(&mut c, &["GET", &format!("k{i}")]).await,
            Reply::Bulk(format!("v{i}").into_bytes()),
            "k{i} after restart\n{}",
            fleet.logs()
        );
    }
    for i in 0..30 {
        let Reply::Integer(ttl) = cmd(&mut c, &["TTL", &format!("ttl{i}")]).await else {
            panic!("TTL")
        };
        assert!(ttl > 3500 && ttl <= 3600, "TTL held across restart: {ttl}");
    }
    assert_eq!(
        cmd(&mut c, &["HGET", "h", "f2"]).await,
        Reply::Bulk(b"b".to_vec())
    );
    // Short TTLs expire (actively, on the primaries) after the restart too.
    let mut probe = client(&fleet, "s3").await;
    let mut size = Reply::Nil;
    for _ in 0..100 {
        size = cmd(&mut probe, &["DBSIZE"]).await;
        if size == Reply::Integer(181) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        size,
        Reply::Integer(181),
        "short keys expire after the restart"
    );

    // s3 dies; the master removes it; keys change while it is down.
    fleet.nodes.get_mut("s3").expect("s3").kill9();
    fleet.master.fail(&["s3".to_string()]).await;
    for i in 0..40 {
        assert_eq!(
            cmd(&mut c, &["DEL", &format!("k{i}")]).await,
            Reply::Integer(1)
        );
    }
    for i in 40..60 {
        assert_eq!(
            cmd(&mut c, &["SET", &format!("k{i}"), "changed"]).await,
            ok()
        );
    }
    // s3 comes back with its stale disk and is re-added through learners.
    fleet.start(&["s3"]).await;
    fleet.master.migrate_to(&ids, &[]).await;
    let mut c3 = client(&fleet, "s3").await;
    for i in 0..40 {
        assert_eq!(
            cmd(&mut c3, &["GET", &format!("k{i}")]).await,
            Reply::Nil,
            "k{i} stays deleted"
        );
    }
    for i in 40..60 {
        assert_eq!(
            cmd(&mut c3, &["GET", &format!("k{i}")]).await,
            Reply::Bulk(b"changed".to_vec())
        );
    }
    assert_eq!(cmd(&mut c3, &["DBSIZE"]).await, Reply::Integer(141));
    // Each key sits on exactly two nodes: nothing stale is left on s3.
    let mut held = 0;
    for id in &ids {
        held += fleet.master.status(id).await.expect("status")["keys"]
            .as_u64()
            .unwrap_or(0);
    }
    assert_eq!(held, 2 * 141, "replica copies across the nodes");
}
