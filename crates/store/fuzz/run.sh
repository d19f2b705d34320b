#!/bin/sh
# Runs the RESP fuzz targets for a bounded time each (default 60 s), for CI.
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Usage: crates/store/fuzz/run.sh [seconds-per-target]
set -eu
SECONDS_PER_TARGET="${1:-60}"
cd "$(dirname "$0")"
for target in resp_request resp_reply; do
    mkdir -p "corpus/$target"
    cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -rss_limit_mb=1024 -timeout=10
done
