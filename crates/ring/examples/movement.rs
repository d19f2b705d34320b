//! Prints replica movement against the theoretical minimum for fixed resizes and for
//! random resize sequences: `cargo run -p sessionplane-ring --example movement`.
//! The figures in docs/ring.md and docs/benchmarks.md come from this output.

use sessionplane_ring::{minimum_moves, place, plan, Assignment, Member, PlacementError};

const PARTITIONS: u32 = 1024;

fn nodes(n: usize) -> Vec<Member> {
    (0..n).map(|i| Member::new(format!("store-{i}"))).collect()
}

struct Resize {
    moved: u64,
    minimum: u64,
    slots: u64,
    primaries_changed: u64,
}

fn resize(
    from: &Assignment,
    to: &[Member],
    rf: u32,
    eps: f64,
) -> Result<(Assignment, Resize), PlacementError> {
    let next = place(Some(from), to, from.partition_count(), rf, eps)?;
    let p = plan(from, &next);
    let r = Resize {
        moved: p.replicas_moved,
        minimum: minimum_moves(from, to, rf, eps),
        slots: next.slot_count(),
        primaries_changed: p.primaries_changed,
    };
    Ok((next, r))
}

fn ratio(moved: u64, minimum: u64) -> f64 {
    if minimum == 0 {
        if moved == 0 {
            1.0
        } else {
            f64::INFINITY
        }
    } else {
        moved as f64 / minimum as f64
    }
}

/// xorshift64*: a fixed-seed generator, so the printed figures are reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn main() -> Result<(), PlacementError> {
    println!("Fixed resizes, {PARTITIONS} partitions (moved = replica slots copied):");
    println!(
        "| resize | RF | ε | moved | minimum | moved/minimum | moved/slots | primaries changed |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for eps in [0.1, 0.25] {
        for rf in [2, 3] {
            for (a, b) in [(3, 4), (3, 5), (5, 2), (2, 4), (4, 3), (5, 6)] {
                let start = place(None, &nodes(a), PARTITIONS, rf, eps)?;
                let (_, r) = resize(&start, &nodes(b), rf, eps)?;
                println!(
                    "| {a}→{b} | {rf} | {eps} | {} | {} | {:.3} | {:.3} | {} |",
                    r.moved,
                    r.minimum,
                    ratio(r.moved, r.minimum),
                    r.moved as f64 / r.slots as f64,
                    r.primaries_changed
                );
            }
        }
    }

    println!();
    println!("Replication factor changes, 4 nodes, {PARTITIONS} partitions, ε 0.1:");
    println!("| RF | moved | minimum | moved/minimum | dropped | primaries changed |");
    println!("|---|---|---|---|---|---|");
    for (from_rf, to_rf) in [(2, 3), (3, 2), (1, 3)] {
        let start = place(None, &nodes(4), PARTITIONS, from_rf, 0.1)?;
        let next = place(Some(&start), &nodes(4), PARTITIONS, to_rf, 0.1)?;
        let p = plan(&start, &next);
        let minimum = minimum_moves(&start, &nodes(4), to_rf, 0.1);
        println!(
            "| {from_rf}→{to_rf} | {} | {minimum} | {:.3} | {} | {} |",
            p.replicas_moved,
            ratio(p.replicas_moved, minimum),
            p.replicas_dropped,
            p.primaries_changed
        );
    }

    println!();
    println!("Random resize sequences (1..=12 nodes, 3 zones or none, 16..=2048 partitions, RF 1..=3, 20 steps each):");
    println!("| ε | resizes | Σmoved/Σminimum | mean ratio | p99 ratio | max ratio | max (moved-minimum) |");
    println!("|---|---|---|---|---|---|---|");
    for eps in [0.1, 0.25] {
        let mut rng = Rng(0x5E55_10F1_A2E5_7A7E);
        let mut ratios = Vec::new();
        let (mut sum_moved, mut sum_min, mut max_excess) = (0u64, 0u64, 0u64);
        let mut next_id = 0usize;
        for _ in 0..60 {
            let partitions = 16 + rng.below(2033) as u32;
            let rf = 1 + rng.below(3) as u32;
            let zoned = rng.below(2) == 0;
            let mut new_member = |rng: &mut Rng| {
                next_id += 1;
                let id = format!("n{next_id}");
                if zoned {
                    Member::in_zone(id, ["a", "b", "c"][rng.below(3) as usize])
                } else {
                    Member::new(id)
                }
            };
            let mut members: Vec<Member> = (0..1 + rng.below(12))
                .map(|_| new_member(&mut rng))
                .collect();
            let mut current = place(None, &members, partitions, rf, eps)?;
            for _ in 0..20 {
                let target = 1 + rng.below(12) as usize;
                while members.len() > target {
                    let i = rng.below(members.len() as u64) as usize;
                    members.remove(i);
                }
                while members.len() < target {
                    members.push(new_member(&mut rng));
                }
                let (next, r) = resize(&current, &members, rf, eps)?;
                if r.minimum > 0 {
                    ratios.push(ratio(r.moved, r.minimum));
                }
                sum_moved += r.moved;
                sum_min += r.minimum;
                max_excess = max_excess.max(r.moved.saturating_sub(r.minimum));
                current = next;
            }
        }
        ratios.sort_by(f64::total_cmp);
        let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
        let p99 = ratios[(ratios.len() * 99 / 100).min(ratios.len() - 1)];
        println!(
            "| {eps} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {} |",
            ratios.len(),
            sum_moved as f64 / sum_min as f64,
            mean,
            p99,
            ratios.last().copied().unwrap_or(1.0),
            max_excess
        );
    }
    Ok(())
}
