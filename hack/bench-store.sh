#!/usr/bin/env bash
# Store benchmark, a report and not a test: redis-benchmark GET/SET with 50 clients, with
# and without pipelining, against Debian's redis-server and against sessionplane in the
# same run, targets alternating round by round:
#   redis    redis-server (no persistence: --save "" --appendonly no); the ratios' base
#   redis-aof   redis-server persisting as the store does: --appendonly yes --appendfsync
#            everysec (the store's default fsync policy), no snapshots
#   node     one store node (store-node, fsync everysec, replicationFactor 1)
#   front    the protocol front on one in-memory partition (examples/memory-node)
#   cluster  three store nodes, replicationFactor 2, fsync everysec (client on node 1)
# Each figure comes with the CPU time the target's processes spent per command, read
# from /proc around each redis-benchmark run.
# Then memory per session: SESSIONS keys of 1 KiB loaded through redis-cli --pipe.
#
# Usage: hack/bench-store.sh > report.md
# Environment: N (requests per test, 200000), ROUNDS (2), SESSIONS (200000),
#              TARGETS ("redis node front cluster"; also redis-aof), SKIP_BUILD=1 to reuse the release build
#              (in $CARGO_TARGET_DIR, else target/), BIN to take binaries from another directory,
#              KEYSPACE (unset: redis-benchmark's one key; a number: -r KEYSPACE random keys,
#              what sessions look like, each write a key of its own on disk).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-200000}
CLIENTS=50
ROUNDS=${ROUNDS:-2}
SESSIONS=${SESSIONS:-200000}
TARGETS=${TARGETS:-"redis node front cluster"}
PARTITIONS=64

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$ROOT" && cargo build --release -p sessionplane-store --bin store-node --example memory-node >&2)
fi
BIN=${BIN:-"${CARGO_TARGET_DIR:-$ROOT/target}/release"}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "${KEEP_WORK:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# shellcheck source=hack/lib/ports.sh
. "$ROOT/hack/lib/ports.sh"
wait_port() {
    for _ in $(seq 1 100); do
        redis-cli -p "$1" PING >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "port $1 did not answer" >&2; return 1
}

# start_node ID -> prints "resp peer admin pid"
start_node() {
    local id=$1 resp peer admin
    resp=$(free_port); peer=$(free_port); admin=$(free_port)
    "$BIN/store-node" --id "$id" --listen "127.0.0.1:$resp" --peer-listen "127.0.0.1:$peer" \
        --admin "127.0.0.1:$admin" --data-dir "$WORK/$id" --fsync everysec \
        >"$WORK/$id.log" 2>&1 &
    echo "$resp $peer $admin $!"
}

# push_ring RF "id=peer=admin ..." : one epoch placing partition p on nodes p, p+1, ... (round robin).
push_ring() {
    python3 - "$PARTITIONS" "$@" <<'PY'
import json, sys, urllib.request
partitions, rf, nodes = int(sys.argv[1]), int(sys.argv[2]), [n.split("=") for n in sys.argv[3:]]
ids = [n[0] for n in nodes]
config = {
    "epoch": 1,
    "partitions": partitions,
    "members": [{"id": i, "addr": f"127.0.0.1:{p}"} for i, p, _ in nodes],
    "replicas": [[ids[(p + k) % len(ids)] for k in range(rf)] for p in range(partitions)],
    "learners": [[] for _ in range(partitions)],
}
for _, _, admin in nodes:
    req = urllib.request.Request(f"http://127.0.0.1:{admin}/v1/ring", data=json.dumps(config).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req, timeout=20).read()
PY
}

wait_admin() {
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$1/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "admin $1 did not answer" >&2; return 1
}

declare -A PORT PID CPU_PIDS
if [[ " $TARGETS " == *" redis "* ]]; then
    p=$(free_port)
    redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
    PID[redis]=$!; PIDS+=($!); PORT[redis]=$p; CPU_PIDS[redis]=$!; wait_port "$p"
fi
if [[ " $TARGETS " == *" redis-aof "* ]]; then
    p=$(free_port); mkdir -p "$WORK/aof"
    redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly yes --appendfsync everysec \
        --dir "$WORK/aof" >"$WORK/redis-aof.log" 2>&1 &
    PID[redis-aof]=$!; PIDS+=($!); PORT[redis-aof]=$p; CPU_PIDS[redis-aof]=$!; wait_port "$p"
fi
if [[ " $TARGETS " == *" front "* ]]; then
    p=$(free_port)
    "$BIN/examples/memory-node" --listen "127.0.0.1:$p" >"$WORK/front.log" 2>&1 &
    PID[front]=$!; PIDS+=($!); PORT[front]=$p; CPU_PIDS[front]=$!; wait_port "$p"
