#!/usr/bin/env bash
# Smoke test of the single-node cluster: a locally built image (a static C HTTP responder,
# hack/node/src/smoke.c) packed as an OCI tarball and imported into containerd, run as a
# Deployment with imagePullPolicy: Never behind a ClusterIP Service. Checks, all on this
# machine (pod IPs on the node's bridge, ClusterIPs through the local kube-proxy):
#   1. the Deployment's pods become Ready
#   2. the host reaches the Service's ClusterIP (curl through kube-proxy) and both pods answer
#   3. CoreDNS, asked from the host at the kube-dns ClusterIP, resolves the Service's name
#   4. a pod resolves the short name through its own resolv.conf and fetches the page
#   5. the API server reaches the kubelet (kubectl logs of that pod)
#   6. a 3-replica StatefulSet with 1Gi claims of the default StorageClass becomes Ready and
#      its non-root pods (uid 65532) write their volumes
#   7. after its namespace is deleted, the node's pv-recycler makes those PVs Available again
#   8. (with --teardown) hack/node/down.sh leaves nothing behind
#
#   hack/node/smoke.sh [--teardown]
set -euo pipefail
# shellcheck source=hack/node/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NS=node-smoke
TEARDOWN=false
[[ ${1:-} == --teardown ]] && TEARDOWN=true
PASSED=0
FAILED=0

pass() { PASSED=$((PASSED + 1)); node_log "PASS $*"; }
fail() { FAILED=$((FAILED + 1)); node_log "FAIL $*"; }
k() { "$KUBECTL" --kubeconfig="$STATE/kubeconfig" "$@"; }

build_image() {
  local hash work
  hash=$(sha256sum "$NODE_REPO/hack/node/src/smoke.c" "$NODE_REPO/hack/node/oci_pack.py" | sha256sum | cut -c1-12)
  SMOKE_REF=localhost/sessionplane/node-smoke:$hash
  SMOKE_TAR=$IMAGES/node-smoke-$hash.tar
  [[ -f $SMOKE_TAR ]] && return 0
  work=$(mktemp -d)
  gcc -Os -Wall -Werror -static -o "$work/smoke" "$NODE_REPO/hack/node/src/smoke.c"
  python3 "$NODE_REPO/hack/node/oci_pack.py" --ref "$SMOKE_REF" --out "$SMOKE_TAR" \
    --entrypoint /smoke --user 65532:65532 --file "/smoke=$work/smoke"
  rm -rf "$work"
}

deploy() {
  k delete namespace "$NS" --ignore-not-found --wait=true --timeout=60s >/dev/null
  k create namespace "$NS" >/dev/null
  # The namespace's default ServiceAccount comes from a controller; pods wait for it.
  node_wait "default ServiceAccount in $NS" 30 k -n "$NS" get serviceaccount default
  k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: $SMOKE_REF
        imagePullPolicy: Never
        args: [serve, "8080"]
        ports: [{containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /, port: 8080}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
EOF
}

check_rollout() {
  if k -n "$NS" rollout status deployment/web --timeout=120s >/dev/null; then
    pass "Deployment web: 2 pods Ready from image $SMOKE_REF (imagePullPolicy Never)"
  else
    k -n "$NS" get pods -o wide >&2 || true
    k -n "$NS" describe pods >&2 || true
    fail "Deployment web did not become Ready"
    return 1
  fi
}

check_cluster_ip() {
  local ip body seen i ok
  ip=$(k -n "$NS" get service web -o jsonpath='{.spec.clusterIP}')
  CLUSTER_IP=$ip
  # kube-proxy programs the rules shortly after the endpoints appear; wait for the first
  # answer, then every request must succeed.
  if ! node_wait "ClusterIP $ip" 15 curl -fsS --max-time 2 "http://$ip/"; then
    fail "ClusterIP $ip never answered from the host"
    return
  fi
  seen=$(for ((i = 0; i < 40; i++)); do
    body=$(curl -fsS --max-time 2 "http://$ip/" 2>/dev/null) && echo "$body"
    sleep 0.1
  done | sort | uniq -c)
  ok=$(awk '{n += $1} END {print n + 0}' <<<"$seen")
  if ((ok == 40)) && [[ $(wc -l <<<"$seen") -ge 2 ]]; then
    pass "ClusterIP $ip answered 40/40 requests from the host, spread over: $(awk '{print $3 "=" $1}' <<<"$seen" | tr '\n' ' ')"
  else
    fail "ClusterIP $ip answered $ok/40 requests (responses: $(tr '\n' ' ' <<<"$seen"))"
  fi
}

check_dns_from_host() {
  local got name=web.$NS.svc.$CLUSTER_DOMAIN
  got=$("$SMOKE_BIN" resolve "$name" "$DNS_SERVICE_IP" 2>&1) || true
  if [[ $got == "$CLUSTER_IP" ]]; then
    pass "CoreDNS at $DNS_SERVICE_IP resolves $name to $got"
  else
    fail "CoreDNS at $DNS_SERVICE_IP answered '$got' for $name, want $CLUSTER_IP"
  fi
}

check_from_pod() {
  k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: probe}
spec:
  restartPolicy: Never
  containers:
  - name: probe
    image: $SMOKE_REF
    imagePullPolicy: Never
    args: [get, web, "80"]
EOF
  local phase="" i
  for ((i = 0; i < 120; i++)); do
    phase=$(k -n "$NS" get pod probe -o jsonpath='{.status.phase}' 2>/dev/null || true)
    [[ $phase == Succeeded || $phase == Failed ]] && break
    sleep 0.5
  done
  local logs
  logs=$(k -n "$NS" logs probe 2>&1 || true)
  if [[ $phase == Succeeded && $logs == *"smoke web-"* ]]; then
    pass "a pod resolved 'web' through its resolv.conf and fetched: $(tr '\n' ' ' <<<"$logs")"
  else
    fail "probe pod phase '$phase', logs: $(tr '\n' ' ' <<<"$logs")"
  fi
  if [[ $logs == *"is $CLUSTER_IP"* ]]; then
    pass "kubectl logs works (API server -> kubelet), and the pod saw web at $CLUSTER_IP"
  else
    fail "kubectl logs did not show the resolved ClusterIP $CLUSTER_IP"
  fi
}

