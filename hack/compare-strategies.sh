#!/usr/bin/env bash
# The four strategies side by side (issue 7): the same demo frontend, the same load and the
# same faults for each strategy, on the single-node cluster. A report, not a test: it prints
# the tables and writes them with a plot; docs/strategies.md quotes a run.
#
#   hack/compare-strategies.sh [STRATEGY...]
#       (default: Store Sticky Sticky:RF2 Replicated Replicated:Sync Client; Sticky alone is
#       its example's replication factor 1, Replicated alone its propagation Async)
#
# For each strategy, in its own namespace, a SessionCluster from manifests/examples/<s>.yaml
# with 3 frontends, routed by the frontend Service (kube-proxy, no affinity: the same path for
# every strategy; Sticky, which refuses None, gets ClientIP, see render_example), while
# COMPARE_USERS users (30) click through tests/e2e/loadgen.mjs:
#   steady            COMPARE_STEADY_SECONDS (30): latency of session reads and writes as the
#                     frontend saw them (the demo's Server-Timing header)
#   kill-frontend     one frontend pod deleted with --grace-period=0 --force (a crash)
#   scale-to-6, scale-to-2
#   kill-store-pod    (Store only) one store pod deleted the same way
#   partition         one frontend pod cut off from every other pod and Service (iptables in
#                     its network namespace) for COMPARE_PARTITION_SECONDS (20), still
#                     receiving user traffic; then healed
#   steady-end        10 s
# then every user's session is read back (lost sessions, lost writes). Client also gets the
# cookie's bytes per request and the session size where the 4096-byte cookie limit bites.
# When Replicated is in the list (or COMPARE_MESSAGES=1), both propagation modes are also
# run at 2, 4 and 8 frontends (COMPARE_MESSAGE_SECONDS of load each, 20) and the agents' own
# counters give the replication messages per session write (replication-messages.jsonl).
#
# Output: $COMPARE_OUT (default /tmp/sessionplane-compare): <strategy>.json (the load
# generator's report), report.md and strategies.png (hack/compare/report.py).
# Needs the local target (root), like hack/e2e/run.sh; the node is torn down at the end
# unless COMPARE_KEEP=1. E2E_OPERATOR_IMAGE_TAR reuses a built operator image.
set -euo pipefail
# shellcheck source=hack/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e/lib.sh"
# shellcheck source=hack/node/lib.sh
source "$E2E_REPO/hack/node/lib.sh"

