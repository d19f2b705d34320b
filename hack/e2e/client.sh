# Strategy Client end to end, sourced by hack/e2e/run.sh after the Store scenario (it uses
# run.sh's pass/fail/check and lib.sh): the Client example with the demo frontend, users
# clicking through the Service while the operator rotates the cookie keyring. Shows:
#   - any frontend opens the cookie another sealed (no store, kube-proxy balancing);
#   - the staged key reaches every running pod's Secret volume (no restart) before the
#     operator seals with it, and how long that took;
#   - the rotation logs nobody out and loses no write; afterwards cookies are sealed with
#     the new key;
#   - a tampered cookie is refused.
# The load generator runs on the host, so this scenario needs the local target.
# shellcheck shell=bash

CLIENT_NS=sessionplane-e2e-client
CLIENT_EXAMPLE=$E2E_REPO/manifests/examples/client.yaml
CLIENT_SC=$(sed -n 's/^  name: \(.*\)$/\1/p' "$CLIENT_EXAMPLE" | head -1)
CLIENT_USERS=${E2E_CLIENT_USERS:-20}
# The operator's default delay between staging a key and sealing with it.
CLIENT_PROPAGATION=120

client_keyring_entry() { # entry
  k -n "$CLIENT_NS" get secret "$CLIENT_SC-keyring" -o "jsonpath={.data.$1}" 2>/dev/null | base64 -d 2>/dev/null
}

client_has_key() { # n
  [[ -n $(k -n "$CLIENT_NS" get secret "$CLIENT_SC-keyring" -o "jsonpath={.data.key-$1}" 2>/dev/null) ]]
}

client_frontends() {
  k -n "$CLIENT_NS" get pods -l "app.kubernetes.io/instance=$CLIENT_SC,app.kubernetes.io/component=frontend" \
    -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}'
}

# True when every frontend pod's mounted keyring has key-<n> (and, with a second argument,
# names it current): what the app itself reads, through the kubelet's volume update.
client_pods_see() { # n [current]
  local pod
  for pod in $(client_frontends); do
    k -n "$CLIENT_NS" exec "$pod" -- /usr/bin/node -e '
      const fs = require("fs"), dir = process.env.SESSIONPLANE_KEYRING_DIR, [n, cur] = process.argv.slice(1);
      const ok = fs.readdirSync(dir).includes(`key-${n}`) && (!cur || fs.readFileSync(`${dir}/current`, "utf8").trim() === n);
      process.exit(ok ? 0 : 1);' "$1" "${2:-}" >/dev/null 2>&1 || return 1
  done
}

client_restarts() {
  k -n "$CLIENT_NS" get pods -l "app.kubernetes.io/instance=$CLIENT_SC,app.kubernetes.io/component=frontend" \
    -o jsonpath='{range .items[*]}{.metadata.name}:{.status.containerStatuses[0].restartCount} {end}'
}

