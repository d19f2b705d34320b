//! The pure part of leader election: given what the Lease says and how long ago it last
//! changed, decide whether to renew, take over, or follow.
//!
//! Expiry is judged by the local clock since the record was last seen to change (as
//! client-go does), never by comparing the holder's `renewTime` with our wall clock, so
//! clock skew between replicas cannot make two of them leader at once.

use std::time::Duration;

/// The parts of a Lease that matter for the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// `spec.holderIdentity`; `None` or empty once released.
    pub holder: Option<String>,
    /// `spec.leaseDurationSeconds` of the current holder.
    pub duration: Duration,
    /// `spec.leaseTransitions`.
    pub transitions: i32,
}

impl LeaseRecord {
    fn holder(&self) -> Option<&str> {
        self.holder.as_deref().filter(|h| !h.is_empty())
    }
}

/// What the elector does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No Lease exists yet: create it, held by us.
    Create,
    /// We hold the Lease: refresh `renewTime`.
    Renew,
    /// The Lease is free or expired: take it, counting one more transition.
    TakeOver { transitions: i32 },
    /// Someone else holds a live Lease.
    Follow { holder: String },
}

/// Decides from the current record and the time since it was last seen to change.
pub fn decide(record: Option<&LeaseRecord>, me: &str, unchanged_for: Duration) -> Decision {
    let Some(record) = record else {
        return Decision::Create;
    };
    match record.holder() {
        Some(holder) if holder == me => Decision::Renew,
        Some(holder) if unchanged_for < record.duration => Decision::Follow {
            holder: holder.to_owned(),
        },
        _ => Decision::TakeOver {
            transitions: record.transitions.saturating_add(1),
        },
    }
}

/// Whether a leader that last renewed `since_renew` ago must consider its leadership lost.
///
/// The deadline is shorter than the lease duration so that the old leader stops
/// reconciling before any follower may take over.
pub fn leadership_lost(since_renew: Duration, renew_deadline: Duration) -> bool {
    since_renew >= renew_deadline
}

/// Who this replica is, as written to `holderIdentity`: the pod name when running in a
/// pod, else host name and process id (two operators on one machine stay distinct).
pub fn identity(pod_name: Option<&str>, hostname: Option<&str>, pid: u32) -> String {
    match pod_name.filter(|p| !p.is_empty()) {
        Some(pod) => pod.to_owned(),
        None => format!(
            "{}-{pid}",
            hostname.filter(|h| !h.is_empty()).unwrap_or("sessionplane")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(15);

    fn held_by(holder: Option<&str>) -> LeaseRecord {
        LeaseRecord {
            holder: holder.map(str::to_owned),
            duration: D,
            transitions: 3,
        }
    }

    #[test]
    fn missing_lease_is_created() {
        assert_eq!(decide(None, "a", Duration::ZERO), Decision::Create);
    }

    #[test]
    fn own_lease_is_renewed_even_when_stale() {
        let r = held_by(Some("a"));
        assert_eq!(decide(Some(&r), "a", Duration::ZERO), Decision::Renew);
        assert_eq!(
            decide(Some(&r), "a", Duration::from_secs(60)),
            Decision::Renew
        );
    }

    #[test]
    fn live_foreign_lease_is_followed() {
        let r = held_by(Some("b"));
        let d = decide(Some(&r), "a", Duration::from_secs(14));
        assert_eq!(d, Decision::Follow { holder: "b".into() });
    }

    #[test]
    fn expired_foreign_lease_is_taken_over_with_one_more_transition() {
        let r = held_by(Some("b"));
        assert_eq!(
            decide(Some(&r), "a", D),
            Decision::TakeOver { transitions: 4 }
        );
        assert_eq!(
            decide(Some(&r), "a", Duration::from_secs(100)),
            Decision::TakeOver { transitions: 4 }
        );
    }

    #[test]
    fn released_lease_is_taken_immediately() {
        for holder in [None, Some("")] {
            let r = held_by(holder);
            assert_eq!(
                decide(Some(&r), "a", Duration::ZERO),
                Decision::TakeOver { transitions: 4 }
            );
        }
    }

    #[test]
    fn transitions_do_not_overflow() {
        let r = LeaseRecord {
            holder: None,
            duration: D,
            transitions: i32::MAX,
        };
        assert_eq!(
            decide(Some(&r), "a", Duration::ZERO),
            Decision::TakeOver {
                transitions: i32::MAX
            }
        );
    }

    #[test]
    fn leadership_is_lost_at_the_deadline() {
        let deadline = Duration::from_secs(10);
        assert!(!leadership_lost(Duration::from_secs(9), deadline));
        assert!(leadership_lost(deadline, deadline));
        assert!(leadership_lost(Duration::from_secs(11), deadline));
    }

    #[test]
    fn identity_prefers_pod_name() {
        assert_eq!(identity(Some("op-0"), Some("host"), 7), "op-0");
        assert_eq!(identity(Some(""), Some("host"), 7), "host-7");
        assert_eq!(identity(None, None, 7), "sessionplane-7");
    }
}
