//! Checks shared by the placement test suites.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use sessionplane_ring::{Assignment, Limits, Member, NodeId};

pub fn members(ids: &[&str]) -> Vec<Member> {
    ids.iter().map(|id| Member::new(*id)).collect()
}

pub fn zoned(specs: &[(&str, &str)]) -> Vec<Member> {
    specs
        .iter()
        .map(|(id, z)| Member::in_zone(*id, *z))
        .collect()
}

/// Every structural and load guarantee `place` makes; panics with a message naming the
/// broken one.
pub fn assert_valid(a: &Assignment, members: &[Member], partitions: u32, rf: u32, eps: f64) {
    let ids: BTreeSet<&str> = members.iter().map(|m| m.id.as_str()).collect();
    let limits = Limits::new(ids.len() as u32, partitions, rf, eps);
    assert_eq!(a.partitions.len(), partitions as usize, "partition count");
    for (p, set) in a.partitions.iter().enumerate() {
        assert_eq!(
            set.len(),
            limits.replicas as usize,
            "partition {p} replica count: {set:?}"
        );
        let distinct: BTreeSet<&str> = set.iter().map(String::as_str).collect();
        assert_eq!(
            distinct.len(),
            set.len(),
            "partition {p} has a duplicate: {set:?}"
        );
        for node in set {
            assert!(
                ids.contains(node.as_str()),
                "partition {p} on non-member {node}"
            );
        }
    }
    for (node, load) in a.replica_loads() {
        assert!(
            u64::from(load) <= limits.replica_cap,
            "{node} holds {load} slots > cap {} ({limits:?})",
            limits.replica_cap
        );
    }
    for (node, load) in a.primary_loads() {
        assert!(
            u64::from(load) <= limits.primary_cap,
            "{node} is primary of {load} > cap {} ({limits:?})",
            limits.primary_cap
        );
    }
}

/// Partitions whose replicas are not all in distinct zones (unzoned nodes count as
/// their own zone).
pub fn zone_collisions(a: &Assignment, members: &[Member]) -> usize {
    let zone: BTreeMap<&str, String> = members
        .iter()
        .map(|m| {
            (
                m.id.as_str(),
                m.zone.clone().unwrap_or_else(|| format!("node:{}", m.id)),
            )
        })
        .collect();
    a.partitions
        .iter()
        .filter(|set| {
            let zones: BTreeSet<&String> =
                set.iter().filter_map(|n| zone.get(n.as_str())).collect();
            zones.len() < set.len()
        })
        .count()
}

/// True when every zone has the same number of members and there are at least `rf`
/// zones (or no zones at all): then full zone spreading fits in the balanced share.
pub fn zones_balanced(members: &[Member], rf: u32) -> bool {
    let mut per_zone: BTreeMap<Option<&str>, usize> = BTreeMap::new();
    for m in members {
        *per_zone.entry(m.zone.as_deref()).or_default() += 1;
    }
    if per_zone.keys().any(Option::is_none) {
        return per_zone.len() == 1;
    }
    let counts: BTreeSet<usize> = per_zone.values().copied().collect();
    counts.len() == 1 && per_zone.len() >= rf.min(members.len() as u32) as usize
}

/// Primary hand-overs that re-placing `before` on `members` may need: raising nodes to
/// the primary floor plus shedding down to the primary cap.
pub fn primary_allowance(
    before: &Assignment,
    members: &[Member],
    partitions: u32,
    eps: f64,
) -> usize {
    let n = members.len() as u32;
    let limits = Limits::new(n, partitions, 1, eps);
    let floor = u64::from(partitions / n);
    let loads = before.primary_loads();
    let ids: BTreeSet<&NodeId> = members.iter().map(|m| &m.id).collect();
    let raise: u64 = ids
        .iter()
        .map(|id| floor.saturating_sub(u64::from(loads.get(id.as_str()).copied().unwrap_or(0))))
        .sum();
    let shed: u64 = loads
        .iter()
        .filter(|(id, _)| ids.iter().any(|m| m.as_str() == **id))
        .map(|(_, &l)| u64::from(l).saturating_sub(limits.primary_cap))
        .sum();
    (raise + shed) as usize
}
