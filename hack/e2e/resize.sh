# The store-resize part of hack/e2e/run.sh (sourced by it; uses its k, pass, fail, check,
# lg_phase and WORK): change spec.store under load, optionally kill the operator's leader or
# a store pod while partitions move, wait until the SessionCluster is Ready and no longer
# Migrating, and check what the ring did from its own record, the ConfigMap <cluster>-ring.
# shellcheck shell=bash

RESIZE_TIMEOUT=${E2E_RESIZE_TIMEOUT:-240}       # seconds per store change to settle
RING_EPSILON=${E2E_RING_EPSILON:-0.25}         # the operator's bounded-load slack (ring_driver/decide.rs)
KILL_MAX_WINDOW=${E2E_KILL_MAX_WINDOW:-60}     # seconds of failed requests allowed in a kill phase

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
    const failed = Array.isArray(s.failed) ? s.failed.length : Object.keys(s.failed ?? {}).length;
    const ok = !s.target && !learning && (s.draining ?? []).length === 0 && failed === 0 &&
      s.replicationFactor === Number(rf) && Object.keys(s.members).length === Number(stores) &&
      serving.size === Number(stores);
    process.exit(ok ? 0 : 1);
  ' "$@"
}

ring_epoch_of() { node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).epoch' "$1"; }

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

# A ring.json line (one line) that lists a learner: after the learner lists of partitions
# that have none ("learners":[[],[],...) one that starts with a name. Learners are listed
# only while a move is under way (the operator sets "target" with them).
MOVING_RE='"learners":\[(\[\],)*\["'

# Waits (bounded) until learners are being taught, and saves that ring state to $1. It
# watches the ConfigMap rather than polling it, and grep (not a bash read, which takes a
# ~100 KB line a byte at a time) picks the line, so what follows (a kill) lands within
# milliseconds of the operator writing the epoch that adds learners.
wait_moving() { # out-file seconds
  local fd watcher rc=1
  exec {fd}< <(exec timeout "$2" kubectl -n "$E2E_NS" get configmap "$(ring_cm)" --watch \
    -o jsonpath='{.data.ring\.json}{"\n"}' 2>/dev/null)
  watcher=$!
  grep -m1 -E "$MOVING_RE" <&"$fd" >"$1" && rc=0
  kill "$watcher" 2>/dev/null || true
  exec {fd}<&-
  return "$rc"
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

# SIGKILL of a pod's container processes (pids found beforehand, so that the kill follows
# the moment a migration is seen without a round trip to the API server): a crash, no
# graceful shutdown. Needs the local target; elsewhere the pod is deleted instead.
kill_container() { # pod namespace pids
  if [[ $E2E_TARGET != local ]]; then
    k -n "$2" delete pod "$1" --wait=false >/dev/null
    return
  fi
  [[ -n $3 ]] || return 1
  # shellcheck disable=SC2086 # one pid per word
  kill -9 $3 || return 1
  e2e_log "SIGKILL to the container of $2/$1 (pids ${3//$'\n'/ })"
}

lease_holder() {
  local lease
  lease=$(k -n "$E2E_OPERATOR_NS" get deployment -l app.kubernetes.io/instance=sessionplane -o \
    jsonpath='{.items[0].spec.template.spec.containers[0].env[?(@.name=="SESSIONPLANE_LEASE_NAME")].value}')
  k -n "$E2E_OPERATOR_NS" get lease "$lease" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null
}

# Chooses what a kill step kills, before the change: sets VICTIM, VICTIM_NS, VICTIM_PIDS.
#   kill-operator   the operator's leader (the Lease holder)
#   kill-store-pod  the primary of partition 0 before the change: a node that serves and
#                   is the snapshot source for learners
choose_victim() { # kill ring-state-file
  case $1 in
    kill-operator)
      VICTIM=$(lease_holder)
      VICTIM_NS=$E2E_OPERATOR_NS
      ;;
    kill-store-pod)
      VICTIM=$(node -e 'const s=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(s.replicas[0][0])' "$2")
      VICTIM_NS=$E2E_NS
      ;;
  esac
  [[ -n $VICTIM ]] || return 1
  VICTIM_PIDS=""
  if [[ $E2E_TARGET == local ]]; then
    VICTIM_PIDS=$(container_pids "$VICTIM" "$VICTIM_NS") || return 1
  fi
}