# A StatefulSet whose volumeClaimTemplate names no class gets the default class `local`; its
# pods (non-root, like the store) write to their volumes; after the namespace is deleted the
# PVs are Released, and the node's pv-recycler makes them Available again, emptied.
check_volumes() {
  local ns=node-smoke-pv i pvc pv file pvs=() bad=""
  k delete namespace "$ns" --ignore-not-found --wait=true --timeout=90s >/dev/null
  k create namespace "$ns" >/dev/null
  node_wait "default ServiceAccount in $ns" 30 k -n "$ns" get serviceaccount default
  k -n "$ns" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: vol}
spec:
  clusterIP: None
  selector: {app: vol}
  ports: [{port: 8080}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: vol}
spec:
  serviceName: vol
  replicas: 3
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: vol}}
  template:
    metadata: {labels: {app: vol}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532}
      containers:
      - name: vol
        image: $SMOKE_REF
        imagePullPolicy: Never
        args: [write, /data/owner, "8080"]
        readinessProbe:
          httpGet: {path: /, port: 8080}
          periodSeconds: 1
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
EOF
  if ! k -n "$ns" rollout status statefulset/vol --timeout=120s >/dev/null; then
    k -n "$ns" get pods,pvc -o wide >&2 || true
    fail "StatefulSet vol (3 replicas, 1Gi claims of the default class) did not become Ready"
    k delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
    return
  fi
  for i in 0 1 2; do
    pvc=data-vol-$i
    pv=$(k -n "$ns" get pvc "$pvc" -o jsonpath='{.spec.volumeName}')
    pvs+=("$pv")
    file=$PV_DIR/$pv/owner
    [[ $(k -n "$ns" get pvc "$pvc" -o jsonpath='{.spec.storageClassName}') == local ]] || bad+=" $pvc:class"
    [[ -f $file && $(<"$file") == "smoke vol-$i uid=65532" && $(stat -c %u "$file") == 65532 ]] ||
      bad+=" $pvc:$pv:file"
  done
  if [[ -z $bad ]]; then
    pass "StatefulSet vol Ready: claims of the default class bound to ${pvs[*]}; each pod wrote its volume as uid 65532"
  else
    fail "StatefulSet vol: wrong class or volume contents:$bad"
  fi
  k delete namespace "$ns" --wait=true --timeout=90s >/dev/null || true
  pv_phases_are() { # phase pv...
    local want=$1 p
    shift
    for p in "$@"; do [[ $(k get pv "$p" -o jsonpath='{.status.phase}') == "$want" ]] || return 1; done
  }
  bad=""
  node_wait "PVs ${pvs[*]} Available" 60 pv_phases_are Available "${pvs[@]}" || bad+=" not Available:"
  for pv in "${pvs[@]}"; do
    [[ -z $(ls -A "$PV_DIR/$pv") ]] || bad+=" $pv not emptied"
  done
  if [[ -z $bad ]]; then
    pass "namespace deleted: the pv-recycler made ${pvs[*]} Available again, emptied"
  else
    fail "after the namespace's deletion:$bad ($(k get pv "${pvs[@]}" --no-headers 2>&1 | awk '{print $1 "=" $5}' | tr '\n' ' '))"
  fi
}

main() {
  local t0=$SECONDS
  eval "$("$NODE_REPO/hack/node/up.sh")"
  node_k8s_paths
  mkdir -p "$IMAGES"
  build_image
  SMOKE_BIN=$(mktemp)
  gcc -Os -static -o "$SMOKE_BIN" "$NODE_REPO/hack/node/src/smoke.c" 2>/dev/null
  ctr_k8s images import "$SMOKE_TAR" >/dev/null
  deploy
  if check_rollout; then
    check_cluster_ip
    check_dns_from_host
    check_from_pod
  fi
  rm -f "$SMOKE_BIN"
  k delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  check_volumes
  if $TEARDOWN; then
    "$NODE_REPO/hack/node/down.sh"
    local left
    if left=$("$NODE_REPO/hack/node/down.sh" check); then
      pass "teardown: $left"
    else
      fail "teardown left: $(tr '\n' ';' <<<"$left")"
    fi
  fi
  node_log "smoke test took $((SECONDS - t0))s"
  echo "node-smoke: $PASSED passed, $FAILED failed"
  ((FAILED == 0))
}

main
