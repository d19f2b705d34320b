#!/usr/bin/env bash
# End-to-end test: the operator (helm chart), the Store example and the demo frontend in a
# real cluster, with users staying logged in while the cluster changes under load.
#
#   1. cluster up (SESSIONPLANE_E2E_TARGET=local: hack/node/up.sh; kubeconfig: current one)
#   2. build both images (hack/image.sh, hack/e2e/demo-image.sh) and load them
#   3. helm install charts/sessionplane; kubectl apply manifests/examples/store.yaml
#   4. every pod Ready and the SessionCluster Ready=True with 3 frontends and 3 store pods
#   5. E2E_USERS users (50) log in through the frontend Service and increment counters while
#      the frontends scale 3 -> 6 -> 2, a frontend pod and a store pod are deleted, then the
#      store resizes 3 -> 5 -> 2 -> 4 and its replicationFactor goes 2 -> 3, with the
#      operator's leader killed during one migration and a store pod during another
#   6. every user still logged in, counter == last acknowledged value (+ at most the
#      increments whose answer was lost), no acknowledged write lost; no failed request
#      outside the kill phases, and there only within E2E_KILL_MAX_WINDOW; every resize moves
#      at most (1+eps) x the minimum of partition replicas; report per phase
#   7. strategy Client (hack/e2e/client.sh): the Client example under load while the
#      operator rotates the cookie keyring; nobody logged out, no pod restarted
#   8. strategy Sticky (hack/e2e/sticky.sh): the Sticky example (agents in the frontend
#      pods, replicationFactor 1) under load while the frontends scale 3 -> 6 -> 2 and a
#      frontend pod is deleted; every session handed off, nobody logged out, no write lost
#   9. strategy Replicated (hack/e2e/replicated.sh): the Replicated example (propagation
#      Sync) under load while the frontends scale 3 -> 6 -> 2 and a frontend pod is
#      deleted; nobody logged out, no acknowledged write lost
#  10. routing and affinity through Traefik built from source, and kube-proxy's ClientIP
#      affinity from several source addresses, with numbers; a browser through Traefik while
#      the store resizes and the frontends scale (hack/e2e/routing.sh)
#   Steps 3-6 are the scenario "store" (hack/e2e/store.sh), 7 "client", 8 "sticky",
#   9 "replicated", 10 "routing".
#   E2E_SCENARIOS="store client sticky replicated routing" (the default) picks and orders them.
#
#   hack/e2e/run.sh [--teardown]    (--teardown: hack/node/down.sh afterwards, local only)
# Prints "N passed, N failed" last; exits non-zero when anything failed.
set -euo pipefail
# shellcheck source=hack/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TEARDOWN=false
[[ ${1:-} == --teardown ]] && TEARDOWN=true
USERS=${E2E_USERS:-50}
READY_TIMEOUT=${E2E_READY_TIMEOUT:-300}
STEP_TIMEOUT=${E2E_STEP_TIMEOUT:-120}
STEADY_SECONDS=${E2E_STEADY_SECONDS:-15}
# Two operator replicas: killing the leader hands the migration to the standby (a new leader).
export E2E_OPERATOR_REPLICAS=${E2E_OPERATOR_REPLICAS:-2}
WORK=$(mktemp -d /tmp/sessionplane-e2e.XXXXXX)
PASSED=0
FAILED=0
RESULTS=()
LG_PID=""
LG_POD=e2e-loadgen

