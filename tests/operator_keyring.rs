//! Strategy Client against a real API server: the operator creates the cookie keyring
//! Secret, rotates it in two steps (stage, then seal after the propagation delay), retires
//! the oldest keys beyond `retainedKeys`, and reports each step as an Event. A broken
//! keyring is an error that names the entry, never silently replaced.

mod operator_support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use operator_support::*;
use serde_json::json;

fn text(data: &BTreeMap<String, Vec<u8>>, key: &str) -> Option<String> {
    data.get(key)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

fn key_ids(data: &BTreeMap<String, Vec<u8>>) -> Vec<u64> {
    let mut ids: Vec<u64> = data
        .keys()
        .filter_map(|k| k.strip_prefix("key-")?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids
}

async fn keyring(secrets: &Api<Secret>) -> Option<BTreeMap<String, Vec<u8>>> {
    let s = secrets.get_opt("shop-keyring").await.ok()??;
    Some(s.data?.into_iter().map(|(k, v)| (k, v.0)).collect())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Makes the keyring's last step look old, as if the rotation interval had passed.
async fn age(secrets: &Api<Secret>) {
    let old = (unix_now() - 100_000).to_string();
    secrets
        .patch(
            "shop-keyring",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"updated-at": old}})),
        )
        .await
        .expect("patch updated-at");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyring_rotates_in_two_steps_and_retires_old_keys() {
    let client = client().await;
    ensure_crd(&client).await;
    let ns = TestNs::new(&client, "op-keyring").await;
    let op = start_leader(&client, &ns.name).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);

    let mut sc = base_spec("Client");
    sc["spec"]["client"] = json!({"rotationIntervalSeconds": 300, "retainedKeys": 3});
    sc["spec"]["sessions"] = json!({"defaultTTLSeconds": 600});
    ns.create_sc("shop", sc).await.expect("create");

    let first = wait_for("the keyring Secret", Duration::from_secs(30), || async {
        keyring(&secrets).await
    })
    .await;
    assert_eq!(key_ids(&first), vec![1]);
    assert_eq!(text(&first, "current").as_deref(), Some("1"));
    let updated: i64 = text(&first, "updated-at").unwrap().parse().unwrap();
    assert!(
        (unix_now() - updated).abs() < 120,
        "updated-at {updated} is now"
    );
    assert_eq!(first["key-1"].len(), 32);

    // Three rotations. Each: staged first (present, not sealing), then current after the
    // propagation delay, with no push from the test.
    for n in 2..=4u64 {
        // Aged again until the key appears: a reconcile already under way when the test
        // patched may apply the operator's own `updated-at` over it.
        let staged = wait_for(
            &format!("key {n} staged"),
            Duration::from_secs(30),
            || async {
                let d = keyring(&secrets).await?;
                if key_ids(&d).contains(&n) {
                    return Some(d);
                }
                age(&secrets).await;
                None
            },
        )
        .await;
        // Read right after it appeared: the previous key still seals.
        let current = text(&staged, "current").unwrap();
        assert!(
            current == (n - 1).to_string() || current == n.to_string(),
            "{current}"
        );
        let sealed = wait_for(
            &format!("key {n} current"),
            Duration::from_secs(30) + KEYRING_PROPAGATION,
            || async {
                let d = keyring(&secrets).await?;
                (text(&d, "current")? == n.to_string()).then_some(d)
            },
        )
        .await;
        let expected: Vec<u64> = (n.saturating_sub(2).max(1)..=n).collect();
        assert_eq!(key_ids(&sealed), expected, "keys after key {n} seals");
        // The keys themselves never change once written.
        if n == 2 {
            assert_eq!(sealed["key-1"], first["key-1"]);
        }
    }

    // Three stages and three promotions, counted, and each its own Event (the recorder
    // would fold same-reason Events into one series keeping the first note).
    for step in ["staged", "promoted"] {
        let series =
            format!("sessionplane_operator_keyring_rotation_steps_total{{step=\"{step}\"}}");
        // Counted just after the apply the test saw.
        wait_for(&series, Duration::from_secs(10), || async {
            (counter(&scrape(op.metrics_addr), &series) == 3).then_some(())
        })
        .await;
    }
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let mut wanted: Vec<(&str, String)> = Vec::new();
    for n in 2..=4 {
        wanted.push((
            "KeyStaged",
            format!("cookie key {n} added to Secret shop-keyring"),
        ));
        wanted.push((
            "KeyRotated",
            format!("cookie key {n} now seals new cookies"),
        ));
    }
    wanted.push(("KeyRotated", "retired key(s) 1".to_owned()));
    let notes = wait_for(
        "a KeyStaged and a KeyRotated Event per key",
        Duration::from_secs(20),
        || async {
            let list = events.list(&ListParams::default()).await.ok()?;
            let notes: Vec<(String, String)> = list
                .items
                .iter()
                .map(|e| {
                    (
                        e.reason.clone().unwrap_or_default(),
                        e.note.clone().unwrap_or_default(),
                    )
                })
                .collect();
            wanted
                .iter()
                .all(|(reason, text)| notes.iter().any(|(r, n)| r == reason && n.contains(text)))
                .then_some(notes)
        },
    )
    .await;
    assert_eq!(
        notes.iter().filter(|(r, _)| r == "KeyRotated").count(),
        3,
        "{notes:?}"
    );

    // A keyring someone broke is an error naming the entry, and nothing is replaced. (An
    // entry the operator does not own: one it owns, like `current`, its next apply would
    // simply set back.)
    secrets
        .patch(
            "shop-keyring",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"notes": "hand-written"}})),
        )
        .await
        .expect("break the keyring");
    let warning = wait_for(
        "a MalformedSecret Warning",
        Duration::from_secs(30),
        || async {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("MalformedSecret"))
        },
    )
    .await;
    let note = warning.note.unwrap_or_default();
    assert!(
        note.contains("shop-keyring") && note.contains("\"notes\": unknown entry"),
        "{note}"
    );
    let after = keyring(&secrets).await.expect("the Secret is still there");
    assert_eq!(key_ids(&after), vec![2, 3, 4], "no key was replaced");

    op.stop().await.expect("stop");
    ns.cleanup().await;
}
