//! How a connection's pipeline is split into groups for the data path.
//!
//! A pipeline over many keys touches many partitions: with 64 partitions, 16 random
//! session keys land in about 14 of them. Run one partition's commands after another and
//! the pipeline costs a forward and a replication round trip per partition, one after the
//! other; that is what a 3-node store did (docs/benchmarks.md: 0.04× redis-server's
//! pipelined SETs over 100,000 keys). So every partition's commands become one group, in
//! their order in the pipeline, and the groups run at the same time.
//!
//! Commands of one partition keep their order, so each key sees the pipeline's commands
//! in order and the replies are those of running them one by one. Commands of different
//! partitions touch different keys; only another client reading two of them in between
//! could tell which took effect first, the ordering Redis Cluster gives a pipeline that
//! spans shards. A command that is not confined to one partition (an MGET across
//! partitions, DBSIZE) is a barrier: it runs alone, after every command before it and
//! before every command after it.

use std::collections::HashMap;

/// One partition's commands within a step, by their positions in the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    pub partition: u32,
    /// Ascending.
    pub positions: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Groups of distinct partitions that may run at once.
    Groups(Vec<Group>),
    /// A command that runs alone, between the steps before and after it.
    Alone(usize),
}

/// Plans a pipeline whose command `i` is confined to partition `partitions[i]` (`None`:
/// not confined to one). Steps run one after another.
pub(crate) fn plan(partitions: &[Option<u32>]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<u32, usize> = HashMap::new();
    for (i, p) in partitions.iter().enumerate() {
        match p {
            Some(p) => match index.get(p) {
                Some(&g) => groups[g].positions.push(i),
                None => {
                    index.insert(*p, groups.len());
                    groups.push(Group {
                        partition: *p,
                        positions: vec![i],
                    });
                }
            },
            None => {
                if !groups.is_empty() {
                    steps.push(Step::Groups(std::mem::take(&mut groups)));
                    index.clear();
                }
                steps.push(Step::Alone(i));
            }
        }
    }
    if !groups.is_empty() {
        steps.push(Step::Groups(groups));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn partitions_become_groups_and_unconfined_commands_barriers() {
        let plan = plan(&[
            Some(1),
            Some(2),
            Some(1),
            None,
            Some(2),
            Some(2),
            None,
            None,
        ]);
        assert_eq!(
            plan,
            vec![
                Step::Groups(vec![
                    Group {
                        partition: 1,
                        positions: vec![0, 2]
                    },
                    Group {
                        partition: 2,
                        positions: vec![1]
                    },
                ]),
                Step::Alone(3),
                Step::Groups(vec![Group {
                    partition: 2,
                    positions: vec![4, 5]
                }]),
                Step::Alone(6),
                Step::Alone(7),
            ]
        );
        assert!(super::plan(&[]).is_empty());
    }

    proptest! {
        #[test]
        fn every_command_once_in_order_per_partition_and_barriers_hold(
            partitions in proptest::collection::vec(proptest::option::weighted(0.85, 0u32..6), 0..60)
        ) {
            let steps = plan(&partitions);
            // The step each position runs in, and in a step's groups, its partition.
            let mut step_of = vec![None; partitions.len()];
            for (s, step) in steps.iter().enumerate() {
                match step {
                    Step::Alone(i) => {
                        prop_assert!(partitions[*i].is_none());
                        prop_assert!(step_of[*i].replace(s).is_none(), "{i} twice");
                    }
                    Step::Groups(groups) => {
                        prop_assert!(!groups.is_empty());
                        let mut seen = std::collections::HashSet::new();
                        for g in groups {
                            prop_assert!(seen.insert(g.partition), "partition twice in a step");
                            prop_assert!(g.positions.windows(2).all(|w| w[0] < w[1]));
                            for &i in &g.positions {
                                prop_assert_eq!(partitions[i], Some(g.partition));
                                prop_assert!(step_of[i].replace(s).is_none(), "{i} twice");
                            }
                        }
                    }
                }
            }
            let step_of: Vec<usize> = step_of.into_iter().map(|s| s.expect("every command planned")).collect();
            for i in 0..partitions.len() {
                for j in i + 1..partitions.len() {
                    // A barrier is ordered against everything; commands of one partition
                    // keep their order; steps never run backwards.
                    if partitions[i].is_none() || partitions[j].is_none() {
                        prop_assert!(step_of[i] < step_of[j]);
                    } else {
                        prop_assert!(step_of[i] <= step_of[j]);
                    }
                }
            }
        }
    }
}
