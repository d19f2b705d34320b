//! `crds/sessioncluster.yaml` must be exactly what `sessionplane crd` prints.
//! Regenerate with `cargo run -q -- crd > crds/sessioncluster.yaml`
//! (or run this test with SESSIONPLANE_UPDATE_CRDS=1).

use std::path::PathBuf;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds/sessioncluster.yaml")
}

#[test]
fn committed_crd_matches_the_types() {
    let generated = sessionplane_operator::crd_yaml().expect("the CRD serializes");
    let path = committed_path();
    if std::env::var_os("SESSIONPLANE_UPDATE_CRDS").is_some() {
        std::fs::write(&path, &generated).expect("write crds/sessioncluster.yaml");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "crds/sessioncluster.yaml is stale: run `cargo run -q -- crd > crds/sessioncluster.yaml`"
    );
}
