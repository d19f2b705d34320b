# Strategy Store end to end, sourced by hack/e2e/run.sh (it uses run.sh's pass/fail/check,
# the load generator helpers and lib.sh): the Store example with the demo frontend; a browser
# logs in; 50 users click while the frontends scale 3 -> 6 -> 2, a frontend pod and a store
# pod are deleted, then the store resizes 3 -> 5 -> 2 -> 4 and its replicationFactor goes
# 2 -> 3 (hack/e2e/resize.sh), with the operator's leader killed during one migration and a
# store pod during another.
# shellcheck shell=bash

store_e2e() {
  local t victim
  check "kubectl apply of the Store example" e2e_apply_example

  t=$SECONDS
  if e2e_wait_ready 3 3 "$READY_TIMEOUT"; then
    pass "every pod Ready and SessionCluster Ready=True with frontend=3 store=3 ($((SECONDS - t))s after apply)"
  else
    fail "every pod Ready and SessionCluster Ready=True with frontend=3 store=3 within ${READY_TIMEOUT}s"
    e2e_diagnostics
    return 1
  fi

  if command -v chromium >/dev/null; then
    check "browser (headless Chromium through kubectl port-forward): log in, +1 three times, reload, counter 3" browser_check
  else
    e2e_log "no chromium: browser check skipped (apt-get install chromium)"
  fi

  lg_start
  sleep "$STEADY_SECONDS"
  check "load generator running: $USERS users logged in" lg_alive

  lg_phase scale-to-6
  k -n "$E2E_NS" scale sessioncluster "$E2E_SC" --replicas=6 >/dev/null
  check "scale 3 -> 6: 6 frontends Ready, SessionCluster Ready" ready_within 6 3 "$STEP_TIMEOUT"
  lg_phase after-scale-6
  sleep 5

  lg_phase scale-to-2
  k -n "$E2E_NS" scale sessioncluster "$E2E_SC" --replicas=2 >/dev/null
  check "scale 6 -> 2: 2 frontends, SessionCluster Ready" ready_within 2 3 "$STEP_TIMEOUT"
  lg_phase after-scale-2
  sleep 5

  lg_phase delete-frontend-pod
  victim=$(k -n "$E2E_NS" get pods -l "app.kubernetes.io/instance=$E2E_SC,app.kubernetes.io/component=frontend" -o jsonpath='{.items[0].metadata.name}')
  k -n "$E2E_NS" delete pod "$victim" --wait=false >/dev/null
  e2e_log "deleted frontend pod $victim"
  sleep 2
  check "frontend pod $victim deleted: replaced, 2 frontends Ready again" ready_within 2 3 "$STEP_TIMEOUT"
  lg_phase after-frontend-delete
  sleep 5

  lg_phase delete-store-pod
  victim=$(k -n "$E2E_NS" get pods -l "app.kubernetes.io/instance=$E2E_SC,app.kubernetes.io/component=store" -o jsonpath='{.items[0].metadata.name}')
  k -n "$E2E_NS" delete pod "$victim" --wait=false >/dev/null
  e2e_log "deleted store pod $victim"
  sleep 2
  check "store pod $victim deleted: back, 3 store pods Ready, SessionCluster Ready" ready_within 2 3 "$STEP_TIMEOUT"
  lg_phase steady-after
  sleep "$STEADY_SECONDS"

  # --- the store resizes under load (issue 5) ---------------------------------------------------
  # shellcheck source=hack/e2e/resize.sh
  source "$E2E_REPO/hack/e2e/resize.sh"
  # Each step measures its movement from a settled ring: whatever the store pod deletion
  # set in motion must be finished first.
  check "store ring settled before the resizes (store=3 rf=2, Migrating=False)" wait_store_settled 2 3 2 "$RESIZE_TIMEOUT"
  check "$STORE_KEYS keys beyond the sessions written before the resizes" store_keys load

  resize_step store-3-to-5 5 2 kill-operator
  lg_phase after-store-5
  sleep 5
  resize_step store-5-to-2 2 2
  lg_phase after-store-2
  sleep 5
  resize_step store-2-to-4 4 2 kill-store-pod
  lg_phase after-store-4
  sleep 5
  resize_step rf-2-to-3 4 3
  lg_phase steady-end
  sleep "$STEADY_SECONDS"

  check "every one of the $STORE_KEYS keys read back unchanged after the resizes" store_keys check
  lg_phase stop
  check "every user still logged in with the last acknowledged counter, no acknowledged write lost" lg_finish
  if [[ -f $WORK/report.json ]]; then
    check_failure_windows "$WORK/report.json" "$WORK/phase-times"
  fi
  ring_events
  check "SessionCluster Ready=True with frontend=2 store=4 at the end" e2e_ready 2 4
}
