# Shared by hack/e2e/run.sh and hack/e2e/demo.sh: target selection, images, install, waits.
#
# SESSIONPLANE_E2E_TARGET selects the cluster:
#   local       (default) this machine's single-node cluster, hack/node/up.sh; images are
#               imported into its containerd; the host reaches ClusterIPs directly.
#   kubeconfig  whatever cluster KUBECONFIG (or E2E_KUBECONFIG) points at, e.g. kind; images
#               go in with `kind load image-archive` when the context is kind-<name>, and
#               must otherwise already be pullable; traffic is generated from a pod.
# Setting E2E_KUBECONFIG alone implies the kubeconfig target.
# shellcheck shell=bash

E2E_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [[ -n ${E2E_KUBECONFIG:-} ]]; then
  E2E_TARGET=${SESSIONPLANE_E2E_TARGET:-kubeconfig}
  export KUBECONFIG=$E2E_KUBECONFIG
else
  E2E_TARGET=${SESSIONPLANE_E2E_TARGET:-local}
fi
E2E_OPERATOR_NS=${E2E_OPERATOR_NAMESPACE:-sessionplane-system}
E2E_NS=${E2E_NAMESPACE:-sessionplane-e2e}
E2E_EXAMPLE=$E2E_REPO/manifests/examples/store.yaml
E2E_SC=$(sed -n 's/^  name: \(.*\)$/\1/p' "$E2E_EXAMPLE" | head -1) # the SessionCluster's name
E2E_T0=$SECONDS

e2e_log() { printf '%s [%4ds] %s\n' "$(date -u +%H:%M:%S)" $((SECONDS - E2E_T0)) "$*" >&2; }
e2e_die() { e2e_log "ERROR: $*"; exit 1; }

# Runs "$@" until it succeeds, for at most $2 seconds of wall time.
e2e_wait() { # what seconds cmd...
  local what=$1 secs=$2 deadline=$((SECONDS + $2))
  shift 2
  while ((SECONDS < deadline)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 1
  done
  e2e_log "timed out after ${secs}s waiting for $what"
  return 1
}

k() { kubectl "$@"; }

# Brings the target cluster up (local) or checks it answers (kubeconfig); exports KUBECONFIG
# and a PATH with kubectl and helm.
e2e_cluster_up() {
  case $E2E_TARGET in
    local)
      [[ $(id -u) == 0 ]] || e2e_die "the local target needs root (hack/node/up.sh)"
      local env
      env=$("$E2E_REPO/hack/node/up.sh") || e2e_die "hack/node/up.sh failed"
      eval "$env"
      ;;
    kubeconfig)
      command -v kubectl >/dev/null || e2e_die "kubectl not on PATH"
      command -v helm >/dev/null || e2e_die "helm not on PATH"
      ;;
    *) e2e_die "SESSIONPLANE_E2E_TARGET must be local or kubeconfig, not '$E2E_TARGET'" ;;
  esac
  e2e_wait "the API server" 60 k get --raw /readyz || e2e_die "no API server answers (KUBECONFIG=${KUBECONFIG:-})"
  e2e_log "cluster: $E2E_TARGET, context $(k config current-context 2>/dev/null || echo '?')"
}

# Builds both image tarballs (each script skips work when nothing changed).
# E2E_OPERATOR_IMAGE_TAR names an already built sessionplane image tarball instead.
e2e_build_images() {
  if [[ -n ${E2E_OPERATOR_IMAGE_TAR:-} ]]; then
    [[ -f $E2E_OPERATOR_IMAGE_TAR ]] || e2e_die "E2E_OPERATOR_IMAGE_TAR=$E2E_OPERATOR_IMAGE_TAR does not exist"
    E2E_OPERATOR_TAR=$E2E_OPERATOR_IMAGE_TAR
  else
    E2E_OPERATOR_TAR=$("$E2E_REPO/hack/image.sh") || e2e_die "hack/image.sh failed"
  fi
  E2E_DEMO_TAR=$("$E2E_REPO/hack/e2e/demo-image.sh") || e2e_die "hack/e2e/demo-image.sh failed"
}

e2e_load_images() {
  local tar ctx
  case $E2E_TARGET in
    local)
      "$E2E_REPO/hack/node/up.sh" import "$E2E_OPERATOR_TAR" "$E2E_DEMO_TAR" >&2 || e2e_die "hack/node/up.sh import failed"
      ;;
    kubeconfig)
      ctx=$(k config current-context 2>/dev/null || true)
      if [[ $ctx == kind-* ]] && command -v kind >/dev/null; then
        for tar in "$E2E_OPERATOR_TAR" "$E2E_DEMO_TAR"; do
          kind load image-archive "$tar" --name "${ctx#kind-}" >&2 || e2e_die "kind load image-archive $tar failed"
        done
      else
        e2e_log "context '$ctx' is not kind: assuming the cluster can already get both images"
      fi
      ;;
  esac
  e2e_log "images: $(basename "$E2E_OPERATOR_TAR"), $(basename "$E2E_DEMO_TAR") loaded"
}

