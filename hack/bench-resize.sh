#!/usr/bin/env bash
# Resize benchmark, a report and not a test: 3 → 4 nodes holding SESSIONS sessions of
# VALUE_SIZE bytes while a recording client keeps reading and writing, on
#   redis         Debian's redis-server in cluster mode: redis-cli --cluster create (3
#                 masters), then redis-cli --cluster add-node + rebalance
#                 --cluster-use-empty-masters (Redis Cluster's own resharding)
#   sessionplane  three store nodes (store-node, fsync everysec), then the resize the
#                 operator does: the new node pushed as a learner, caught up, epoch flip
# one after the other in the same run, each on its own fresh processes and data dirs.
# The driver is crates/store/examples/resize_bench; it writes one JSON outcome per
# system and prints the markdown table (stdout). Progress and logs go to stderr.
#
# Usage: hack/bench-resize.sh > report.md
# Environment: SESSIONS (1000000), VALUE_SIZE (1024), RF (1), PARTITIONS (1024),
#              WORKERS (8), PACE_MS (2), SKIP_BUILD=1 to reuse the release build,
#              KEEP_LOGS=DIR to copy the logs there before cleaning up.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SESSIONS=${SESSIONS:-1000000}
VALUE_SIZE=${VALUE_SIZE:-1024}
RF=${RF:-1}
PARTITIONS=${PARTITIONS:-1024}
WORKERS=${WORKERS:-8}
PACE_MS=${PACE_MS:-2}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

for tool in redis-server redis-cli python3; do
    command -v "$tool" >/dev/null || { echo "$tool not found (hack/deps.sh installs it)" >&2; exit 1; }
done
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$ROOT" && cargo build --release --locked -p sessionplane-store --bin store-node --example resize_bench >&2)
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-resize.XXXXXX")
PIDS=()
stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
cleanup() {
    local rc=$?
    stop_all
    if [ "$rc" != 0 ]; then
        echo "bench-resize failed (exit $rc); last log lines:" >&2
        for log in "$WORK"/logs/*.log; do
            [ -f "$log" ] && { echo "--- $log" >&2; tail -n 15 "$log" >&2; }
        done
    fi
    if [ -n "${KEEP_LOGS:-}" ]; then
        mkdir -p "$KEEP_LOGS"
        cp "$WORK"/logs/*.log "$KEEP_LOGS"/ 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Private copies of the binaries: another build in the shared target dir cannot swap
# them under a running benchmark.
mkdir -p "$WORK/bin" "$WORK/logs"
cp "$TARGET/release/store-node" "$TARGET/release/examples/resize_bench" "$WORK/bin/"
BENCH="$WORK/bin/resize_bench"
COMMON=(--sessions "$SESSIONS" --value-size "$VALUE_SIZE" --workers "$WORKERS" --pace-ms "$PACE_MS")

# shellcheck source=hack/lib/ports.sh
. "$ROOT/hack/lib/ports.sh"
wait_ping() {
    for _ in $(seq 1 100); do
        redis-cli -p "$1" PING >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "port $1 did not answer" >&2; return 1
}
# Resident memory of the running processes, summed.
resident() {
    local pid
    for pid in "${PIDS[@]}"; do
        awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || true
    done | awk '{s += $1} END {printf "%.1f GiB", s / 1048576}'
}
run_bench() {
    "$BENCH" "$@" &
    local pid=$!
    PIDS+=("$pid")
    wait "$pid"
}

echo "machine: $(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB memory, load average $(cut -d' ' -f1-3 /proc/loadavg); disk free $(df -h --output=avail "$WORK" | tail -1 | tr -d ' ')" >&2
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# --- Redis Cluster ---------------------------------------------------------------
mkdir -p "$WORK/redis"
redis_nodes=()
for _ in 1 2 3 4; do
    p=$(free_bus_port)
    redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes \
        --cluster-config-file "$WORK/redis/nodes-$p.conf" --cluster-node-timeout 5000 \
        --dir "$WORK/redis" --save "" --appendonly no --logfile "$WORK/logs/redis-$p.log" &
    PIDS+=($!)
    wait_ping "$p"
    redis_nodes+=("127.0.0.1:$p")
done
echo "== Redis Cluster: ${redis_nodes[*]}" >&2
run_bench redis --nodes "$(IFS=,; echo "${redis_nodes[*]}")" "${COMMON[@]}" --out "$WORK/redis.json"
REDIS_RSS=$(resident)
stop_all
rm -rf "$WORK/redis"

# --- sessionplane store ------------------------------------------------------------
mkdir -p "$WORK/store"
store_nodes=()
for i in 1 2 3 4; do
    id="s$i" resp=$(free_port) peer=$(free_port) admin=$(free_port)
    RUST_LOG=info "$WORK/bin/store-node" --id "$id" --listen "127.0.0.1:$resp" \
        --peer-listen "127.0.0.1:$peer" --admin "127.0.0.1:$admin" \
        --data-dir "$WORK/store/$id" --fsync everysec >"$WORK/logs/$id.log" 2>&1 &
    PIDS+=($!)
    store_nodes+=("$id=127.0.0.1:$resp=127.0.0.1:$peer=127.0.0.1:$admin")
done
echo "== sessionplane store: ${store_nodes[*]}" >&2
run_bench store --nodes "$(IFS=,; echo "${store_nodes[*]}")" --partitions "$PARTITIONS" --rf "$RF" \
    "${COMMON[@]}" --out "$WORK/store.json"
STORE_DISK=$(du -sh "$WORK/store" | cut -f1)
STORE_RSS=$(resident)
stop_all
rm -rf "$WORK/store"

# --- report ----------------------------------------------------------------------
"$BENCH" report "$WORK/redis.json" "$WORK/store.json"
echo
echo "Machine: $(nproc) cores, load average at the start $LOAD_START, at the end $(cut -d' ' -f1-3 /proc/loadavg)." \
    "After the resize the four redis-servers held $REDIS_RSS resident (no disk); the four store nodes $STORE_RSS resident and $STORE_DISK on disk."
