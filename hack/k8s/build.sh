#!/usr/bin/env bash
# Builds the pinned Kubernetes binaries, etcd, helm, and fetches the Gateway API CRDs
# and Envoy Gateway's BackendTrafficPolicy CRD,
# from the Go module proxy into a version-keyed cache outside the repo. Anything already
# present is skipped, so this is cheap to call before every `hack/cluster.sh up`.
set -euo pipefail

K8S_VERSION=v1.35.4
K8S_STAGING_VERSION=v0.35.4
ETCD_VERSION=v3.6.16
HELM_VERSION=v3.21.4
GATEWAY_API_VERSION=v1.6.3
# Only its BackendTrafficPolicy CRD: the operator writes those for ClientIP and Hash affinity.
ENVOY_GATEWAY_VERSION=v1.9.1
K8S_COMMANDS=(kube-apiserver kube-controller-manager kubectl kube-scheduler kubelet kube-proxy)

CACHE=${SESSIONPLANE_CACHE:-$HOME/.cache/sessionplane}
K8S_BIN=$CACHE/k8s-$K8S_VERSION/bin
ETCD_BIN=$CACHE/etcd-$ETCD_VERSION/bin
HELM_BIN=$CACHE/helm-$HELM_VERSION/bin
GATEWAY_DIR=$CACHE/gateway-api-$GATEWAY_API_VERSION
ENVOY_GATEWAY_DIR=$CACHE/envoy-gateway-$ENVOY_GATEWAY_VERSION
SRC=$CACHE/src

usage() {
  cat <<USAGE
usage: hack/k8s/build.sh [all|helm|etcd|k8s|gateway-api|paths]
  all          build whatever is missing (default)
  helm|etcd|k8s|gateway-api
               build only that component if it is missing
  paths        print the cache directories as shell variables
USAGE
}

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# Records the wall time of one component build so docs/operating.md can quote measured figures.
timed() {
  local name=$1; shift
  local start end
  start=$(date +%s)
  log "build $name: start"
  "$@"
  end=$(date +%s)
  log "build $name: done in $((end - start))s"
  printf '%s %s %ss %s\n' "$(date -u +%FT%TZ)" "$name" "$((end - start))" "$(nproc)cpu" >>"$CACHE/build-times.txt"
}

go_mod_field() { # module@version field -> value from `go mod download -json`
  (cd "$SRC" && GOFLAGS=-mod=mod go mod download -json "$1") |
    python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}

# Points every `=> ./relative` replace of an upstream go.mod at the released module version,
# which is what a `go install` of the upstream repo cannot do by itself.
replace_local_modules() { # upstream-go.mod version
  local upstream=$1 version=$2 mod
  for mod in $(grep -oE '^\s*[a-z0-9./_-]+\s+=>\s+\./' "$upstream" | awk '{print $1}' | sort -u); do
    go mod edit -replace="$mod=$mod@$version"
  done
}

copy_godebug() { # upstream-go.mod
  local line
  line=$(grep -E '^godebug\s+default=' "$1" || true)
  if [[ -n $line ]]; then
    go mod edit -godebug="${line#godebug }"
  fi
}

build_k8s() {
  local work=$SRC/k8s-$K8S_VERSION tmp=$K8S_BIN.tmp upstream pkgs=() cmd date_
  mkdir -p "$work" && cd "$work"
  [[ -f go.mod ]] || go mod init sessionplane.local/k8s-build >/dev/null 2>&1
  upstream=$(go_mod_field "k8s.io/kubernetes@$K8S_VERSION" GoMod)
  replace_local_modules "$upstream" "$K8S_STAGING_VERSION"
  log "k8s: $(grep -c "=> k8s.io/.*$K8S_STAGING_VERSION" go.mod) staging replaces"
  copy_godebug "$upstream"
  for cmd in "${K8S_COMMANDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$cmd"); done
  GOFLAGS=-mod=mod go get "${pkgs[@]/%/@$K8S_VERSION}"
  date_=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local ld=() p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=("-X $p.gitVersion=$K8S_VERSION" "-X $p.gitMajor=1" "-X $p.gitMinor=35"
      "-X $p.gitTreeState=clean" "-X $p.buildDate=$date_")
  done
  rm -rf "$tmp" && mkdir -p "$tmp"
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -tags selinux,notest \
    -ldflags "-s -w ${ld[*]}" -o "$tmp/" "${pkgs[@]}"
  rm -rf "$K8S_BIN" && mv "$tmp" "$K8S_BIN"
}

