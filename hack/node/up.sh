#!/usr/bin/env bash
# A single-node Kubernetes on this machine, without Docker: hack/cluster.sh's control plane
# plus containerd + runc, a CNI bridge, kubelet, kube-scheduler, kube-proxy (iptables) and
# CoreDNS. Pods get addresses on a local bridge ($BRIDGE, $POD_CIDR); ClusterIPs are handled
# by the local kube-proxy. Everything the node writes is under $NODE_STATE; hack/node/down.sh
# removes all of it again.
#
#   hack/node/up.sh              build what is missing, start (or reuse a healthy) node
#   hack/node/up.sh status       show the node's processes and readiness
#   hack/node/up.sh import TAR…  import OCI image tarballs into the running node (and again
#                                after every fresh start: they are listed in $STATE/node-images.list)
#   hack/node/up.sh recycle-pvs  make Released PersistentVolumes Available again (wipes their
#                                data; the node's pv-recycler does this by itself as they are released)
# SESSIONPLANE_NODE_IMAGES="a.tar b.tar" makes every `up` import those tarballs too;
# SESSIONPLANE_NODE_PVS (24) and SESSIONPLANE_NODE_PV_SIZE (2Gi) size the static PV pool.
set -euo pipefail
# shellcheck source=hack/node/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

READY_TIMEOUT=${SESSIONPLANE_NODE_READY_TIMEOUT:-180}
COMPONENTS=(apiserver-forward containerd kubelet kube-scheduler kube-proxy)
PKI=$STATE/pki # the harness's CA signs the node's certificates
PV_COUNT=${SESSIONPLANE_NODE_PVS:-24}
PV_SIZE=${SESSIONPLANE_NODE_PV_SIZE:-2Gi}
PV_LABEL=sessionplane.node/pv=static

[[ $(id -u) == 0 ]] || node_die "the node needs root (network namespaces, mounts, iptables, cgroups)"

# --- preflight ----------------------------------------------------------------------------