# Kills the chosen victim. The operator's leader gets SIGKILL (it cannot hand its Lease
# over) and then its pod is deleted, so the leader that resumes is another process under
# another identity (the standby replica or a new pod). A store pod's container crashes and
# restarts in the same pod, on the same volume.
# The ring state and (for the operator) the Lease holder are saved to $2 and $2.holder
# right after the kill, before the pod is deleted: a killed process writes nothing more,
# so that state is what the kill interrupted, whatever happens once the pod is gone.
kill_victim() { # kill state-file
  kill_container "$VICTIM" "$VICTIM_NS" "$VICTIM_PIDS" || return 1
  ring_state >"$2"
  if [[ $1 == kill-operator ]]; then
    lease_holder >"$2.holder" || true
    k -n "$VICTIM_NS" delete pod "$VICTIM" --grace-period=0 --force >/dev/null 2>&1 || true
  fi
}

# Keys beyond the users' sessions (E2E_STORE_KEYS, 20000 of 200 bytes), loaded before the
# resizes and read back after them: every move then copies data that takes the learners
# a moment (with 50 sessions alone a move can finish before a kill aimed at it lands),
# and no key may be lost or changed by any of them. Written and read in a frontend pod
# with the demo's Redis client (tests/e2e/store_keys.cjs).
STORE_KEYS=${E2E_STORE_KEYS:-20000}
store_keys() { # load|check
  local pod
  pod=$(k -n "$E2E_NS" get pods -l "app.kubernetes.io/instance=$E2E_SC,app.kubernetes.io/component=frontend" \
    --field-selector=status.phase=Running -o jsonpath='{.items[0].metadata.name}') || return 1
  k -n "$E2E_NS" exec "$pod" -- /usr/bin/node -e "$(cat "$E2E_REPO/tests/e2e/store_keys.cjs")" "$1" "$STORE_KEYS" \
    | tee -a "$WORK/store-keys.out"
  return "${PIPESTATUS[0]}"
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
  local after_kill=$WORK/ring-$1-after-kill.json
  ring_state >"$before"
  if [[ -n $kill ]] && ! choose_victim "$kill" "$before"; then
    fail "$phase: $kill: found nothing to kill"
    kill=""
  fi
  lg_phase "$phase"
  k -n "$E2E_NS" patch sessioncluster "$E2E_SC" --type merge \
    -p "{\"spec\":{\"store\":{\"replicas\":$stores,\"replicationFactor\":$rf}}}" >/dev/null
  e2e_log "spec.store: replicas=$stores replicationFactor=$rf"
  if [[ -n $kill ]]; then
    if wait_moving "$at_kill" "$RESIZE_TIMEOUT"; then
      lg_phase "$kill"
      if kill_victim "$kill" "$after_kill"; then
        # Learners still copying after the kill landed: what finishes the move happens
        # after it (for the operator: a dead leader writes nothing more, so it is the
        # process that took over).
        if ring_is moving <"$after_kill"; then
          pass "$phase: $kill ($VICTIM) while learners were copying (ring epoch $(ring_epoch_of "$at_kill"), $((SECONDS - t))s after the change; still copying after the kill)"
        else
          fail "$phase: $kill ($VICTIM): the move had already finished when the kill landed (not mid-migration; ring epoch $(ring_epoch_of "$at_kill") at the kill, $(ring_epoch_of "$after_kill") just after; Lease holder just after: $(cat "$after_kill.holder" 2>/dev/null || echo n/a))"
        fi
      else
        fail "$phase: $kill: could not kill $VICTIM"
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
    check "$phase: a new leader ($now) took over from the killed $VICTIM" test -n "$now" -a "$now" != "$VICTIM"
  fi
}

