//! Migration progress as the status shows it: replicas moved of total, sessions copied of
//! total, bytes, and an estimate of the time left. Pure, from the ring report.

use std::time::Duration;

/// Progress of the migration the epoch in force runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Partition replicas whose learner caught up, and all of them.
    pub replicas_moved: u64,
    pub replicas_total: u64,
    /// Sessions (keys) copied by snapshot, and in all, over every primary.
    pub sessions_moved: u64,
    pub sessions_total: u64,
    pub bytes_moved: u64,
    /// Seconds left at the rate seen so far; None before anything was copied.
    pub eta_seconds: Option<u64>,
    /// Sessions copied per second so far.
    pub sessions_per_second: f64,
}

impl Progress {
    /// "moved/total" for the printer column.
    pub fn short(&self) -> String {
        format!("{}/{}", self.replicas_moved, self.replicas_total)
    }
}

/// The progress after `elapsed` since the migration's epoch was decided.
pub fn progress(
    replicas: (u64, u64),
    sessions_moved: u64,
    sessions_total: u64,
    bytes_moved: u64,
    elapsed: Option<Duration>,
) -> Progress {
    let (replicas_moved, replicas_total) = replicas;
    let secs = elapsed.map(|e| e.as_secs_f64()).filter(|s| *s > 0.0);
    let sessions_per_second = match secs {
        Some(s) => sessions_moved as f64 / s,
        None => 0.0,
    };
    let eta_seconds = if replicas_total > 0 && replicas_moved >= replicas_total {
        Some(0)
    } else if sessions_per_second > 0.0 {
        let left = sessions_total.saturating_sub(sessions_moved) as f64;
        let eta = (left / sessions_per_second).ceil();
        (eta.is_finite() && eta < u64::MAX as f64).then_some(eta as u64)
    } else {
        None
    };
    Progress {
        replicas_moved,
        replicas_total,
        sessions_moved,
        sessions_total,
        bytes_moved,
        eta_seconds,
        sessions_per_second,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn eta_from_the_rate_so_far() {
        let p = progress((3, 8), 250, 1000, 25_000, Some(Duration::from_secs(10)));
        assert_eq!(p.sessions_per_second, 25.0);
        assert_eq!(p.eta_seconds, Some(30));
        assert_eq!(p.short(), "3/8");
    }

    #[test]
    fn no_eta_before_anything_moved_and_zero_when_done() {
        assert_eq!(
            progress((0, 8), 0, 1000, 0, Some(Duration::from_secs(5))).eta_seconds,
            None
        );
        assert_eq!(progress((0, 8), 10, 1000, 0, None).eta_seconds, None);
        assert_eq!(
            progress((8, 8), 1000, 1000, 0, Some(Duration::from_secs(5))).eta_seconds,
            Some(0)
        );
    }

    proptest! {
        /// More copied in the same time never means more time left.
        #[test]
        fn eta_shrinks_as_copies_grow(total in 1u64..1_000_000, a in 1u64..1_000_000, extra in 0u64..1000, secs in 1u64..10_000) {
            let a = a.min(total);
            let b = (a + extra).min(total);
            let e = Some(Duration::from_secs(secs));
            let pa = progress((0, 4), a, total, 0, e).eta_seconds.unwrap_or(u64::MAX);
            let pb = progress((0, 4), b, total, 0, e).eta_seconds.unwrap_or(u64::MAX);
            prop_assert!(pb <= pa);
        }
    }
}
