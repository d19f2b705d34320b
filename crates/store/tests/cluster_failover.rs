//! kill -9 under load: with replicationFactor 2 one node, with 3 two nodes at once. The
//! test's master notices the dead nodes through their health endpoint, removes them
//! with a new epoch (promoting surviving replicas), then restores the replication
//! factor on the survivors through learners. No acknowledged write may be lost, every
//! read must return the latest acknowledged value (or a value of a write whose outcome
//! the client could not know), and reads and writes must go on after reconfiguration.

mod support;

use sessionplane_store::loadgen::{Endpoints, LoadConfig, LoadGen};
use std::time::{Duration, Instant};
use support::procs::{alive, Fleet};
use support::{assert_acked_read_back, assert_no_stale_reads};

async fn kill_under_load(nodes: &[&str], rf: u32, victims: &[&str], fsync: &'static str) {
    let mut fleet = Fleet::new(32, rf, 0.25);
    fleet.fsync = fsync;
    fleet.start(nodes).await;
    let ids: Vec<String> = nodes.iter().map(|s| s.to_string()).collect();
    fleet.master.bootstrap(&ids).await;

    let endpoints = Endpoints::new(fleet.resps(&ids));
    let load = LoadGen::start(
        LoadConfig {
            workers: 6,
            sessions_per_worker: 40,
            read_ratio: 0.4,
            request_timeout: Duration::from_secs(30),
            ..LoadConfig::default()
        },
        endpoints.clone(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    for v in victims {
        fleet.nodes.get_mut(*v).expect("victim").kill9();
    }
    let killed_at = Instant::now();
    // The master notices through the health endpoints, as a Kubernetes probe would.
    let dead: Vec<String> = {
        let mut dead = Vec::new();
        for id in &ids {
            if !alive(&fleet.master.members[id].admin).await {
                dead.push(id.clone());
            }
        }
        dead
    };
    assert_eq!(dead.len(), victims.len(), "the master sees the dead nodes");
    let survivors: Vec<String> = ids.iter().filter(|i| !dead.contains(i)).cloned().collect();
    endpoints.set(fleet.resps(&survivors));
    fleet.master.fail(&dead).await;
    let reconfigured = killed_at.elapsed();

    let acked_before = load.acked_writes();
    // A promoted primary first waits out the read lease it granted the dead one.
    tokio::time::sleep(sessionplane_store::cluster::LEASE_GRANT + Duration::from_secs(2)).await;
    let acked_after = load.acked_writes();
    // Restore the replication factor on the survivors (learners, then the flip).
    let moved = fleet.master.migrate_to(&survivors, &dead).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = load.stop().await;
    eprintln!(
        "kill {victims:?} (rf {rf}): reconfigured after {reconfigured:?}, re-replicated {} replicas in {:?}; {}",
        moved.replicas_moved,
        moved.took,
        report.summary()
    );
    assert_no_stale_reads(&report, &fleet.logs());
    // Requests in flight on a killed node fail (the client's connection dies); every
    // other request must succeed.
    assert!(
        report.failures <= 6 * victims.len() as u64 * 2,
        "too many failed requests: {} {:?}",
        report.failures,
        report.failure_samples
    );
    assert!(
        acked_after > acked_before + 50,
        "writes go on after the failover: {acked_before} -> {acked_after}"
    );
    let logs = fleet.logs();
    for id in &survivors {
        assert_acked_read_back(&report, id, &fleet.resp(id), &logs).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_one_node_rf2() {
    kill_under_load(&["a1", "a2", "a3"], 2, &["a2"], "always").await;
}

/// `everysec` acknowledges a write once every replica applied it in memory and queued
/// it to disk: a kill -9 of RF−1 nodes must still lose nothing acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_one_node_rf2_everysec() {
    kill_under_load(&["e1", "e2", "e3"], 2, &["e2"], "everysec").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_two_nodes_rf3() {
    kill_under_load(&["b1", "b2", "b3", "b4", "b5"], 3, &["b2", "b4"], "always").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_two_nodes_rf3_everysec() {
    kill_under_load(
        &["f1", "f2", "f3", "f4", "f5"],
        3,
        &["f2", "f4"],
        "everysec",
    )
    .await;
}
