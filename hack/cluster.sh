#!/usr/bin/env bash
# A real Kubernetes control plane on loopback (etcd, kube-apiserver, kube-controller-manager)
# from the binaries hack/k8s/build.sh caches. Like controller-runtime's envtest, but long-lived
# and with a controller manager, so garbage collection and the workload controllers run.
#
#   hack/cluster.sh up       build what is missing, start (or reuse a healthy) control plane
#   hack/cluster.sh down     stop every process `up` started
#   hack/cluster.sh env      print `export KUBECONFIG=...` (use: eval "$(hack/cluster.sh env)")
#   hack/cluster.sh status   show the processes and the API server's readiness
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${SESSIONPLANE_CACHE:-$HOME/.cache/sessionplane}
STATE=${SESSIONPLANE_STATE:-$CACHE/cluster}
ETCD_CLIENT_PORT=${SESSIONPLANE_ETCD_CLIENT_PORT:-23790}
ETCD_PEER_PORT=${SESSIONPLANE_ETCD_PEER_PORT:-23800}
APISERVER_PORT=${SESSIONPLANE_APISERVER_PORT:-26443}
KCM_PORT=${SESSIONPLANE_KCM_PORT:-26257}
SERVICE_CIDR=10.96.0.0/16
SERVICE_API_IP=10.96.0.1
# The controllers the operator's objects depend on, plus the ones a namespace-per-test suite needs
# (persistentvolume-binder-controller binds the store's PVCs to hack/node's static PVs).
KCM_CONTROLLERS=${SESSIONPLANE_KCM_CONTROLLERS:-garbage-collector-controller,clusterrole-aggregation-controller,deployment-controller,replicaset-controller,statefulset-controller,disruption-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller,endpointslice-controller,persistentvolume-binder-controller,persistentvolume-protection-controller,persistentvolumeclaim-protection-controller}
READY_TIMEOUT=${SESSIONPLANE_READY_TIMEOUT:-120}
COMPONENTS=(etcd kube-apiserver kube-controller-manager)

PKI=$STATE/pki
RUN=$STATE/run
LOGS=$STATE/logs
KUBECONFIG_PATH=$STATE/kubeconfig
APISERVER_URL=https://127.0.0.1:$APISERVER_PORT

