#!/usr/bin/env bash
# Builds what the single-node cluster needs beyond the control plane, into the same
# version-keyed cache as hack/k8s/build.sh (${SESSIONPLANE_CACHE:-~/.cache/sessionplane}):
#   containerd, ctr, containerd-shim-runc-v2   go install from the Go module proxy
#   coredns                                    go build of hack/node/coredns (only the Corefile's
#                                              plugins), modules from the Go module proxy
#   pause image                                build/pause/linux/pause.c of the kubernetes module, gcc -static
#   coredns image                              the coredns binary in a one-layer OCI tarball
#   traefik + its image (only `build.sh traefik`) go build of the released module (its go.mod
#                                              has replace directives, so go install cannot)
#   runc, CNI plugins, iptables, conntrack, socat   Debian packages (apt-get, only when missing)
# Present pieces are skipped, so this is cheap to call before every up.
#
#   hack/node/build.sh [all]   build whatever is missing
#   hack/node/build.sh debs    install the Debian packages only
#   hack/node/build.sh traefik build Traefik and its image if missing (hack/e2e/routing.sh)
#   hack/node/build.sh prefetch  only download the modules of missing CoreDNS/Traefik builds
#   hack/node/build.sh paths   print the cache locations as shell variables
set -euo pipefail
# shellcheck source=hack/node/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEBS=(runc containernetworking-plugins iptables conntrack socat)
# Builds share two cores with everything else on the machine; stay polite.
NICE=(nice -n 10)

timed() { # name command...: run and record the wall time next to the harness's figures
  local name=$1 start
  shift
  start=$(date +%s)
  node_log "build $name: start"
  "$@"
  node_log "build $name: done in $(($(date +%s) - start))s"
  printf '%s %s %ss %s\n' "$(date -u +%FT%TZ)" "$name" "$(($(date +%s) - start))" "$(nproc)cpu" >>"$CACHE/build-times.txt"
}

debs_present() {
  [[ -x /usr/sbin/runc || -x /usr/bin/runc ]] && [[ -x $CNI_BIN_DIR/bridge && -x $CNI_BIN_DIR/host-local &&
    -x $CNI_BIN_DIR/portmap && -x $CNI_BIN_DIR/loopback ]] &&
    command -v iptables >/dev/null && command -v conntrack >/dev/null && command -v socat >/dev/null
}

install_debs() {
  debs_present && return 0
  node_log "installing Debian packages: ${DEBS[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${DEBS[@]}" >/dev/null
  debs_present || node_die "Debian packages installed but runc/CNI plugins/iptables/conntrack/socat still missing"
}

# go install PKG@VERSION into a temporary GOBIN, then move the whole directory into place so a
# half-finished build never looks complete.
go_install() { # destdir tags version pkgs...
  local tags=$2 version=$3 tmp=$1.tmp
  shift 3
  rm -rf "$tmp" && mkdir -p "$tmp"
  local p pkgs=()
  for p in "$@"; do pkgs+=("$p@$version"); done
  (cd "$CACHE" && CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS=-mod=mod "${NICE[@]}" \
    go install -trimpath -tags "$tags" -ldflags "-s -w" "${pkgs[@]}")
}

build_containerd() {
  local m=github.com/containerd/containerd/v2 tmp=$CONTAINERD_BIN.tmp
  # Upstream sets the version with -X; go install cannot, so `containerd --version` says
  # "(devel)"-ish. The CRI version the kubelet checks comes from the module, not from this.
  go_install "$CONTAINERD_BIN" "no_btrfs,no_devmapper,no_zfs" "$CONTAINERD_VERSION" \
    "$m/cmd/containerd" "$m/cmd/ctr" "$m/cmd/containerd-shim-runc-v2"
  rm -rf "$CONTAINERD_BIN" && mv "$tmp" "$CONTAINERD_BIN"
}

# The slim CoreDNS: 2.5 min cold instead of 10 for the release's every plugin (docs/node.md).
# -mod=readonly: the committed go.sum is the whole truth, nothing is written into the repo.
build_coredns() {
  local tmp=$COREDNS_BIN.tmp
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd "$COREDNS_MODULE" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" "${NICE[@]}" \
    go build -trimpath -ldflags "-s -w" -o "$tmp/coredns" .)
  rm -rf "$COREDNS_BIN" && mv "$tmp" "$COREDNS_BIN"
}

