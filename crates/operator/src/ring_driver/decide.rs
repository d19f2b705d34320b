//! What the ring driver does next: a pure function of what is wanted, what was decided
//! before (the persisted state) and what the store nodes say about themselves.
//!
//! One step per call: the caller persists the new state (with optimistic concurrency),
//! pushes it, and calls again on the next reconcile. Because every input is re-read each
//! time, an operator killed between any two steps resumes where it stopped.

use super::state::RingState;
use sessionplane_ring::{place, Assignment, Member, PlacementError};
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
}

/// The next thing to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing can happen until something changes; the reason is for status and events.
    Wait(String),
    /// Persist this new state (a new epoch), then push it to every member.
    Advance { state: RingState, why: Advance },
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
}

impl Advance {
    pub fn label(self) -> &'static str {
        match self {
            Advance::Bootstrap => "bootstrap",
            Advance::AddLearners => "add_learners",
            Advance::Flip => "flip",
            Advance::RemoveDrained => "remove_drained",
            Advance::Rejoin => "rejoin",
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
            },
            why: Advance::Bootstrap,
        });
    };

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
    if let Some(next) = rejoin_as_learners(state, &incomplete) {
        return Ok(Step::Advance {
            state: next,
            why: Advance::Rejoin,
        });
    }
    if !lagging.is_empty() {
        return Ok(Step::Repush(lagging));
    }

    if let Some(target) = &state.target {
        return Ok(flip_when_caught_up(state, target, nodes));
    }

    if !state.draining.is_empty() {
        return Ok(remove_when_drained(state, nodes));
    }

    let serving = state.serving();
    let wanted: BTreeSet<String> = want.members.keys().cloned().collect();
    if serving == wanted && state.replication_factor == want.replication_factor {
        let unanswered: Vec<&str> = state
            .members
            .keys()
            .map(String::as_str)
            .filter(|id| !reachable(id))
            .collect();
        if unanswered.is_empty() {
            return Ok(Step::Steady);
        }
        return Ok(Step::Wait(format!(
            "store nodes not answering: {}",
            unanswered.join(", ")
        )));
    }
    begin_change(want, state, nodes)
}

/// Demotes restarted nodes whose disks may lack acknowledged writes from in-sync replicas
/// to learners, so the primary teaches them before they serve again; the placement they
/// left becomes the target. None when nothing needs it, or when a partition would be left
/// without any in-sync replica (replication factor 1: nobody else has the data).
fn rejoin_as_learners(state: &RingState, incomplete: &[&String]) -> Option<RingState> {
    if incomplete.is_empty() {
        return None;
    }
    let mut next = state.clone();
    let mut learners = if next.learners.is_empty() {
        vec![Vec::new(); next.replicas.len()]
    } else {
        next.learners.clone()
    };
    let mut changed = false;
    for (reps, learning) in next.replicas.iter_mut().zip(learners.iter_mut()) {
        for id in incomplete {
            if reps.contains(id) && reps.len() > 1 {
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
    let total = state.learner_slots();
    let mut done = 0usize;
    for (p, learners) in state.learners.iter().enumerate() {
        for l in learners {
            let ok = nodes.get(l).is_some_and(|n| {
                n.reachable && n.epoch == Some(state.epoch) && n.caught_up.contains(&(p as u32))
            });
            if ok {
                done += 1;
            }
        }
    }
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
