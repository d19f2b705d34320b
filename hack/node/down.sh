#!/usr/bin/env bash
# Tears down what hack/node/up.sh started, so that the next run starts clean: every process
# (daemons, containerd shims, pod processes), every mount under the node's state dir (kubelet
# volumes, container root filesystems, network namespaces), the bridge and its veths, the
# iptables chains kube-proxy, the kubelet, CNI and up.sh created, the service route, the pod
# cgroups, and the node's state (the certificates, the last logs and, with --node-only, the
# static PVs' data are kept). ip_forward gets its old value.
#
#   hack/node/down.sh              the node, then the control plane (hack/cluster.sh down)
#   hack/node/down.sh --node-only  the node only; the control plane keeps running
#   hack/node/down.sh check        list what a node left behind; exit 1 if anything
set -euo pipefail
# shellcheck source=hack/node/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OUR_CHAINS='KUBE-|CNI-|SP-NODE-'

pids_in_pod_cgroups() {
  local f
  for f in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d $f ]] || continue
    find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null || true
  done | sort -un
}

our_shims() { # pid id, for every shim serving our containerd
  local d cmd
  for d in /proc/[0-9]*; do
    cmd=$(tr '\0' ' ' 2>/dev/null <"$d/cmdline") || continue
    [[ $cmd == *containerd-shim-runc-v2*"-address $CONTAINERD_SOCK"* ]] || continue
    printf '%s %s\n' "${d#/proc/}" "$(sed -n 's/.*-id \([^ ]*\).*/\1/p' <<<"$cmd")"
  done
  return 0
}

our_daemons() { # pids of node binaries still running from this cache or state dir
  local d exe cmd
  for d in /proc/[0-9]*; do
    exe=$(readlink "$d/exe" 2>/dev/null) || continue
    case $exe in
      "$CONTAINERD_BIN"/* | "$COREDNS_BIN"/*) echo "${d#/proc/}" ;;
      */kubelet | */kube-proxy | */kube-scheduler)
        if [[ $exe == "$CACHE"/* ]]; then echo "${d#/proc/}"; fi ;;
      */bash)
        cmd=$(tr '\0' ' ' 2>/dev/null <"$d/cmdline") || continue
        if [[ $cmd == *"$NODE_REPO/hack/node/up.sh pv-recycler"* ]]; then echo "${d#/proc/}"; fi ;;
      */socat)
        cmd=$(tr '\0' ' ' 2>/dev/null <"$d/cmdline") || continue
        if [[ $cmd == *"bind=$NODE_IP"* ]]; then echo "${d#/proc/}"; fi ;;
    esac
  done
  return 0
}

mounts_under_state() {
  [[ -d $NODE_STATE ]] || return 0
  awk -v p="$NODE_STATE/" '$5 == substr(p, 1, length(p) - 1) || index($5, p) == 1 { print $5 }' /proc/self/mountinfo |
    awk '{ print length($0), $0 }' | sort -rn | cut -d' ' -f2-
}

kill_pods() {
  local pids i
  for ((i = 0; i < 10; i++)); do
    pids=$(pids_in_pod_cgroups)
    [[ -z $pids ]] && return 0
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.3
  done
  node_log "warning: pod processes still alive: $(pids_in_pod_cgroups | tr '\n' ' ')"
}