log() { printf '%s cluster: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

load_paths() {
  eval "$("$REPO/hack/k8s/build.sh" paths)"
  KUBECTL=$K8S_BIN/kubectl
}

# --- certificates -------------------------------------------------------------------------

gen_key() { [[ -f $1 ]] || openssl genrsa -out "$1" 2048 2>/dev/null; }

# sign NAME SUBJECT EXT: a certificate for NAME signed by the cluster CA with the given extensions
sign() {
  local name=$1 subject=$2 ext=$3
  [[ -f $PKI/$name.crt ]] && return 0
  gen_key "$PKI/$name.key"
  openssl req -new -key "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 365 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

gen_pki() {
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  if [[ ! -f $PKI/ca.crt ]]; then
    gen_key "$PKI/ca.key"
    openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=sessionplane-local-ca" -days 3650 -sha256 \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -out "$PKI/ca.crt" 2>/dev/null
  fi
  local client="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  sign apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$SERVICE_API_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  sign admin "/O=system:masters/CN=sessionplane-admin" "$client"
  sign controller-manager "/CN=system:kube-controller-manager" "$client"
  sign apiserver-kubelet-client "/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client" "$client"
  if [[ ! -f $PKI/sa.key ]]; then
    gen_key "$PKI/sa.key"
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  fi
}

# write_kubeconfig FILE USER: a kubeconfig with the CA and the user's client cert embedded
write_kubeconfig() {
  local file=$1 user=$2
  [[ -f $file ]] && return 0
  local tmp=$file.tmp
  rm -f "$tmp"
  "$KUBECTL" config --kubeconfig="$tmp" set-cluster sessionplane --server="$APISERVER_URL" \
    --certificate-authority="$PKI/ca.crt" --embed-certs=true >/dev/null
  "$KUBECTL" config --kubeconfig="$tmp" set-credentials "$user" \
    --client-certificate="$PKI/$user.crt" --client-key="$PKI/$user.key" --embed-certs=true >/dev/null
  "$KUBECTL" config --kubeconfig="$tmp" set-context sessionplane --cluster=sessionplane --user="$user" >/dev/null
  "$KUBECTL" config --kubeconfig="$tmp" use-context sessionplane >/dev/null
  chmod 600 "$tmp"
  mv "$tmp" "$file"
}

# --- processes ----------------------------------------------------------------------------

pid_of() { # component -> pid if it is alive and still the binary we started
  local f=$RUN/$1.pid pid
  [[ -f $f ]] || return 1
  pid=$(<"$f")
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$1" || return 1
  printf '%s\n' "$pid"
}

start() { # component binary args...
  local name=$1 bin=$2
  shift 2
  mkdir -p "$RUN" "$LOGS"
  log "starting $name"
  setsid nohup "$bin" "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

stop() { # component: SIGTERM, then SIGKILL after 15s
  local name=$1 pid i
  pid=$(pid_of "$name") || { rm -f "$RUN/$name.pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) ignored SIGTERM; killing"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$RUN/$name.pid"
  log "stopped $name (pid $pid)"
}

# wait_for WHAT SECONDS CMD...: poll CMD every 0.5s until it succeeds; fail with the log on timeout
wait_for() {
  local what=$1 secs=$2 i
  shift 2
  for ((i = 0; i < secs * 2; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  log "timed out after ${secs}s waiting for $what"
  return 1
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

etcd_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_CLIENT_PORT/health" | grep -q '"health":"true"'; }

apiserver_ready() {
  curl -fs --max-time 3 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "$APISERVER_URL/readyz" | grep -qx ok
}

kcm_healthy() { curl -fsSk --max-time 2 "https://127.0.0.1:$KCM_PORT/healthz" | grep -qx ok; }

all_running() {
  local c
  for c in "${COMPONENTS[@]}"; do pid_of "$c" >/dev/null || return 1; done
}

healthy() { all_running && etcd_healthy && apiserver_ready && kcm_healthy; }

start_etcd() {
  start etcd "$ETCD_BIN/etcd" \
    --name=sessionplane --data-dir="$STATE/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --advertise-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="sessionplane=http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster-state=new \
    --unsafe-no-fsync --log-level=warn
  wait_for etcd 30 etcd_healthy || { tail -20 "$LOGS/etcd.log" >&2; return 1; }
}

start_apiserver() {
  start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --bind-address=127.0.0.1 --secure-port="$APISERVER_PORT" --advertise-address=127.0.0.1 \
    --endpoint-reconciler-type=none \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --authorization-mode=Node,RBAC --anonymous-auth=false --allow-privileged=true \
    --cert-dir="$STATE/apiserver" --profiling=false --v=1
  wait_for kube-apiserver "$READY_TIMEOUT" apiserver_ready || { tail -30 "$LOGS/kube-apiserver.log" >&2; return 1; }
}

start_kcm() {
  start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig="$STATE/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$STATE/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$STATE/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" \
    --controllers="$KCM_CONTROLLERS" \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --leader-elect=false --profiling=false --v=1
  wait_for kube-controller-manager 60 kcm_healthy || { tail -30 "$LOGS/kube-controller-manager.log" >&2; return 1; }
}

ROUTING_CRDS=(crd/httproutes.gateway.networking.k8s.io crd/gateways.gateway.networking.k8s.io
  crd/backendtrafficpolicies.gateway.envoyproxy.io)

# The CRDs of the routing objects the operator writes, so the real schemas validate them:
# Gateway API's experimental channel (a superset of standard, with HTTPRoute
# sessionPersistence) and Envoy Gateway's BackendTrafficPolicy.
install_routing_crds() {
  "$KUBECTL" --kubeconfig="$KUBECONFIG_PATH" apply --server-side --force-conflicts \
    --field-manager=sessionplane-cluster -f "$GATEWAY_DIR/experimental/" -f "$ENVOY_GATEWAY_DIR/crds/" >/dev/null
  "$KUBECTL" --kubeconfig="$KUBECONFIG_PATH" wait --for=condition=Established --timeout=60s "${ROUTING_CRDS[@]}" >/dev/null
}

routing_crds_present() { "$KUBECTL" --kubeconfig="$KUBECONFIG_PATH" get "${ROUTING_CRDS[@]}" >/dev/null 2>&1; }

# --- commands -----------------------------------------------------------------------------

cmd_up() {
  local t0=$SECONDS
  "$REPO/hack/k8s/build.sh" all
  load_paths
  if healthy; then
    log "reusing the healthy control plane at $APISERVER_URL"
    routing_crds_present || install_routing_crds || die "installing the routing CRDs failed"
    cmd_env
    return 0
  fi
  # Anything half-alive is restarted from scratch: a stale etcd would carry old objects.
  cmd_down
  rm -rf "$STATE/etcd"
  local p
  for p in "$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" "$KCM_PORT"; do
    port_free "$p" || die "port 127.0.0.1:$p is in use by another process (set SESSIONPLANE_*_PORT)"
  done
  gen_pki
  write_kubeconfig "$KUBECONFIG_PATH" admin
  write_kubeconfig "$STATE/controller-manager.kubeconfig" controller-manager
  start_etcd || { cmd_down; die "etcd did not become healthy (log: $LOGS/etcd.log)"; }
  start_apiserver || { cmd_down; die "kube-apiserver not ready (log: $LOGS/kube-apiserver.log)"; }
  start_kcm || { cmd_down; die "kube-controller-manager not healthy (log: $LOGS/kube-controller-manager.log)"; }
  install_routing_crds || { cmd_down; die "installing the routing CRDs failed"; }
  log "control plane ready at $APISERVER_URL in $((SECONDS - t0))s"
  cmd_env
}

cmd_down() {
  local i
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do stop "${COMPONENTS[i]}"; done
}

cmd_env() {
  printf 'export KUBECONFIG=%q\n' "$KUBECONFIG_PATH"
  load_paths
  printf 'export PATH=%q:%q:"$PATH"\n' "$K8S_BIN" "$HELM_BIN"
}

cmd_status() {
  load_paths
  local c pid rc=0
  for c in "${COMPONENTS[@]}"; do
    if pid=$(pid_of "$c"); then printf '%-24s running (pid %s)\n' "$c" "$pid"; else printf '%-24s stopped\n' "$c"; rc=1; fi
  done
  if [[ -f $PKI/admin.crt ]] && apiserver_ready; then
    printf '%-24s ready at %s\n' "readyz" "$APISERVER_URL"
  else
    printf '%-24s not ready\n' "readyz"
    rc=1
  fi
  return $rc
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  env) cmd_env ;;
  status) cmd_status ;;
  *) sed -n '5,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
