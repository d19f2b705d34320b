# Shared settings for hack/node/*.sh: versions, cache and state paths, addresses, ports.
# shellcheck disable=SC2034 # the variables are used by the scripts that source this file
# Sourced, not run. Everything the node writes lives under $NODE_STATE so that down.sh can
# account for all of it.
# shellcheck shell=bash

NODE_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${SESSIONPLANE_CACHE:-$HOME/.cache/sessionplane}
STATE=${SESSIONPLANE_STATE:-$CACHE/cluster}
NODE_STATE=$STATE/node

CONTAINERD_VERSION=v2.2.9
# CoreDNS is our own main module (hack/node/coredns) linking only the plugins the Corefile uses;
# its go.mod pins the CoreDNS release. The cache key hashes the module's files, so a change of
# plugin list or of version builds a new binary and a new image tag.
COREDNS_MODULE=$NODE_REPO/hack/node/coredns
COREDNS_VERSION=$(awk '$1 == "require" && $2 == "github.com/coredns/coredns" { print $3 }' "$COREDNS_MODULE/go.mod")
COREDNS_KEY=$COREDNS_VERSION-$(cat "$COREDNS_MODULE/main.go" "$COREDNS_MODULE/go.mod" "$COREDNS_MODULE/go.sum" |
  sha256sum | cut -c1-12)
PAUSE_VERSION=3.10.1
# The ingress controller of the routing scenario (hack/e2e/routing.sh), built from source.
TRAEFIK_VERSION=v3.6.12

CONTAINERD_BIN=$CACHE/containerd-$CONTAINERD_VERSION/bin
COREDNS_BIN=$CACHE/coredns-$COREDNS_KEY/bin
IMAGES=$CACHE/images
CNI_BIN_DIR=${SESSIONPLANE_CNI_BIN_DIR:-/usr/lib/cni}

PAUSE_REF=localhost/sessionplane/pause:$PAUSE_VERSION
PAUSE_TAR=$IMAGES/pause-$PAUSE_VERSION.tar
COREDNS_REF=localhost/sessionplane/coredns:$COREDNS_KEY
COREDNS_TAR=$IMAGES/coredns-$COREDNS_KEY.tar
TRAEFIK_BIN=$CACHE/traefik-$TRAEFIK_VERSION/bin
TRAEFIK_REF=localhost/sessionplane/traefik:$TRAEFIK_VERSION
TRAEFIK_TAR=$IMAGES/traefik-$TRAEFIK_VERSION.tar

# Addresses. Pods live on one local bridge; the bridge's address doubles as the node IP, so
# nothing the node serves is bound to the host's real interfaces.
BRIDGE=${SESSIONPLANE_BRIDGE:-spbr0}
POD_CIDR=${SESSIONPLANE_POD_CIDR:-10.244.0.0/24}
NODE_IP=${SESSIONPLANE_NODE_IP:-10.244.0.1}
SERVICE_CIDR=10.96.0.0/16 # must match hack/cluster.sh
DNS_SERVICE_IP=${SESSIONPLANE_DNS_SERVICE_IP:-10.96.0.10}
CLUSTER_DOMAIN=cluster.local
APISERVER_PORT=${SESSIONPLANE_APISERVER_PORT:-26443} # must match hack/cluster.sh

KUBELET_PORT=${SESSIONPLANE_KUBELET_PORT:-10250}
KUBELET_HEALTHZ_PORT=${SESSIONPLANE_KUBELET_HEALTHZ_PORT:-26248}
SCHEDULER_PORT=${SESSIONPLANE_SCHEDULER_PORT:-26259}
PROXY_HEALTHZ_PORT=${SESSIONPLANE_PROXY_HEALTHZ_PORT:-26256}
PROXY_METRICS_PORT=${SESSIONPLANE_PROXY_METRICS_PORT:-26249}

NODE_PKI=$NODE_STATE/pki
NODE_RUN=$NODE_STATE/run
NODE_LOGS=$NODE_STATE/logs
CONTAINERD_ROOT=$NODE_STATE/containerd/root
CONTAINERD_STATE=$NODE_STATE/containerd/state
CONTAINERD_SOCK=$NODE_STATE/containerd/containerd.sock
KUBELET_ROOT=$NODE_STATE/kubelet
CNI_CONF_DIR=$NODE_STATE/cni/net.d
CNI_DATA_DIR=$NODE_STATE/cni/ipam
# The static PersistentVolumes' directories (up.sh ensure_storage). They outlive a node restart
# (down.sh --node-only) like disks would, since their PV objects live on in the control plane.
PV_DIR=$NODE_STATE/pv
# containerd's shims put their sockets under /run/containerd/s whatever the config says.
SHIM_SOCKET_DIR=/run/containerd/s