pass() { PASSED=$((PASSED + 1)); RESULTS+=("PASS $*"); e2e_log "PASS $*"; }
fail() { FAILED=$((FAILED + 1)); RESULTS+=("FAIL $*"); e2e_log "FAIL $*"; }
check() { # description cmd...
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

finish() {
  local rc=$?
  if [[ -n $LG_PID ]]; then kill "$LG_PID" 2>/dev/null || true; fi
  if ((rc != 0 && FAILED == 0)); then
    FAILED=1
    RESULTS+=("FAIL aborted (exit $rc): see the ERROR above")
  fi
  echo
  echo "=== sessionplane e2e ($E2E_TARGET) ==="
  printf '%s\n' "${RESULTS[@]}"
  [[ -f $WORK/loadgen.out ]] && { echo; cat "$WORK/loadgen.out"; }
  [[ -s $WORK/ring.out ]] && { echo; cat "$WORK/ring.out"; }
  if $TEARDOWN && [[ $E2E_TARGET == local ]]; then
    "$E2E_REPO/hack/node/down.sh" >&2 || FAILED=$((FAILED + 1))
  fi
  rm -rf "$WORK"
  echo "total time: $((SECONDS - E2E_T0))s"
  echo "$PASSED passed, $FAILED failed"
  ((FAILED == 0 && rc == 0)) || exit 1
}
trap finish EXIT

# --- load generator: a host process (local) or a pod (kubeconfig) --------------------------

lg_start() {
  local svc ip
  svc=$(e2e_frontend_service)
  if [[ $E2E_TARGET == local ]]; then
    ip=$(k -n "$E2E_NS" get service "$svc" -o jsonpath='{.spec.clusterIP}')
    echo steady >"$WORK/phase"
    BASE_URL=http://$ip USERS=$USERS PHASE_FILE=$WORK/phase REPORT_JSON=$WORK/report.json MAX_SECONDS=1800 \
      node "$E2E_REPO/tests/e2e/loadgen.mjs" >"$WORK/loadgen.out" 2>&1 &
    LG_PID=$!
  else
    # The demo image has Node.js; the load generator comes in through a ConfigMap.
    k -n "$E2E_NS" create configmap e2e-loadgen --from-file="$E2E_REPO/tests/e2e/loadgen.mjs" \
      --dry-run=client -o yaml | k apply -f - >/dev/null
    k -n "$E2E_NS" delete pod "$LG_POD" --ignore-not-found --wait=true >/dev/null
    k -n "$E2E_NS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $LG_POD, labels: {app: e2e-loadgen}}
spec:
  restartPolicy: Never
  securityContext: {runAsNonRoot: true, runAsUser: 65532}
  containers:
  - name: loadgen
    image: $("$E2E_REPO/hack/e2e/demo-image.sh" ref)
    imagePullPolicy: IfNotPresent
    command: [/usr/bin/node, /loadgen/loadgen.mjs]
    env:
    - {name: BASE_URL, value: "http://$svc.$E2E_NS.svc"}
    - {name: USERS, value: "$USERS"}
    - {name: PHASE_FILE, value: /work/phase}
    - {name: MAX_SECONDS, value: "1800"}
    volumeMounts:
    - {name: code, mountPath: /loadgen}
    - {name: work, mountPath: /work}
  volumes:
  - {name: code, configMap: {name: e2e-loadgen}}
  - {name: work, emptyDir: {}}
YAML
    e2e_wait "the load generator pod running" 60 bash -c "[[ \$(kubectl -n $E2E_NS get pod $LG_POD -o jsonpath='{.status.phase}') == Running ]]"
  fi
}

lg_phase() { # name
  e2e_log "phase: $1"
  # When each phase began by this machine's clock: the loadgen reads the phase file only
  # every 200 ms, so failures are attributed by time (hack/e2e/resize.sh).
  echo "$(date +%s%3N) $1" >>"$WORK/phase-times"
  if [[ $E2E_TARGET == local ]]; then
    echo "$1" >"$WORK/phase"
  else
    k -n "$E2E_NS" exec "$LG_POD" -- /usr/bin/node -e 'require("fs").writeFileSync("/work/phase", process.argv[1])' "$1"
  fi
}

# Waits (bounded) for the load generator to finish; 0 when it passed.
lg_finish() {
  local i rc=1
  if [[ $E2E_TARGET == local ]]; then
    for ((i = 0; i < 120; i++)); do
      kill -0 "$LG_PID" 2>/dev/null || break
      sleep 1
    done
    if kill -0 "$LG_PID" 2>/dev/null; then
      kill "$LG_PID"
      echo "loadgen: killed after 120 s without a result" >>"$WORK/loadgen.out"
    fi
    wait "$LG_PID" && rc=0 || rc=$?
    LG_PID=""
  else
    for ((i = 0; i < 120; i++)); do
      case $(k -n "$E2E_NS" get pod "$LG_POD" -o jsonpath='{.status.phase}') in
        Succeeded) rc=0; break ;;
        Failed) rc=1; break ;;
      esac
      sleep 1
    done
    k -n "$E2E_NS" logs "$LG_POD" >"$WORK/loadgen.out" 2>&1 || true
  fi
  # The next scenario's load generator writes the same file: a failed run's report goes
  # to the log now, or the summary at the end would show only the last scenario's.
  if ((rc != 0)); then
    e2e_log "load generator exited $rc; its report:"
    sed 's/^/  loadgen| /' "$WORK/loadgen.out" >&2 || true
    # What went wrong, in the summary too (a CI log may keep only the summary).
    local line
    while IFS= read -r line; do
      RESULTS+=("     loadgen: $line")
    done < <(grep -E '^(  BAD |  (lost write|phantom write|logged out) |final read|violations|loadgen: (FAIL|killed|Error))' \
      "$WORK/loadgen.out" | head -12)
  fi
  return "$rc"
}