STRATEGIES=("$@")
((${#STRATEGIES[@]})) || STRATEGIES=(Store Sticky Sticky:RF2 Replicated Replicated:Sync Client)
OUT=${COMPARE_OUT:-/tmp/sessionplane-compare}
USERS=${COMPARE_USERS:-30}
STEADY=${COMPARE_STEADY_SECONDS:-30}
PARTITION_SECONDS=${COMPARE_PARTITION_SECONDS:-20}
MESSAGE_SECONDS=${COMPARE_MESSAGE_SECONDS:-20}
STEP_TIMEOUT=${COMPARE_STEP_TIMEOUT:-180}
[[ $E2E_TARGET == local ]] || e2e_die "the comparison cuts a pod's network with iptables in its namespace: local target only"
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/sessionplane-compare.XXXXXX)
LG_PID=""
PARTITIONED_NETNS=""

cleanup() {
  [[ -n $LG_PID ]] && kill "$LG_PID" 2>/dev/null
  [[ -n $PARTITIONED_NETNS ]] && heal "$PARTITIONED_NETNS"
  rm -rf "$WORK"
  if [[ ${COMPARE_KEEP:-0} != 1 ]]; then "$E2E_REPO/hack/node/down.sh" >&2 || true; fi
}
trap cleanup EXIT

phase() { # strategy name
  e2e_log "$1: phase $2"
  echo "$2" >"$WORK/phase"
}

frontends() {
  k -n "$E2E_NS" get pods -l "app.kubernetes.io/instance=$E2E_SC,app.kubernetes.io/component=frontend" \
    --field-selector=status.phase=Running -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}'
}

# A process in the pod's network namespace: the pod's pause process whose namespace holds
# the pod's address (the node keeps network namespaces under its own state directory, so
# `ip netns` does not list them).
pod_netns_pid() { # pod
  local ip pid
  ip=$(k -n "$E2E_NS" get pod "$1" -o jsonpath='{.status.podIP}')
  [[ -n $ip ]] || return 1
  for pid in $(pgrep -x pause); do
    if nsenter -t "$pid" -n ip -4 -o addr show 2>/dev/null | grep -q " $ip/"; then
      echo "$pid"
      return 0
    fi
  done
  return 1
}

in_pod_net() { # pid cmd...
  local pid=$1
  shift
  nsenter -t "$pid" -n "$@"
}

# Cuts a pod off from every other pod and every Service; the node's bridge address (through
# which kube-proxy delivers the users' requests) stays reachable.
partition() { # pid
  local gw=${POD_CIDR%.*}.1
  in_pod_net "$1" iptables -N SP-PARTITION
  in_pod_net "$1" iptables -A SP-PARTITION -s "$gw" -j RETURN
  in_pod_net "$1" iptables -A SP-PARTITION -d "$gw" -j RETURN
  in_pod_net "$1" iptables -A SP-PARTITION -s "$POD_CIDR" -j DROP
  in_pod_net "$1" iptables -A SP-PARTITION -d "$POD_CIDR" -j DROP
  in_pod_net "$1" iptables -A SP-PARTITION -d "$SERVICE_CIDR" -j DROP
  in_pod_net "$1" iptables -I INPUT -j SP-PARTITION
  in_pod_net "$1" iptables -I OUTPUT -j SP-PARTITION
  PARTITIONED_NETNS=$1
}

heal() { # pid
  in_pod_net "$1" iptables -D INPUT -j SP-PARTITION 2>/dev/null || true
  in_pod_net "$1" iptables -D OUTPUT -j SP-PARTITION 2>/dev/null || true
  in_pod_net "$1" iptables -F SP-PARTITION 2>/dev/null || true
  in_pod_net "$1" iptables -X SP-PARTITION 2>/dev/null || true
  PARTITIONED_NETNS=""
}

# The example with 3 frontends, routed by the frontend Service without affinity; a
# token Replicated:<Propagation> also sets spec.replicated.propagation, Sticky:RF<n> the
# agents' replication factor.
render_example() { # token [frontends]
  local file
  file=$E2E_REPO/manifests/examples/$(strategy_of "$1" | tr '[:upper:]' '[:lower:]').yaml
  [[ -f $file ]] || e2e_die "no example $file"
  python3 - "$file" "$1" "${2:-3}" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
doc["metadata"] = {"name": "cmp"}
doc["spec"]["frontend"]["replicas"] = int(sys.argv[3])
# Sticky refuses affinity None (its strategy is routing by key): ClientIP on the same
# Service. The load generator's users all come from the host's one address, so kube-proxy
# pins them to one frontend, whose agent forwards the sessions it does not own, as None
# would spread them: the same share of forwarded requests.
mode = "ClientIP" if doc["spec"]["strategy"] == "Sticky" else "None"
doc["spec"]["routing"] = {"affinity": {"mode": mode}, "provider": {"type": "Service"}}
if ":" in sys.argv[2]:
    strategy, variant = sys.argv[2].split(":", 1)
    if strategy == "Replicated":
        doc["spec"]["replicated"]["propagation"] = variant
    elif strategy == "Sticky" and variant.startswith("RF"):
        doc["spec"]["sticky"]["replicationFactor"] = int(variant[2:])
    else:
        sys.exit(f"unknown variant {sys.argv[2]}: Replicated:Async|Sync, Sticky:RF1|RF2")
print(yaml.safe_dump(doc))
PY
}

strategy_of() { echo "${1%%:*}"; }          # Replicated:Sync -> Replicated
label_of() { echo "${1/:/-}"; }             # Replicated:Sync -> Replicated-Sync, Sticky:RF2 -> Sticky-RF2

# A fresh namespace holding the rendered example; waits for its pods.
start_example() { # token frontends stores
  k delete namespace "$E2E_NS" --ignore-not-found --wait=true --timeout=120s >/dev/null
  k create namespace "$E2E_NS" >/dev/null
  e2e_wait "the default ServiceAccount" 30 k -n "$E2E_NS" get serviceaccount default
  render_example "$1" "$2" | k -n "$E2E_NS" apply -f - >/dev/null
  e2e_wait_ready "$2" "$3" "$STEP_TIMEOUT"
}

compare_one() { # token
  local s stores victim netns ip
  s=$(label_of "$1")
  E2E_NS=sessionplane-compare-${s,,}
  E2E_SC="cmp"
  stores=0
  [[ $(strategy_of "$1") == Store ]] && stores=$(render_example "$1" | python3 -c 'import sys, yaml; print(yaml.safe_load(sys.stdin)["spec"]["store"]["replicas"])')
  start_example "$1" 3 "$stores" || { e2e_diagnostics; return 1; }
  e2e_log "$s: 3 frontends and $stores store pods Ready"

  ip=$(k -n "$E2E_NS" get service "$(e2e_frontend_service)" -o jsonpath='{.spec.clusterIP}')
  e2e_wait_routed "$ip"
  echo steady >"$WORK/phase"
  BASE_URL=http://$ip USERS=$USERS PHASE_FILE=$WORK/phase REPORT_JSON=$OUT/$s.json MAX_SECONDS=1200 \
    node "$E2E_REPO/tests/e2e/loadgen.mjs" >"$OUT/$s.log" 2>&1 &
  LG_PID=$!
  sleep "$STEADY"

  phase "$s" kill-frontend
  victim=$(frontends | awk 'NR == 1')
  k -n "$E2E_NS" delete pod "$victim" --grace-period=0 --force >/dev/null 2>&1
  sleep 2
  e2e_wait_ready 3 "$stores" "$STEP_TIMEOUT" || e2e_log "$s: not back to 3 frontends"
  sleep 5

  phase "$s" scale-to-6
  k -n "$E2E_NS" scale sessioncluster "$E2E_SC" --replicas=6 >/dev/null
  e2e_wait_ready 6 "$stores" "$STEP_TIMEOUT" || e2e_log "$s: not 6 frontends"
  sleep 5
  phase "$s" scale-to-2
  k -n "$E2E_NS" scale sessioncluster "$E2E_SC" --replicas=2 >/dev/null
  e2e_wait_ready 2 "$stores" "$STEP_TIMEOUT" || e2e_log "$s: not 2 frontends"
  sleep 5

  if [[ $(strategy_of "$1") == Store ]]; then
    phase "$s" kill-store-pod
    victim=$(k -n "$E2E_NS" get pods -l "app.kubernetes.io/instance=$E2E_SC,app.kubernetes.io/component=store" -o jsonpath='{.items[0].metadata.name}')
    k -n "$E2E_NS" delete pod "$victim" --grace-period=0 --force >/dev/null 2>&1
    sleep 2
    e2e_wait_ready 2 "$stores" "$STEP_TIMEOUT" || e2e_log "$s: store not back"
    sleep 5
  fi

  victim=$(frontends | awk 'NR == 1')
  if netns=$(pod_netns_pid "$victim"); then
    phase "$s" partition
    partition "$netns"
    e2e_log "$s: $victim (network namespace of pid $netns) cut off for ${PARTITION_SECONDS}s"
    sleep "$PARTITION_SECONDS"
    heal "$netns"
    phase "$s" healed
    sleep 10
  else
    e2e_log "$s: no network namespace found for $victim: partition skipped"
  fi

  phase "$s" stop
  wait "$LG_PID" || e2e_log "$s: the load generator reports violations (see $OUT/$s.log)"
  LG_PID=""
  tail -25 "$OUT/$s.log" >&2
  {
    echo "--- pods at the end"
    k -n "$E2E_NS" get pods -o wide
    echo "--- warning events"
    k -n "$E2E_NS" get events --field-selector type=Warning --sort-by=.lastTimestamp | tail -20
  } >>"$OUT/$s.log" 2>&1
  k delete namespace "$E2E_NS" --wait=false >/dev/null
}

# One line per frontend pod and counter: "pod metric value" (a pod whose metrics could not
# be read is left out, so its whole history is not taken for the window's traffic).
agent_counters() {
  local pod text
  for pod in $(frontends); do
    text=$(e2e_pod_metrics "$E2E_NS" "$pod" 9379)
    [[ -n $text ]] || text=$(sleep 1 && e2e_pod_metrics "$E2E_NS" "$pod" 9379)
    awk -v pod="$pod" '$1 ~ /^sessionplane_agent_(writes|push_messages_sent|push_records_sent|anti_entropy_messages|heartbeats_sent)_total$/ {print pod, $1, $2}' <<<"$text"
  done
}

# Replicated at 2, 4 and 8 frontends in one propagation mode: USERS users click for
# MESSAGE_SECONDS at each size; the agents' counters over that window give push messages,
# records and anti-entropy messages per write. Appends JSON lines to $OUT/replication-messages.jsonl.
replication_messages() { # propagation
  local mode=$1 n ip
  E2E_NS=sessionplane-compare-messages-${mode,,}
  E2E_SC="cmp"
  start_example "Replicated:$mode" 2 0 || { e2e_diagnostics; return 1; }
  ip=$(k -n "$E2E_NS" get service "$(e2e_frontend_service)" -o jsonpath='{.spec.clusterIP}')
  for n in 2 4 8; do
    k -n "$E2E_NS" scale sessioncluster "$E2E_SC" --replicas="$n" >/dev/null
    e2e_wait_ready "$n" 0 "$STEP_TIMEOUT" || { e2e_log "Replicated $mode: not $n frontends"; return 1; }
    e2e_wait_routed "$ip"
    sleep 3
    agent_counters >"$WORK/before"
    echo steady >"$WORK/phase"
    BASE_URL=http://$ip USERS=$USERS PHASE_FILE=$WORK/phase MAX_SECONDS=600 \
      node "$E2E_REPO/tests/e2e/loadgen.mjs" >"$OUT/messages-$mode-$n.log" 2>&1 &
    LG_PID=$!
    sleep "$MESSAGE_SECONDS"
    agent_counters >"$WORK/after"
    echo stop >"$WORK/phase"
    wait "$LG_PID" || e2e_log "Replicated $mode at $n: the load generator reports violations (see $OUT/messages-$mode-$n.log)"
    LG_PID=""
    python3 - "$mode" "$n" "$MESSAGE_SECONDS" "$WORK/before" "$WORK/after" >>"$OUT/replication-messages.jsonl" <<'PY'
import json, sys
mode, n, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def read(path):
    out = {}
    for line in open(path):
        pod, metric, value = line.split()
        name = metric.removeprefix("sessionplane_agent_").removesuffix("_total")
        out.setdefault(pod, {})[name] = float(value)
    return out
before, after = read(sys.argv[4]), read(sys.argv[5])
names = ["writes", "push_messages_sent", "push_records_sent", "anti_entropy_messages", "heartbeats_sent"]
# Only pods read in both snapshots, with every counter: their deltas are the window's.
pods = [p for p in after if p in before and all(k in before[p] and k in after[p] for k in names)]
d = {k: sum(after[p][k] - before[p][k] for p in pods) for k in names}
w = max(d["writes"], 1)
print(json.dumps({
    "propagation": mode, "frontends": n, "pods_counted": len(pods), "seconds": secs,
    "writes": d["writes"],
    "push_messages_per_write": round(d["push_messages_sent"] / w, 3),
    "push_records_per_write": round(d["push_records_sent"] / w, 3),
    "anti_entropy_messages_per_write": round(d["anti_entropy_messages"] / w, 3),
    "heartbeats_per_second": round(d["heartbeats_sent"] / secs, 1),
}))
PY
    e2e_log "Replicated $mode at $n frontends: $(tail -1 "$OUT/replication-messages.jsonl")"
  done
  k delete namespace "$E2E_NS" --wait=false >/dev/null
}

e2e_cluster_up
e2e_build_images
e2e_load_images
e2e_install_operator
for s in "${STRATEGIES[@]}"; do
  compare_one "$s" || e2e_log "$s: did not come up; left out of the report"
done
MESSAGES=0
[[ " ${STRATEGIES[*]} " == *" Replicated"* ]] && MESSAGES=1
if [[ ${COMPARE_MESSAGES:-$MESSAGES} == 1 ]]; then
  rm -f "$OUT/replication-messages.jsonl"
  for mode in Async Sync; do
    replication_messages "$mode" || e2e_log "Replicated $mode: message count incomplete"
  done
fi
node "$E2E_REPO/hack/compare/cookie_limit.mjs" >"$OUT/cookie-limit.json"
# The plot's one dependency, pinned; the tables need nothing.
python3 -c 'import matplotlib' 2>/dev/null || python3 -m pip install -q "matplotlib==3.11.2" >&2 || true
python3 "$E2E_REPO/hack/compare/report.py" "$OUT"
