#!/usr/bin/env bash
# The whole test suite, from a clean clone on a fresh machine:
#   1. system packages and client libraries the tests drive (hack/deps.sh)
#   2. formatting and lints
#   3. a real control plane built from source and started on loopback (hack/cluster.sh)
#   4. every Rust test: pure unit and property tests, store processes driven by real Redis
#      clients, the operator against the real kube-apiserver
#   5. generated files in step with their sources, the Helm chart linted and installed
#   6. a bounded fuzzing run of the RESP parser
# Anything it starts is stopped on exit. A fresh machine also pays the one-off build of the
# Kubernetes binaries (cached by version under ~/.cache/sessionplane).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
export CARGO_TERM_COLOR=never
started=$(date +%s)
stage() { printf '\n=== %s (%ss)\n' "$*" "$(($(date +%s) - started))"; }

stage "dependencies"
bash hack/deps.sh

stage "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

stage "control plane"
bash hack/cluster.sh up
trap 'bash "$REPO/hack/cluster.sh" down >/dev/null 2>&1 || true' EXIT
eval "$(bash hack/cluster.sh env)"

stage "generated files"
bash hack/check-generated.sh

stage "rust tests"
cargo test --workspace --locked --no-fail-fast

stage "helm chart"
helm lint charts/sessionplane
bash hack/test-helm.sh

stage "fuzz (bounded)"
bash crates/store/fuzz/run.sh 60

stage "done"
