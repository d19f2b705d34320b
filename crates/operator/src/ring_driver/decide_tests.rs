//! The ring driver's decisions, step by step, against simulated nodes that answer as
//! real store nodes do (epoch served, partitions caught up, drained or not).

use super::decide::{decide, pods_needed, Advance, NodeView, Step, Want};
use super::state::RingState;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

fn want(n: usize, rf: u32) -> Want {
    Want {
        members: (0..n)
            .map(|i| (format!("s-store-{i}"), format!("s-store-{i}.peer:7379")))
            .collect(),
        partitions: 64,
        replication_factor: rf,
    }
}

/// Nodes that answer, serve `epoch`, have caught up on everything they learn and, when
/// listed without any replica or learner role, hold nothing.
fn perfect(
    ids: impl IntoIterator<Item = String>,
    state: Option<&RingState>,
) -> BTreeMap<String, NodeView> {
    ids.into_iter()
        .map(|id| {
            let in_sync: BTreeMap<u32, u64> = state
                .map(|s| {
                    (0..s.partitions)
                        .filter(|p| s.replicas[*p as usize].contains(&id))
                        .map(|p| (p, 0))
                        .collect()
                })
                .unwrap_or_default();
            let (epoch, caught_up, holds_nothing) = match state {
                Some(s) => {
                    let caught: BTreeSet<u32> = (0..s.partitions)
                        .filter(|p| {
                            let p = *p as usize;
                            s.replicas[p].contains(&id)
                                || s.learners.get(p).is_some_and(|l| l.contains(&id))
                        })
                        .collect();
                    let nothing = caught.is_empty();
                    (Some(s.epoch), caught, nothing)
                }
                None => (None, BTreeSet::new(), true),
            };
            (
                id,
                NodeView {
                    reachable: true,
                    epoch,
                    caught_up,
                    holds_nothing,
                    disk_complete: true,
                    in_sync,
                    ..NodeView::default()
                },
            )
        })
        .collect()
}

fn all_ids(w: &Want, s: Option<&RingState>) -> BTreeSet<String> {
    let mut ids: BTreeSet<String> = w.members.keys().cloned().collect();
    if let Some(s) = s {
        ids.extend(s.members.keys().cloned());
    }
    ids
}

/// Runs decide against perfect nodes until steady; returns the final state and the steps.
fn converge(w: &Want, mut state: Option<RingState>) -> (RingState, Vec<Advance>) {
    let mut steps = Vec::new();
    for _ in 0..20 {
        let nodes = perfect(all_ids(w, state.as_ref()), state.as_ref());
        match decide(w, state.as_ref(), &nodes).expect("placement") {
            Step::Steady => return (state.expect("steady implies a state"), steps),
            Step::Advance { state: next, why } => {
                if let Some(prev) = &state {
                    assert_eq!(next.epoch, prev.epoch + 1, "every change is one new epoch");
                }
                steps.push(why);
                state = Some(next);
            }
            other => panic!("perfect nodes should never make the driver {other:?}"),
        }
    }
    panic!("did not converge: {steps:?}");
}

fn assert_placed(s: &RingState, w: &Want) {
    let wanted: BTreeSet<String> = w.members.keys().cloned().collect();
    assert_eq!(s.serving(), wanted, "exactly the wanted nodes serve");
    assert!(s.draining.is_empty() && s.target.is_none() && s.learner_slots() == 0);
    let rf = (w.replication_factor as usize).min(wanted.len());
    for (p, reps) in s.replicas.iter().enumerate() {
        let distinct: BTreeSet<&String> = reps.iter().collect();
        assert_eq!(
            distinct.len(),
            rf,
            "partition {p} has {rf} distinct replicas"
        );
    }
    assert_eq!(s.members.keys().cloned().collect::<BTreeSet<_>>(), wanted);
}

