#!/usr/bin/env bash
# Builds the demo frontend image without Docker: the host's Node.js (/usr/bin/node and the
# libraries ldd lists) + demo/ with its production node_modules (npm ci from the committed
# lock file), user 65532, entrypoint `node /app/server.mjs`, as a reproducible OCI tarball
#   $CACHE/images/demo-frontend-<version>.tar   named docker.io/sessionplane/demo-frontend:<version>
# Import it with `ctr -n k8s.io images import <tar>` or `kind load image-archive <tar>`.
#
#   hack/e2e/demo-image.sh          build the tarball (if its inputs changed); print its path
#   hack/e2e/demo-image.sh path     print the tarball path only
#   hack/e2e/demo-image.sh ref      print the image reference
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${SESSIONPLANE_CACHE:-$HOME/.cache/sessionplane}
NODE_BIN=${SESSIONPLANE_DEMO_NODE:-/usr/bin/node}
VERSION=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$REPO/demo/package.json" | head -1)
[[ -n $VERSION ]] || { echo "demo-image: no version in demo/package.json" >&2; exit 1; }
REF=${SESSIONPLANE_DEMO_IMAGE_REPOSITORY:-docker.io/sessionplane/demo-frontend}:$VERSION
TARBALL=$CACHE/images/demo-frontend-$VERSION.tar
STAGE=$CACHE/demo-build

# What the image is made of; the tarball is rebuilt only when this changes.
inputs_hash() {
  {
    (cd "$REPO/demo" && sha256sum package.json package-lock.json ./*.mjs)
    sha256sum "$NODE_BIN" "$REPO/hack/e2e/demo_image.py" "$REPO/hack/node/oci_pack.py"
    echo "$REF"
  } | sha256sum | cut -c1-16
}

build() {
  local t0=$SECONDS hash
  [[ -x $NODE_BIN ]] || { echo "demo-image: no Node.js at $NODE_BIN" >&2; exit 1; }
  hash=$(inputs_hash)
  if [[ -f $TARBALL && -f $TARBALL.inputs && $(cat "$TARBALL.inputs") == "$hash" ]]; then
    echo "demo-image: $REF up to date -> $TARBALL" >&2
    echo "$TARBALL"
    return
  fi
  rm -rf "$STAGE" && mkdir -p "$STAGE/app" "$CACHE/images"
  (cd "$REPO/demo" && cp package.json package-lock.json ./*.mjs "$STAGE/app/")
  # --ignore-scripts: none of the pinned packages needs an install script, and none runs.
  (cd "$STAGE/app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  python3 "$REPO/hack/e2e/demo_image.py" --ref "$REF" --out "$TARBALL" --node "$NODE_BIN" --app "$STAGE/app"
  echo "$hash" >"$TARBALL.inputs"
  echo "demo-image: $REF -> $TARBALL ($(du -h "$TARBALL" | cut -f1), $((SECONDS - t0))s)" >&2
  echo "$TARBALL"
}

case ${1:-build} in
  build) build ;;
  path) echo "$TARBALL" ;;
  ref) echo "$REF" ;;
  *) sed -n '8,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
