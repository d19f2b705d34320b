//! Anti-entropy and bootstrap: the two ways an agent pulls state instead of waiting
//! for pushes.
//!
//! A round picks one live peer at random and sends it the digest of every bucket; the
//! peer answers with its records of the buckets that differ, the caller merges them and
//! sends back its own records of those buckets. Three messages when something differs,
//! one when nothing does. Bootstrap pulls every bucket from one ready peer.

use super::agent::Agent;
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
    agent.metrics.ae_messages.inc();
    let timeout = agent.timing.peer_timeout.max(Duration::from_secs(2));
    let req = PeerRequest::Digest {
        from: agent.id.clone(),
        digests: agent.digests(),
    };
    let resp: PeerResponse = agent.rpc.call_as(&peer.addr, &req, timeout).await.ok()?;
    let PeerResponse::Records { records, differing } = resp else {
        return None;
    };
    peer.answered();
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
    let there = match agent.rpc.call_as(&peer.addr, &req, timeout).await {
        Ok(PeerResponse::Applied { changed }) => changed,
        _ => 0,
    };
    if here + there > 0 {
        tracing::info!(peer = %peer.addr, here, there, "anti-entropy repaired keys");
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
        // Every peer hears from us before we pull: from its answer on it pushes our way,
        // so a write is either in the pulled state or pushed to us (or, in a race with
        // a peer that DNS did not list yet, repaired by anti-entropy).
        let mut ready_peers = Vec::new();
        let mut starting_ids = Vec::new();
        let mut unreachable = 0;
        for peer in agent.peers.all() {
            match agent
                .rpc
                .call_as::<_, PeerResponse>(
                    &peer.addr,
                    &agent.ping_request(),
                    agent.timing.peer_timeout,
                )
                .await
            {
                Ok(PeerResponse::Pong { id, .. }) if id == agent.id => {
                    agent.peers.mark_own(&peer.addr);
                }
                Ok(PeerResponse::Pong { id, ready }) => {
                    peer.answered();
                    *peer.id.lock() = Some(id.clone());
                    if ready {
                        ready_peers.push((peer.addr.clone(), id));
                    } else {
                        starting_ids.push(id);
                    }
                }
                _ => unreachable += 1,
            }
        }
        for (addr, id) in &ready_peers {
            match pull_all(agent, addr).await {
                Some(n) => {
                    tracing::info!(peer = %id, records = n, "bootstrapped from a peer");
                    agent.set_ready();
                    return;
                }
                None => tracing::warn!(peer = %id, "bootstrap pull failed; trying another"),
            }
        }
        let alone = resolved && agent.peers.all().is_empty();
        let first_of_fresh = resolved
            && unreachable == 0
            && !starting_ids.is_empty()
            && starting_ids.iter().all(|id| *id > agent.id);
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
