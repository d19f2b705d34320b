//! Property tests: random member sets, zones, partition counts, replication factors and
//! random histories of additions, removals and failures.

mod common;

use common::{assert_valid, zone_collisions, zones_balanced};
use proptest::prelude::*;
use sessionplane_ring::{
    failover, hash_tag, minimum_moves, partition_of, place, plan, xxh64, Assignment, Member,
};

#[derive(Debug, Clone)]
enum Op {
    Add(u8),
    Remove(usize),
    /// A node dies; each surviving replica is behind with probability 1/4 (from `seed`).
    Fail {
        index: usize,
        seed: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3).prop_map(Op::Add),
        any::<usize>().prop_map(Op::Remove),
        (any::<usize>(), any::<u64>()).prop_map(|(index, seed)| Op::Fail { index, seed }),
    ]
}

struct Cluster {
    zoned: bool,
    next_id: usize,
    members: Vec<Member>,
}

impl Cluster {
    fn add(&mut self, zone: u8) {
        self.next_id += 1;
        let id = format!("node-{}", self.next_id);
        self.members.push(if self.zoned {
            Member::in_zone(id, ["a", "b", "c"][usize::from(zone % 3)])
        } else {
            Member::new(id)
        });
    }
}

fn behind(seed: u64, partition: u32, node: &str) -> bool {
    xxh64(node.as_bytes(), seed ^ u64::from(partition)).is_multiple_of(4)
}

