# The store-resize part of hack/e2e/run.sh (sourced by it; uses its k, pass, fail, check,
# lg_phase and WORK): change spec.store under load, optionally kill the operator's leader or
# a store pod while partitions move, wait until the SessionCluster is Ready and no longer
# Migrating, and check what the ring did from its own record, the ConfigMap <cluster>-ring.
# shellcheck shell=bash

RESIZE_TIMEOUT=${E2E_RESIZE_TIMEOUT:-240}       # seconds per store change to settle
RING_EPSILON=${E2E_RING_EPSILON:-0.25}         # the operator's bounded-load slack (ring_driver/decide.rs)
KILL_MAX_WINDOW=${E2E_KILL_MAX_WINDOW:-60}     # seconds of failed requests allowed in a kill phase
KILL_PHASES=" delete-store-pod kill-store-pod kill-operator " # the only phases where requests may fail

ring_cm() { echo "$E2E_SC-ring"; }

# The ring state the operator keeps (ring.json of the ConfigMap), or nothing.
ring_state() {
  k -n "$E2E_NS" get configmap "$(ring_cm)" -o jsonpath='{.data.ring\.json}' 2>/dev/null
}

# Reads a ring state on stdin and answers a question about it (exit status).
#   settled STORES RF   no move under way (no target, learners or draining nodes), RF as
#                       given, and exactly STORES members, all serving
#   moving              learners are being taught (a target placement is set)
ring_is() {
  node -e '
    const [what, stores, rf] = process.argv.slice(1);
    let s;
    try { s = JSON.parse(require("fs").readFileSync(0, "utf8")); } catch { process.exit(1); }
    const learning = (s.learners ?? []).some((l) => l.length > 0);
    if (what === "moving") process.exit(s.target && learning ? 0 : 1);
    const serving = new Set(s.replicas.flat());
    const ok = !s.target && !learning && (s.draining ?? []).length === 0 &&
      s.replicationFactor === Number(rf) && Object.keys(s.members).length === Number(stores) &&
      serving.size === Number(stores);
    process.exit(ok ? 0 : 1);
  ' "$@"
}

# "generation observedGeneration Migrating-status" of the SessionCluster.
sc_generation_state() {
  k -n "$E2E_NS" get sessioncluster "$E2E_SC" -o \
    jsonpath='{.metadata.generation} {.status.observedGeneration} {.status.conditions[?(@.type=="Migrating")].status}' 2>/dev/null
}

# Everything settled after a store change: pods and SessionCluster Ready (e2e_ready), the
# status written for the current generation with Migrating=False, and the ring itself at
# the wanted size and replication factor with nothing moving.
store_settled() { # frontends stores rf
  local gen observed migrating
  e2e_ready "$1" "$2" || return 1
  read -r gen observed migrating <<<"$(sc_generation_state)"
  [[ -n $gen && $gen == "$observed" && $migrating == False ]] || return 1
  ring_state | ring_is settled "$2" "$3"
}

wait_store_settled() { # frontends stores rf seconds
  local deadline=$((SECONDS + $4))
  while ((SECONDS < deadline)); do
    store_settled "$1" "$2" "$3" && return 0
    sleep 1
  done
  e2e_log "not settled after ${4}s (want frontend=$1 store=$2 rf=$3): SessionCluster says $(e2e_sc_state) / $(sc_generation_state)"
  e2e_diagnostics
  return 1
}

# Waits (bounded) until learners are being taught, and saves that ring state to $1.
wait_moving() { # out-file seconds
  local deadline=$((SECONDS + $2)) json
  while ((SECONDS < deadline)); do
    json=$(ring_state) || json=""
    if [[ -n $json ]] && ring_is moving <<<"$json"; then
      printf '%s' "$json" >"$1"
      return 0
    fi
    sleep 0.2
  done
  return 1
}

