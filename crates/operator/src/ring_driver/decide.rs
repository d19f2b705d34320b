//! What the ring driver does next: a pure function of what is wanted, what was decided
//! before (the persisted state) and what the store nodes say about themselves.
//!
//! One step per call: the caller persists the new state (with optimistic concurrency),
//! pushes it, and calls again on the next reconcile. Because every input is re-read each
//! time, an operator killed between any two steps resumes where it stopped.

use super::state::RingState;
use sessionplane_ring::{failover, place, Assignment, Member, PlacementError, Promotion};
use std::collections::{BTreeMap, BTreeSet};

/// Bounded-load slack: no node carries more than ⌈(1+ε)·mean⌉ replicas.
pub const EPSILON: f64 = 0.25;

/// What the SessionCluster asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Want {
    /// Store node ids that should serve (pod names), with their peer addresses.
    pub members: BTreeMap<String, String>,
    pub partitions: u32,
    pub replication_factor: u32,
}

/// What one store node says about itself (`GET /v1/status`), or that it did not answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeView {
    pub reachable: bool,
    /// Epoch the node serves; None before its first configuration.
    pub epoch: Option<u64>,
    /// Partitions the node reports as caught up (learners: snapshot and tail received).
    pub caught_up: BTreeSet<u32>,
    /// The node's own word that it holds no partition data and has no role.
    pub holds_nothing: bool,
    /// The node's disk has every write it acknowledged (false after a crash with
    /// `fsync everysec`): such a node may only come back as a learner.
    pub disk_complete: bool,
    /// The operator's verdict from its probes: the node has not answered for the whole
    /// failover window (several consecutive probes). Not the same as `!reachable`: one
    /// missed answer is not a failure.
    pub down: bool,
    /// Partitions the node serves as primary or replica at `epoch` and, by its own
    /// account, holds every acknowledged write of (`complete`), with its replication
    /// position (`applied_seq`). The proof a failover promotes on.
    pub in_sync: BTreeMap<u32, u64>,
    /// Snapshot copying this node does as a primary at `epoch`, for status and metrics.
    pub copying: Copying,
}

/// Snapshot copying reported by a node (`migration` in `GET /v1/status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copying {
    pub keys_sent: u64,
    pub keys_total: u64,
    pub bytes_sent: u64,
}

/// The next thing to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing can happen until something changes; the reason is for status and events.
    Wait(String),
    /// Persist this new state (a new epoch), then push it to every member.
    Advance { state: RingState, why: Advance },
    /// Persist and push this failover epoch: `dead` left the ring, `promoted` took over
    /// their primaries, `unavailable` partitions wait for a holder of their data.
    Failover {
        state: RingState,
        dead: Vec<String>,
        promoted: Vec<Promotion>,
        unavailable: Vec<u32>,
    },
    /// These members run an older epoch (restarted, or missed a push): push the current one.
    Repush(Vec<String>),
    /// The ring is what is wanted and every node serves it.
    Steady,
}

/// Why the epoch advances, for events and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// First placement.
    Bootstrap,
    /// New owners join as learners.
    AddLearners,
    /// Every learner caught up: the new placement takes effect.
    Flip,
    /// Drained nodes own nothing and leave the configuration.
    RemoveDrained,
    /// A restarted node whose disk may miss acknowledged writes re-learns its partitions.
    Rejoin,
    /// Nodes that stopped answering leave their replica sets; proven replicas are promoted.
    Failover,
    /// Strategy Sticky: partitions whose only holder's pod is gone for good start again
    /// empty on a survivor (their sessions are lost).
    GiveUp,
}

impl Advance {
    pub fn label(self) -> &'static str {
        match self {
            Advance::Bootstrap => "bootstrap",
            Advance::AddLearners => "add_learners",
            Advance::Flip => "flip",
            Advance::RemoveDrained => "remove_drained",
            Advance::Rejoin => "rejoin",
            Advance::Failover => "failover",
            Advance::GiveUp => "give_up",
        }
    }
}

