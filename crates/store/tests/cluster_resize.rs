//! Resize 3 -> 5 -> 2 under continuous load from a recording client. Afterwards every
//! acknowledged session reads back with its latest value, no request failed, reads
//! never went backwards, and the replica slots moved stay within (1+ε)× the minimum
//! any balanced placement needs (`ring::minimum_moves`).

mod support;

use sessionplane_ring::{minimum_moves, Member};
use sessionplane_store::loadgen::{Endpoints, LoadConfig, LoadGen};
use std::time::Duration;
use support::procs::Fleet;
use support::{assert_acked_read_back, assert_no_stale_reads, eventually};

const EPSILON: f64 = 0.25;
const RF: u32 = 2;

fn ids(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_3_5_2_under_load() {
    let mut fleet = Fleet::new(64, RF, EPSILON);
    fleet.start(&["r1", "r2", "r3"]).await;
    let three = ids(&["r1", "r2", "r3"]);
    fleet.master.bootstrap(&three).await;

    let endpoints = Endpoints::new(fleet.resps(&three));
    let load = LoadGen::start(
        LoadConfig {
            workers: 6,
            sessions_per_worker: 60,
            read_ratio: 0.4,
            value_size: 256,
            ..LoadConfig::default()
        },
        endpoints.clone(),
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // 3 -> 5: two nodes join as learners of the partitions they will hold.
    fleet.start(&["r4", "r5"]).await;
    let five = ids(&["r1", "r2", "r3", "r4", "r5"]);
    let members: Vec<Member> = five.iter().map(|i| Member::new(i.clone())).collect();
    let minimum = minimum_moves(&fleet.master.assignment, &members, RF, EPSILON);
    let grow = fleet.master.migrate_to(&five, &[]).await;
    endpoints.set(fleet.resps(&five));
    eprintln!(
        "3 -> 5: moved {} replicas ({} partitions) in {:?}, minimum {minimum}",
        grow.replicas_moved, grow.partitions_moved, grow.took
    );
    assert!(
        grow.replicas_moved as f64 <= ((1.0 + EPSILON) * minimum as f64).ceil(),
        "3 -> 5 moved {} replica slots, minimum {minimum}",
        grow.replicas_moved
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // 5 -> 2: three nodes drain; clients leave them only after the flip, as a Service
    // drops a pod's endpoint, and the master stops them only once they hold nothing.
    let two = ids(&["r2", "r4"]);
    let leaving = ids(&["r1", "r3", "r5"]);
    let members: Vec<Member> = two.iter().map(|i| Member::new(i.clone())).collect();
    let minimum = minimum_moves(&fleet.master.assignment, &members, RF, EPSILON);
    let shrink = fleet.master.migrate_to(&two, &[]).await;
    eprintln!(
        "5 -> 2: moved {} replicas ({} partitions) in {:?}, minimum {minimum}",
        shrink.replicas_moved, shrink.partitions_moved, shrink.took
    );
    assert!(
        shrink.replicas_moved as f64 <= ((1.0 + EPSILON) * minimum as f64).ceil(),
        "5 -> 2 moved {} replica slots, minimum {minimum}",
        shrink.replicas_moved
    );
    endpoints.set(fleet.resps(&two));
    for id in &leaving {
        let master = &fleet.master;
        eventually(Duration::from_secs(10), &format!("{id} drained"), || {
            master.drained(id)
        })
        .await;
    }
    // Let requests already sent to the leaving nodes finish before stopping them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in &leaving {
        fleet.nodes.get_mut(id).expect("leaving node").kill9();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let report = load.stop().await;
    eprintln!("resize load: {}", report.summary());

    assert_eq!(
        report.failures,
        0,
        "requests failed: {:?}\n{}",
        report.failure_samples,
        fleet.logs()
    );
    let logs = fleet.logs();
    assert_no_stale_reads(&report, &logs);
    assert!(report.writes_acked > 200, "the load made progress");
    for id in &two {
        assert_acked_read_back(&report, id, &fleet.resp(id), &logs).await;
    }
    // The two survivors hold every session, each on both (rf 2 over 2 nodes).
    let keys: u64 = {
        let mut total = 0;
        for id in &two {
            total += fleet.master.status(id).await.expect("status")["keys"]
                .as_u64()
                .unwrap_or(0);
        }
        total
    };
    assert_eq!(
        keys,
        2 * report.expected.len() as u64,
        "every session on both replicas"
    );
}