node_log() { printf '%s node: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
node_die() { node_log "error: $*"; exit 1; }

# The node's name: the machine's hostname when it resolves locally (the API server reaches
# the kubelet by the node's Hostname address first), else the node IP.
node_name() {
  local h
  h=$(hostname 2>/dev/null | tr '[:upper:]' '[:lower:]')
  if [[ -n $h && $h =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ ]] && getent hosts "$h" >/dev/null 2>&1; then
    printf '%s\n' "$h"
  else
    printf '%s\n' "$NODE_IP"
  fi
}

node_k8s_paths() {
  eval "$("$NODE_REPO/hack/k8s/build.sh" paths)"
  K8S_VERSION=${K8S_BIN%/bin}
  K8S_VERSION=${K8S_VERSION##*/k8s-}
  KUBECTL=$K8S_BIN/kubectl
  CTR=$CONTAINERD_BIN/ctr
}

ctr_k8s() { "$CONTAINERD_BIN/ctr" --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }

# --- processes: every daemon runs in its own session, so its process group id is its pid ---

node_pid_of() { # name -> pid if alive and still running the binary we started
  local f=$NODE_RUN/$1.pid pid bin
  [[ -f $f ]] || return 1
  read -r pid bin <"$f" || true
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$bin" || return 1
  printf '%s\n' "$pid"
}

node_start() { # name binary args...
  local name=$1 bin=$2
  shift 2
  mkdir -p "$NODE_RUN" "$NODE_LOGS"
  node_log "starting $name"
  setsid nohup "$bin" "$@" >>"$NODE_LOGS/$name.log" 2>&1 </dev/null &
  echo "$! $bin" >"$NODE_RUN/$name.pid"
}

node_stop() { # name: SIGTERM to its process group, SIGKILL after 15s
  local name=$1 pid i
  pid=$(node_pid_of "$name") || { rm -f "$NODE_RUN/$name.pid"; return 0; }
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    node_log "$name (pid $pid) ignored SIGTERM; killing"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$NODE_RUN/$name.pid"
  node_log "stopped $name (pid $pid)"
}

node_wait() { # what seconds cmd...: poll every 0.5s
  local what=$1 secs=$2 i
  shift 2
  for ((i = 0; i < secs * 2; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  node_log "timed out after ${secs}s waiting for $what"
  return 1
}

# --- one node per machine -------------------------------------------------------------------
# The bridge, the iptables chains, the kubepods cgroups and the kubelet's port are machine-wide,
# so only one node (one state dir) can own them at a time. The owner's state dir is recorded
# in a tmpfs file; down.sh leaves machine-wide resources alone unless its state dir owns them.
NODE_OWNER_FILE=${SESSIONPLANE_NODE_OWNER_FILE:-/run/sessionplane-node.owner}

node_owner() { [[ -f $NODE_OWNER_FILE ]] && cat "$NODE_OWNER_FILE"; return 0; }

# Is a node from state dir $1 still running? (any of its pid files names a live process)
node_alive_in() {
  local f pid bin
  for f in "$1"/run/*.pid; do
    [[ -f $f ]] || continue
    read -r pid bin <"$f" || true
    [[ -n $pid && -r /proc/$pid/cmdline ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$bin" && return 0
  done
  return 1
}

# The state dir of a kubelet running from another state dir (there is no owner file for
# nodes started by older scripts); empty when there is none.
foreign_kubelet_state() {
  local d cmd root
  for d in /proc/[0-9]*; do
    cmd=$(tr '\0' ' ' 2>/dev/null <"$d/cmdline") || continue
    [[ $cmd == *kubelet*--root-dir=* ]] || continue
    root=$(sed -n 's/.*--root-dir=\([^ ]*\).*/\1/p' <<<"$cmd")
    [[ $root == "$KUBELET_ROOT" ]] && continue
    printf '%s\n' "${root%/kubelet}"
    return 0
  done
  return 0
}

# True when this state dir may clean the machine-wide resources.
node_owns_machine() {
  local owner
  owner=$(node_owner)
  if [[ -n $owner && $owner != "$NODE_STATE" ]] && node_alive_in "$owner"; then return 1; fi
  [[ -z $(foreign_kubelet_state) ]]
}

# Claims the machine for this state dir; fails if another live node owns it.
node_claim_machine() {
  local other
  if ! node_owns_machine; then
    other=$(node_owner)
    [[ -n $other && $other != "$NODE_STATE" ]] || other=$(foreign_kubelet_state)
    node_die "another node runs on this machine (state $other); stop it first: SESSIONPLANE_STATE=${other%/node} hack/node/down.sh"
  fi
  printf '%s\n' "$NODE_STATE" >"$NODE_OWNER_FILE"
}