# Host pids of a pod's first container (local target: the node's containers are processes
# of this machine, found through the container id in their cgroup path).
container_pids() { # pod namespace
  local cid
  cid=$(k -n "$2" get pod "$1" -o jsonpath='{.status.containerStatuses[0].containerID}')
  cid=${cid#*://}
  [[ -n $cid ]] || return 1
  grep -l -- "$cid" /proc/[0-9]*/cgroup 2>/dev/null | cut -d/ -f3
}

# SIGKILL of a pod's container processes: a crash, no graceful shutdown. Needs the local
# target (the processes must be visible); elsewhere the pod is deleted instead.
kill_container() { # pod namespace
  local pids
  if [[ $E2E_TARGET != local ]]; then
    k -n "$2" delete pod "$1" --wait=false >/dev/null
    return
  fi
  pids=$(container_pids "$1" "$2") || return 1
  [[ -n $pids ]] || return 1
  # shellcheck disable=SC2086 # one pid per word
  kill -9 $pids
  e2e_log "SIGKILL to the container of $2/$1 (pids ${pids//$'\n'/ })"
}

lease_holder() {
  local lease
  lease=$(k -n "$E2E_OPERATOR_NS" get deployment -l app.kubernetes.io/instance=sessionplane -o \
    jsonpath='{.items[0].spec.template.spec.containers[0].env[?(@.name=="SESSIONPLANE_LEASE_NAME")].value}')
  k -n "$E2E_OPERATOR_NS" get lease "$lease" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null
}

# Kills the operator's leader mid-migration: SIGKILL (it cannot hand its Lease over), then
# its pod is deleted, so the leader that resumes is the standby replica or a new pod.
kill_operator_leader() { # -> sets KILLED
  KILLED=$(lease_holder)
  [[ -n $KILLED ]] || { e2e_log "no Lease holder found"; return 1; }
  kill_container "$KILLED" "$E2E_OPERATOR_NS" || true
  k -n "$E2E_OPERATOR_NS" delete pod "$KILLED" --grace-period=0 --force >/dev/null 2>&1 || true
  e2e_log "killed the operator's leader $KILLED"
}

# Kills a store node that serves and is the snapshot source of learners: the primary of
# partition 0 in the ring state at hand (its container crashes and restarts, same volume).
kill_store_source() { # ring-state-file -> sets KILLED
  KILLED=$(node -e 'const s=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(s.replicas[0][0])' "$1")
  [[ -n $KILLED ]] || return 1
  kill_container "$KILLED" "$E2E_NS"
}

# One store change under load:
#   resize_step PHASE STORES RF [kill-operator|kill-store-pod]
# Saves the ring state before and after, checks the movement against the minimum, and with
# a kill: that it happened while learners were being taught, that the ring then reached
# exactly the placement that was being moved to (resumed, not started over), and for the
# operator that another process leads now.
resize_step() {
  local phase=$1 stores=$2 rf=$3 kill=${4:-} t=$SECONDS before=$WORK/ring-$1-before.json
  local after=$WORK/ring-$1-after.json at_kill=$WORK/ring-$1-at-kill.json moves took
  ring_state >"$before"
  lg_phase "$phase"
  k -n "$E2E_NS" patch sessioncluster "$E2E_SC" --type merge \
    -p "{\"spec\":{\"store\":{\"replicas\":$stores,\"replicationFactor\":$rf}}}" >/dev/null
  e2e_log "spec.store: replicas=$stores replicationFactor=$rf"
  if [[ -n $kill ]]; then
    if wait_moving "$at_kill" "$RESIZE_TIMEOUT"; then
      lg_phase "$kill"
      KILLED=""
      local killed=0
      case $kill in
        kill-operator) kill_operator_leader && killed=1 ;;
        kill-store-pod) kill_store_source "$at_kill" && killed=1 ;;
      esac
      if ((killed)); then
        pass "$phase: $kill ($KILLED) while learners were copying (ring epoch $(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).epoch' "$at_kill"), $((SECONDS - t))s after the change)"
      else
        fail "$phase: $kill: could not kill ${KILLED:-anything}"
      fi
    else
      fail "$phase: no migration in progress seen within ${RESIZE_TIMEOUT}s, so nothing was killed mid-migration"
      kill=""
    fi
  fi
  if wait_store_settled 2 "$stores" "$rf" "$RESIZE_TIMEOUT"; then
    took=$((SECONDS - t))
    pass "$phase: store=$stores rf=$rf, SessionCluster Ready, Migrating=False, ring settled (${took}s)"
  else
    fail "$phase: store=$stores rf=$rf settled within ${RESIZE_TIMEOUT}s"
    return 0
  fi
  ring_state >"$after"
  moves=$(node "$E2E_REPO/tests/e2e/ring_moves.mjs" "$before" "$after" "$RING_EPSILON") || true
  echo "$phase: $moves (${took}s)" >>"$WORK/ring.out"
  check "$phase: partition replicas moved within (1+$RING_EPSILON)x the minimum: $moves" \
    node -e 'process.exit(JSON.parse(process.argv[1]).within ? 0 : 1)' "$moves"
  if [[ -n $kill ]]; then
    check "$phase: after $kill the ring reached the placement it was moving to (resumed, not restarted)" \
      node -e '
        const fs = require("fs");
        const k = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
        const a = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
        process.exit(a.epoch > k.epoch && JSON.stringify(a.replicas) === JSON.stringify(k.target) ? 0 : 1);
      ' "$at_kill" "$after"
  fi
  if [[ $kill == kill-operator ]]; then
    local now
    now=$(lease_holder)
    check "$phase: a new leader ($now) took over from the killed $KILLED" test -n "$now" -a "$now" != "$KILLED"
  fi
}

# Per phase: no failed request, except in the kill phases, and there only within
# KILL_MAX_WINDOW seconds (first failed request started .. last one ended).
check_failure_windows() { # report.json
  local line verdict
  # shellcheck disable=SC2016 # JavaScript, not shell
  while IFS= read -r line; do
    verdict=${line%% *}
    if [[ $verdict == ok ]]; then pass "${line#ok }"; else fail "${line#bad }"; fi
  done < <(node -e '
    const r = require(process.argv[1]);
    const kills = process.argv[2].trim().split(/\s+/);
    const max = Number(process.argv[3]);
    const quiet = [];
    for (const p of r.phases) {
      if (kills.includes(p.phase)) {
        const ok = p.fail_window_s <= max;
        console.log(`${ok ? "ok" : "bad"} ${p.phase}: ${p.failures} of ${p.requests} requests failed, all within ${p.fail_window_s} s (bound ${max} s) ${JSON.stringify(p.errors)}`);
      } else if (p.phase !== "stop") {
        if (p.failures > 0) console.log(`bad ${p.phase}: ${p.failures} of ${p.requests} requests failed outside a kill phase ${JSON.stringify(p.errors)}`);
        else quiet.push(p.phase);
      }
    }
    console.log(`ok no failed request in ${quiet.length} phases: ${quiet.join(", ")}`);
  ' "$1" "$KILL_PHASES" "$KILL_MAX_WINDOW")
}

# The operator's RingEpoch Events, for the report.
ring_events() {
  {
    echo "RingEpoch events of $E2E_SC:"
    k -n "$E2E_NS" get events --field-selector reason=RingEpoch --sort-by=.lastTimestamp \
      -o custom-columns=TIME:.lastTimestamp,MESSAGE:.message --no-headers 2>/dev/null | sed 's/^/  /'
  } >>"$WORK/ring.out" || true
}