# helm install (or upgrade) of the chart; the images never come from a registry.
e2e_install_operator() {
  local policy=Never
  [[ $E2E_TARGET == kubeconfig ]] && policy=${E2E_PULL_POLICY:-IfNotPresent}
  helm upgrade --install sessionplane "$E2E_REPO/charts/sessionplane" -n "$E2E_OPERATOR_NS" --create-namespace \
    --set image.pullPolicy="$policy" --set replicaCount="${E2E_OPERATOR_REPLICAS:-1}" >/dev/null || return 1
  # A rebuilt image keeps its tag, so helm sees no change: restart to run what was just loaded.
  k -n "$E2E_OPERATOR_NS" rollout restart deployment -l app.kubernetes.io/instance=sessionplane >/dev/null || return 1
  k -n "$E2E_OPERATOR_NS" rollout status deployment -l app.kubernetes.io/instance=sessionplane --timeout=180s >/dev/null || {
    k -n "$E2E_OPERATOR_NS" get pods -o wide >&2 || true
    k -n "$E2E_OPERATOR_NS" logs deploy/sessionplane --tail=10 >&2 || true
    return 1
  }
  e2e_log "operator: helm release sessionplane in $E2E_OPERATOR_NS ready"
}

# A fresh namespace with the Store example in it.
e2e_apply_example() {
  k delete namespace "$E2E_NS" --ignore-not-found --wait=true --timeout=120s >/dev/null || e2e_die "namespace $E2E_NS did not go away"
  k create namespace "$E2E_NS" >/dev/null
  e2e_wait "the default ServiceAccount in $E2E_NS" 30 k -n "$E2E_NS" get serviceaccount default || return 1
  k -n "$E2E_NS" apply -f "$E2E_EXAMPLE" >/dev/null
  e2e_log "applied $(basename "$E2E_EXAMPLE"): SessionCluster $E2E_SC in $E2E_NS"
}

# "frontendReady|storeReady|readyCondition|phase" of the SessionCluster. '|' separates the
# fields because one may be empty (no store for strategy Client), which whitespace would
# swallow.
e2e_sc_state() {
  k -n "$E2E_NS" get sessioncluster "$E2E_SC" -o \
    jsonpath='{.status.frontend.readyReplicas}|{.status.store.readyReplicas}|{.status.conditions[?(@.type=="Ready")].status}|{.status.phase}' 2>/dev/null
}

# True when the frontend Deployment and store StatefulSet have exactly the wanted ready
# pods, no pod of the cluster is unready or terminating, and the SessionCluster reports the
# same counts with Ready=True.
e2e_ready() { # frontends stores
  local want_f=$1 want_s=$2 f s cond pods
  IFS='|' read -r f s cond _ <<<"$(e2e_sc_state)"
  [[ ${f:-0} == "$want_f" && ${s:-0} == "$want_s" && $cond == True ]] || return 1
  pods=$(k -n "$E2E_NS" get pods -l "app.kubernetes.io/instance=$E2E_SC" --no-headers 2>/dev/null) || return 1
  [[ $(grep -c . <<<"$pods") == $((want_f + want_s)) ]] || return 1
  ! grep -qvE '\s([0-9]+)/\1\s+Running\s' <<<"$pods"
}

e2e_wait_ready() { # frontends stores seconds
  local deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do
    e2e_ready "$1" "$2" && return 0
    sleep 1
  done
  e2e_log "not ready after ${3}s (want frontend=$1 store=$2): SessionCluster says $(e2e_sc_state)"
  return 1
}

e2e_diagnostics() {
  {
    echo "--- pods in $E2E_NS"
    k -n "$E2E_NS" get pods -o wide
    echo "--- SessionCluster $E2E_SC conditions"
    k -n "$E2E_NS" get sessioncluster "$E2E_SC" -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}'
    echo "--- operator log (last 15 lines)"
    k -n "$E2E_OPERATOR_NS" logs deploy/sessionplane --tail=15
  } >&2 2>&1 || true
}

# Ready pods are endpoints a moment before kube-proxy routes to them: waits until the
# frontend Service at this ClusterIP answers (local target: the host reaches ClusterIPs).
e2e_wait_routed() { # clusterIP
  e2e_wait "the frontend Service answering at $1" 30 curl -sf -o /dev/null "http://$1/healthz"
}

# A pod's Prometheus text, through the API server's pod proxy (empty if unreachable).
e2e_pod_metrics() { # namespace pod port
  k -n "$1" get --raw "/api/v1/namespaces/$1/pods/$2:$3/proxy/metrics" 2>/dev/null || true
}

e2e_frontend_service() { echo "$E2E_SC-frontend"; }