client_tampered_refused() { # base
  local cookie body
  cookie=$(curl -s -D - -o /dev/null -H 'content-type: application/json' -d '{"user":"mallory"}' "$1/api/login" |
    sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p')
  [[ $cookie == sp.sid=v1.* ]] || return 1
  # Flip one character in the middle of the sealed part.
  local i=$((${#cookie} / 2)) c=${cookie:$((${#cookie} / 2)):1}
  [[ $c == A ]] && c=B || c=A
  body=$(curl -s -H "cookie: ${cookie:0:i}$c${cookie:i+1}" "$1/api/me")
  [[ $body == *'"cookie":"tampered"'* ]]
}

client_e2e() {
  if [[ $E2E_TARGET != local ]]; then
    fail "Client scenario: needs the local target (its load generator runs on the host)"
    return
  fi
  # lib.sh's helpers act on E2E_NS / E2E_SC / E2E_EXAMPLE: point them at the Client example.
  E2E_NS=$CLIENT_NS E2E_SC=$CLIENT_SC E2E_EXAMPLE=$CLIENT_EXAMPLE
  check "kubectl apply of the Client example" e2e_apply_example
  local t=$SECONDS
  if ! e2e_wait_ready 2 0 "$READY_TIMEOUT"; then
    fail "Client: 2 frontends Ready and SessionCluster Ready=True within ${READY_TIMEOUT}s"
    e2e_diagnostics
    return
  fi
  pass "Client: 2 frontends Ready, SessionCluster Ready=True, no store ($((SECONDS - t))s after apply)"

  local cw=$WORK/client ip base pid restarts_before
  mkdir -p "$cw"
  ip=$(k -n "$CLIENT_NS" get service "$CLIENT_SC-frontend" -o jsonpath='{.spec.clusterIP}')
  base=http://$ip
  # The pods are Ready within seconds of the apply, before kube-proxy routes to them.
  e2e_wait_routed "$ip"
  check "Client: a tampered cookie is refused" client_tampered_refused "$base"
  restarts_before=$(client_restarts)
  echo steady >"$cw/phase"
  BASE_URL=$base USERS=$CLIENT_USERS PHASE_FILE=$cw/phase REPORT_JSON=$cw/report.json MAX_SECONDS=600 \
    node "$E2E_REPO/tests/e2e/loadgen.mjs" >"$cw/loadgen.out" 2>&1 &
  pid=$!
  sleep "$STEADY_SECONDS"

  # Make the keyring's last step look a day old: the operator stages key 2 at once (the
  # patch is repeated while it races a reconcile that writes the operator's own value).
  echo stage >"$cw/phase"
  e2e_log "phase: stage (keyring backdated)"
  t=$SECONDS
  local staged=false i
  for ((i = 0; i < 30; i++)); do
    if client_has_key 2; then staged=true; break; fi
    k -n "$CLIENT_NS" patch secret "$CLIENT_SC-keyring" --type merge \
      -p "{\"stringData\":{\"updated-at\":\"$(($(date +%s) - 100000))\"}}" >/dev/null
    sleep 2
  done
  if ! $staged || [[ $(client_keyring_entry current) != 1 ]]; then
    fail "Client: the operator staged key 2 while key 1 still seals (current=$(client_keyring_entry current))"
  else
    pass "Client: the operator staged key 2 while key 1 still seals"
    if e2e_wait "every frontend pod's volume has key 2" "$CLIENT_PROPAGATION" client_pods_see 2; then
      local reached=$((SECONDS - t))
      check "Client: key 2 reached every running pod's volume in ${reached}s, before the operator seals with it (${CLIENT_PROPAGATION}s)" \
        test "$reached" -lt "$CLIENT_PROPAGATION"
    else
      fail "Client: key 2 reached every running pod's volume within ${CLIENT_PROPAGATION}s"
    fi
  fi

  echo seal >"$cw/phase"
  e2e_log "phase: seal"
  check "Client: key 2 seals new cookies after the propagation delay (Secret current=2)" \
    e2e_wait "current=2 in the Secret" $((CLIENT_PROPAGATION + 60)) bash -c "[[ \$(kubectl -n $CLIENT_NS get secret $CLIENT_SC-keyring -o jsonpath='{.data.current}' | base64 -d) == 2 ]]"
  check "Client: every frontend pod reads current=2 from its volume" e2e_wait "pods see current=2" 150 client_pods_see 2 current
  echo after-rotation >"$cw/phase"
  e2e_log "phase: after-rotation"
  sleep "$STEADY_SECONDS"
  echo stop >"$cw/phase"
  e2e_log "phase: stop"

  local rc=0
  for ((i = 0; i < 120; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill "$pid" 2>/dev/null || true
  wait "$pid" || rc=$?
  check "Client: the rotation logged nobody out and lost no write (load generator)" test "$rc" -eq 0
  local keys failures
  keys=$(node -e 'console.log((require(process.argv[1]).cookie_keys ?? []).join(","))' "$cw/report.json" 2>/dev/null || echo "?")
  check "Client: after the rotation the users' cookies are sealed with key 2 (saw: $keys)" test "$keys" = 2
  failures=$(node -e 'console.log(require(process.argv[1]).total.failures)' "$cw/report.json" 2>/dev/null || echo "?")
  check "Client: no failed request during the whole rotation ($failures)" test "$failures" = 0
  local pods
  pods=$(node -e 'console.log(Math.min(...require(process.argv[1]).phases.map((p) => p.pods)))' "$cw/report.json" 2>/dev/null || echo 0)
  check "Client: both frontends served every phase (any pod opens any cookie)" test "$pods" -ge 2
  check "Client: no frontend pod restarted or was replaced for the rotation" test "$(client_restarts)" = "$restarts_before"
  {
    echo
    echo "--- Client scenario load generator"
    cat "$cw/loadgen.out"
  } >>"$WORK/loadgen.out"
}
