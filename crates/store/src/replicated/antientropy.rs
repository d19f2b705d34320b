//! Anti-entropy and bootstrap: the two ways an agent pulls state instead of waiting
//! for pushes.
//!
//! A round picks one live peer at random and sends it the digest of every bucket; the
//! peer answers with its records of the buckets that differ, the caller merges them and
//! sends back its own records of those buckets. Three messages when something differs,
//! one when nothing does. Bootstrap pulls every bucket from one ready peer.

use super::agent::{Agent, Pong};
use super::state::BUCKETS;
use super::wire::{PeerRequest, PeerResponse};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Buckets repaired per round at most, so one message stays small; the next round
/// takes the rest.
const MAX_BUCKETS_PER_ROUND: usize = 32;
/// Buckets per bootstrap message.
const FETCH_CHUNK: u32 = 16;

/// Buckets whose digests differ (a peer with another bucket count differs everywhere).
pub fn differing(mine: &[u64], theirs: &[u64]) -> Vec<u32> {
    if mine.len() != theirs.len() {
        return (0..BUCKETS).collect();
    }
    mine.iter()
        .zip(theirs)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, _)| i as u32)
        .take(MAX_BUCKETS_PER_ROUND)
        .collect()
}

/// One anti-entropy round with a random live peer; returns the keys repaired here and
/// on the peer, or None when there was no live peer or it did not answer.
pub async fn round(agent: &Arc<Agent>) -> Option<(u32, u32)> {
    let live = agent.peers.live(agent.timing.peer_timeout);
    if live.is_empty() {
        return None;
    }
    let peer = &live[rand::random_range(0..live.len())];
    agent.metrics.ae_rounds.inc();
    let repaired = round_with(agent, &peer.addr).await;
    if repaired.is_some() {
        peer.answered();
    }
    repaired
}

/// One anti-entropy round with the peer at `addr`.
async fn round_with(agent: &Arc<Agent>, addr: &str) -> Option<(u32, u32)> {
    agent.metrics.ae_messages.inc();
    let timeout = agent.timing.peer_timeout.max(Duration::from_secs(2));
    let req = PeerRequest::Digest {
        from: agent.id.clone(),
        digests: agent.digests(),
    };
    let resp: PeerResponse = agent.rpc.call_as(addr, &req, timeout).await.ok()?;
    let PeerResponse::Records { records, differing } = resp else {
        return None;
    };
    if differing.is_empty() {
        return Some((0, 0));
    }
    let here = agent.merge(records);
    agent.metrics.ae_keys_repaired.inc_by(u64::from(here));
    agent.metrics.ae_messages.inc();
    let req = PeerRequest::Repair {
        from: agent.id.clone(),
        records: agent.records_in(&differing),
    };
    let there = match agent.rpc.call_as(addr, &req, timeout).await {
        Ok(PeerResponse::Applied { changed }) => changed,
        _ => 0,
    };
    if here + there > 0 {
        tracing::info!(peer = %addr, here, there, "anti-entropy repaired keys");
    }
    Some((here, there))
}

/// Pulls a full state from a ready peer, then marks the agent ready. Without a ready
/// peer the agent starts empty when it is alone, when it has the smallest id of the
/// agents that are all starting (a fresh deployment), or after `bootstrap_timeout`.
pub async fn bootstrap(agent: &Arc<Agent>) {
    let started = Instant::now();
    loop {
        let resolved = agent.refresh_membership().await;
        let met = introduce(agent).await;
        for (addr, id) in &met.ready {
            let Some(n) = pull_all(agent, addr).await else {
                tracing::warn!(peer = %id, "bootstrap pull failed; trying another");
                continue;
            };
            // A write its writer pushed before it heard of us, and that reached the peer
            // we pulled from after we pulled its bucket, is in neither: one digest round
            // with every ready peer closes that window before we serve.
            for (addr, _) in &met.ready {
                let _ = round_with(agent, addr).await;
            }
            tracing::info!(peer = %id, records = n, "bootstrapped from a peer");
            agent.set_ready();
            return;
        }
        let alone = resolved && agent.peers.all().is_empty();
        let first_of_fresh = resolved
            && met.unreachable == 0
            && !met.starting.is_empty()
            && met.starting.iter().all(|id| *id > agent.id);
        let waited_out = started.elapsed() >= agent.timing.bootstrap_timeout;
        if alone || first_of_fresh || waited_out {
            tracing::info!(
                alone,
                first_of_fresh,
                waited_out,
                "no ready peer to bootstrap from; starting with an empty state"
            );
            agent.set_ready();
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The agents one introduction round reached.
#[derive(Default)]
struct Met {
    /// (address, id) of the ready ones.
    ready: Vec<(String, String)>,
    /// Ids of the ones still starting.
    starting: Vec<String>,
    unreachable: usize,
}

/// Pings every known peer, and every peer those peers hold live, until no new one turns
/// up. From its answer on each pushes its writes to us, so before we pull, every agent
/// that can acknowledge a write knows us, also those our DNS answer does not list yet
/// (two pods of one scale-up see each other only through a third).
async fn introduce(agent: &Arc<Agent>) -> Met {
    let mut met = Met::default();
    let mut asked = std::collections::BTreeSet::new();
    loop {
        let fresh: Vec<_> = agent
            .peers
            .all()
            .into_iter()
            .filter(|p| !asked.contains(&p.addr))
            .collect();
        if fresh.is_empty() {
            return met;
        }
        for peer in fresh {
            asked.insert(peer.addr.clone());
            match agent.ping(&peer).await {
                Some(Pong::Peer { id, ready: true }) => met.ready.push((peer.addr.clone(), id)),
                Some(Pong::Peer { id, ready: false }) => met.starting.push(id),
                Some(Pong::Own) => {}
                None => met.unreachable += 1,
            }
        }
    }
}

/// Every bucket of `addr`, merged; the number of records, or None if a chunk failed.
async fn pull_all(agent: &Arc<Agent>, addr: &str) -> Option<usize> {
    let mut total = 0;
    let timeout = agent.timing.peer_timeout.max(Duration::from_secs(5));
    for start in (0..BUCKETS).step_by(FETCH_CHUNK as usize) {
        let buckets: Vec<u32> = (start..(start + FETCH_CHUNK).min(BUCKETS)).collect();
        let req = PeerRequest::Fetch { buckets };
        match agent.rpc.call_as(addr, &req, timeout).await {
            Ok(PeerResponse::Records { records, .. }) => {
                total += records.len();
                agent.metrics.bootstrap_keys.inc_by(records.len() as u64);
                agent.merge(records);
            }
            _ => return None,
        }
    }
    Some(total)
}
