use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn key(b: u8) -> Vec<u8> {
    vec![b; KEY_BYTES]
}

fn data(entries: &[(&str, Vec<u8>)]) -> BTreeMap<String, Vec<u8>> {
    entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

const POLICY: Policy = Policy {
    interval: 1000,
    retained: 3,
    propagation: 100,
};

#[test]
fn round_trips_through_secret_data() {
    let ring = Keyring {
        keys: BTreeMap::from([(4, key(4)), (5, key(5)), (6, key(6))]),
        current: 5,
        updated_at: 1_700_000_000,
    };
    let data = ring.to_data();
    assert_eq!(data["current"], b"5");
    assert_eq!(data["updated-at"], b"1700000000");
    assert_eq!(Keyring::parse(&data, 0), Ok(ring.clone()));
    assert_eq!(ring.staged(), Some(6));
}

#[test]
fn a_keyring_from_before_rotation_takes_its_highest_key_and_now() {
    let ring = Keyring::parse(&data(&[("key-1", key(1))]), 42).unwrap();
    assert_eq!(
        (ring.current, ring.updated_at, ring.staged()),
        (1, 42, None)
    );
}

#[test]
fn malformed_keyrings_are_errors_that_name_the_entry() {
    type Case = (BTreeMap<String, Vec<u8>>, &'static str, &'static str);
    let cases: Vec<Case> = vec![
        (data(&[]), "no_keys", "no key-<n>"),
        (data(&[("current", b"1".to_vec())]), "no_keys", "no key-<n>"),
        (data(&[("key-x", key(1))]), "bad_entry", "\"key-x\""),
        (
            data(&[("key-1", vec![1; 16])]),
            "bad_entry",
            "16 bytes, want 32",
        ),
        (
            data(&[("key-1", key(1)), ("current", b"one".to_vec())]),
            "bad_entry",
            "\"current\"",
        ),
        (
            data(&[("key-1", key(1)), ("current", b"2".to_vec())]),
            "missing_current",
            "key 2",
        ),
        (
            data(&[("key-1", key(1)), ("notes", b"x".to_vec())]),
            "bad_entry",
            "unknown entry",
        ),
    ];
    for (input, label, text) in cases {
        let err = Keyring::parse(&input, 0).expect_err(text);
        assert_eq!(err.label(), label, "{err}");
        assert!(
            err.to_string().contains(text),
            "{err} should mention {text}"
        );
    }
}

#[test]
fn a_rotation_stages_then_promotes_then_retires() {
    let ring = Keyring::first(key(1), 0);
    assert_eq!(ring.next_due(&POLICY), 900);
    let (same, none) = ring.step(899, &POLICY, || unreachable!("not due"));
    assert_eq!((same, none), (ring.clone(), None));

    let (ring, r) = ring.step(900, &POLICY, || key(2));
    assert_eq!(r, Some(Rotation::Staged { key: 2 }));
    assert_eq!((ring.current, ring.staged()), (1, Some(2)));
    assert_eq!(ring.next_due(&POLICY), 1000);

    let (ring, r) = ring.step(1000, &POLICY, || unreachable!("promotion makes no key"));
    assert_eq!(
        r,
        Some(Rotation::Promoted {
            key: 2,
            retired: vec![]
        })
    );
    assert_eq!(ring.current, 2);

    let mut ring = ring;
    for (n, now) in [(3u64, 1900), (4, 2900)] {
        ring = ring.step(now, &POLICY, || key(n as u8)).0;
        ring = ring.step(now + 100, &POLICY, || unreachable!()).0;
    }
    // Key 1 is retired when key 4 seals: three keys (4, 3, 2) remain.
    assert_eq!(ring.keys.keys().copied().collect::<Vec<_>>(), vec![2, 3, 4]);
    assert_eq!(ring.current, 4);
}

#[test]
fn a_short_interval_never_promotes_sooner_than_the_propagation_delay() {
    let policy = Policy {
        interval: 300,
        retained: 2,
        propagation: 200,
    };
    let ring = Keyring::first(key(1), 0);
    assert_eq!(ring.next_due(&policy), 200);
    let (ring, _) = ring.step(200, &policy, || key(2));
    assert_eq!(ring.next_due(&policy), 400);
}

/// Reconciles at arbitrary moments (some late, some repeated, as after an operator restart
/// that re-reads the Secret): whatever the timing, the guarantees hold.
fn simulate(policy: Policy, gaps: &[i64]) -> Result<(), TestCaseError> {
    let mut ring = Keyring::first(key(1), 0);
    let mut now = 0i64;
    let mut staged_at: BTreeMap<u64, i64> = BTreeMap::from([(1, 0)]);
    let mut current_since: BTreeMap<u64, i64> = BTreeMap::from([(1, 0)]);
    let mut superseded_at: BTreeMap<u64, i64> = BTreeMap::new();
    let mut last_promotion: Option<i64> = None;
    let mut made = 1u8;
    for gap in gaps {
        now += gap;
        let (next, rotation) = ring.step(now, &policy, || {
            made = made.wrapping_add(1);
            key(made)
        });
        // Re-running the same step with the persisted result changes nothing.
        let (again, none) = next.step(now, &policy, || key(0));
        prop_assert_eq!(&again, &next);
        prop_assert!(none.is_none());
        match rotation {
            Some(Rotation::Staged { key }) => {
                prop_assert!(!ring.keys.contains_key(&key));
                staged_at.insert(key, now);
            }
            Some(Rotation::Promoted { key, retired }) => {
                prop_assert!(
                    now - staged_at[&key] >= policy.propagation,
                    "key {} sealed {}s after it was staged",
                    key,
                    now - staged_at[&key]
                );
                if let Some(prev) = last_promotion {
                    prop_assert!(now - prev >= policy.interval);
                }
                last_promotion = Some(now);
                superseded_at.insert(ring.current, now);
                current_since.insert(key, now);
                for old in retired {
                    let opened_for = now - superseded_at[&old];
                    prop_assert!(
                        opened_for >= (policy.retained as i64 - 1) * policy.interval,
                        "key {} retired {}s after it stopped sealing",
                        old,
                        opened_for
                    );
                }
            }
            None => prop_assert_eq!(&next, &ring),
        }
        prop_assert!(next.keys.contains_key(&next.current));
        prop_assert!(next.keys.len() <= policy.retained + 1);
        prop_assert!(next.current >= ring.current);
        let back =
            Keyring::parse(&next.to_data(), -1).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &next);
        ring = next;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn rotation_keeps_its_guarantees_under_any_reconcile_timing(
        interval in 300i64..100_000,
        retained in 2usize..16,
        propagation_pct in 1i64..100,
        gaps in proptest::collection::vec(0i64..60_000, 1..200),
    ) {
        let policy = Policy { interval, retained, propagation: (interval * propagation_pct / 100).max(1) };
        simulate(policy, &gaps)?;
    }
}

#[test]
fn reconciles_at_the_due_times_promote_exactly_one_interval_apart() {
    let mut ring = Keyring::first(key(1), 0);
    let mut promotions = vec![];
    for _ in 0..20 {
        let due = ring.next_due(&POLICY);
        let (next, r) = ring.step(due, &POLICY, || key(9));
        if let Some(Rotation::Promoted { .. }) = r {
            promotions.push(due);
        }
        ring = next;
    }
    assert_eq!(promotions.len(), 10);
    assert!(promotions
        .windows(2)
        .all(|w| w[1] - w[0] == POLICY.interval));
}