pause_source() {
  local dir
  dir=$(cd "$CACHE" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  printf '%s/build/pause/linux/pause.c\n' "$dir"
}

build_pause() {
  local src work=$IMAGES/pause-build
  src=$(pause_source)
  [[ -f $src ]] || node_die "no pause.c at $src"
  mkdir -p "$work"
  # Same flags as build/pause/Makefile.
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-sessionplane" -o "$work/pause" "$src"
  strip "$work/pause"
  python3 "$NODE_REPO/hack/node/oci_pack.py" --ref "$PAUSE_REF" --out "$PAUSE_TAR" \
    --entrypoint /pause --user 65535:65535 --file "/pause=$work/pause"
  rm -rf "$work"
}

build_coredns_image() {
  python3 "$NODE_REPO/hack/node/oci_pack.py" --ref "$COREDNS_REF" --out "$COREDNS_TAR" \
    --entrypoint /coredns --user 65532:65532 --file "/coredns=$COREDNS_BIN/coredns"
}

# Traefik's go.mod replaces modules (one with a local path), which `go install pkg@version`
# refuses; building inside a copy of the released module source honours them. The version
# string upstream sets with -X is set the same way, so /api/version and the logs tell it.
TRAEFIK_MODULE=github.com/traefik/traefik/v3

traefik_source() { # the released module's directory in the module cache (downloaded if missing)
  (cd "$CACHE" && GOFLAGS=-mod=mod go mod download -json "$TRAEFIK_MODULE@$TRAEFIK_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
}

build_traefik() {
  local m=$TRAEFIK_MODULE src tmp=$TRAEFIK_BIN.tmp work=$CACHE/src/traefik-$TRAEFIK_VERSION
  src=$(traefik_source)
  rm -rf "$work" "$tmp" && mkdir -p "$tmp" "$CACHE/src"
  cp -r "$src" "$work" && chmod -R u+w "$work"
  (cd "$work" && CGO_ENABLED=0 GOFLAGS=-mod=readonly "${NICE[@]}" go build -trimpath \
    -ldflags "-s -w -X $m/pkg/version.Version=$TRAEFIK_VERSION -X $m/pkg/version.Codename=sessionplane" \
    -o "$tmp/traefik" ./cmd/traefik)
  rm -rf "$work" "$TRAEFIK_BIN" && mv "$tmp" "$TRAEFIK_BIN"
}

build_traefik_image() {
  python3 "$NODE_REPO/hack/node/oci_pack.py" --ref "$TRAEFIK_REF" --out "$TRAEFIK_TAR" \
    --entrypoint /traefik --user 65532:65532 --file "/traefik=$TRAEFIK_BIN/traefik"
}

build_traefik_all() {
  mkdir -p "$CACHE" "$IMAGES"
  # Its own lock: a long Traefik build must not hold up another `up`'s node components.
  exec 8>"$CACHE/traefik-build.lock"
  flock 8
  [[ -x $TRAEFIK_BIN/traefik ]] || timed "traefik-$TRAEFIK_VERSION" build_traefik
  [[ -f $TRAEFIK_TAR ]] || build_traefik_image
}

# Downloads the modules the CoreDNS and Traefik builds will need, compiling nothing, for the
# builds that are missing. Network-bound: hack/test.sh runs it in the background while the
# cold Rust builds hold the cores (Traefik's modules took 293 s to fetch here, docs/node.md).
# `go list -deps` with the builds' own settings fetches exactly the modules they compile.
prefetch() {
  mkdir -p "$CACHE"
  if [[ ! -x $COREDNS_BIN/coredns ]]; then
    (cd "$COREDNS_MODULE" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go list -deps . >/dev/null)
    node_log "prefetch: CoreDNS modules present"
  fi
  if [[ ! -x $TRAEFIK_BIN/traefik ]]; then
    local src
    src=$(traefik_source)
    (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go list -deps ./cmd/traefik >/dev/null)
    node_log "prefetch: Traefik modules present"
  fi
}

build_all() {
  local start=$SECONDS
  mkdir -p "$CACHE" "$IMAGES"
  exec 8>"$CACHE/node-build.lock"
  flock 8
  install_debs
  [[ -f $PAUSE_TAR ]] || timed "pause-$PAUSE_VERSION" build_pause
  [[ -x $CONTAINERD_BIN/containerd && -x $CONTAINERD_BIN/ctr && -x $CONTAINERD_BIN/containerd-shim-runc-v2 ]] ||
    timed "containerd-$CONTAINERD_VERSION" build_containerd
  [[ -x $COREDNS_BIN/coredns ]] || timed "coredns-$COREDNS_KEY" build_coredns
  [[ -f $COREDNS_TAR ]] || build_coredns_image
  node_log "node components present in $CACHE (this run: $((SECONDS - start))s)"
}

node_k8s_paths
case ${1:-all} in
  all) build_all ;;
  debs) install_debs ;;
  traefik) build_traefik_all ;;
  prefetch) prefetch ;;
  paths)
    printf 'CONTAINERD_BIN=%q\nCOREDNS_BIN=%q\nPAUSE_TAR=%q\nPAUSE_REF=%q\nCOREDNS_TAR=%q\nCOREDNS_REF=%q\nTRAEFIK_BIN=%q\nTRAEFIK_TAR=%q\nTRAEFIK_REF=%q\n' \
      "$CONTAINERD_BIN" "$COREDNS_BIN" "$PAUSE_TAR" "$PAUSE_REF" "$COREDNS_TAR" "$COREDNS_REF" "$TRAEFIK_BIN" "$TRAEFIK_TAR" "$TRAEFIK_REF"
    ;;
  *) sed -n '14,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
