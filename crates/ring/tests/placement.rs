//! Scenario and exhaustive tests of placement, planning and failover.

mod common;

use common::{assert_valid, members, primary_allowance, zone_collisions, zoned};
use sessionplane_ring::{
    failover, minimum_moves, place, plan, Assignment, Member, Phase, PlacementError,
};

const EPS: f64 = 0.1;

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("store-{i}")).collect()
}

fn nodes(n: usize) -> Vec<Member> {
    ids(n).into_iter().map(Member::new).collect()
}

#[test]
fn fresh_placement_is_valid_and_balanced() {
    for n in 1..=6 {
        for rf in 1..=3 {
            let m = nodes(n);
            let a = place(None, &m, 1024, rf, EPS).unwrap();
            assert_valid(&a, &m, 1024, rf, EPS);
        }
    }
}

#[test]
fn resize_3_to_4_moves_a_quarter() {
    let a = place(None, &nodes(3), 1024, 2, EPS).unwrap();
    let to = nodes(4);
    let b = place(Some(&a), &to, 1024, 2, EPS).unwrap();
    assert_valid(&b, &to, 1024, 2, EPS);
    let p = plan(&a, &b);
    let fraction = p.replicas_moved as f64 / 2048.0;
    assert!(
        (0.24..=0.27).contains(&fraction),
        "moved fraction {fraction}"
    );
    let min = minimum_moves(&a, &to, 2, EPS);
    assert_eq!(min, 2048 - 3 * 512);
    assert!(
        p.replicas_moved as f64 <= (1.0 + EPS) * min as f64,
        "{} vs min {min}",
        p.replicas_moved
    );
    // The new node carries its share.
    let loads = b.replica_loads();
    assert!(loads["store-3"] >= 500, "{loads:?}");
}

#[test]
fn same_members_move_nothing() {
    for rf in 1..=3 {
        let m = nodes(5);
        let a = place(None, &m, 512, rf, EPS).unwrap();
        let b = place(Some(&a), &m, 512, rf, EPS).unwrap();
        assert_eq!(a, b, "rf {rf}");
        assert!(plan(&a, &b).is_empty());
    }
}

#[test]
fn member_order_does_not_matter() {
    let mut m = zoned(&[
        ("a", "z1"),
        ("b", "z2"),
        ("c", "z1"),
        ("d", "z3"),
        ("e", "z2"),
    ]);
    let a = place(None, &m, 256, 3, EPS).unwrap();
    m.reverse();
    let b = place(None, &m, 256, 3, EPS).unwrap();
    assert_eq!(a, b);
    m.swap(0, 3);
    let grown = {
        let mut g = m.clone();
        g.push(Member::in_zone("f", "z3"));
        g
    };
    let c1 = place(Some(&a), &grown, 256, 3, EPS).unwrap();
    let mut reordered = grown.clone();
    reordered.sort_by(|x, y| y.id.cmp(&x.id));
    let c2 = place(Some(&a), &reordered, 256, 3, EPS).unwrap();
    assert_eq!(c1, c2);
}

#[test]
fn replication_factor_above_members_degrades() {
    let m = members(&["a", "b"]);
    let a = place(None, &m, 64, 3, EPS).unwrap();
    assert_valid(&a, &m, 64, 3, EPS);
    assert!(a.partitions.iter().all(|s| s.len() == 2));
}

#[test]
fn invalid_inputs_are_errors_with_labels() {
    let m = members(&["a", "b"]);
    let cases: Vec<(Result<Assignment, PlacementError>, &str)> = vec![
        (place(None, &[], 16, 1, EPS), "no_members"),
        (place(None, &m, 0, 1, EPS), "zero_partitions"),
        (place(None, &m, 16, 0, EPS), "zero_replication_factor"),
        (place(None, &m, 16, 1, -0.5), "invalid_epsilon"),
        (place(None, &m, 16, 1, f64::NAN), "invalid_epsilon"),
        (
            place(None, &members(&["a", ""]), 16, 1, EPS),
            "empty_member_id",
        ),
        (
            place(None, &members(&["a", "b", "a"]), 16, 1, EPS),
            "duplicate_member",
        ),
    ];
    for (result, label) in cases {
        match result {
            Err(e) => assert_eq!(e.label(), label, "{e}"),
            Ok(_) => panic!("expected {label}"),
        }
    }
    let a = place(None, &m, 16, 1, EPS).unwrap();
    let e = place(Some(&a), &m, 32, 1, EPS).unwrap_err();
    assert_eq!(e.label(), "partition_count_changed");
    assert!(e.to_string().contains("immutable"));
}

