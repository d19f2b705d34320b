//! sessionplane's resize, driven as the operator drives it: `Master::migrate_to` pushes
//! the new placement's owners as learners, waits until each reports itself caught up,
//! then flips the epoch.

use crate::load::{self, SETTLE};
use crate::master::{Addrs, Master};
use crate::outcome::Outcome;
use crate::Common;
use anyhow::{bail, Context};
use serde_json::Value;
use sessionplane_ring::{minimum_moves, partition_of, Member};
use sessionplane_store::loadgen::Endpoints;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct StoreNode {
    pub id: String,
    pub resp: String,
    pub peer: String,
    pub admin: String,
}

/// `id=resp=peer=admin` each.
pub fn parse_nodes(specs: &[String]) -> anyhow::Result<Vec<StoreNode>> {
    if specs.len() != 4 {
        bail!("--nodes takes four store nodes, got {}", specs.len());
    }
    specs
        .iter()
        .map(|s| match s.split('=').collect::<Vec<_>>().as_slice() {
            [id, resp, peer, admin] => Ok(StoreNode {
                id: id.to_string(),
                resp: resp.to_string(),
                peer: peer.to_string(),
                admin: admin.to_string(),
            }),
            _ => bail!("node {s:?} is not id=resp=peer=admin"),
        })
        .collect()
}

async fn wait_healthy(node: &StoreNode) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(
        crate::http(&node.admin, "GET", "/healthz", None).await,
        Ok((200, _))
    ) {
        if Instant::now() > deadline {
            bail!("store node {} did not answer on {}", node.id, node.admin);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn status(master: &Master, id: &str) -> anyhow::Result<Value> {
    master
        .status(id)
        .await
        .with_context(|| format!("status of {id}"))
}

/// Key copies a node holds (every role).
async fn keys_on(master: &Master, id: &str) -> anyhow::Result<u64> {
    Ok(status(master, id).await?["keys"].as_u64().unwrap_or(0))
}

pub async fn run(
    nodes: &[StoreNode],
    partitions: u32,
    rf: u32,
    epsilon: f64,
    common: &Common,
) -> anyhow::Result<Outcome> {
    for n in nodes {
        wait_healthy(n).await?;
    }
    let mut master = Master::new(partitions, rf, epsilon);
    for n in nodes {
        master.members.insert(
            n.id.clone(),
            Addrs {
                peer: n.peer.clone(),
                admin: n.admin.clone(),
            },
        );
    }
    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    let resp: BTreeMap<String, String> = nodes
        .iter()
        .map(|n| (n.id.clone(), n.resp.clone()))
        .collect();
    let three = ids[..3].to_vec();
    // The fourth node runs but is not in the ring yet (as a new pod before it is added).
    let fourth = ids[3].clone();
    let fourth_addrs = master.members.remove(&fourth);
    master.bootstrap(&three).await;

    eprintln!("store: loading {} sessions", common.sessions);
    let route: load::Route = {
        let assignment = master.assignment.clone();
        let resp = resp.clone();
        let fallback = resp[&three[0]].clone();
        Arc::new(move |key: &[u8]| {
            assignment
                .primary(partition_of(key, partitions))
                .and_then(|id| resp.get(id))
                .unwrap_or(&fallback)
                .clone()
        })
    };
    let load_took = load::bulk_load(common, route).await?;
    let sessions_before = load::dbsize(&resp[&three[0]]).await?;
    let mut keys_before = 0;
    for id in &three {
        keys_before += keys_on(&master, id).await?;
    }
    eprintln!("store: {sessions_before} sessions ({keys_before} copies) loaded in {load_took:?}");

    if let Some(a) = fourth_addrs {
        master.members.insert(fourth.clone(), a);
    }
    let members: Vec<Member> = ids.iter().map(|i| Member::new(i.clone())).collect();
    let minimum = minimum_moves(&master.assignment, &members, rf, epsilon);
    let before = master.assignment.clone();

    let endpoints = Endpoints::new(three.iter().map(|i| resp[i].clone()).collect());
    let live = load::start_live_load(common, endpoints.clone(), false);
    tokio::time::sleep(SETTLE).await;
    let moved = master.migrate_to(&ids, &[]).await;
    // Clients reach the new node once it serves, as a Service adds a Ready pod.
    endpoints.set(ids.iter().map(|i| resp[i].clone()).collect());
    tokio::time::sleep(SETTLE).await;
    let report = live.stop().await;
    eprintln!("store live load: {}", report.summary());
    eprintln!(
        "store: moved {} partition replicas ({} partitions) in {:?}, minimum {minimum}",
        moved.replicas_moved, moved.partitions_moved, moved.took
    );

    let lost = report
        .verify(&resp[&three[0]], Duration::from_secs(30))
        .await
        .map_err(anyhow::Error::msg)?;
    // Keys moved: what each node holds of the partitions it did not hold before.
    let mut keys_moved = 0;
    for id in &ids {
        let s = status(&master, id).await?;
        for p in s["partitions"].as_array().into_iter().flatten() {
            let role = p["role"].as_str().unwrap_or("");
            let Some(partition) = p["partition"].as_u64().and_then(|x| u32::try_from(x).ok())
            else {
                continue;
            };
            if (role == "primary" || role == "replica") && !before.replicas(partition).contains(id)
            {
                keys_moved += p["keys"].as_u64().unwrap_or(0);
            }
        }
    }
    let sessions_after = load::dbsize(&resp[&three[0]]).await?;

    let mut outcome = Outcome {
        system: format!("sessionplane store (RF {rf})"),
        sessions: common.sessions,
        value_size: common.value_size,
        unit: "partition replicas".into(),
        load_secs: load_took.as_secs_f64(),
        resize_secs: moved.took.as_secs_f64(),
        units_total: u64::from(partitions) * u64::from(rf),
        units_moved: moved.replicas_moved,
        units_minimum: minimum,
        keys_before,
        keys_moved,
        keys_minimum: keys_before.div_ceil(4),
        sessions_missing: (sessions_before + load::live_keys(&report)) as i64
            - sessions_after as i64,
        notes: format!(
            "{partitions} partitions, ε {epsilon}, `--fsync everysec` (the operator's default), redb on disk; \
             the resize is the test master's `migrate_to` (learners → caught up → flip); \
             minimum = `ring::minimum_moves`; keys moved = keys of partitions a node did not hold before"
        ),
        ..Outcome::default()
    };
    outcome.record_load(&report, lost.len() as u64);
    if !lost.is_empty() {
        eprintln!(
            "store: acknowledged sessions lost: {:?}",
            &lost[..lost.len().min(5)]
        );
    }
    Ok(outcome)
}