# Failed requests are allowed only in these phases, each with a bound on its failure
# window (seconds from the start of its first failed request to the end of its last):
# the kill phases, and the shrink, whose removed store pods close the frontends' store
# connections (the demo's client fails a command at once while it reconnects).
BOUNDED_PHASES=${E2E_BOUNDED_PHASES:-"delete-store-pod:$KILL_MAX_WINDOW kill-operator:$KILL_MAX_WINDOW kill-store-pod:$KILL_MAX_WINDOW store-5-to-2:${E2E_SHRINK_MAX_WINDOW:-10}"}

# A failed request belongs to the bounded phase it ended in (a request in flight when a
# pod is killed fails after the kill phase began), else to the one it started in; any
# other failed request fails the run. One check per bounded phase, with its count and window.
# The phase a request ended in comes from phase-times (when run.sh began each phase), since
# the load generator notices a new phase up to 200 ms late.
check_failure_windows() { # report.json phase-times
  local line verdict
  # shellcheck disable=SC2016 # JavaScript, not shell
  while IFS= read -r line; do
    verdict=${line%% *}
    if [[ $verdict == ok ]]; then pass "${line#ok }"; else fail "${line#bad }"; fi
  done < <(node -e '
    const r = require(process.argv[1]);
    const bounds = new Map(process.argv[2].trim().split(/\s+/).map((b) => {
      const [p, s] = b.split(":");
      return [p, Number(s)];
    }));
    const times = require("fs").readFileSync(process.argv[3], "utf8").trim().split("\n")
      .map((l) => l.split(" ")).map(([t, p]) => ({ t: Number(t), p }));
    const phaseAt = (ms) => times.filter((x) => x.t <= ms).pop()?.p ?? "steady";
    const owned = new Map([...bounds.keys()].map((p) => [p, []]));
    const stray = new Map();
    for (const f of r.failed_requests ?? []) {
      const ended = phaseAt(f.end);
      const owner = bounds.has(ended) ? ended : bounds.has(f.phase) ? f.phase : null;
      if (owner) owned.get(owner).push(f);
      else stray.set(f.phase, [...(stray.get(f.phase) ?? []), f]);
    }
    const kinds = (fs) => JSON.stringify(fs.reduce((a, f) => ({ ...a, [f.error]: (a[f.error] ?? 0) + 1 }), {}));
    for (const [p, fs] of owned) {
      const ran = r.phases.some((x) => x.phase === p);
      if (!ran) continue;
      const window = fs.length ? (Math.max(...fs.map((f) => f.end)) - Math.min(...fs.map((f) => f.start))) / 1000 : 0;
      const ok = window <= bounds.get(p);
      const moved = fs.filter((f) => f.phase !== p).length;
      console.log(`${ok ? "ok" : "bad"} ${p}: ${fs.length} failed requests within ${window.toFixed(1)} s (bound ${bounds.get(p)} s)${moved ? `, ${moved} of them started before it and failed during it` : ""} ${kinds(fs)}`);
    }
    for (const [p, fs] of stray) console.log(`bad ${p}: ${fs.length} requests failed outside the bounded phases ${kinds(fs)} ${JSON.stringify(fs[0].message ?? "")}`);
    const quiet = r.phases.map((x) => x.phase).filter((p) => !bounds.has(p) && !stray.has(p));
    console.log(`ok no failed request in the ${quiet.length} other phases: ${quiet.join(", ")}`);
  ' "$1" "$BOUNDED_PHASES" "$2")
}

# The operator's RingEpoch Events, for the report.
ring_events() {
  {
    echo "RingEpoch events of $E2E_SC:"
    k -n "$E2E_NS" get events --field-selector reason=RingEpoch --sort-by=.eventTime \
      -o custom-columns=TIME:.eventTime,SERIES:.series.count,FROM:.reportingInstance,MESSAGE:.message \
      --no-headers 2>/dev/null | sed 's/^/  /'
  } >>"$WORK/ring.out" || true
}
