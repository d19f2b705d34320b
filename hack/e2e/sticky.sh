# Strategy Sticky end to end, sourced by hack/e2e/run.sh (it uses run.sh's pass/fail/check
# and lib.sh): the Sticky example (replicationFactor 1) with the demo frontend; users log in
# and click through the frontend Service while the frontends scale 3 -> 6 -> 2 and a
# frontend pod is deleted. Shows:
#   - the agents form a ring over the frontend pods (status.ring.members = the pods);
#   - a request on a non-owner finds its session: kube-proxy's ClientIP affinity sends all of
#     the host's requests to one frontend while every ring member holds sessions, so most
#     requests are forwarded to their owner;
#   - a leaving pod hands its sessions over before it exits (the only copy with factor 1):
#     afterwards every user is still logged in with the last acknowledged counter, no
#     acknowledged write lost; the time from the scale-down / deletion until the leaving
#     pods are gone is reported as the handoff time, with failed requests per phase.
# The load generator runs on the host, so this scenario needs the local target.
# shellcheck shell=bash

STICKY_NS=sessionplane-e2e-sticky
STICKY_EXAMPLE=$E2E_REPO/manifests/examples/sticky.yaml
STICKY_SC=$(sed -n 's/^  name: \(.*\)$/\1/p' "$STICKY_EXAMPLE" | head -1)
STICKY_USERS=${E2E_STICKY_USERS:-30}
STICKY_SELECTOR="app.kubernetes.io/instance=$STICKY_SC,app.kubernetes.io/component=frontend"

sticky_pods() { # all frontend pods, terminating ones included
  k -n "$STICKY_NS" get pods -l "$STICKY_SELECTOR" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}'
}

sticky_pod_count() { sticky_pods | grep -c . || true; }

sticky_phase() { # dir name
  e2e_log "phase: $2"
  echo "$(date +%s%3N) $2" >>"$1/phase-times"
  echo "$2" >"$1/phase"
}

# status.ring.members equals the running, non-terminating frontend pods, and the ring is
# steady (Ready=True).
sticky_ring_is_pods() {
  local members pods
  members=$(k -n "$STICKY_NS" get sessioncluster "$STICKY_SC" -o jsonpath='{.status.ring.members[*]}' | tr ' ' '\n' | sort)
  pods=$(k -n "$STICKY_NS" get pods -l "$STICKY_SELECTOR" \
    -o jsonpath='{range .items[*]}{.metadata.name} {.metadata.deletionTimestamp}{"\n"}{end}' | awk 'NF == 1 {print $1}' | sort)
  [[ -n $members && $members == "$pods" ]]
}

# Keys every agent holds, "pod=keys ...", from each agent's admin API at the pod IP.
sticky_agent_keys() {
  local pod ip keys out=""
  while read -r pod ip; do
    [[ -n $ip ]] || continue
    keys=$(curl -s -m 3 "http://$ip:9379/v1/status" | node -e 'let s="";process.stdin.on("data",(c)=>s+=c).on("end",()=>{try{console.log(JSON.parse(s).keys)}catch{console.log("?")}})')
    out+="$pod=$keys "
  done < <(k -n "$STICKY_NS" get pods -l "$STICKY_SELECTOR" -o jsonpath='{range .items[*]}{.metadata.name} {.status.podIP}{"\n"}{end}')
  echo "$out"
}

# Waits until exactly $1 frontend pods exist (terminating ones gone); prints the seconds.
sticky_wait_pods_gone() { # count timeout
  local t=$SECONDS deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    if [[ $(sticky_pod_count) == "$1" ]]; then
      echo $((SECONDS - t))
      return 0
    fi
    sleep 1
  done
  return 1
}