ready_within() { e2e_wait_ready "$1" "$2" "$3"; }
lg_alive() {
  if [[ $E2E_TARGET == local ]]; then kill -0 "$LG_PID" 2>/dev/null; else
    [[ $(k -n "$E2E_NS" get pod "$LG_POD" -o jsonpath='{.status.phase}') == Running ]]
  fi
}

browser_check() {
  local port=$((18100 + RANDOM % 800)) pf rc=0
  k -n "$E2E_NS" port-forward "svc/$(e2e_frontend_service)" "$port:80" >"$WORK/port-forward.log" 2>&1 &
  pf=$!
  e2e_wait "the port-forward" 20 curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" || rc=1
  if ((rc == 0)); then
    timeout 120 node --experimental-websocket --no-warnings "$E2E_REPO/tests/e2e/browser_check.mjs" \
      "http://127.0.0.1:$port" "${E2E_SCREENSHOTS:-$WORK}" >&2 || rc=1
  fi
  kill "$pf" 2>/dev/null || true
  wait "$pf" 2>/dev/null || true
  return "$rc"
}

# --- the test --------------------------------------------------------------------------------

t=$SECONDS
e2e_cluster_up
pass "cluster up ($E2E_TARGET) in $((SECONDS - t))s"

t=$SECONDS
e2e_build_images
e2e_load_images
pass "images built and loaded in $((SECONDS - t))s"

check "helm install of charts/sessionplane ($E2E_OPERATOR_REPLICAS operator replicas)" e2e_install_operator

# --- scenarios -------------------------------------------------------------------------------
# Each scenario is a function in its own file, run against the same cluster and operator.
# E2E_SCENARIOS picks and orders them (e.g. E2E_SCENARIOS=client to run one alone).
E2E_SCENARIOS=${E2E_SCENARIOS:-store client sticky replicated routing}
E2E_DEFAULT_NS=$E2E_NS E2E_DEFAULT_SC=$E2E_SC E2E_DEFAULT_EXAMPLE=$E2E_EXAMPLE
for scenario in $E2E_SCENARIOS; do
  # Each scenario starts from lib.sh's defaults (the Store example); some repoint them, and
  # the next one must not inherit that (routing after sticky applied the Sticky example).
  E2E_NS=$E2E_DEFAULT_NS E2E_SC=$E2E_DEFAULT_SC E2E_EXAMPLE=$E2E_DEFAULT_EXAMPLE
  case $scenario in
    store)
      # shellcheck source=hack/e2e/store.sh
      source "$E2E_REPO/hack/e2e/store.sh"
      store_e2e
      ;;
    client)
      # shellcheck source=hack/e2e/client.sh
      source "$E2E_REPO/hack/e2e/client.sh"
      client_e2e
      ;;
    replicated)
      # shellcheck source=hack/e2e/replicated.sh
      source "$E2E_REPO/hack/e2e/replicated.sh"
      replicated_e2e
      ;;
    sticky)
      # shellcheck source=hack/e2e/sticky.sh
      source "$E2E_REPO/hack/e2e/sticky.sh"
      sticky_e2e
      ;;
    routing)
      # shellcheck source=hack/e2e/routing.sh
      source "$E2E_REPO/hack/e2e/routing.sh"
      routing_e2e
      ;;
    *) fail "unknown scenario '$scenario' in E2E_SCENARIOS" ;;
  esac
done