#[test]
fn zones_are_spread_when_balanced() {
    let m = zoned(&[
        ("a1", "a"),
        ("a2", "a"),
        ("b1", "b"),
        ("b2", "b"),
        ("c1", "c"),
        ("c2", "c"),
    ]);
    for rf in 1..=3 {
        let a = place(None, &m, 1024, rf, EPS).unwrap();
        assert_valid(&a, &m, 1024, rf, EPS);
        assert_eq!(zone_collisions(&a, &m), 0, "rf {rf}");
    }
}

#[test]
fn zone_spread_yields_to_the_load_cap() {
    // One node alone in zone x cannot hold a replica of every partition under the cap.
    let m = zoned(&[("x1", "x"), ("y1", "y"), ("y2", "y"), ("y3", "y")]);
    let a = place(None, &m, 256, 2, EPS).unwrap();
    assert_valid(&a, &m, 256, 2, EPS);
    assert!(zone_collisions(&a, &m) > 0);
}

#[test]
fn primary_stays_while_it_is_a_replica() {
    let a = place(None, &nodes(4), 1024, 3, EPS).unwrap();
    let to = nodes(5);
    let b = place(Some(&a), &to, 1024, 3, EPS).unwrap();
    let kept_primary = (0..1024u32)
        .filter(|&p| b.replicas(p).contains(a.primary(p).unwrap()))
        .count();
    let same_primary = (0..1024u32)
        .filter(|&p| a.primary(p) == b.primary(p))
        .count();
    // The new node must reach the primary floor 204 by hand-overs; nothing else moves.
    let allowance = primary_allowance(&a, &to, 1024, EPS);
    assert_eq!(allowance, 204 + 4 * (256 - 226));
    assert!(
        same_primary + 204 >= kept_primary,
        "{same_primary} of {kept_primary}"
    );
}

#[test]
fn removing_a_node_moves_only_its_replicas() {
    let from = nodes(5);
    let a = place(None, &from, 1024, 2, EPS).unwrap();
    let to: Vec<Member> = from.iter().filter(|m| m.id != "store-2").cloned().collect();
    let b = place(Some(&a), &to, 1024, 2, EPS).unwrap();
    assert_valid(&b, &to, 1024, 2, EPS);
    let p = plan(&a, &b);
    let held = a.replica_loads()["store-2"] as u64;
    assert_eq!(p.replicas_moved, held);
    assert_eq!(minimum_moves(&a, &to, 2, EPS), held);
    for mv in &p.moves {
        assert!(mv.leaving.iter().all(|n| n == "store-2"), "{mv:?}");
    }
}