fi
if [[ " $TARGETS " == *" node "* ]]; then
    read -r resp peer admin pid < <(start_node solo)
    PIDS+=("$pid"); PID[node]=$pid; PORT[node]=$resp; CPU_PIDS[node]=$pid
    wait_admin "$admin"; push_ring 1 "solo=$peer=$admin"; wait_port "$resp"
fi
if [[ " $TARGETS " == *" cluster "* ]]; then
    members=()
    for id in c1 c2 c3; do
        read -r resp peer admin pid < <(start_node "$id")
        PIDS+=("$pid"); members+=("$id=$peer=$admin"); CPU_PIDS[cluster]+=" $pid"
        [ "$id" = c1 ] && PORT[cluster]=$resp && PID[cluster]=$pid
        wait_admin "$admin"
    done
    push_ring 2 "${members[@]}"; wait_port "${PORT[cluster]}"
fi

# CPU time (user + system, clock ticks) used so far by the target's processes.
cpu_ticks() {
    local pid total=0
    for pid in ${CPU_PIDS[$1]}; do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    echo "$total"
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# results[target,test,pipeline] = "rps p50 p99 cpu" of the best round (highest rps);
# cpu: the target's CPU time per command in microseconds (all its processes), which a
# busy machine disturbs far less than throughput.
declare -A RES
bench() {
    local target=$1 pipeline=$2 test line rps p50 p99 before after cpu
    for test in set get; do
        before=$(cpu_ticks "$target")
        line=$(redis-benchmark -h 127.0.0.1 -p "${PORT[$target]}" -t "$test" -n "$N" -c "$CLIENTS" -P "$pipeline" ${KEYSPACE:+-r "$KEYSPACE"} --csv 2>/dev/null | grep -v '^"test"' | tail -1)
        after=$(cpu_ticks "$target")
        cpu=$(awk -v t=$((after - before)) -v us="$TICK_US" -v n="$N" 'BEGIN{printf "%.2f", t * us / n}')
        IFS=, read -r test rps _ _ p50 _ p99 _ <<<"$(tr -d '"' <<<"$line")"
        local key="$target,$test,$pipeline" old
        old=${RES[$key]:-}
        if [ -z "$old" ] || awk -v a="$rps" -v b="${old%% *}" 'BEGIN{exit !(a>b)}'; then
            RES[$key]="$rps $p50 $p99 $cpu"
        fi
    done
}
for round in $(seq 1 "$ROUNDS"); do
    for pipeline in 1 16; do
        for target in $TARGETS; do
            echo "round $round pipeline $pipeline $target" >&2
            bench "$target" "$pipeline"
        done
    done
done

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
declare -A MEM
load_sessions() {
    local target=$1 before after
    before=$(rss_kib "${PID[$target]}")
    python3 - "$SESSIONS" <<'PY' | redis-cli -h 127.0.0.1 -p "${PORT[$target]}" --pipe >&2
import sys
n = int(sys.argv[1])
value = "x" * 1024
out = sys.stdout
for i in range(n):
    key = f"sess:{i:012d}"
    out.write(f"*5\r\n$3\r\nSET\r\n${len(key)}\r\n{key}\r\n$1024\r\n{value}\r\n$2\r\nEX\r\n$5\r\n86400\r\n")
PY
    sleep 2
    after=$(rss_kib "${PID[$target]}")
    MEM[$target]=$(( (after - before) * 1024 / SESSIONS ))
}
for target in $TARGETS; do
    [ "$target" = cluster ] && continue
    echo "memory: $target" >&2
    load_sessions "$target"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b == 0) print "n/a"; else printf "%.2f", a/b }'; }
echo "| target | test | pipeline | ops/s | p50 ms | p99 ms | CPU µs/op | ops/s ÷ redis | p99 ÷ redis | CPU/op ÷ redis |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for pipeline in 1 16; do
    for test in SET GET; do
        base=${RES[redis,$test,$pipeline]:-"0 0 0 0"}
        read -r brps _ bp99 bcpu <<<"$base"
        for target in $TARGETS; do
            read -r rps p50 p99 cpu <<<"${RES[$target,$test,$pipeline]:-0 0 0 0}"
            echo "| $target | $test | $pipeline | $rps | $p50 | $p99 | $cpu | $(ratio "$rps" "$brps") | $(ratio "$p99" "$bp99") | $(ratio "$cpu" "$bcpu") |"
        done
    done
done
echo
echo "Memory per session ($SESSIONS sessions of 1 KiB, SET ... EX 86400, RSS growth ÷ sessions):"
echo
for target in "${!MEM[@]}"; do
    echo "- $target: ${MEM[$target]} bytes per session"
done
