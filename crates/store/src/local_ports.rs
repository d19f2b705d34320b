//! Loopback ports for the processes that tests and benches start on one machine.

use std::sync::atomic::{AtomicU32, Ordering};

const LOW: u32 = 16_000;
/// The kernel's default ephemeral range (`ip_local_port_range`) starts here.
const EPHEMERAL: u32 = 32_768;
const SPAN: u32 = EPHEMERAL - LOW;
/// The next candidate, as an offset from LOW (u32::MAX: not yet spread by pid).
static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);

/// A free loopback port that nothing else will take before the caller's child binds it.
///
/// A port from `bind(0)`-and-close can come back from the next such call (16 of 50 runs
/// of 100 calls did here) or be given to one of the test's outgoing connections before
/// the child binds it; CI saw a test's agent never start that way. These come from below
/// the ephemeral range, so no connection is ever given one, and once per process; the
/// start is spread by pid so test binaries run side by side rarely meet, and a port
/// something else holds is skipped.
pub fn free_port() -> u16 {
    let start = std::process::id().wrapping_mul(997) % SPAN;
    let _ = NEXT.compare_exchange(u32::MAX, start, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {LOW}..{EPHEMERAL}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_handed_out_once_below_the_ephemeral_range_and_held_ones_skipped() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2_000 {
            let p = free_port();
            assert!((LOW..EPHEMERAL).contains(&u32::from(p)), "{p}");
            assert!(seen.insert(p), "{p} handed out twice");
        }
        let next = LOW + NEXT.load(Ordering::SeqCst) % SPAN;
        // Held by this test (or by something else already): skipped either way.
        let _held = std::net::TcpListener::bind(("127.0.0.1", next as u16));
        let p = free_port();
        assert_ne!(u32::from(p), next, "a port something holds was handed out");
        assert_eq!(u32::from(p), LOW + (next - LOW + 1) % SPAN);
    }
}
