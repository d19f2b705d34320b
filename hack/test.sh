#!/usr/bin/env bash
# The whole test suite, from a clean clone on a fresh machine:
#   1. system packages and client libraries the tests drive (hack/deps.sh)
#   2. formatting and lints
#   3. a real control plane built from source and started on loopback (hack/cluster.sh)
#   4. generated files (CRD, chart copy, rendered manifests) in step with their sources
#   5. every Rust test: pure unit and property tests; store nodes as processes driven by real
#      Redis clients (redis-cli, redis-benchmark, redis-py, express-session + connect-redis);
#      the operator against the real kube-apiserver and controller-manager
#   6. the Helm chart linted and installed into the control plane
#   7. a bounded fuzzing run of the RESP parser
#   8. end to end on a single-node cluster (kubelet, containerd, runc, CNI, kube-proxy,
#      CoreDNS): the chart, the Store example with the demo frontend, a headless browser, and
#      50 users staying logged in while frontends scale 3 -> 6 -> 2 and pods are deleted;
#      the Client scenario; every affinity mode through Traefik with numbers and a browser
# Everything it starts is stopped on exit. A fresh machine also pays the one-off builds of
# Kubernetes, etcd, helm, containerd, CoreDNS and Traefik (cached by version under
# ~/.cache/sessionplane).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
export CARGO_TERM_COLOR=never
started=$(date +%s)
stage() { printf '\n=== %s (%ss)\n' "$*" "$(($(date +%s) - started))"; }
PREFETCH_PID=""
stop_prefetch() { if [[ -n $PREFETCH_PID ]]; then kill -- "-$PREFETCH_PID" 2>/dev/null || true; fi; }
teardown() {
  stop_prefetch
  bash "$REPO/hack/node/down.sh" >/dev/null 2>&1 || true
  bash "$REPO/hack/cluster.sh" down >/dev/null 2>&1 || true
}

# On a fresh machine, fetch the modules of the later CoreDNS and Traefik builds while the cold
# Rust builds below hold both cores (downloading is network-bound; Traefik's took 293 s
# here). A no-op when both are cached. Its log: $CACHE/prefetch.log.
prefetch_cache=${SESSIONPLANE_CACHE:-$HOME/.cache/sessionplane}
mkdir -p "$prefetch_cache"
# Its own process group (setsid), so that stopping it stops its go commands too.
setsid bash hack/node/build.sh prefetch >"$prefetch_cache/prefetch.log" 2>&1 &
PREFETCH_PID=$!
trap stop_prefetch EXIT

stage "dependencies"
bash hack/deps.sh

stage "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

stage "control plane"
trap teardown EXIT
bash hack/cluster.sh up
eval "$(bash hack/cluster.sh env)"

stage "generated files"
bash hack/check-generated.sh

stage "rust tests"
cargo test --workspace --locked --no-fail-fast

stage "demo app tests (against the store's protocol front)"
cargo build -p sessionplane-store --example memory-node --locked
DEMO_TEST_STORE="${CARGO_TARGET_DIR:-$REPO/target}/debug/examples/memory-node" \
  bash -c 'cd demo && node --test test/'

stage "helm chart"
bash hack/test-helm.sh

stage "fuzz (bounded)"
bash crates/store/fuzz/run.sh 30

stage "end to end (single-node cluster)"
bash hack/e2e/run.sh --teardown

stage "done"
