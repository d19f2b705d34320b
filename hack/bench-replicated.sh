#!/usr/bin/env bash
# Strategy Replicated, replication messages per session write, a report and not a test:
# SIZES agents (replicated-agent processes on loopback, all listing each other) per
# propagation mode, written through the Redis protocol, then the agents' own counters:
#   writes      client commands that changed a key, summed over agents
#   push msgs   push messages sent (one batch of writes to one peer)
#   records     key records those messages carried (= writes x (agents - 1) when no
#               peer was skipped)
#   AE msgs/s   anti-entropy messages per second while idle (one digest per agent per
#               interval; 3 per round when a bucket differs)
# Two loads: "1 client" (redis-cli, one SET after the other on agent 0, so no batching)
# and "C clients" (redis-benchmark SET with C connections on every agent at once, random
# keys), where a push message carries every write queued for that peer meanwhile.
#
# Usage: hack/bench-replicated.sh > report.md
# Environment: SIZES ("2 4 8"), MODES ("Async Sync"), WRITES (1000), CLIENTS (10),
#              SKIP_BUILD=1 to reuse the build, PROFILE (debug|release, default debug).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIZES=${SIZES:-"2 4 8"}
MODES=${MODES:-"Async Sync"}
WRITES=${WRITES:-1000}
CLIENTS=${CLIENTS:-10}
PROFILE=${PROFILE:-debug}
AE_MS=1000
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    flag=()
    [ "$PROFILE" = release ] && flag=(--release)
    (cd "$ROOT" && cargo build "${flag[@]}" -p sessionplane-store --bin replicated-agent >&2)
fi
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/replicated-agent"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=hack/lib/ports.sh
. "$ROOT/hack/lib/ports.sh"

# Sum of one metric over every agent's /metrics.
metric_sum() { # name admin...
    local name=$1 total=0 v
    shift
    for a in "$@"; do
        v=$(curl -sf "http://$a/metrics" | awk -v n="$name" '$1 == n {print $2}')
        total=$(python3 -c "print(int($total + ${v:-0}))")
    done
    echo "$total"
}

start_agents() { # n mode
    local n=$1 mode=$2 i peers=""
    RESP=() ADMIN=() PEER=()
    PIDS=()
    for ((i = 0; i < n; i++)); do
        RESP+=("$(free_port)") ADMIN+=("127.0.0.1:$(free_port)") PEER+=("127.0.0.1:$(free_port)")
    done
    peers=$(IFS=,; echo "${PEER[*]}")
    for ((i = 0; i < n; i++)); do
        "$BIN" --id "a$i" --listen "127.0.0.1:${RESP[$i]}" --peer-listen "${PEER[$i]}" \
            --admin "${ADMIN[$i]}" --peers "$peers" --advertise "${PEER[$i]}" --propagation "$mode" \
            --anti-entropy-interval-ms "$AE_MS" >"$WORK/a$i.log" 2>&1 &
        PIDS+=($!)
    done
    for a in "${ADMIN[@]}"; do
        until curl -sf "http://$a/readyz" >/dev/null; do sleep 0.1; done
    done
    # Every agent holds its peers live (the failure detector pings a few times a second).
    for a in "${ADMIN[@]}"; do
        until [ "$(metric_sum sessionplane_agent_peers_live "$a")" = $((n - 1)) ]; do sleep 0.1; done
    done
}

stop_agents() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    PIDS=()
}

counters() {
    echo "$(metric_sum sessionplane_agent_writes_total "${ADMIN[@]}") \
$(metric_sum sessionplane_agent_push_messages_sent_total "${ADMIN[@]}") \
$(metric_sum sessionplane_agent_push_records_sent_total "${ADMIN[@]}") \
$(metric_sum sessionplane_agent_anti_entropy_messages_total "${ADMIN[@]}")"
}

echo "| agents | propagation | load | writes | push msgs | msgs / write | records / write | AE msgs/s idle |"
echo "|---:|---|---|---:|---:|---:|---:|---:|"
for n in $SIZES; do
    for mode in $MODES; do
        start_agents "$n" "$mode"
        # Idle anti-entropy over 5 s.
        read -r _ _ _ ae0 <<<"$(counters)"
        t0=$(date +%s.%N)
        sleep 5
        read -r _ _ _ ae1 <<<"$(counters)"
        t1=$(date +%s.%N)
        echo "idle anti-entropy: $ae0 -> $ae1 messages in $t0 .. $t1" >&2
        ae_rate=$(python3 -c "print(f'{($ae1 - $ae0) / ($t1 - $t0):.1f}')")
        # Load 1: one client, one write after the other.
        read -r w0 m0 r0 _ <<<"$(counters)"
        for ((i = 0; i < WRITES; i++)); do echo "SET seq:$i value-$i EX 3600"; done |
            redis-cli -p "${RESP[0]}" >/dev/null
        sleep 1
        read -r w1 m1 r1 _ <<<"$(counters)"
        python3 -c "w=$w1-$w0; m=$m1-$m0; r=$r1-$r0; print(f'| $n | $mode | 1 client | {w} | {m} | {m/w:.2f} | {r/w:.2f} | $ae_rate |')"
        # Load 2: CLIENTS connections on every agent at once.
        bench=()
        for port in "${RESP[@]}"; do
            redis-benchmark -p "$port" -t set -n "$WRITES" -c "$CLIENTS" -r 100000 -q >/dev/null 2>&1 &
            bench+=($!)
        done
        wait "${bench[@]}"
        sleep 1
        read -r w2 m2 r2 _ <<<"$(counters)"
        python3 -c "w=$w2-$w1; m=$m2-$m1; r=$r2-$r1; print(f'| $n | $mode | $CLIENTS clients x $n agents | {w} | {m} | {m/w:.2f} | {r/w:.2f} | $ae_rate |')"
        stop_agents
    done
done