/// Place, then check every guarantee of the result and of the move that produced it.
fn step(prev: &Assignment, members: &[Member], partitions: u32, rf: u32, eps: f64) -> Assignment {
    let next = place(Some(prev), members, partitions, rf, eps).unwrap();
    assert_valid(&next, members, partitions, rf, eps);

    let again = place(Some(&next), members, partitions, rf, eps).unwrap();
    assert_eq!(again, next, "not idempotent");
    let mut reversed = members.to_vec();
    reversed.reverse();
    let other_order = place(Some(prev), &reversed, partitions, rf, eps).unwrap();
    assert_eq!(other_order, next, "depends on member order");

    let moved = plan(prev, &next).replicas_moved;
    let min = minimum_moves(prev, members, rf, eps);
    assert!(moved >= min, "moved {moved} below the lower bound {min}");
    let bound = (1.0 + eps) * min as f64 + members.len() as f64;
    assert!(
        moved as f64 <= bound,
        "moved {moved}, minimum {min}, bound {bound}"
    );
    next
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_histories_keep_every_guarantee(
        initial in 1usize..=12,
        zoned in any::<bool>(),
        zones in prop::collection::vec(0u8..3, 12),
        partitions in 16u32..=2048,
        rf in 1u32..=3,
        eps in prop::sample::select(vec![0.1, 0.25]),
        ops in prop::collection::vec(op(), 1..=5),
    ) {
        let mut cluster = Cluster { zoned, next_id: 0, members: Vec::new() };
        for zone in zones.iter().take(initial) {
            cluster.add(*zone);
        }
        let mut current = place(None, &cluster.members, partitions, rf, eps).unwrap();
        assert_valid(&current, &cluster.members, partitions, rf, eps);
        if zones_balanced(&cluster.members, rf) {
            prop_assert_eq!(zone_collisions(&current, &cluster.members), 0);
        }
        for op in ops {
            match op {
                Op::Add(zone) => {
                    if cluster.members.len() < 12 {
                        cluster.add(zone);
                    }
                }
                Op::Remove(i) => {
                    if cluster.members.len() > 1 {
                        cluster.members.remove(i % cluster.members.len());
                    }
                }
                Op::Fail { index, seed } => {
                    if cluster.members.len() > 1 {
                        let dead = cluster.members[index % cluster.members.len()].id.clone();
                        let out = failover(&current, std::slice::from_ref(&dead), |p, n| !behind(seed, p, n));
                        check_failover(&current, &out, &dead, seed);
                        if out.unavailable.is_empty() {
                            cluster.members.retain(|m| m.id != dead);
                            current = out.assignment;
                        }
                        // Otherwise the dead node must come back from its volume before
                        // anything else happens: the membership stays as it was.
                    }
                }
            }
            current = step(&current, &cluster.members, partitions, rf, eps);
        }
    }

    #[test]
    fn fresh_placement_spreads_balanced_zones(
        zone_count in 1usize..=4,
        per_zone in 1usize..=3,
        partitions in 16u32..=2048,
        rf in 1u32..=3,
        eps in prop::sample::select(vec![0.1, 0.25]),
    ) {
        let members: Vec<Member> = (0..zone_count)
            .flat_map(|z| (0..per_zone).map(move |i| Member::in_zone(format!("n{z}-{i}"), format!("z{z}"))))
            .collect();
        let a = place(None, &members, partitions, rf, eps).unwrap();
        assert_valid(&a, &members, partitions, rf, eps);
        if zone_count >= rf as usize {
            prop_assert_eq!(zone_collisions(&a, &members), 0);
        }
    }

    #[test]
    fn hash_tags_decide_the_partition(
        prefix in "[a-z:]{0,8}",
        tag in "[a-z0-9]{1,12}",
        suffix in "[a-z{}:]{0,8}",
        partitions in 1u32..=16384,
    ) {
        let key = format!("{prefix}{{{tag}}}{suffix}");
        prop_assert_eq!(hash_tag(key.as_bytes()), tag.as_bytes());
        let p = partition_of(key.as_bytes(), partitions);
        prop_assert!(p < partitions);
        prop_assert_eq!(p, partition_of(tag.as_bytes(), partitions));
    }

    #[test]
    fn plan_turns_from_into_to(
        n_from in 1usize..=8,
        n_to in 1usize..=8,
        partitions in 16u32..=256,
        rf in 1u32..=3,
    ) {
        let from_members: Vec<Member> = (0..n_from).map(|i| Member::new(format!("s{i}"))).collect();
        let to_members: Vec<Member> = (n_from / 2..n_from / 2 + n_to).map(|i| Member::new(format!("s{i}"))).collect();
        let a = place(None, &from_members, partitions, rf, 0.1).unwrap();
        let b = place(Some(&a), &to_members, partitions, rf, 0.1).unwrap();
        let p = plan(&a, &b);
        let mut joined = 0u64;
        for mv in &p.moves {
            let mut set: Vec<String> = a.partitions[mv.partition as usize].clone();
            set.retain(|n| !mv.leaving.contains(n));
            set.extend(mv.joining.iter().cloned());
            let mut want = b.partitions[mv.partition as usize].clone();
            set.sort();
            want.sort();
            prop_assert_eq!(set, want);
            prop_assert_eq!(mv.source.as_ref(), a.partitions[mv.partition as usize].first());
            joined += mv.joining.len() as u64;
        }
        prop_assert_eq!(joined, p.replicas_moved);
        let untouched = (0..partitions as usize).filter(|&q| !p.moves.iter().any(|m| m.partition as usize == q));
        for q in untouched {
            prop_assert_eq!(a.partitions[q].first(), b.partitions[q].first());
        }
    }
}

fn check_failover(
    before: &Assignment,
    out: &sessionplane_ring::FailoverOutcome,
    dead: &str,
    seed: u64,
) {
    for (p, (old, new)) in before
        .partitions
        .iter()
        .zip(&out.assignment.partitions)
        .enumerate()
    {
        let p32 = p as u32;
        if out.unavailable.contains(&p32) {
            // Unavailable only when no survivor was caught up; dead primary stays put.
            assert!(old
                .iter()
                .skip(1)
                .filter(|n| *n != dead)
                .all(|n| behind(seed, p32, n)));
            assert_eq!(new.first(), old.first());
            assert!(new.iter().skip(1).all(|n| n != dead));
            continue;
        }
        assert!(
            new.iter().all(|n| n != dead),
            "dead node left in partition {p}"
        );
        match old.first() {
            Some(primary) if primary == dead => {
                let promoted = new.first().expect("promoted primary");
                assert!(
                    !behind(seed, p32, promoted),
                    "promoted a replica that is behind"
                );
                assert!(out
                    .promoted
                    .iter()
                    .any(|pr| pr.partition == p32 && &pr.to == promoted));
            }
            Some(primary) => assert_eq!(new.first(), Some(primary), "live primary changed"),
            None => {}
        }
    }
}