kill_shims() {
  local pid id hash
  while read -r pid id; do
    [[ -n $pid ]] || continue
    kill -KILL "$pid" 2>/dev/null || true
    # The shim's socket name is sha256(<containerd address>/<namespace>/<id>), as in
    # containerd's pkg/shim.SocketAddress.
    for hash in "$CONTAINERD_SOCK/k8s.io/$id" "$CONTAINERD_SOCK/k8s.io/$id/debug"; do
      rm -f "$SHIM_SOCKET_DIR/$(printf '%s' "$hash" | sha256sum | cut -d' ' -f1)"
    done
  done < <(our_shims)
  # Shims that died earlier leave their sockets behind; with no shim of any containerd left
  # on the machine, none of the sockets can be in use.
  if ! pgrep -f containerd-shim >/dev/null; then rm -f "$SHIM_SOCKET_DIR"/*; fi
  rmdir "$SHIM_SOCKET_DIR" /run/containerd 2>/dev/null || true
}

unmount_all() {
  local m i
  for ((i = 0; i < 5; i++)); do
    [[ -z $(mounts_under_state) ]] && return 0
    while read -r m; do
      [[ -n $m ]] || continue
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done < <(mounts_under_state)
  done
  node_log "warning: mounts left: $(mounts_under_state | tr '\n' ' ')"
}

delete_links() {
  local l
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    for l in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
      ip link del "$l" 2>/dev/null || true
    done
    ip link del "$BRIDGE" 2>/dev/null || true
  fi
  ip route del "$SERVICE_CIDR" 2>/dev/null || true
}

# Rewrites each table without our chains and the rules that jump to them or match our bridge.
clean_iptables() {
  local save restore
  if [[ -x $K8S_BIN/kube-proxy ]]; then "$K8S_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
  for save in iptables-save ip6tables-save; do
    command -v "$save" >/dev/null || continue
    restore=${save/-save/-restore}
    if "$save" 2>/dev/null | grep -qE "$OUR_CHAINS|[io] $BRIDGE "; then
      "$save" | grep -vE "^:($OUR_CHAINS)|-j ($OUR_CHAINS)|^-A ($OUR_CHAINS)|[io] $BRIDGE " | "$restore" -w
    fi
  done
}

# Paths outside the state dir that the kubelet and libcni insist on: the kubelet's device
# plugin socket and libcni's result cache (entries of the node's network and of loopback).
remove_fixed_paths() {
  rm -f /var/lib/kubelet/device-plugins/kubelet.sock
  rm -f /var/lib/cni/results/sessionplane-* /var/lib/cni/results/cni-loopback-*
  rmdir /var/lib/kubelet/device-plugins /var/lib/kubelet /var/lib/cni/results /var/lib/cni 2>/dev/null || true
}

fixed_path_leftovers() {
  compgen -G "$SHIM_SOCKET_DIR/*" || true
  compgen -G "/var/lib/cni/results/sessionplane-*" || true
  compgen -G "/var/lib/cni/results/cni-loopback-*" || true
  [[ ! -e /var/lib/kubelet/device-plugins/kubelet.sock ]] || echo /var/lib/kubelet/device-plugins/kubelet.sock
}

remove_cgroups() {
  local f
  for f in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    if [[ -d $f ]]; then find "$f" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
  done
  return 0
}

restore_sysctl() {
  if [[ -f $NODE_STATE/ip_forward.orig ]]; then
    sysctl -qw "net.ipv4.ip_forward=$(<"$NODE_STATE/ip_forward.orig")" || true
  fi
}

remove_state() {
  [[ -d $NODE_STATE ]] || return 0
  local e
  for e in "$NODE_STATE"/* "$NODE_STATE"/.[!.]*; do
    # The certificates are reused; the logs stay for a post-mortem (up.sh rotates them).
    [[ -e $e && $e != "$NODE_PKI" && $e != "$NODE_LOGS" && $e != "$NODE_LOGS.prev" ]] || continue
    # Bound PVs keep their data across a node restart; a full down (below) removes them.
    [[ $e != "$PV_DIR" ]] || continue
    # Never follow into something still mounted: rm -rf through a live bind mount would
    # delete the host's files.
    if mounts_under_state | grep -F "$e" >/dev/null; then
      node_log "warning: $e still has mounts; not deleting it"
      continue
    fi
    rm -rf "$e"
  done
}

node_down() {
  local c owner=true
  node_k8s_paths
  if ! node_owns_machine; then
    # Another state dir's node runs here: stop only what this state dir started and leave
    # the bridge, iptables, pod cgroups and sysctls to their owner.
    owner=false
    node_log "machine-wide node resources belong to $(node_owner)$(foreign_kubelet_state); cleaning only $NODE_STATE"
  fi
  for c in pv-recycler kube-proxy kube-scheduler kubelet; do node_stop "$c"; done
  if $owner; then step kill_pods; fi
  # A graceful containerd stop first, so it can record what it knows; then the shims.
  node_stop containerd
  step kill_shims
  if $owner; then step kill_pods; fi
  node_stop apiserver-forward
  step unmount_all
  if $owner; then
    step delete_links
    step clean_iptables
    step remove_cgroups
    step remove_fixed_paths
    step restore_sysctl
    rm -f "$NODE_OWNER_FILE"
  fi
  step remove_state
}

step() { # name: run one teardown step and log how long it took
  local t0=$SECONDS
  "$@"
  node_log "teardown: $* ($((SECONDS - t0))s)"
}

cmd_check() {
  node_k8s_paths
  local left=0 x
  x=$(our_daemons | tr '\n' ' ')
  [[ -z $x ]] || { echo "processes: $x"; left=1; }
  x=$(our_shims | tr '\n' ' ')
  [[ -z $x ]] || { echo "shims: $x"; left=1; }
  x=$(pids_in_pod_cgroups | tr '\n' ' ')
  [[ -z $x ]] || { echo "pod processes: $x"; left=1; }
  x=$(mounts_under_state | tr '\n' ' ')
  [[ -z $x ]] || { echo "mounts: $x"; left=1; }
  if ip link show "$BRIDGE" >/dev/null 2>&1; then echo "bridge: $BRIDGE"; left=1; fi
  # The CNI bridge plugin names host-side veths veth + 8 hex digits.
  x=$(ip -o link show type veth 2>/dev/null | awk -F': ' '{print $2}' | grep -E '^veth[0-9a-f]{8}@' | tr '\n' ' ' || true)
  [[ -z $x ]] || { echo "veths: $x"; left=1; }
  x=$( { iptables-save 2>/dev/null; ip6tables-save 2>/dev/null; } | grep -cE "$OUR_CHAINS|[io] $BRIDGE " || true)
  [[ $x == 0 ]] || { echo "iptables lines: $x"; left=1; }
  if ip route show "$SERVICE_CIDR" 2>/dev/null | grep -q .; then echo "route: $SERVICE_CIDR"; left=1; fi
  if compgen -G "/sys/fs/cgroup/*/kubepods" >/dev/null; then echo "cgroups: $(echo /sys/fs/cgroup/*/kubepods)"; left=1; fi
  x=$(fixed_path_leftovers | tr '\n' ' ')
  [[ -z $x ]] || { echo "files: $x"; left=1; }
  [[ ! -f $NODE_OWNER_FILE ]] || { echo "owner file: $NODE_OWNER_FILE ($(node_owner))"; left=1; }
  ((left == 0)) && echo "clean: no node processes, mounts, links, iptables chains, routes or cgroups left"
  return $left
}

case ${1:-} in
  "")
    node_down
    # The PV objects go with the control plane (its next start begins with an empty etcd).
    rm -rf "$PV_DIR"
    "$NODE_REPO/hack/cluster.sh" down
    ;;
  --node-only) node_down ;;
  check) cmd_check ;;
  *) sed -n '9,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