#[test]
fn first_placement_waits_for_every_node_to_answer() {
    let w = want(3, 2);
    let mut nodes = perfect(w.members.keys().cloned(), None);
    if let Some(n) = nodes.get_mut("s-store-2") {
        n.reachable = false;
    }
    match decide(&w, None, &nodes).expect("decide") {
        Step::Wait(why) => assert!(why.contains("s-store-2"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_member_yet_waits_instead_of_failing_the_placement() {
    // Sticky before the first frontend pod has an IP.
    let w = want(0, 1);
    match decide(&w, None, &BTreeMap::new()).expect("decide") {
        Step::Wait(why) => assert!(why.contains("no node"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bootstrap_places_every_partition_on_rf_nodes() {
    let w = want(3, 2);
    let (s, steps) = converge(&w, None);
    assert_eq!(steps, vec![Advance::Bootstrap]);
    assert_eq!(s.epoch, 1);
    assert_placed(&s, &w);
}

#[test]
fn a_restarted_node_gets_the_current_epoch_again() {
    let w = want(3, 2);
    let (s, _) = converge(&w, None);
    let mut nodes = perfect(w.members.keys().cloned(), Some(&s));
    if let Some(n) = nodes.get_mut("s-store-1") {
        n.epoch = None;
    }
    assert_eq!(
        decide(&w, Some(&s), &nodes).expect("decide"),
        Step::Repush(vec!["s-store-1".into()])
    );
}

#[test]
fn an_unanswering_member_is_reported_not_steady() {
    let w = want(3, 2);
    let (s, _) = converge(&w, None);
    let mut nodes = perfect(w.members.keys().cloned(), Some(&s));
    nodes.insert("s-store-0".into(), NodeView::default());
    match decide(&w, Some(&s), &nodes).expect("decide") {
        Step::Wait(why) => assert!(why.contains("s-store-0")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn scale_up_adds_learners_then_flips_only_when_they_caught_up() {
    let (s3, _) = converge(&want(3, 2), None);
    let w5 = want(5, 2);
    let nodes = perfect(all_ids(&w5, Some(&s3)), Some(&s3));
    let Step::Advance {
        state: learning,
        why,
    } = decide(&w5, Some(&s3), &nodes).expect("decide")
    else {
        panic!("expected learners")
    };
    assert_eq!(why, Advance::AddLearners);
    assert_eq!(
        learning.replicas, s3.replicas,
        "old owners keep serving while learners copy"
    );
    assert!(learning.learner_slots() > 0);
    // Learners that have not caught up hold the flip back.
    let mut lagging = perfect(all_ids(&w5, Some(&learning)), Some(&learning));
    for v in lagging.values_mut() {
        v.caught_up.clear();
    }
    match decide(&w5, Some(&learning), &lagging).expect("decide") {
        Step::Wait(why) => assert!(why.starts_with("migrating: 0 of"), "{why}"),
        other => panic!("{other:?}"),
    }
    let (s5, steps) = converge(&w5, Some(learning));
    assert_eq!(steps, vec![Advance::Flip]);
    assert_placed(&s5, &w5);
}

#[test]
fn scale_down_drains_before_the_nodes_leave_and_keeps_their_pods_until_then() {
    let (s3, _) = converge(&want(3, 2), None);
    let w2 = want(2, 2);
    let (s2, steps) = converge(&w2, Some(s3.clone()));
    assert_eq!(
        steps,
        vec![Advance::AddLearners, Advance::Flip, Advance::RemoveDrained]
    );
    assert_placed(&s2, &w2);
    assert_eq!(pods_needed(Some(&s2), 2), 2);

    // Mid-way (after the flip), the leaving node still has a role until it drops its
    // data: it keeps its pod and the driver waits on its own word.
    let nodes = perfect(all_ids(&w2, Some(&s3)), Some(&s3));
    let Step::Advance {
        state: learning, ..
    } = decide(&w2, Some(&s3), &nodes).expect("decide")
    else {
        panic!()
    };
    assert_eq!(pods_needed(Some(&learning), 2), 3);
    let nodes = perfect(all_ids(&w2, Some(&learning)), Some(&learning));
    let Step::Advance { state: flipped, .. } =
        decide(&w2, Some(&learning), &nodes).expect("decide")
    else {
        panic!()
    };
    assert_eq!(flipped.draining, vec!["s-store-2".to_string()]);
    assert_eq!(pods_needed(Some(&flipped), 2), 3);
    let mut nodes = perfect(all_ids(&w2, Some(&flipped)), Some(&flipped));
    if let Some(n) = nodes.get_mut("s-store-2") {
        n.holds_nothing = false;
    }
    match decide(&w2, Some(&flipped), &nodes).expect("decide") {
        Step::Wait(why) => assert!(why.contains("draining") && why.contains("s-store-2")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn replication_factor_change_re_replicates() {
    let (s, _) = converge(&want(4, 2), None);
    let w = want(4, 3);
    let (s3, steps) = converge(&w, Some(s));
    assert_eq!(steps, vec![Advance::AddLearners, Advance::Flip]);
    assert_placed(&s3, &w);
    assert_eq!(s3.replication_factor, 3);
}

#[test]
fn new_nodes_that_do_not_answer_hold_the_change_back() {
    let (s3, _) = converge(&want(3, 2), None);
    let w4 = want(4, 2);
    let mut nodes = perfect(all_ids(&w4, Some(&s3)), Some(&s3));
    nodes.insert("s-store-3".into(), NodeView::default());
    match decide(&w4, Some(&s3), &nodes).expect("decide") {
        Step::Wait(why) => assert!(why.contains("s-store-3")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_node_back_with_an_incomplete_disk_relearns_before_it_serves() {
    let w = want(3, 2);
    let (s, _) = converge(&w, None);
    let mut nodes = perfect(w.members.keys().cloned(), Some(&s));
    if let Some(n) = nodes.get_mut("s-store-1") {
        n.epoch = None;
        n.disk_complete = false;
    }
    let Step::Advance { state: next, why } = decide(&w, Some(&s), &nodes).expect("decide") else {
        panic!("expected a rejoin")
    };
    assert_eq!(why, Advance::Rejoin);
    assert!(next
        .replicas
        .iter()
        .all(|r| !r.contains(&"s-store-1".to_string())));
    let learning: usize = next
        .learners
        .iter()
        .filter(|l| l.contains(&"s-store-1".to_string()))
        .count();
    let held = s
        .replicas
        .iter()
        .filter(|r| r.contains(&"s-store-1".to_string()))
        .count();
    assert_eq!(
        learning, held,
        "it re-learns exactly the partitions it held"
    );
    let (back, steps) = converge(&w, Some(next));
    assert_eq!(steps, vec![Advance::Flip]);
    assert_eq!(
        back.replicas, s.replicas,
        "the placement it left is restored"
    );
}

#[test]
fn a_node_given_the_epoch_by_a_peer_before_it_was_re_taught_relearns_what_it_lacks() {
    let w = want(3, 2);
    let (s, _) = converge(&w, None);
    let id = "s-store-2".to_string();
    let held: Vec<u32> = (0..s.partitions)
        .filter(|p| s.replicas[*p as usize].contains(&id))
        .collect();
    let (lacking, whole) = held.split_at(held.len() / 2);
    let mut nodes = perfect(w.members.keys().cloned(), Some(&s));
    if let Some(n) = nodes.get_mut(&id) {
        n.disk_complete = false;
        n.in_sync.retain(|p, _| !lacking.contains(p));
    }
    let Step::Advance { state: next, why } = decide(&w, Some(&s), &nodes).expect("decide") else {
        panic!("expected a rejoin")
    };
    assert_eq!(why, Advance::Rejoin);
    for p in lacking {
        assert!(!next.replicas[*p as usize].contains(&id), "partition {p}");
        assert!(next.learners[*p as usize].contains(&id), "partition {p}");
    }
    for p in whole {
        assert!(
            next.replicas[*p as usize].contains(&id),
            "partition {p} stays"
        );
    }
    // A node whose disk is complete is never demoted on this ground.
    let mut nodes = perfect(w.members.keys().cloned(), Some(&s));
    if let Some(n) = nodes.get_mut(&id) {
        n.in_sync.clear();
    }
    assert_eq!(decide(&w, Some(&s), &nodes).expect("decide"), Step::Steady);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Any sequence of resizes and replication-factor changes converges to the wanted
    /// ring, one epoch per step, and never lists fewer pods as needed than hold data.
    #[test]
    fn any_resize_sequence_converges(changes in prop::collection::vec((1usize..=6, 1u32..=3), 1..5)) {
        let mut state: Option<RingState> = None;
        let mut epoch = 0;
        for (n, rf) in changes {
            let w = want(n, rf);
            let (s, _) = converge(&w, state.clone());
            prop_assert!(s.epoch >= epoch);
            epoch = s.epoch;
            assert_placed(&s, &w);
            prop_assert_eq!(pods_needed(Some(&s), n), n);
            state = Some(s);
        }
    }
}

// ---- Failover ----------------------------------------------------------------------

/// What the nodes say, given the state they were pushed: `perfect`, then `adjust`.
type Adjust<'a> = &'a dyn Fn(&RingState, &mut BTreeMap<String, NodeView>);

fn down(nodes: &mut BTreeMap<String, NodeView>, id: &str) {
    nodes.insert(
        id.to_string(),
        NodeView {
            down: true,
            ..NodeView::default()
        },
    );
}

/// Runs decide until it waits or is steady; failovers are steps too.
fn drive(w: &Want, mut state: RingState, adjust: Adjust) -> (RingState, Vec<Advance>, Step) {
    let mut steps = Vec::new();
    for _ in 0..20 {
        let mut nodes = perfect(all_ids(w, Some(&state)), Some(&state));
        adjust(&state, &mut nodes);
        let step = decide(w, Some(&state), &nodes).expect("placement");
        match step {
            Step::Advance { state: next, why } => {
                assert_eq!(next.epoch, state.epoch + 1);
                steps.push(why);
                state = next;
            }
            Step::Failover { state: next, .. } => {
                assert_eq!(next.epoch, state.epoch + 1);
                steps.push(Advance::Failover);
                state = next;
            }
            Step::Repush(_) => panic!("nodes answer at the epoch they were given"),
            other => return (state, steps, other),
        }
    }
    panic!("did not settle: {steps:?}");
}

fn holds(s: &RingState, id: &str) -> bool {
    s.replicas.iter().flatten().any(|r| r == id)
        || s.learners.iter().flatten().any(|r| r == id)
        || s.members.contains_key(id)
}

#[test]
fn a_dead_node_is_failed_over_the_factor_restored_and_it_rejoins_as_a_learner() {
    let w = want(3, 2);
    let (s, _) = converge(&w, None);
    let dead = "s-store-1";
    let Step::Failover {
        state: after,
        dead: gone,
        promoted,
        unavailable,
    } = ({
        let mut nodes = perfect(w.members.keys().cloned(), Some(&s));
        down(&mut nodes, dead);
        decide(&w, Some(&s), &nodes).expect("decide")
    })
    else {
        panic!("expected a failover")
    };
    assert_eq!(gone, vec![dead.to_string()]);
    assert!(unavailable.is_empty(), "every survivor is proven");
    assert!(!holds(&after, dead));
    assert!(after.failed.contains(dead));
    let was_primary = s.replicas.iter().filter(|r| r[0] == dead).count();
    assert_eq!(promoted.len(), was_primary);
    for pr in &promoted {
        assert!(s.replicas[pr.partition as usize].contains(&pr.to));
        assert_eq!(after.replicas[pr.partition as usize][0], pr.to);
    }
    // While it stays silent, the factor is restored on the other two.
    let silent: Adjust = &|_, nodes| down(nodes, dead);
    let (restored, steps, last) = drive(&w, after.clone(), silent);
    assert_eq!(steps, vec![Advance::AddLearners, Advance::Flip]);
    assert!(restored
        .replicas
        .iter()
        .all(|r| r.len() == 2 && !r.contains(&dead.to_string())));
    match last {
        Step::Wait(why) => assert!(why.contains(dead), "{why}"),
        other => panic!("a failed node that is still wanted is no steady state: {other:?}"),
    }
    // An operator restarted since has no probe verdict, only the persisted state: it does
    // not wait for the failed node either.
    let restarted: Adjust = &|_, nodes| {
        nodes.insert(dead.to_string(), NodeView::default());
    };
    let (same, steps, _) = drive(&w, after, restarted);
    assert_eq!(steps, vec![Advance::AddLearners, Advance::Flip]);
    assert_eq!(same.replicas, restored.replicas);
    // It answers again, with its old data and no configuration: it learns before it serves.
    let back: Adjust = &|st, nodes| {
        if !st.members.contains_key(dead) {
            nodes.insert(
                dead.to_string(),
                NodeView {
                    reachable: true,
                    disk_complete: true,
                    ..NodeView::default()
                },
            );
        }
    };
    let (rejoined, steps, last) = drive(&w, restored.clone(), back);
    assert_eq!(steps, vec![Advance::AddLearners, Advance::Flip]);
    assert_eq!(last, Step::Steady);
    assert!(rejoined.failed.is_empty());
    assert_placed(&rejoined, &w);
}

#[test]
fn an_unproven_replica_is_never_promoted_and_the_partition_waits() {
    let w = want(3, 2);
    let (s, _) = converge(&w, None);
    let dead = "s-store-0";
    // The survivors say nothing proves them (restarted on an incomplete disk, say).
    let unproven: Adjust = &|_, nodes| {
        down(nodes, dead);
        for v in nodes.values_mut() {
            v.in_sync.clear();
        }
    };
    let mut nodes = perfect(w.members.keys().cloned(), Some(&s));
    unproven(&s, &mut nodes);
    let Step::Failover {
        state: after,
        promoted,
        unavailable,
        ..
    } = decide(&w, Some(&s), &nodes).expect("decide")
    else {
        panic!("expected a failover")
    };
    assert!(promoted.is_empty());
    let led: Vec<u32> = (0..s.partitions)
        .filter(|p| s.replicas[*p as usize][0] == dead)
        .collect();
    assert_eq!(unavailable, led);
    assert_eq!(after.unavailable(), led);
    for p in &led {
        assert_eq!(
            after.replicas[*p as usize][0], dead,
            "the dead primary stays"
        );
    }
    assert!(
        after.members.contains_key(dead),
        "still named: the config must list it"
    );
    // Nothing more happens until a holder answers: no other change, no re-placement.
    match decide(&w, Some(&after), &{
        let mut n = perfect(all_ids(&w, Some(&after)), Some(&after));
        unproven(&after, &mut n);
        n
    })
    .expect("decide")
    {
        Step::Wait(why) => assert!(why.contains("unavailable") && why.contains(dead), "{why}"),
        other => panic!("{other:?}"),
    }
    // Once the survivors prove themselves, they are promoted.
    let proven: Adjust = &|_, nodes| down(nodes, dead);
    let (fixed, steps, _) = drive(&w, after, proven);
    assert_eq!(steps[0], Advance::Failover);
    assert!(fixed.unavailable().is_empty());
    assert!(!holds(&fixed, dead));
}

#[test]
fn a_replica_behind_another_survivor_is_not_promoted() {
    let w = want(4, 3);
    let (s, _) = converge(&w, None);
    let dead = s.replicas[0][0].clone();
    let mut nodes = perfect(w.members.keys().cloned(), Some(&s));
    down(&mut nodes, &dead);
    // In every partition the dead node led, the first survivor in line is behind the
    // second: without the position check, load balancing would pick it at least once.
    let led: Vec<usize> = (0..s.replicas.len())
        .filter(|p| s.replicas[*p][0] == dead)
        .collect();
    for p in &led {
        let (behind, ahead) = (&s.replicas[*p][1], &s.replicas[*p][2]);
        nodes
            .get_mut(behind)
            .expect("behind")
            .in_sync
            .insert(*p as u32, 7);
        nodes
            .get_mut(ahead)
            .expect("ahead")
            .in_sync
            .insert(*p as u32, 10);
    }
    let Step::Failover { state: after, .. } = decide(&w, Some(&s), &nodes).expect("decide") else {
        panic!("expected a failover")
    };
    for p in led {
        assert_eq!(after.replicas[p][0], s.replicas[p][2], "partition {p}");
    }
}

#[test]
fn a_node_dead_mid_migration_abandons_the_change_which_is_replanned_without_it() {
    let (s3, _) = converge(&want(3, 2), None);
    let w4 = want(4, 2);
    let nodes = perfect(all_ids(&w4, Some(&s3)), Some(&s3));
    let Step::Advance {
        state: learning, ..
    } = decide(&w4, Some(&s3), &nodes).expect("decide")
    else {
        panic!()
    };
    let dead = "s-store-3";
    let silent: Adjust = &|_, nodes| down(nodes, dead);
    let (settled, steps, last) = drive(&w4, learning, silent);
    assert_eq!(steps[0], Advance::Failover);
    assert!(!holds(&settled, dead));
    assert!(settled.target.is_none() && settled.learner_slots() == 0);
    assert!(settled.replicas.iter().all(|r| r.len() == 2));
    assert!(matches!(last, Step::Wait(_)));
}

#[test]
fn a_dead_draining_node_leaves_without_its_word() {
    let (s3, _) = converge(&want(3, 2), None);
    let w2 = want(2, 2);
    let mut state = s3;
    // Up to the flip: s-store-2 drains.
    while state.draining.is_empty() {
        let nodes = perfect(all_ids(&w2, Some(&state)), Some(&state));
        let Step::Advance { state: next, .. } = decide(&w2, Some(&state), &nodes).expect("d")
        else {
            panic!()
        };
        state = next;
    }
    let silent: Adjust = &|_, nodes| down(nodes, "s-store-2");
    let (done, steps, last) = drive(&w2, state, silent);
    assert_eq!(steps, vec![Advance::Failover]);
    assert_eq!(
        last,
        Step::Steady,
        "a node no longer wanted is not waited for"
    );
    assert_eq!(pods_needed(Some(&done), 2), 2);
    assert_placed(&done, &w2);
}

#[test]
fn a_failed_node_scaled_away_is_forgotten() {
    let w3 = want(3, 2);
    let (s, _) = converge(&w3, None);
    let dead = "s-store-2";
    let silent: Adjust = &|_, nodes| down(nodes, dead);
    let (after, _, _) = drive(&w3, s, silent);
    assert!(after.failed.contains(dead));
    let w2 = want(2, 2);
    let (end, steps, last) = drive(&w2, after, silent);
    assert_eq!(steps, vec![Advance::RemoveDrained]);
    assert_eq!(last, Step::Steady);
    assert!(end.failed.is_empty());
    assert_placed(&end, &w2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Any set of dead nodes, any subset of survivors proven: only proven replicas are
    /// promoted, a partition without one keeps its dead primary and nobody else moves up,
    /// no dead node keeps another slot, and the decision is one new epoch.
    #[test]
    fn failover_promotes_only_proven_replicas(
        n in 2usize..=6, rf in 1u32..=3, dead_mask in 1u32..64, proof_mask in any::<u64>()
    ) {
        let w = want(n, rf);
        let (s, _) = converge(&w, None);
        let ids: Vec<String> = w.members.keys().cloned().collect();
        let dead: Vec<String> = ids.iter().enumerate()
            .filter(|(i, _)| dead_mask & (1 << i) != 0).map(|(_, id)| id.clone()).collect();
        prop_assume!(!dead.is_empty());
        let mut nodes = perfect(ids.iter().cloned(), Some(&s));
        for (i, id) in ids.iter().enumerate() {
            if dead.contains(id) {
                down(&mut nodes, id);
            } else if let Some(v) = nodes.get_mut(id) {
                v.in_sync.retain(|p, _| proof_mask.rotate_left(i as u32 * 7) & (1 << (p % 64)) != 0);
            }
        }
        let Step::Failover { state: after, promoted, unavailable, .. } =
            decide(&w, Some(&s), &nodes).expect("decide") else {
            return Err(TestCaseError::fail("expected a failover"));
        };
        prop_assert_eq!(after.epoch, s.epoch + 1);
        for pr in &promoted {
            let v = &nodes[&pr.to];
            prop_assert!(v.in_sync.contains_key(&pr.partition), "promoted an unproven replica");
        }
        for (p, (before, now)) in s.replicas.iter().zip(&after.replicas).enumerate() {
            let p = p as u32;
            if unavailable.contains(&p) {
                prop_assert_eq!(&now[0], &before[0]);
                prop_assert!(dead.contains(&now[0]));
            } else {
                prop_assert!(!now.is_empty());
                prop_assert!(now.iter().all(|id| !dead.contains(id)));
            }
            prop_assert!(now.iter().skip(1).all(|id| !dead.contains(id)));
            prop_assert!(now.iter().all(|id| before.contains(id)), "failover never adds a replica");
        }
        // Deciding again from the new state with the same nodes changes nothing more.
        let again = decide(&w, Some(&after), &nodes).expect("decide");
        prop_assert!(!matches!(again, Step::Failover { .. }), "{:?}", again);
    }
}

// ---- Resuming after an operator restart ----------------------------------------------

/// Every state a resize passes through, from the first to the last.
fn trail(w: &Want, start: RingState) -> Vec<RingState> {
    let mut states = vec![start];
    for _ in 0..20 {
        let s = states.last().cloned().expect("non-empty");
        let nodes = perfect(all_ids(w, Some(&s)), Some(&s));
        match decide(w, Some(&s), &nodes).expect("decide") {
            Step::Advance { state, .. } => states.push(state),
            Step::Steady => return states,
            other => panic!("{other:?}"),
        }
    }
    panic!("no end");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// An operator killed at any step of a resize resumes from the persisted state and the
    /// nodes' answers: whether it died before the push (the nodes still serve the epoch
    /// before) or after, a new leader makes the same decisions and reaches the same ring,
    /// and deciding twice from the same inputs gives the same step (nothing is done twice).
    #[test]
    fn a_resize_resumes_from_every_intermediate_state(
        n1 in 1usize..=5, rf1 in 1u32..=3, n2 in 1usize..=5, rf2 in 1u32..=3
    ) {
        let (start, _) = converge(&want(n1, rf1), None);
        let w = want(n2, rf2);
        let states = trail(&w, start);
        let last = states.last().cloned().expect("non-empty");
        for (i, s) in states.iter().enumerate() {
            // Killed after persisting and pushing: same decision as the first leader.
            let nodes = perfect(all_ids(&w, Some(s)), Some(s));
            let first = decide(&w, Some(s), &nodes).expect("decide");
            let second = decide(&w, Some(s), &nodes).expect("decide");
            prop_assert_eq!(&first, &second);
            match (&first, states.get(i + 1)) {
                (Step::Advance { state, .. }, Some(next)) => prop_assert_eq!(state, next),
                (Step::Steady, None) => {}
                (other, _) => return Err(TestCaseError::fail(format!("{other:?}"))),
            }
            // Killed after persisting, before pushing: the nodes still serve the epoch
            // before. The new leader pushes the persisted epoch; it does not decide anew.
            if i > 0 {
                let prev = &states[i - 1];
                let mut stale = perfect(all_ids(&w, Some(s)), Some(prev));
                for v in stale.values_mut() {
                    if v.epoch.is_some() {
                        v.epoch = Some(s.epoch - 1);
                    }
                }
                match decide(&w, Some(s), &stale).expect("decide") {
                    Step::Repush(ids) => prop_assert!(!ids.is_empty()),
                    other => return Err(TestCaseError::fail(format!("expected a re-push: {other:?}"))),
                }
            }
            // And from there it reaches the same ring.
            let (end, _) = converge(&w, Some(s.clone()));
            prop_assert!(end.same_decision(&last));
        }
    }

    /// The same after a failover: from any state of the failover and the restore that
    /// follows, a restarted operator (no probe verdicts, the failed node silent) ends in
    /// the same placement.
    #[test]
    fn a_failover_resumes_from_every_intermediate_state(n in 2usize..=5, rf in 1u32..=3, victim in 0usize..5) {
        let w = want(n, rf);
        let (s, _) = converge(&w, None);
        let dead = format!("s-store-{}", victim % n);
        let verdict = |id: String| move |_: &RingState, nodes: &mut BTreeMap<String, NodeView>| down(nodes, &id);
        let silent = |id: String| move |_: &RingState, nodes: &mut BTreeMap<String, NodeView>| {
            nodes.insert(id.clone(), NodeView::default());
        };
        let with_verdict = verdict(dead.clone());
        let mut states = vec![s];
        loop {
            let cur = states.last().cloned().expect("non-empty");
            let mut nodes = perfect(all_ids(&w, Some(&cur)), Some(&cur));
            with_verdict(&cur, &mut nodes);
            match decide(&w, Some(&cur), &nodes).expect("decide") {
                Step::Advance { state, .. } | Step::Failover { state, .. } => states.push(state),
                _ => break,
            }
            prop_assert!(states.len() < 20);
        }
        let last = states.last().cloned().expect("non-empty");
        let no_verdict = silent(dead.clone());
        for st in states.iter().skip(1) {
            let (end, _, _) = drive(&w, st.clone(), &no_verdict);
            prop_assert_eq!(&end.replicas, &last.replicas);
            prop_assert!(!end.replicas.iter().flatten().any(|id| *id == dead) || !last.unavailable().is_empty());
        }
    }
}