#[test]
fn plan_lists_joins_leaves_and_primary_changes() {
    let a = Assignment {
        partitions: vec![
            vec!["a".into(), "b".into()],
            vec!["b".into(), "c".into()],
            vec!["c".into(), "a".into()],
        ],
    };
    let b = Assignment {
        partitions: vec![
            vec!["a".into(), "b".into()],
            vec!["c".into(), "d".into()],
            vec!["c".into(), "d".into()],
        ],
    };
    let p = plan(&a, &b);
    assert_eq!(p.moves.len(), 2);
    assert_eq!(p.replicas_moved, 2);
    assert_eq!(p.replicas_dropped, 2);
    assert_eq!(p.primaries_changed, 1);
    let m1 = &p.moves[0];
    assert_eq!(m1.partition, 1);
    assert_eq!(m1.joining, vec!["d".to_string()]);
    assert_eq!(m1.leaving, vec!["b".to_string()]);
    assert_eq!(m1.source.as_deref(), Some("b"));
    assert!(m1.primary_changes);
    let m2 = &p.moves[1];
    assert_eq!(m2.partition, 2);
    assert!(!m2.primary_changes);
    assert_eq!(
        Phase::ORDER,
        [
            Phase::AddLearners,
            Phase::CatchUp,
            Phase::FlipEpoch,
            Phase::RemoveOld
        ]
    );
    assert!(Phase::ORDER.windows(2).all(|w| w[0] < w[1]));
    // Secondary reordering alone is not a move.
    let c = Assignment {
        partitions: vec![vec!["a".into(), "b".into(), "c".into()]],
    };
    let d = Assignment {
        partitions: vec![vec!["a".into(), "c".into(), "b".into()]],
    };
    assert!(plan(&c, &d).is_empty());
    // From nothing: every slot joins, with no source.
    let fresh = plan(
        &Assignment {
            partitions: vec![vec![], vec![]],
        },
        &c_two(),
    );
    assert_eq!(fresh.replicas_moved, 3);
    assert!(fresh.moves.iter().all(|m| m.source.is_none()));
}

fn c_two() -> Assignment {
    Assignment {
        partitions: vec![vec!["a".into()], vec!["b".into(), "a".into()]],
    }
}

#[test]
fn failover_promotes_only_caught_up_replicas() {
    let a = Assignment {
        partitions: vec![
            vec!["a".into(), "b".into(), "c".into()],
            vec!["a".into(), "b".into()],
            vec!["b".into(), "a".into()],
            vec!["a".into()],
            vec![],
        ],
    };
    // b is behind on partition 0 and 1; c is caught up.
    let out = failover(&a, &["a".to_string()], |p, node| !(node == "b" && p <= 1));
    assert_eq!(
        out.assignment.partitions[0],
        vec!["c".to_string(), "b".to_string()]
    );
    // No caught-up survivor: unavailable, dead primary kept so nobody serves it.
    assert_eq!(
        out.assignment.partitions[1],
        vec!["a".to_string(), "b".to_string()]
    );
    assert_eq!(out.assignment.partitions[2], vec!["b".to_string()]);
    assert_eq!(out.assignment.partitions[3], vec!["a".to_string()]);
    assert!(out.assignment.partitions[4].is_empty());
    assert_eq!(out.unavailable, vec![1, 3, 4]);
    assert_eq!(out.promoted.len(), 1);
    assert_eq!(out.promoted[0].partition, 0);
    assert_eq!(out.promoted[0].to, "c");
    assert_eq!(out.replicas_removed, 2);
}

#[test]
fn failover_then_place_restores_replication() {
    let m = nodes(4);
    let a = place(None, &m, 256, 3, EPS).unwrap();
    let out = failover(&a, &["store-1".to_string()], |_, _| true);
    assert!(out.unavailable.is_empty());
    for (p, set) in out.assignment.partitions.iter().enumerate() {
        assert!(!set.contains(&"store-1".to_string()));
        if a.partitions[p][0] != "store-1" {
            assert_eq!(set[0], a.partitions[p][0], "live primary kept");
        }
    }
    let live: Vec<Member> = m.into_iter().filter(|x| x.id != "store-1").collect();
    let b = place(Some(&out.assignment), &live, 256, 3, EPS).unwrap();
    assert_valid(&b, &live, 256, 3, EPS);
    // Promotions went to the least-loaded caught-up replica, so re-placement changes
    // no more primaries than the primary floor demands.
    let second_handovers = out
        .promoted
        .iter()
        .filter(|pr| b.primary(pr.partition) != Some(&pr.to))
        .count();
    let allowance = primary_allowance(&out.assignment, &live, 256, EPS);
    assert!(
        second_handovers <= allowance,
        "{second_handovers} > {allowance}"
    );
    assert!(plan(&out.assignment, &b).primaries_changed as usize <= allowance);
}

