# Strategy Replicated end to end, sourced by hack/e2e/run.sh (it uses run.sh's pass/fail/
# check, the load generator helpers and lib.sh): the Replicated example with propagation
# Sync (the load generator reaches the frontends through their Service, balanced per
# connection, so a user's next click may land on any pod: only Sync promises that it reads
# the last acknowledged write there); users click while the frontends scale 3 -> 6 -> 2 and
# a frontend pod is deleted. Shows: nobody logged out, no acknowledged write lost, and
# every agent's replication counters.
# shellcheck shell=bash

REPL_NS=sessionplane-e2e-replicated

replicated_agent_metrics() { # pod
  e2e_pod_metrics "$REPL_NS" "$1" 9379 |
    grep -E '^sessionplane_agent_(writes|push_messages_sent|push_records_sent|sync_writes_degraded|anti_entropy_keys_repaired|bootstrap_keys)_total' || true
}

replicated_e2e() {
  local t victim pod example
  example=$WORK/replicated.yaml
  sed 's/propagation: Async/propagation: Sync/' "$E2E_REPO/manifests/examples/replicated.yaml" >"$example"
  # lib.sh's helpers act on E2E_NS / E2E_SC / E2E_EXAMPLE: point them at this example.
  # shellcheck disable=SC2034
  E2E_NS=$REPL_NS E2E_SC=$(sed -n 's/^  name: \(.*\)$/\1/p' "$example" | head -1) E2E_EXAMPLE=$example
  check "kubectl apply of the Replicated example (propagation Sync)" e2e_apply_example
  t=$SECONDS
  if ! e2e_wait_ready 3 0 "$READY_TIMEOUT"; then
    fail "Replicated: 3 frontends Ready (agents bootstrapped) and SessionCluster Ready=True within ${READY_TIMEOUT}s"
    e2e_diagnostics
    return
  fi
  pass "Replicated: 3 frontends Ready, SessionCluster Ready=True, no store ($((SECONDS - t))s after apply)"

  lg_start
  sleep "$STEADY_SECONDS"
  check "Replicated: load generator running: $USERS users logged in" lg_alive

  lg_phase replicated-scale-to-6
  k -n "$E2E_NS" scale sessioncluster "$E2E_SC" --replicas=6 >/dev/null
  check "Replicated: scale 3 -> 6: 6 frontends Ready (each agent pulled the sessions first)" ready_within 6 0 "$STEP_TIMEOUT"
  lg_phase replicated-after-scale-6
  sleep 5

  lg_phase replicated-scale-to-2
  k -n "$E2E_NS" scale sessioncluster "$E2E_SC" --replicas=2 >/dev/null
  check "Replicated: scale 6 -> 2: 2 frontends, SessionCluster Ready" ready_within 2 0 "$STEP_TIMEOUT"
  lg_phase replicated-after-scale-2
  sleep 5

  lg_phase replicated-delete-frontend-pod
  victim=$(k -n "$E2E_NS" get pods -l "app.kubernetes.io/instance=$E2E_SC,app.kubernetes.io/component=frontend" -o jsonpath='{.items[0].metadata.name}')
  k -n "$E2E_NS" delete pod "$victim" --wait=false >/dev/null
  e2e_log "deleted frontend pod $victim"
  sleep 2
  check "Replicated: frontend pod $victim deleted: replaced, 2 frontends Ready again" ready_within 2 0 "$STEP_TIMEOUT"
  lg_phase replicated-steady-after
  sleep "$STEADY_SECONDS"

  lg_phase stop
  check "Replicated: every user still logged in with the last acknowledged counter, no acknowledged write lost" lg_finish
  for pod in $(k -n "$E2E_NS" get pods -l "app.kubernetes.io/instance=$E2E_SC,app.kubernetes.io/component=frontend" -o jsonpath='{.items[*].metadata.name}'); do
    e2e_log "agent metrics of $pod: $(replicated_agent_metrics "$pod" | tr '\n' ' ')"
  done
}
