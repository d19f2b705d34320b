#!/bin/sh
# Runs the RESP fuzz targets for a bounded time each (default 60 s), for CI.
# A fixed seed and a fixed number of runs make a CI run repeatable: the same commit fuzzes
# the same inputs, so a red run is a finding, not luck. FUZZ_SEED / FUZZ_RUNS change them.
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Usage: crates/store/fuzz/run.sh [seconds-per-target]
set -eu
SECONDS_PER_TARGET="${1:-60}"
cd "$(dirname "$0")"
for target in resp_request resp_reply; do
    mkdir -p "corpus/$target"
    cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -seed="${FUZZ_SEED:-1}" -runs="${FUZZ_RUNS:-300000}" \
        -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -rss_limit_mb=1024 -timeout=10
done
