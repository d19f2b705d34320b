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
