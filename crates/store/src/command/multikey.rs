//! Splitting a multi-key command by partition and merging the parts' replies back.

use super::errors::{err, CROSSSLOT};
use super::spec::{CommandSpec, Merge};
use crate::reply::Reply;
use std::collections::HashMap;
use std::hash::Hash;

/// One partition's share of a command.
#[derive(Debug, Clone, PartialEq)]
pub struct Part<P> {
    pub partition: P,
    /// A complete command (name first) holding only this partition's keys.
    pub args: Vec<Vec<u8>>,
    /// For each key of `args`, its position among the original command's keys.
    pub positions: Vec<usize>,
}

/// The partition of a command that runs whole on one partition: a command with keys
/// that is not split by partition (`Merge::None`) and whose keys all share one. None
/// for everything else (keyless, wrong arity, split commands, CROSSSLOT), which
/// `split` handles.
pub fn single_partition<P: Eq>(
    args: &[Vec<u8>],
    spec: &CommandSpec,
    mut partition_of: impl FnMut(&[u8]) -> P,
) -> Option<P> {
    if spec.merge != Merge::None {
        return None;
    }
    let mut keys = spec.key_positions(args.len()).map(|i| &args[i]);
    let p = partition_of(keys.next()?);
    keys.all(|k| partition_of(k) == p).then_some(p)
}

/// Splits `args` into one command per partition. Commands that cannot be split (single
/// key, RENAME) come back whole when their keys share a partition, else CROSSSLOT.
/// Keyless commands and wrong arities come back whole, for `execute` to answer.
pub fn split<P: Eq + Hash + Clone>(
    args: &[Vec<u8>],
    spec: &CommandSpec,
    mut partition_of: impl FnMut(&[u8]) -> P,
) -> Result<Vec<Part<P>>, Reply> {
    let indices = spec.key_indices(args.len());
    let Some(&first) = indices.first() else {
        return Ok(Vec::new());
    };
    let span = spec.step.max(1) as usize;
    if spec.merge == Merge::None
        || (spec.merge == Merge::AllOk && !(args.len() - 1).is_multiple_of(2))
    {
        let p = partition_of(&args[first]);
        if indices.iter().any(|&i| partition_of(&args[i]) != p) && spec.merge == Merge::None {
            return Err(err(CROSSSLOT));
        }
        return Ok(vec![Part {
            partition: p,
            args: args.to_vec(),
            positions: (0..indices.len()).collect(),
        }]);
    }
    let mut order: Vec<Part<P>> = Vec::new();
    let mut slot_of: HashMap<P, usize> = HashMap::new();
    for (pos, &i) in indices.iter().enumerate() {
        let p = partition_of(&args[i]);
        let slot = *slot_of.entry(p.clone()).or_insert_with(|| {
            order.push(Part {
                partition: p,
                args: vec![args[0].clone()],
                positions: Vec::new(),
            });
            order.len() - 1
        });
        let part = &mut order[slot];
        part.args
            .extend(args[i..(i + span).min(args.len())].iter().cloned());
        part.positions.push(pos);
    }
    Ok(order)
}

/// Puts the replies of the parts back together as the whole command would have answered.
/// `parts` holds each part's `positions` with its reply; `key_count` is the number of
/// keys of the original command.
pub fn merge(spec: &CommandSpec, key_count: usize, parts: Vec<(Vec<usize>, Reply)>) -> Reply {
    if let Some((_, e)) = parts.iter().find(|(_, r)| matches!(r, Reply::Error(_))) {
        return e.clone();
    }
    match spec.merge {
        Merge::None => parts
            .into_iter()
            .next()
            .map_or(Reply::Nil, |(_, reply)| reply),
        Merge::Sum => {
            let mut total = 0i64;
            for (_, reply) in parts {
                match reply {
                    Reply::Integer(n) => total = total.saturating_add(n),
                    other => return unexpected(other),
                }
            }
            Reply::Integer(total)
        }
        Merge::AllOk => Reply::Simple("OK".into()),
        Merge::PerKey => {
            let mut out = vec![Reply::Nil; key_count];
            for (positions, reply) in parts {
                let Reply::Array(items) = reply else {
                    return unexpected(reply);
                };
                for (pos, item) in positions.into_iter().zip(items) {
                    if let Some(slot) = out.get_mut(pos) {
                        *slot = item;
                    }
                }
            }
            Reply::Array(out)
        }
    }
}

fn unexpected(reply: Reply) -> Reply {
    Reply::Error(format!("ERR unexpected reply from a partition: {reply:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::spec::spec;

    fn a(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    fn by_first_letter(key: &[u8]) -> u8 {
        key[0]
    }

    #[test]
    fn mget_splits_and_merges_in_key_order() {
        let args = a(&["MGET", "a1", "b1", "a2"]);
        let spec = spec(b"mget").unwrap();
        let parts = split(&args, spec, by_first_letter).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].args, a(&["MGET", "a1", "a2"]));
        assert_eq!(parts[0].positions, vec![0, 2]);
        assert_eq!(parts[1].args, a(&["MGET", "b1"]));
        let replies = vec![
            (
                parts[0].positions.clone(),
                Reply::Array(vec![Reply::Bulk(b"x".to_vec()), Reply::Nil]),
            ),
            (
                parts[1].positions.clone(),
                Reply::Array(vec![Reply::Bulk(b"y".to_vec())]),
            ),
        ];
        assert_eq!(
            merge(spec, 3, replies),
            Reply::Array(vec![
                Reply::Bulk(b"x".to_vec()),
                Reply::Bulk(b"y".to_vec()),
                Reply::Nil
            ])
        );
    }

    #[test]
    fn mset_keeps_pairs_together() {
        let args = a(&["MSET", "a", "1", "b", "2", "a2", "3"]);
        let parts = split(&args, spec(b"mset").unwrap(), by_first_letter).unwrap();
        assert_eq!(parts[0].args, a(&["MSET", "a", "1", "a2", "3"]));
        assert_eq!(parts[1].args, a(&["MSET", "b", "2"]));
    }

    #[test]
    fn mset_with_odd_arguments_stays_whole() {
        let args = a(&["MSET", "a", "1", "b"]);
        let parts = split(&args, spec(b"mset").unwrap(), by_first_letter).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].args, args);
    }

    #[test]
    fn del_sums() {
        let spec = spec(b"del").unwrap();
        let merged = merge(
            spec,
            3,
            vec![
                (vec![0], Reply::Integer(1)),
                (vec![1, 2], Reply::Integer(2)),
            ],
        );
        assert_eq!(merged, Reply::Integer(3));
    }

    #[test]
    fn rename_across_partitions_is_crossslot() {
        let spec = spec(b"rename").unwrap();
        assert_eq!(
            split(&a(&["RENAME", "a", "b"]), spec, by_first_letter),
            Err(err(CROSSSLOT))
        );
        assert_eq!(
            split(&a(&["RENAME", "a", "a2"]), spec, by_first_letter)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn errors_win() {
        let spec = spec(b"del").unwrap();
        let merged = merge(
            spec,
            2,
            vec![(vec![0], Reply::Integer(1)), (vec![1], err("ERR x"))],
        );
        assert_eq!(merged, err("ERR x"));
    }
}