build_etcd() {
  local work=$SRC/etcd-$ETCD_VERSION tmp=$ETCD_BIN.tmp upstream
  mkdir -p "$work" && cd "$work"
  [[ -f go.mod ]] || go mod init sessionplane.local/etcd-build >/dev/null 2>&1
  upstream=$(go_mod_field "go.etcd.io/etcd/server/v3@$ETCD_VERSION" GoMod)
  replace_local_modules "$upstream" "$ETCD_VERSION"
  copy_godebug "$upstream"
  GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  rm -rf "$tmp" && mkdir -p "$tmp"
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3
  rm -rf "$ETCD_BIN" && mv "$tmp" "$ETCD_BIN"
}

build_helm() {
  local tmp=$HELM_BIN.tmp v=helm.sh/helm/v3
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd "$SRC" && CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS=-mod=mod go install -trimpath -ldflags "-s -w \
    -X $v/internal/version.version=$HELM_VERSION -X $v/internal/version.gitTreeState=clean \
    -X $v/pkg/chartutil.k8sVersionMajor=1 -X $v/pkg/chartutil.k8sVersionMinor=35 \
    -X $v/pkg/lint/rules.k8sVersionMajor=1 -X $v/pkg/lint/rules.k8sVersionMinor=35" \
    "$v/cmd/helm@$HELM_VERSION")
  rm -rf "$HELM_BIN" && mv "$tmp" "$HELM_BIN"
}

fetch_gateway_api() {
  local tmp=$GATEWAY_DIR.tmp dir
  dir=$(go_mod_field "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" Dir)
  rm -rf "$tmp" && mkdir -p "$tmp/standard" "$tmp/experimental"
  # Only the CRDs and policies: the kustomization.yaml beside them is not an API object.
  cp "$dir"/config/crd/standard/gateway.networking.*.yaml "$tmp/standard/"
  cp "$dir"/config/crd/experimental/gateway.networking.*.yaml "$tmp/experimental/"
  chmod -R u+w "$tmp"
  rm -rf "$GATEWAY_DIR" && mv "$tmp" "$GATEWAY_DIR"
}

fetch_envoy_gateway_crds() {
  local tmp=$ENVOY_GATEWAY_DIR.tmp dir
  dir=$(go_mod_field "github.com/envoyproxy/gateway@$ENVOY_GATEWAY_VERSION" Dir)
  rm -rf "$tmp" && mkdir -p "$tmp/crds"
  cp "$dir"/charts/gateway-helm/charts/crds/crds/generated/gateway.envoyproxy.io_backendtrafficpolicies.yaml "$tmp/crds/"
  chmod -R u+w "$tmp"
  rm -rf "$ENVOY_GATEWAY_DIR" && mv "$tmp" "$ENVOY_GATEWAY_DIR"
}

k8s_complete() {
  local cmd
  for cmd in "${K8S_COMMANDS[@]}"; do [[ -x $K8S_BIN/$cmd ]] || return 1; done
}

lock() {
  mkdir -p "$CACHE" "$SRC"
  # One builder at a time: cluster.sh may call us while a background build is running.
  exec 9>"$CACHE/build.lock"
  flock 9
}

ensure_gateway_api() { ls "$GATEWAY_DIR"/standard/*.yaml >/dev/null 2>&1 || timed "gateway-api-$GATEWAY_API_VERSION" fetch_gateway_api; }
ensure_envoy_gateway() { ls "$ENVOY_GATEWAY_DIR"/crds/*.yaml >/dev/null 2>&1 || timed "envoy-gateway-crds-$ENVOY_GATEWAY_VERSION" fetch_envoy_gateway_crds; }
ensure_helm() { [[ -x $HELM_BIN/helm ]] || timed "helm-$HELM_VERSION" build_helm; }
ensure_etcd() { [[ -x $ETCD_BIN/etcd ]] || timed "etcd-$ETCD_VERSION" build_etcd; }
ensure_k8s() { k8s_complete || timed "k8s-$K8S_VERSION" build_k8s; }

build_all() {
  local start
  start=$(date +%s)
  ensure_gateway_api
  ensure_envoy_gateway
  ensure_helm
  ensure_etcd
  ensure_k8s
  log "all components present in $CACHE (this run: $(($(date +%s) - start))s)"
}

case ${1:-all} in
  all) lock && build_all ;;
  helm) lock && ensure_helm ;;
  etcd) lock && ensure_etcd ;;
  k8s) lock && ensure_k8s ;;
  gateway-api) lock && ensure_gateway_api && ensure_envoy_gateway ;;
  paths)
    printf 'K8S_BIN=%q\nETCD_BIN=%q\nHELM_BIN=%q\nGATEWAY_DIR=%q\nENVOY_GATEWAY_DIR=%q\n' \
      "$K8S_BIN" "$ETCD_BIN" "$HELM_BIN" "$GATEWAY_DIR" "$ENVOY_GATEWAY_DIR"
    ;;
  -h | --help) usage ;;
  *) usage >&2; exit 2 ;;
esac
