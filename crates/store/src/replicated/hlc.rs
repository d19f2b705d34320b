//! Hybrid logical clock: timestamps that follow wall time, never go backwards on a
//! node, and are always newer than any timestamp the node has seen from a peer.
//!
//! Last writer wins per key by `Stamp` order: wall milliseconds, then the logical
//! counter, then the writer's node hash, so two writes never tie.

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// The version of one write.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Stamp {
    pub wall_ms: u64,
    pub counter: u32,
    pub node: u64,
}

/// FNV-1a, 64 bits: stable across builds and machines, which digests compared between
/// agents need (std's hasher promises neither).
pub fn fnv64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separates ("ab","c") from ("a","bc").
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub struct Clock {
    node: u64,
    last: Mutex<(u64, u32)>,
}

impl Clock {
    pub fn new(node_id: &str) -> Clock {
        Clock {
            node: fnv64(&[node_id.as_bytes()]),
            last: Mutex::new((0, 0)),
        }
    }

    /// A stamp newer than every stamp issued or observed so far, at wall time `wall_ms`.
    pub fn tick(&self, wall_ms: u64) -> Stamp {
        let mut last = self.last.lock();
        if wall_ms > last.0 {
            *last = (wall_ms, 0);
        } else {
            last.1 = last.1.saturating_add(1);
        }
        Stamp {
            wall_ms: last.0,
            counter: last.1,
            node: self.node,
        }
    }

    /// Takes a peer's stamp into account, so this node's next write orders after it.
    pub fn observe(&self, stamp: Stamp) {
        let mut last = self.last.lock();
        if (stamp.wall_ms, stamp.counter) > *last {
            *last = (stamp.wall_ms, stamp.counter);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_grow_even_when_the_wall_clock_stalls_or_steps_back() {
        let c = Clock::new("a");
        let s1 = c.tick(1000);
        let s2 = c.tick(1000);
        let s3 = c.tick(900);
        assert!(s1 < s2 && s2 < s3);
        assert_eq!(s3.wall_ms, 1000);
    }

    #[test]
    fn a_write_after_seeing_a_peer_orders_after_the_peer() {
        let a = Clock::new("a");
        let b = Clock::new("b");
        let from_b = b.tick(5000);
        a.observe(from_b);
        let next = a.tick(4000);
        assert!(next > from_b);
    }

    #[test]
    fn equal_wall_and_counter_break_ties_by_node() {
        let a = Clock::new("a").tick(7);
        let b = Clock::new("b").tick(7);
        assert_ne!(a, b);
        assert_ne!(a.cmp(&b), std::cmp::Ordering::Equal);
    }
}