#[test]
fn assignment_and_plan_round_trip_through_json() {
    let a = place(None, &nodes(3), 16, 2, EPS).unwrap();
    let json = serde_json::to_string(&a).unwrap();
    assert!(json.starts_with("{\"partitions\":[["));
    let back: Assignment = serde_json::from_str(&json).unwrap();
    assert_eq!(a, back);
    let b = place(Some(&a), &nodes(4), 16, 2, EPS).unwrap();
    let p = plan(&a, &b);
    let back: sessionplane_ring::MigrationPlan =
        serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(p, back);
}

/// Every transition between non-empty subsets of 5 nodes (zoned in 3 zones), RF 1..=3,
/// 64 partitions: valid placements and movement within (1+ε)·minimum plus rounding.
#[test]
fn exhaustive_transitions_between_subsets_of_five() {
    let all = zoned(&[
        ("n0", "a"),
        ("n1", "b"),
        ("n2", "c"),
        ("n3", "a"),
        ("n4", "b"),
    ]);
    let subset = |mask: u32| -> Vec<Member> {
        all.iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, m)| m.clone())
            .collect()
    };
    let mut worst = 0.0f64;
    for rf in 1..=3 {
        for from_mask in 1..32u32 {
            let from = subset(from_mask);
            let a = place(None, &from, 64, rf, EPS).unwrap();
            assert_valid(&a, &from, 64, rf, EPS);
            for to_mask in 1..32u32 {
                let to = subset(to_mask);
                let b = place(Some(&a), &to, 64, rf, EPS).unwrap();
                assert_valid(&b, &to, 64, rf, EPS);
                let moved = plan(&a, &b).replicas_moved;
                let min = minimum_moves(&a, &to, rf, EPS);
                assert!(moved >= min, "moved {moved} < min {min}");
                // Additive slack: one slot per node for rounding of the balanced share.
                let bound = ((1.0 + EPS) * min as f64).floor() as u64 + to.len() as u64;
                assert!(
                    moved <= bound,
                    "rf {rf} {from_mask:05b}->{to_mask:05b}: moved {moved}, min {min}"
                );
                if min > 0 {
                    worst = worst.max(moved as f64 / min as f64);
                }
                if from_mask == to_mask {
                    assert_eq!(moved, 0);
                }
            }
        }
    }
    eprintln!("worst moved/minimum over all subset transitions: {worst:.3}");
}

#[test]
fn replication_factor_changes_move_the_minimum() {
    let m = nodes(4);
    for (from_rf, to_rf) in [(2, 3), (3, 2), (1, 3), (3, 1)] {
        let a = place(None, &m, 1024, from_rf, EPS).unwrap();
        let b = place(Some(&a), &m, 1024, to_rf, EPS).unwrap();
        assert_valid(&b, &m, 1024, to_rf, EPS);
        let p = plan(&a, &b);
        let min = minimum_moves(&a, &m, to_rf, EPS);
        let wanted = 1024 * u64::from(to_rf.saturating_sub(from_rf));
        assert_eq!(min, wanted, "{from_rf}->{to_rf}");
        assert_eq!(p.replicas_moved, min, "{from_rf}->{to_rf}");
        assert_eq!(
            p.replicas_dropped,
            1024 * u64::from(from_rf.saturating_sub(to_rf))
        );
        // Raising RF keeps every primary; lowering it keeps them too.
        assert_eq!(p.primaries_changed, 0, "{from_rf}->{to_rf}");
    }
}

#[test]
fn partitions_without_replicas_are_placed_again() {
    let m = nodes(3);
    let mut a = place(None, &m, 64, 2, EPS).unwrap();
    a.partitions[5].clear();
    a.partitions[9] = vec!["gone".into()];
    let b = place(Some(&a), &m, 64, 2, EPS).unwrap();
    assert_valid(&b, &m, 64, 2, EPS);
    let p = plan(&a, &b);
    assert_eq!(p.replicas_moved, 4);
    assert!(p
        .moves
        .iter()
        .any(|mv| mv.partition == 5 && mv.source.is_none()));
}