/// Decides the next step.
pub fn decide(
    want: &Want,
    state: Option<&RingState>,
    nodes: &BTreeMap<String, NodeView>,
) -> Result<Step, PlacementError> {
    let reachable = |id: &str| nodes.get(id).is_some_and(|n| n.reachable);
    let Some(state) = state else {
        if want.members.is_empty() {
            // Sticky before any frontend pod has an IP (or a Store scaled to zero).
            return Ok(Step::Wait("no node to place the partitions on yet".into()));
        }
        let missing: Vec<&str> = want
            .members
            .keys()
            .map(String::as_str)
            .filter(|id| !reachable(id))
            .collect();
        if !missing.is_empty() {
            return Ok(Step::Wait(format!(
                "waiting for store nodes to answer before the first placement: {}",
                missing.join(", ")
            )));
        }
        let placed = place(
            None,
            &members_of(want.members.keys()),
            want.partitions,
            want.replication_factor,
            EPSILON,
        )?;
        return Ok(Step::Advance {
            state: RingState {
                epoch: 1,
                partitions: want.partitions,
                replication_factor: want.replication_factor,
                members: want.members.clone(),
                replicas: placed.partitions,
                learners: Vec::new(),
                target: None,
                draining: Vec::new(),
                failed: BTreeSet::new(),
                decided_at: None,
            },
            why: Advance::Bootstrap,
        });
    };

    if let Some(step) = fail_over(want, state, nodes) {
        return Ok(step);
    }

    let lagging: Vec<String> = state
        .members
        .keys()
        .filter(|id| {
            nodes
                .get(id.as_str())
                .is_some_and(|n| n.reachable && n.epoch.is_none_or(|e| e < state.epoch))
        })
        .cloned()
        .collect();
    let incomplete: Vec<&String> = lagging
        .iter()
        .filter(|id| {
            nodes
                .get(id.as_str())
                .is_some_and(|n| n.epoch.is_none() && !n.disk_complete)
        })
        .collect();
    if let Some(next) = rejoin_as_learners(state, &incomplete, |_, _| true) {
        return Ok(Step::Advance {
            state: next,
            why: Advance::Rejoin,
        });
    }
    // The same node may have been handed the epoch by a peer before the operator saw it
    // restart: it then serves the epoch in force as a replica of partitions its own status
    // says it does not hold completely. Those partitions are re-taught too.
    let serving_incomplete: Vec<&String> = state
        .members
        .keys()
        .filter(|id| {
            nodes.get(id.as_str()).is_some_and(|n| {
                n.reachable && !n.down && !n.disk_complete && n.epoch == Some(state.epoch)
            })
        })
        .collect();
    let partial = |p: usize, id: &str| {
        let Ok(p) = u32::try_from(p) else {
            return false;
        };
        nodes.get(id).is_some_and(|n| !n.in_sync.contains_key(&p))
    };
    if let Some(next) = rejoin_as_learners(state, &serving_incomplete, partial) {
        return Ok(Step::Advance {
            state: next,
            why: Advance::Rejoin,
        });
    }
    if !lagging.is_empty() {
        return Ok(Step::Repush(lagging));
    }

    let serves_now = |id: &str| {
        nodes
            .get(id)
            .is_some_and(|n| n.reachable && !n.down && n.epoch == Some(state.epoch))
    };
    let unavailable: Vec<u32> = state
        .unavailable()
        .into_iter()
        .filter(|p| {
            state.replicas[*p as usize]
                .first()
                .is_none_or(|primary| !serves_now(primary))
        })
        .collect();
    if !unavailable.is_empty() {
        let waiting_for: BTreeSet<&str> = unavailable
            .iter()
            .filter_map(|p| state.replicas[*p as usize].first())
            .map(String::as_str)
            .collect();
        return Ok(Step::Wait(format!(
            "{} partitions unavailable (no surviving replica proven to hold every acknowledged write): waiting for {} to answer",
            unavailable.len(),
            waiting_for.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }

    if let Some(target) = &state.target {
        return Ok(flip_when_caught_up(state, target, nodes));
    }

    if !state.draining.is_empty() {
        return Ok(remove_when_drained(state, nodes));
    }

    // A failed node that still does not answer is not waited for: the ring is placed on
    // the others. One that answers again is wanted like any other.
    let silent_failed = |id: &str| state.failed.contains(id) && !reachable(id);
    let effective = Want {
        members: want
            .members
            .iter()
            .filter(|(id, _)| !silent_failed(id))
            .map(|(id, addr)| (id.clone(), addr.clone()))
            .collect(),
        ..want.clone()
    };
    let serving = state.serving();
    let wanted: BTreeSet<String> = effective.members.keys().cloned().collect();
    let rf = (want.replication_factor as usize).min(wanted.len());
    let fully_replicated = state.replicas.iter().all(|r| r.len() == rf);
    let failed_back = state
        .failed
        .iter()
        .any(|id| want.members.contains_key(id) && reachable(id));
    if serving == wanted
        && state.replication_factor == want.replication_factor
        && fully_replicated
        && !failed_back
    {
        let mut unanswered: Vec<&str> = state
            .members
            .keys()
            .map(String::as_str)
            .filter(|id| !reachable(id))
            .collect();
        unanswered.extend(
            state
                .failed
                .iter()
                .filter(|id| want.members.contains_key(*id) && !state.members.contains_key(*id))
                .map(String::as_str),
        );
        if unanswered.is_empty() {
            // Failed nodes the SessionCluster no longer wants (scaled down past them) are
            // forgotten, so the status stops listing them.
            let forgotten: BTreeSet<String> = state
                .failed
                .iter()
                .filter(|id| !want.members.contains_key(*id) && !state.members.contains_key(*id))
                .cloned()
                .collect();
            if !forgotten.is_empty() {
                let mut next = state.clone();
                next.epoch += 1;
                next.failed.retain(|id| !forgotten.contains(id));
                return Ok(Step::Advance {
                    state: next,
                    why: Advance::RemoveDrained,
                });
            }
            return Ok(Step::Steady);
        }
        return Ok(Step::Wait(format!(
            "store nodes not answering: {}",
            unanswered.join(", ")
        )));
    }
    if wanted.is_empty() {
        return Ok(Step::Wait(
            "no wanted store node answers: nothing to place the partitions on".into(),
        ));
    }
    // A failed node that answers again is placed like a new one (as a learner); one the
    // SessionCluster no longer wants is forgotten.
    let still_failed = state
        .failed
        .iter()
        .filter(|id| silent_failed(id) && want.members.contains_key(*id))
        .cloned()
        .collect();
    begin_change(&effective, state, nodes, still_failed)
}

/// Whether `node` is proven to hold every acknowledged write of partition `p`, from its
/// own answer: it answers, serves the epoch in force, is an in-sync replica (or the
/// primary) of `p` there with a complete copy, and no other such survivor has applied a
/// later write. Replication is synchronous to every in-sync replica, so a write could only
/// have been acknowledged after such a node applied it.
fn proven(state: &RingState, nodes: &BTreeMap<String, NodeView>, p: u32, node: &str) -> bool {
    let position = |id: &str| -> Option<u64> {
        let n = nodes.get(id)?;
        if !n.reachable || n.down || n.epoch != Some(state.epoch) {
            return None;
        }
        n.in_sync.get(&p).copied()
    };
    let Some(mine) = position(node) else {
        return false;
    };
    let best = state
        .replicas
        .get(p as usize)
        .into_iter()
        .flatten()
        .filter_map(|id| position(id))
        .max()
        .unwrap_or(mine);
    mine >= best
}

/// Removes members the probes found down. Their replica slots go; where one was the
/// primary, a proven replica takes over (ring's `failover`); a partition without one
/// keeps its dead primary and waits. A change in progress that involved a dead node is
/// abandoned: learners restart at every epoch anyway, and the next change is planned
/// from the placement that survived. A dead node the SessionCluster still wants (or that
/// stays named as a primary) is remembered in `failed`. None when nothing changes (the dead nodes are gone
/// already, or only remain as primaries of partitions still unavailable).
fn fail_over(want: &Want, state: &RingState, nodes: &BTreeMap<String, NodeView>) -> Option<Step> {
    let dead: Vec<String> = state
        .members
        .keys()
        .filter(|id| nodes.get(id.as_str()).is_some_and(|n| n.down))
        .cloned()
        .collect();
    if dead.is_empty() {
        return None;
    }
    let current = Assignment {
        partitions: state.replicas.clone(),
    };
    let outcome = failover(&current, &dead, |p, node| proven(state, nodes, p, node));
    let mut next = state.clone();
    next.replicas = outcome.assignment.partitions;
    let involved = |ids: &[String]| ids.iter().any(|id| dead.contains(id));
    let change_involves_dead = state.learners.iter().any(|l| involved(l))
        || state
            .target
            .as_ref()
            .is_some_and(|t| t.iter().any(|set| involved(set)));
    if change_involves_dead {
        next.target = None;
        next.learners = Vec::new();
    }
    next.draining.retain(|id| !dead.contains(id));
    let still_primary: BTreeSet<&String> = outcome
        .unavailable
        .iter()
        .filter_map(|p| next.replicas.get(*p as usize)?.first())
        .collect();
    for d in &dead {
        if !still_primary.contains(d) {
            next.members.remove(d);
        }
        // Remembered while wanted (placement must not wait for it) or still named.
        if want.members.contains_key(d) || still_primary.contains(d) {
            next.failed.insert(d.clone());
        }
    }
    if next.same_decision(state) {
        return None;
    }
    next.epoch = state.epoch + 1;
    Some(Step::Failover {
        state: next,
        dead,
        promoted: outcome.promoted,
        unavailable: outcome.unavailable,
    })
}

/// Demotes restarted nodes whose disks may lack acknowledged writes from in-sync replicas
/// to learners, for the partitions `needs(partition, node)` names, so the primary teaches
/// them before they serve again; the placement they left becomes the target. None when
/// nothing needs it, or when a partition would be left without any in-sync replica
/// (replication factor 1: nobody else has the data).
fn rejoin_as_learners(
    state: &RingState,
    nodes: &[&String],
    needs: impl Fn(usize, &str) -> bool,
) -> Option<RingState> {
    if nodes.is_empty() {
        return None;
    }
    let mut next = state.clone();
    let mut learners = if next.learners.is_empty() {
        vec![Vec::new(); next.replicas.len()]
    } else {
        next.learners.clone()
    };
    let mut changed = false;
    for (p, (reps, learning)) in next
        .replicas
        .iter_mut()
        .zip(learners.iter_mut())
        .enumerate()
    {
        for id in nodes {
            if reps.contains(id) && reps.len() > 1 && needs(p, id.as_str()) {
                reps.retain(|r| r != *id);
                learning.push((*id).clone());
                changed = true;
            }
        }
    }
    if !changed {
        return None;
    }
    next.epoch += 1;
    next.learners = learners;
    if next.target.is_none() {
        next.target = Some(state.replicas.clone());
    }
    Some(next)
}

fn members_of<'a>(ids: impl Iterator<Item = &'a String>) -> Vec<Member> {
    ids.map(|id| Member::new(id.clone())).collect()
}

/// Membership or replication factor changed: new owners join as learners.
fn begin_change(
    want: &Want,
    state: &RingState,
    nodes: &BTreeMap<String, NodeView>,
    failed: BTreeSet<String>,
) -> Result<Step, PlacementError> {
    let not_up: Vec<&str> = want
        .members
        .keys()
        .map(String::as_str)
        .filter(|id| !nodes.get(*id).is_some_and(|n| n.reachable))
        .collect();
    if !not_up.is_empty() {
        return Ok(Step::Wait(format!(
            "waiting for new store nodes to answer before moving partitions: {}",
            not_up.join(", ")
        )));
    }
    let current = Assignment {
        partitions: state.replicas.clone(),
    };
    let target = place(
        Some(&current),
        &members_of(want.members.keys()),
        state.partitions,
        want.replication_factor,
        EPSILON,
    )?;
    let learners: Vec<Vec<String>> = current
        .partitions
        .iter()
        .zip(&target.partitions)
        .map(|(now, next)| next.iter().filter(|n| !now.contains(n)).cloned().collect())
        .collect();
    let mut members = state.members.clone();
    members.extend(want.members.clone());
    let joining = learners.iter().map(Vec::len).sum::<usize>();
    let mut next = RingState {
        epoch: state.epoch + 1,
        partitions: state.partitions,
        replication_factor: want.replication_factor,
        members,
        replicas: current.partitions.clone(),
        learners,
        target: Some(target.partitions),
        draining: Vec::new(),
        failed,
        decided_at: None,
    };
    if joining == 0 {
        // Nothing to copy (a shrink whose survivors already hold every partition):
        // the new placement can take effect at once, as one epoch.
        let target = next.target.take().unwrap_or_default();
        next.epoch = state.epoch;
        return Ok(Step::Advance {
            state: flipped(&next, target, want.members.keys().cloned().collect()),
            why: Advance::Flip,
        });
    }
    Ok(Step::Advance {
        state: next,
        why: Advance::AddLearners,
    })
}

fn flip_when_caught_up(
    state: &RingState,
    target: &[Vec<String>],
    nodes: &BTreeMap<String, NodeView>,
) -> Step {
    let (done, total) = learner_progress(state, nodes);
    if done < total {
        return Step::Wait(format!(
            "migrating: {done} of {total} partition replicas caught up"
        ));
    }
    let keep: BTreeSet<String> = target.iter().flatten().cloned().collect();
    Step::Advance {
        state: flipped(state, target.to_vec(), keep),
        why: Advance::Flip,
    }
}

/// Learner slots (partition replicas being copied) whose node says it caught up at the
/// epoch in force, and all learner slots.
pub fn learner_progress(state: &RingState, nodes: &BTreeMap<String, NodeView>) -> (usize, usize) {
    let mut done = 0usize;
    for (p, learners) in state.learners.iter().enumerate() {
        let Ok(p) = u32::try_from(p) else { continue };
        done += learners
            .iter()
            .filter(|l| {
                nodes.get(l.as_str()).is_some_and(|n| {
                    n.reachable && n.epoch == Some(state.epoch) && n.caught_up.contains(&p)
                })
            })
            .count();
    }
    (done, state.learner_slots())
}

/// The state after the flip: the target in force, nodes outside it draining.
fn flipped(state: &RingState, target: Vec<Vec<String>>, keep: BTreeSet<String>) -> RingState {
    let draining = state
        .members
        .keys()
        .filter(|id| !keep.contains(*id))
        .cloned()
        .collect();
    RingState {
        epoch: state.epoch + 1,
        partitions: state.partitions,
        replication_factor: state.replication_factor,
        members: state.members.clone(),
        replicas: target,
        learners: Vec::new(),
        target: None,
        draining,
        failed: state.failed.clone(),
        decided_at: None,
    }
}

fn remove_when_drained(state: &RingState, nodes: &BTreeMap<String, NodeView>) -> Step {
    let pending: Vec<&str> = state
        .draining
        .iter()
        .map(String::as_str)
        .filter(|id| {
            !nodes
                .get(*id)
                .is_some_and(|n| n.reachable && n.holds_nothing)
        })
        .collect();
    if !pending.is_empty() {
        return Step::Wait(format!(
            "draining: waiting for {} to report that they hold nothing",
            pending.join(", ")
        ));
    }
    let mut next = state.clone();
    next.epoch += 1;
    for d in &state.draining {
        next.members.remove(d);
    }
    next.draining.clear();
    Step::Advance {
        state: next,
        why: Advance::RemoveDrained,
    }
}

/// How many store pods must keep running: every member still listed (serving, learning
/// or draining) keeps its pod until the ring no longer names it. Drain before shrink.
pub fn pods_needed(state: Option<&RingState>, wanted: usize) -> usize {
    let Some(state) = state else { return wanted };
    let highest_listed = state
        .members
        .keys()
        .filter_map(|id| id.rsplit('-').next().and_then(|n| n.parse::<usize>().ok()))
        .map(|ordinal| ordinal + 1)
        .max()
        .unwrap_or(0);
    wanted.max(highest_listed)
}
