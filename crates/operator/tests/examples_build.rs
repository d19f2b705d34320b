//! Every example in manifests/examples passes validate() and builds: what the
//! README tells a new user to apply must reconcile.

use sessionplane_operator::api::SessionCluster;
use sessionplane_operator::build::{desired_objects, BuildInputs};
use sessionplane_operator::validate::{validate, validate_name};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[test]
fn every_example_validates_and_builds() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../manifests/examples");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        panic!("{} is missing", dir.display());
    };
    let mut seen = 0;
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable example");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value: serde_yaml::Value = serde::Deserialize::deserialize(doc).expect("YAML");
            if value.get("kind").and_then(|k| k.as_str()) != Some("SessionCluster") {
                continue;
            }
            let mut sc: SessionCluster =
                serde_yaml::from_value(value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = sc.metadata.name.clone().unwrap_or_default();
            validate_name(&name).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            validate(&sc.spec).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            sc.metadata
                .namespace
                .get_or_insert_with(|| "default".into());
            sc.metadata.uid = Some("00000000-0000-0000-0000-000000000001".into());
            let inputs = BuildInputs {
                store_password: "abcdefghijklmnopqrstuvwxyz012345".into(),
                cookie_keyring: Some(BTreeMap::from([("key-1".to_string(), vec![1u8; 32])])),
                default_image: "sessionplane:dev".into(),
                store_pods_floor: 0,
            };
            let objects =
                desired_objects(&sc, &inputs).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(objects.iter().any(|d| d.kind == "Deployment"));
            seen += 1;
        }
    }
    assert!(seen >= 4, "found {seen} example SessionClusters");
}
