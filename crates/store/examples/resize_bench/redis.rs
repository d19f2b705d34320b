//! Redis Cluster's own resharding, driven by `redis-cli --cluster`.

use crate::load::{self, SETTLE};
use crate::outcome::Outcome;
use crate::Common;
use anyhow::{bail, Context};
use sessionplane_store::loadgen::client::RespClient;
use sessionplane_store::loadgen::redirects::{Redirects, SLOTS};
use sessionplane_store::loadgen::Endpoints;
use sessionplane_store::reply::Reply;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `redis-cli` with `args`; its output goes to our stderr (the script's log).
async fn redis_cli(args: &[&str]) -> anyhow::Result<()> {
    eprintln!("$ redis-cli {}", args.join(" "));
    let status = tokio::process::Command::new("redis-cli")
        .args(args)
        .stdin(std::process::Stdio::null())
        // Its progress goes to the log (stderr), not into the report on stdout.
        .stdout(std::process::Stdio::from(std::io::stderr()))
        .stderr(std::process::Stdio::inherit())
        .status()
        .await
        .context("run redis-cli")?;
    if !status.success() {
        bail!("redis-cli {} failed: {status}", args.join(" "));
    }
    Ok(())
}

async fn cluster_ok(addr: &str) -> bool {
    let Ok(mut c) = RespClient::connect(addr, TIMEOUT).await else {
        return false;
    };
    matches!(
        c.call(&[b"CLUSTER", b"INFO"], TIMEOUT).await,
        Ok(Reply::Bulk(text)) if String::from_utf8_lossy(&text).contains("cluster_state:ok")
    )
}

async fn wait_cluster_ok(nodes: &[String]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    for n in nodes {
        while !cluster_ok(n).await {
            if Instant::now() > deadline {
                bail!("{n} never reported cluster_state:ok");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// The slot map as `CLUSTER SLOTS` on `addr` tells it.
async fn slot_map(addr: &str) -> anyhow::Result<Redirects> {
    let mut c = RespClient::connect(addr, TIMEOUT).await?;
    let mut map = Redirects::default();
    let mapped = map.learn(&mut c, TIMEOUT).await?;
    if mapped != usize::from(SLOTS) {
        bail!("CLUSTER SLOTS on {addr} maps {mapped} slots, not {SLOTS}");
    }
    Ok(map)
}

pub async fn run(nodes: &[String], common: &Common) -> anyhow::Result<Outcome> {
    let (three, new) = (&nodes[..3], &nodes[3]);
    let mut create = vec!["--cluster", "create"];
    create.extend(three.iter().map(String::as_str));
    create.extend(["--cluster-replicas", "0", "--cluster-yes"]);
    redis_cli(&create).await?;
    wait_cluster_ok(three).await?;

    eprintln!("redis: loading {} sessions", common.sessions);
    let map = Arc::new(slot_map(&three[0]).await?);
    let route: load::Route = {
        let map = map.clone();
        let fallback = three[0].clone();
        Arc::new(move |key: &[u8]| map.owner(key).unwrap_or(&fallback).to_string())
    };
    let load_took = load::bulk_load(common, route).await?;
    let mut keys_before = 0;
    for n in three {
        keys_before += load::dbsize(n).await?;
    }
    eprintln!("redis: {keys_before} keys loaded in {load_took:?}");

    let endpoints = Endpoints::new(three.to_vec());
    let live = load::start_live_load(common, endpoints.clone(), true);
    tokio::time::sleep(SETTLE).await;
    let started = Instant::now();
    redis_cli(&["--cluster", "add-node", new, &three[0]]).await?;
    wait_cluster_ok(nodes).await?;
    redis_cli(&[
        "--cluster",
        "rebalance",
        &three[0],
        "--cluster-use-empty-masters",
    ])
    .await?;
    let took = started.elapsed();
    endpoints.set(nodes.to_vec());
    tokio::time::sleep(SETTLE).await;
    let report = live.stop().await;
    eprintln!("redis live load: {}", report.summary());

    let mut verify_map = slot_map(&three[0]).await?;
    let lost = report
        .verify_with(&three[0], TIMEOUT, Some(&mut verify_map))
        .await
        .map_err(anyhow::Error::msg)?;
    let after_map = slot_map(&three[0]).await?;
    let slots_moved = after_map.slots_of(new) as u64;
    let keys_moved = load::dbsize(new).await?;
    let mut keys_after = 0;
    for n in nodes {
        keys_after += load::dbsize(n).await?;
    }

    let mut outcome = Outcome {
        system: format!("Redis Cluster ({})", redis_version().await),
        sessions: common.sessions,
        value_size: common.value_size,
        unit: "slots".into(),
        load_secs: load_took.as_secs_f64(),
        resize_secs: took.as_secs_f64(),
        units_total: u64::from(SLOTS),
        units_moved: slots_moved,
        units_minimum: u64::from(SLOTS) / 4,
        keys_before,
        keys_moved,
        keys_minimum: keys_before.div_ceil(4),
        sessions_missing: (keys_before + load::live_keys(&report)) as i64 - keys_after as i64,
        notes: "3 masters, no replicas, no persistence (`--save \"\" --appendonly no`); \
                `redis-cli --cluster add-node` + `rebalance --cluster-use-empty-masters` \
                (default pipeline of 10 keys per MIGRATE); keys moved = DBSIZE of the new master \
                afterwards; the client follows MOVED/ASK like a cluster client library"
            .into(),
        ..Outcome::default()
    };
    outcome.record_load(&report, lost.len() as u64);
    if !lost.is_empty() {
        eprintln!(
            "redis: acknowledged sessions lost: {:?}",
            &lost[..lost.len().min(5)]
        );
    }
    Ok(outcome)
}

async fn redis_version() -> String {
    match tokio::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .await
    {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .find_map(|w| w.strip_prefix("v="))
            .unwrap_or("?")
            .to_string(),
        Err(_) => "?".into(),
    }
}