preflight() {
  local missing=()
  grep -qw overlay /proc/filesystems || missing+=("overlayfs")
  [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] || missing+=("br_netfilter (bridge-nf-call-iptables)")
  [[ -d /sys/fs/cgroup/memory || -f /sys/fs/cgroup/cgroup.controllers ]] || missing+=("memory cgroup")
  ip link add sp-probe0 type veth peer name sp-probe1 2>/dev/null && ip link del sp-probe0 || missing+=("veth")
  ((${#missing[@]} == 0)) || node_die "kernel lacks: ${missing[*]}"
  if [[ $(sysctl -n net.bridge.bridge-nf-call-iptables) != 1 ]]; then
    sysctl -qw net.bridge.bridge-nf-call-iptables=1
  fi
}

# --- certificates ---------------------------------------------------------------------------

node_sign() { # name subject ext
  local name=$1 subject=$2 ext=$3
  if [[ -f $NODE_PKI/$name.crt ]] && openssl verify -CAfile "$PKI/ca.crt" "$NODE_PKI/$name.crt" >/dev/null 2>&1; then
    return 0
  fi
  [[ -f $NODE_PKI/$name.key ]] || openssl genrsa -out "$NODE_PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$NODE_PKI/$name.key" -subj "$subject" -out "$NODE_PKI/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$NODE_PKI/$name.ext"
  openssl x509 -req -in "$NODE_PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 365 -sha256 -extfile "$NODE_PKI/$name.ext" -out "$NODE_PKI/$name.crt" 2>/dev/null
  rm -f "$NODE_PKI/$name.csr" "$NODE_PKI/$name.ext"
}

write_kubeconfig() { # file cert-name
  local file=$1 user=$2 tmp=$1.tmp
  rm -f "$tmp"
  "$KUBECTL" config --kubeconfig="$tmp" set-cluster sessionplane --server="https://127.0.0.1:$APISERVER_PORT" \
    --certificate-authority="$PKI/ca.crt" --embed-certs=true >/dev/null
  "$KUBECTL" config --kubeconfig="$tmp" set-credentials "$user" \
    --client-certificate="$NODE_PKI/$user.crt" --client-key="$NODE_PKI/$user.key" --embed-certs=true >/dev/null
  "$KUBECTL" config --kubeconfig="$tmp" set-context default --cluster=sessionplane --user="$user" >/dev/null
  "$KUBECTL" config --kubeconfig="$tmp" use-context default >/dev/null
  chmod 600 "$tmp"
  mv "$tmp" "$file"
}

gen_node_pki() {
  mkdir -p "$NODE_PKI"
  chmod 700 "$NODE_PKI"
  [[ -f $PKI/ca.crt && -f $PKI/ca.key ]] || node_die "no cluster CA in $PKI (did hack/cluster.sh up run?)"
  local client="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  node_sign kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "$client"
  node_sign kubelet-serving "/O=system:nodes/CN=system:node:$NODE_NAME" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:$NODE_NAME,IP:$NODE_IP,IP:127.0.0.1"
  node_sign kube-scheduler "/CN=system:kube-scheduler" "$client"
  node_sign kube-proxy "/CN=system:kube-proxy" "$client"
  local u
  for u in kubelet kube-scheduler kube-proxy; do write_kubeconfig "$NODE_STATE/$u.kubeconfig" "$u"; done
}

# --- host network: bridge, service route, forwarding guard -----------------------------------

setup_network() {
  [[ -f $NODE_STATE/ip_forward.orig ]] || sysctl -n net.ipv4.ip_forward >"$NODE_STATE/ip_forward.orig"
  # Pod -> ClusterIP -> pod is routed through the host (the DNAT happens at the bridge's IP).
  sysctl -qw net.ipv4.ip_forward=1
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  ip addr replace "$NODE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # ClusterIPs route to the bridge, never to the default route: if kube-proxy has no rule for
  # an address yet, the packet dies on the bridge instead of leaving the machine.
  ip route replace "$SERVICE_CIDR" dev "$BRIDGE" src "$NODE_IP"
  # Forwarding is on only for traffic that stays on the bridge; pods reach nothing beyond it.
  iptables -w -N SP-NODE-FORWARD 2>/dev/null || iptables -w -F SP-NODE-FORWARD
  iptables -w -A SP-NODE-FORWARD -i "$BRIDGE" ! -o "$BRIDGE" -j DROP
  iptables -w -A SP-NODE-FORWARD -o "$BRIDGE" ! -i "$BRIDGE" -j DROP
  iptables -w -C FORWARD -j SP-NODE-FORWARD 2>/dev/null || iptables -w -I FORWARD 1 -j SP-NODE-FORWARD
  iptables -w -C FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null ||
    iptables -w -A FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
}

write_cni_config() {
  mkdir -p "$CNI_CONF_DIR" "$CNI_DATA_DIR"
  cat >"$CNI_CONF_DIR/10-sessionplane.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "sessionplane",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$CNI_DATA_DIR",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

# --- containerd ---------------------------------------------------------------------------------

has_cap_sys_resource() { # bit 24 of the effective capability set
  local eff
  eff=$(awk '/^CapEff:/ {print $2}' /proc/self/status)
  (((0x$eff >> 24) & 1))
}

write_containerd_config() {
  local RESTRICT_OOM=false
  has_cap_sys_resource || RESTRICT_OOM=true
  mkdir -p "$CONTAINERD_ROOT" "$CONTAINERD_STATE" "$NODE_STATE/containerd/tmp" "$NODE_STATE/runc" \
    "$NODE_STATE/containerd/registry/_default"
  # Nothing is ever pulled: images are imported. Every registry resolves to a closed
  # loopback port, so an image that was not imported fails at once (ErrImagePull) and no
  # pull ever leaves this machine.
  cat >"$NODE_STATE/containerd/registry/_default/hosts.toml" <<'EOF'
server = "http://127.0.0.1:9"

[host."http://127.0.0.1:9"]
  capabilities = ["pull", "resolve"]
EOF
  cat >"$NODE_STATE/containerd/config.toml" <<EOF
version = 3
root = "$CONTAINERD_ROOT"
state = "$CONTAINERD_STATE"
temp = "$NODE_STATE/containerd/tmp"
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = "$CONTAINERD_SOCK"

[plugins.'io.containerd.internal.v1.opt']
  path = "$NODE_STATE/containerd/opt"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$PAUSE_REF"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "$NODE_STATE/containerd/registry"

[plugins.'io.containerd.cri.v1.runtime']
  enable_selinux = false
  # Without CAP_SYS_RESOURCE (this sandbox drops it) runc cannot lower oom_score_adj to the
  # kubelet's -998 for pause containers; clamp to containerd's own score instead.
  restrict_oom_score_adj = $RESTRICT_OOM
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$NODE_STATE/runc"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["$CNI_BIN_DIR"]
    conf_dir = "$CNI_CONF_DIR"
    max_conf_num = 1

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
EOF
}

containerd_ready() { ctr_k8s version; }

start_containerd() {
  write_containerd_config
  # containerd finds its shim binary on PATH.
  PATH=$CONTAINERD_BIN:$PATH node_start containerd "$CONTAINERD_BIN/containerd" \
    --config "$NODE_STATE/containerd/config.toml" --log-level warn
  node_wait containerd 60 containerd_ready || { tail -30 "$NODE_LOGS/containerd.log" >&2; return 1; }
}

import_tarballs() { # tar...: into containerd's k8s.io namespace, unpacked for the CRI snapshotter
  local tar
  for tar in "$@"; do
    [[ -f $tar ]] || node_die "no image tarball at $tar"
    ctr_k8s images import --snapshotter overlayfs "$tar" >/dev/null
    node_log "imported $tar"
  done
}

# Tarballs imported with `up.sh import`, kept outside the node's state dir so that a fresh
# start (which wipes containerd's store) imports them again.
IMAGE_LIST=$STATE/node-images.list

remember_tarballs() {
  local tar
  touch "$IMAGE_LIST"
  for tar in "$@"; do
    tar=$(realpath "$tar")
    grep -qxF -- "$tar" "$IMAGE_LIST" || printf '%s\n' "$tar" >>"$IMAGE_LIST"
  done
}

# The node's own images, the remembered ones that still exist, and SESSIONPLANE_NODE_IMAGES
# (space-separated tarball paths).
import_images() {
  local extra=() tar
  read -r -a extra <<<"${SESSIONPLANE_NODE_IMAGES:-}"
  if [[ -f $IMAGE_LIST ]]; then
    while read -r tar; do
      if [[ -f $tar ]]; then extra+=("$tar"); else node_log "skipping vanished image tarball $tar"; fi
    done <"$IMAGE_LIST"
  fi
  import_tarballs "$PAUSE_TAR" "$COREDNS_TAR" "${extra[@]}"
}

# --- kubelet, scheduler, proxy ------------------------------------------------------------------

write_kubelet_config() {
  mkdir -p "$KUBELET_ROOT" "$NODE_STATE/pod-logs" "$NODE_STATE/volume-plugins"
  printf 'nameserver %s\nsearch %s\n' "$DNS_SERVICE_IP" "$CLUSTER_DOMAIN" >"$NODE_STATE/resolv.conf"
  cat >"$NODE_STATE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 0.0.0.0
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$PKI/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$NODE_PKI/kubelet-serving.crt"
tlsPrivateKeyFile: "$NODE_PKI/kubelet-serving.key"
containerRuntimeEndpoint: "unix://$CONTAINERD_SOCK"
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDNS: ["$DNS_SERVICE_IP"]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: "$NODE_STATE/resolv.conf"
staticPodPath: ""
podLogsDir: "$NODE_STATE/pod-logs"
volumePluginDir: "$NODE_STATE/volume-plugins"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
serializeImagePulls: false
maxPods: 110
rotateCertificates: false
serverTLSBootstrap: false
EOF
}

kubelet_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz" | grep -qx ok; }
node_ready() {
  [[ $("$KUBECTL" --kubeconfig="$ADMIN_KUBECONFIG" get node "$NODE_NAME" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

# The kubelet registers with the not-ready taint; the node-lifecycle controller, which would
# lift it, is not among the harness's controllers. Lift it once the node is Ready.
untaint_node() {
  if "$KUBECTL" --kubeconfig="$ADMIN_KUBECONFIG" get node "$NODE_NAME" -o jsonpath='{.spec.taints[*].key}' |
    grep -qw node.kubernetes.io/not-ready; then
    "$KUBECTL" --kubeconfig="$ADMIN_KUBECONFIG" taint node "$NODE_NAME" node.kubernetes.io/not-ready:NoSchedule- >/dev/null
  fi
}

start_kubelet() {
  write_kubelet_config
  node_start kubelet "$K8S_BIN/kubelet" \
    --config="$NODE_STATE/kubelet.yaml" --kubeconfig="$NODE_STATE/kubelet.kubeconfig" \
    --root-dir="$KUBELET_ROOT" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=1
  node_wait kubelet 60 kubelet_healthy || { tail -30 "$NODE_LOGS/kubelet.log" >&2; return 1; }
}

scheduler_healthy() { curl -fsSk --max-time 2 "https://127.0.0.1:$SCHEDULER_PORT/healthz" | grep -qx ok; }

start_scheduler() {
  node_start kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig="$NODE_STATE/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig="$NODE_STATE/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$NODE_STATE/kube-scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" --leader-elect=false --profiling=false --v=1
  node_wait kube-scheduler 60 scheduler_healthy || { tail -30 "$NODE_LOGS/kube-scheduler.log" >&2; return 1; }
}

write_proxy_config() {
  cat >"$NODE_STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$NODE_STATE/kube-proxy.kubeconfig"}
hostnameOverride: "$NODE_NAME"
mode: iptables
clusterCIDR: "$POD_CIDR"
bindAddress: "$NODE_IP"
healthzBindAddress: "127.0.0.1:$PROXY_HEALTHZ_PORT"
metricsBindAddress: "127.0.0.1:$PROXY_METRICS_PORT"
nodePortAddresses: ["$POD_CIDR"]
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  masqueradeAll: false
  syncPeriod: 30s
  minSyncPeriod: 1s
EOF
}

proxy_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:$PROXY_HEALTHZ_PORT/livez" >/dev/null; }

start_proxy() {
  write_proxy_config
  node_start kube-proxy "$K8S_BIN/kube-proxy" --config="$NODE_STATE/kube-proxy.yaml" --v=1
  node_wait kube-proxy 60 proxy_healthy || { tail -30 "$NODE_LOGS/kube-proxy.log" >&2; return 1; }
}

# The API server listens on loopback only (hack/cluster.sh), which pods cannot reach. A
# forwarder on the node IP plus a hand-made EndpointSlice for the `kubernetes` Service
# (the harness runs the API server with --endpoint-reconciler-type=none) gives in-cluster
# clients the usual https://kubernetes.default path. TLS passes through untouched.
forward_reachable() { (exec 3<>"/dev/tcp/$NODE_IP/$APISERVER_PORT") 2>/dev/null; }

start_apiserver_forward() {
  node_start apiserver-forward "$(command -v socat)" \
    "TCP-LISTEN:$APISERVER_PORT,bind=$NODE_IP,fork,reuseaddr" "TCP:127.0.0.1:$APISERVER_PORT"
  node_wait apiserver-forward 10 forward_reachable || { tail -10 "$NODE_LOGS/apiserver-forward.log" >&2; return 1; }
}

apply_cluster_objects() {
  "$KUBECTL" --kubeconfig="$ADMIN_KUBECONFIG" apply --server-side --force-conflicts \
    --field-manager=sessionplane-node -f - >/dev/null <<EOF
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kubernetes
  namespace: default
  labels:
    kubernetes.io/service-name: kubernetes
    endpointslice.kubernetes.io/managed-by: sessionplane-node
addressType: IPv4
endpoints:
- addresses: ["$NODE_IP"]
  conditions: {ready: true}
ports:
- name: https
  protocol: TCP
  port: $APISERVER_PORT
---
# The API server calls the kubelet (logs, exec, port-forward) as this user; kubeadm would
# bind its group, hack/cluster.sh does not, and the kubelet authorizes by webhook.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "sessionplane:apiserver-kubelet-client"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:kubelet-api-admin"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: kube-apiserver-kubelet-client}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects:
- {kind: ServiceAccount, name: coredns, namespace: kube-system}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  # No forward and no loop: nothing outside the cluster domain is resolvable here, and
  # loop detection would crash-loop without an upstream.
  Corefile: |
    .:1053 {
        errors
        health :8080
        ready :8181
        kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            # CoreDNS's own default. A restarted store pod keeps its name but not its IP,
            # and its peers dial it by name: a 30 s TTL left them dialling the dead IP for
            # up to 30 s after the pod was Ready again (e2e: every request failed then).
            ttl 5
        }
        cache 30
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      containers:
      - name: coredns
        image: $COREDNS_REF
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 1053, protocol: UDP}
        - {name: dns-tcp, containerPort: 1053, protocol: TCP}
        readinessProbe:
          httpGet: {path: /ready, port: 8181}
          periodSeconds: 2
        livenessProbe:
          httpGet: {path: /health, port: 8080}
          periodSeconds: 10
          failureThreshold: 5
        resources:
          requests: {cpu: 50m, memory: 32Mi}
          limits: {memory: 170Mi}
        securityContext:
          runAsNonRoot: true
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        volumeMounts:
        - {name: config, mountPath: /etc/coredns, readOnly: true}
      volumes:
      - name: config
        configMap: {name: coredns}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  clusterIP: $DNS_SERVICE_IP
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
EOF
}

dns_ready() {
  [[ $("$KUBECTL" --kubeconfig="$ADMIN_KUBECONFIG" -n kube-system get deploy coredns \
    -o jsonpath='{.status.readyReplicas}' 2>/dev/null) == 1 ]]
}

# --- storage: a default StorageClass over a pool of static PersistentVolumes ---------------------
# No provisioner runs here, so up.sh pre-creates $PV_COUNT hostPath PVs (directories under
# $PV_DIR) in StorageClass `local`, the default class. WaitForFirstConsumer lets the scheduler
# pick the PV together with the pod's node. Reclaim is Retain (hostPath has no deleter), so a
# released PV is recycled by recycle_pvs: its directory is emptied and its claimRef cleared.

pv_name() { printf 'local-pv-%02d' "$1"; }

# hostPath volumes get no fsGroup handling: the directory itself must be writable by whatever
# uid the pod runs as (the store runs as 65532). A test cluster can afford 0777.
prepare_pv_dir() { # dir
  mkdir -p "$1"
  chmod 0777 "$1"
}

wipe_pv_dir() { # dir: delete its contents, keep the directory
  if [[ -d $1 ]]; then find "$1" -mindepth 1 -delete; fi
  prepare_pv_dir "$1"
}

ensure_storage() {
  local existing i name manifest=""
  existing=$("$KUBECTL" --kubeconfig="$ADMIN_KUBECONFIG" get pv -l "$PV_LABEL" -o name)
  for ((i = 1; i <= PV_COUNT; i++)); do
    name=$(pv_name "$i")
    if grep -qx "persistentvolume/$name" <<<"$existing"; then
      prepare_pv_dir "$PV_DIR/$name"
      continue
    fi
    # A new PV object must not hand out what an earlier control plane's claim left behind.
    if [[ -d $PV_DIR/$name ]]; then wipe_pv_dir "$PV_DIR/$name"; else prepare_pv_dir "$PV_DIR/$name"; fi
    manifest+="---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $name
  labels: {${PV_LABEL%%=*}: ${PV_LABEL#*=}}
spec:
  capacity: {storage: $PV_SIZE}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: local
  volumeMode: Filesystem
  hostPath: {path: \"$PV_DIR/$name\", type: Directory}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [\"$NODE_NAME\"]}
"
  done
  "$KUBECTL" --kubeconfig="$ADMIN_KUBECONFIG" apply --server-side --force-conflicts \
    --field-manager=sessionplane-node -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
reclaimPolicy: Retain
volumeBindingMode: WaitForFirstConsumer
$manifest
EOF
  recycle_pvs
  ensure_pv_recycler
  pv_binder_running || node_log "warning: the controller manager runs without persistentvolume-binder-controller, so PVCs will not bind; restart the control plane (hack/node/down.sh; hack/node/up.sh)"
}

pv_binder_running() {
  local pid
  pid=$(cat "$STATE/run/kube-controller-manager.pid" 2>/dev/null) || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q persistentvolume-binder-controller
}

# A Released PV (its claim is gone, e.g. deleted with its namespace) becomes Available again.
# No pod uses it any more (claim protection keeps a claim until its pods are gone), and the
# claimRef goes only after the wipe, so no new claim can bind to the old data.
recycle_pv() { # name
  [[ $1 == local-pv-* ]] || return 0
  wipe_pv_dir "$PV_DIR/$1"
  # The test op makes this a no-op when someone else recycled it first.
  "$KUBECTL" --kubeconfig="$ADMIN_KUBECONFIG" patch pv "$1" --type=json -p \
    '[{"op": "test", "path": "/status/phase", "value": "Released"}, {"op": "remove", "path": "/spec/claimRef"}]' \
    >/dev/null 2>&1 || return 0
  node_log "recycled PersistentVolume $1"
}

recycle_pvs() {
  local name phase
  while read -r name phase; do
    [[ $phase == Released ]] && recycle_pv "$name"
  done < <("$KUBECTL" --kubeconfig="$ADMIN_KUBECONFIG" get pv -l "$PV_LABEL" \
    -o jsonpath='{range .items[*]}{.metadata.name} {.status.phase}{"\n"}{end}')
  return 0
}

# The node's recycler: a watch on the pool's PVs that recycles each one as it is released,
# so suites that delete namespaces never drain the pool. Idle, it costs one blocked kubectl.
pv_recycler() {
  local name phase
  while :; do
    # --watch lists the current PVs first, so nothing released while no watch ran is missed;
    # the server ends a watch now and then, and the loop starts a new one.
    while read -r name phase; do
      [[ $phase == Released ]] && recycle_pv "$name"
    done < <("$KUBECTL" --kubeconfig="$ADMIN_KUBECONFIG" get pv -l "$PV_LABEL" --watch \
      -o jsonpath='{.metadata.name} {.status.phase}{"\n"}' 2>&1)
    sleep 5 # also paces the retries while the API server is away
  done
}

ensure_pv_recycler() {
  node_pid_of pv-recycler >/dev/null && return 0
  node_start pv-recycler "$NODE_REPO/hack/node/up.sh" pv-recycler
}

# --- commands ---------------------------------------------------------------------------------

all_running() {
  local c
  for c in "${COMPONENTS[@]}"; do node_pid_of "$c" >/dev/null || return 1; done
}

cmd_up() {
  local t0=$SECONDS
  "$NODE_REPO/hack/cluster.sh" up >/dev/null
  "$NODE_REPO/hack/node/build.sh" all
  node_k8s_paths
  ADMIN_KUBECONFIG=$STATE/kubeconfig
  NODE_NAME=$(node_name)
  if all_running && kubelet_healthy && scheduler_healthy && proxy_healthy && node_ready && dns_ready; then
    node_log "reusing the healthy node $NODE_NAME"
    ensure_storage
    "$NODE_REPO/hack/cluster.sh" env
    return 0
  fi
  # Anything half-up is torn down first so every run starts from the same clean state.
  "$NODE_REPO/hack/node/down.sh" --node-only
  node_claim_machine
  preflight
  mkdir -p "$NODE_STATE"
  if [[ -d $NODE_LOGS ]]; then rm -rf "$NODE_LOGS.prev" && mv "$NODE_LOGS" "$NODE_LOGS.prev"; fi
  gen_node_pki
  setup_network
  write_cni_config
  start_containerd || node_die "containerd did not start (log: $NODE_LOGS/containerd.log)"
  import_images
  start_apiserver_forward || node_die "the API server forwarder did not start"
  start_kubelet || node_die "kubelet not healthy (log: $NODE_LOGS/kubelet.log)"
  # kube-proxy waits for its Node object at startup; start it once the node has registered.
  node_wait "node $NODE_NAME Ready" "$READY_TIMEOUT" node_ready ||
    { tail -30 "$NODE_LOGS/kubelet.log" >&2; node_die "node $NODE_NAME never became Ready"; }
  untaint_node
  start_scheduler || node_die "kube-scheduler not healthy (log: $NODE_LOGS/kube-scheduler.log)"
  start_proxy || node_die "kube-proxy not healthy (log: $NODE_LOGS/kube-proxy.log)"
  apply_cluster_objects
  ensure_storage
  node_wait "CoreDNS ready" "$READY_TIMEOUT" dns_ready || {
    "$KUBECTL" --kubeconfig="$ADMIN_KUBECONFIG" -n kube-system get pods -o wide >&2 || true
    node_die "CoreDNS did not become ready"
  }
  node_log "node $NODE_NAME Ready with CoreDNS at $DNS_SERVICE_IP; up took $((SECONDS - t0))s"
  printf '%s up %ss\n' "$(date -u +%FT%TZ)" "$((SECONDS - t0))" >>"$CACHE/node-up-times.txt"
  "$NODE_REPO/hack/cluster.sh" env
}

cmd_status() {
  node_k8s_paths
  local c pid rc=0
  for c in "${COMPONENTS[@]}"; do
    if pid=$(node_pid_of "$c"); then printf '%-24s running (pid %s)\n' "$c" "$pid"; else printf '%-24s stopped\n' "$c"; rc=1; fi
  done
  if pid=$(node_pid_of pv-recycler); then printf '%-24s running (pid %s)\n' pv-recycler "$pid"; else printf '%-24s stopped\n' pv-recycler; rc=1; fi
  ADMIN_KUBECONFIG=$STATE/kubeconfig
  NODE_NAME=$(node_name)
  if node_ready; then printf '%-24s Ready\n' "node $NODE_NAME"; else printf '%-24s not ready\n' "node $NODE_NAME"; rc=1; fi
  return $rc
}

# Sourcing the script (for debugging one step) defines the functions without running anything.
[[ ${BASH_SOURCE[0]} == "$0" ]] || return 0
case ${1:-up} in
  up) cmd_up ;;
  status) cmd_status ;;
  recycle-pvs)
    node_k8s_paths
    ADMIN_KUBECONFIG=$STATE/kubeconfig
    recycle_pvs
    ;;
  pv-recycler) # run by ensure_pv_recycler as a node component
    node_k8s_paths
    ADMIN_KUBECONFIG=$STATE/kubeconfig
    pv_recycler
    ;;
  import)
    shift
    node_k8s_paths
    import_tarballs "$@"
    remember_tarballs "$@"
    ;;
  *) sed -n '8,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