sticky_e2e() {
  if [[ $E2E_TARGET != local ]]; then
    fail "Sticky scenario: needs the local target (its load generator runs on the host)"
    return
  fi
  # lib.sh's helpers act on E2E_NS / E2E_SC / E2E_EXAMPLE: point them at the Sticky example.
  E2E_NS=$STICKY_NS E2E_SC=$STICKY_SC E2E_EXAMPLE=$STICKY_EXAMPLE
  check "kubectl apply of the Sticky example" e2e_apply_example
  local t=$SECONDS
  if ! e2e_wait_ready 3 0 "$READY_TIMEOUT"; then
    fail "Sticky: 3 frontends Ready (agents in a ring) and SessionCluster Ready=True within ${READY_TIMEOUT}s"
    e2e_diagnostics
    return
  fi
  pass "Sticky: 3 frontends Ready with their agents, SessionCluster Ready=True ($((SECONDS - t))s after apply)"
  check "Sticky: status.ring.members are the 3 frontend pods" e2e_wait "ring members = pods" 60 sticky_ring_is_pods

  local sw=$WORK/sticky ip pid took victim
  mkdir -p "$sw"
  : >"$sw/phase-times"
  ip=$(k -n "$STICKY_NS" get service "$STICKY_SC-frontend" -o jsonpath='{.spec.clusterIP}')
  sticky_phase "$sw" steady
  BASE_URL=http://$ip USERS=$STICKY_USERS PHASE_FILE=$sw/phase REPORT_JSON=$sw/report.json MAX_SECONDS=1200 \
    node "$E2E_REPO/tests/e2e/loadgen.mjs" >"$sw/loadgen.out" 2>&1 &
  pid=$!
  sleep "$STEADY_SECONDS"
  check "Sticky: load generator running, $STICKY_USERS users logged in" kill -0 "$pid"

  # Forwarding: the host's requests all go to one frontend (ClientIP affinity), yet every
  # agent of the ring owns sessions.
  local keys
  keys=$(sticky_agent_keys)
  e2e_log "sessions per agent: $keys"
  check "Sticky: every agent owns sessions although one frontend takes all requests ($keys)" \
    bash -c "[[ '$keys' != *'=0 '* && '$keys' != *'=? '* && \$(wc -w <<<'$keys') == 3 ]]"

  sticky_phase "$sw" scale-to-6
  t=$SECONDS
  k -n "$STICKY_NS" scale sessioncluster "$STICKY_SC" --replicas=6 >/dev/null
  if e2e_wait_ready 6 0 "$STEP_TIMEOUT"; then
    pass "Sticky: scale 3 -> 6: 6 frontends Ready, ring steady ($((SECONDS - t))s)"
  else
    fail "Sticky: scale 3 -> 6 within ${STEP_TIMEOUT}s"
    e2e_diagnostics
  fi
  check "Sticky: status.ring.members are the 6 frontend pods" e2e_wait "ring members = pods" 60 sticky_ring_is_pods
  sticky_phase "$sw" after-scale-6
  sleep 5

  sticky_phase "$sw" scale-to-2
  t=$SECONDS
  k -n "$STICKY_NS" scale sessioncluster "$STICKY_SC" --replicas=2 >/dev/null
  if took=$(sticky_wait_pods_gone 2 "$STEP_TIMEOUT"); then
    pass "Sticky: scale 6 -> 2: the 4 leaving pods handed off and were gone ${took}s after the scale-down"
  else
    fail "Sticky: scale 6 -> 2: leaving pods still there after ${STEP_TIMEOUT}s"
    e2e_diagnostics
  fi
  check "Sticky: 2 frontends Ready, ring steady after the scale-down" e2e_wait_ready 2 0 "$STEP_TIMEOUT"
  check "Sticky: status.ring.members are the 2 frontend pods" e2e_wait "ring members = pods" 60 sticky_ring_is_pods
  sticky_phase "$sw" after-scale-2
  sleep 5

  sticky_phase "$sw" delete-frontend-pod
  victim=$(sticky_pods | awk 'NR == 1') # not head: kubectl would die of SIGPIPE under pipefail
  t=$SECONDS
  k -n "$STICKY_NS" delete pod "$victim" --wait=false >/dev/null
  e2e_log "deleted frontend pod $victim"
  if e2e_wait "pod $victim gone" "$STEP_TIMEOUT" bash -c "! kubectl -n $STICKY_NS get pod $victim >/dev/null 2>&1"; then
    pass "Sticky: deleted pod $victim handed off and was gone $((SECONDS - t))s after the deletion"
  else
    fail "Sticky: deleted pod $victim still there after ${STEP_TIMEOUT}s"
  fi
  check "Sticky: replaced, 2 frontends Ready, ring steady" e2e_wait_ready 2 0 "$STEP_TIMEOUT"
  check "Sticky: status.ring.members are the 2 frontend pods" e2e_wait "ring members = pods" 60 sticky_ring_is_pods
  sticky_phase "$sw" steady-after
  sleep "$STEADY_SECONDS"

  sticky_phase "$sw" stop
  local rc=0 i
  for ((i = 0; i < 120; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill "$pid" 2>/dev/null || true
  wait "$pid" || rc=$?
  check "Sticky: every user still logged in with the last acknowledged counter, no acknowledged write lost (load generator)" test "$rc" -eq 0
  local failures
  # shellcheck disable=SC2016 # JavaScript, not shell
  failures=$(node -e 'const r=require(process.argv[1]); console.log(r.phases.map((p)=>`${p.phase}=${p.failures}`).join(" "))' "$sw/report.json" 2>/dev/null || echo "?")
  e2e_log "Sticky: failed requests per phase: $failures"
  check "Sticky: no failed request in any phase ($failures)" \
    node -e 'process.exit(require(process.argv[1]).total.failures === 0 ? 0 : 1)' "$sw/report.json"
  {
    echo
    echo "--- Sticky scenario load generator"
    cat "$sw/loadgen.out"
    echo
    echo "--- Sticky ring events"
    k -n "$STICKY_NS" get events --field-selector reason=RingEpoch --sort-by=.metadata.creationTimestamp \
      -o custom-columns=TIME:.metadata.creationTimestamp,MESSAGE:.message --no-headers 2>/dev/null | cut -c1-200
  } >>"$WORK/loadgen.out"
}
