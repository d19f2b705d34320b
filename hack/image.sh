#!/usr/bin/env bash
# Builds the sessionplane image without Docker: a static release binary (glibc, crt-static)
# packed into a reproducible OCI image layout tarball at
#   $CACHE/images/sessionplane-<version>.tar   named docker.io/sessionplane/sessionplane:<version>
# Import it with `ctr -n k8s.io images import <tar>` or `kind load image-archive <tar>`.
#
#   hack/image.sh          build the binary (if changed) and the tarball; print its path
#                          SESSIONPLANE_IMAGE_SOURCE=head builds the committed HEAD instead of
#                          the working tree (others' half-edited files cannot break it)
#   hack/image.sh path     print the tarball path only
#   hack/image.sh verify   check the tarball's digests and contents
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${SESSIONPLANE_CACHE:-$HOME/.cache/sessionplane}
TARGET=x86_64-unknown-linux-gnu
IMAGE_REPOSITORY=${SESSIONPLANE_IMAGE_REPOSITORY:-docker.io/sessionplane/sessionplane}
VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$REPO/Cargo.toml")
[[ -n $VERSION ]] || { echo "image: no [workspace.package] version in Cargo.toml" >&2; exit 1; }
TARBALL=$CACHE/images/sessionplane-$VERSION.tar
REF=$IMAGE_REPOSITORY:$VERSION

build() {
  local t0=$SECONDS bin src=$REPO target_dir=${CARGO_TARGET_DIR:-$REPO/target} locked=--locked
  if [[ ${SESSIONPLANE_IMAGE_SOURCE:-worktree} == head ]]; then
    src=$CACHE/image-src
    rm -rf "$src" && mkdir -p "$src"
    git -C "$REPO" archive HEAD | tar -x -C "$src"
    # The working tree's lock file is the one every build here resolved with; the committed
    # one may lag behind a dependency someone added, so let cargo settle the difference.
    cp "$REPO/Cargo.lock" "$src/Cargo.lock"
    locked=
    echo "image: building committed $(git -C "$REPO" rev-parse --short HEAD)" >&2
  fi
  # --target keeps RUSTFLAGS off build scripts and proc macros, and keeps these artifacts
  # apart from the host builds everyone else shares in target/.
  (cd "$src" && CARGO_TARGET_DIR=$target_dir RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release $locked --target "$TARGET" --bin sessionplane)
  bin=$target_dir/$TARGET/release/sessionplane
  # A static(-pie) binary has no shared-library lines in ldd's output.
  if ldd "$bin" 2>&1 | grep -q '=>'; then
    echo "image: $bin is dynamically linked; refusing to put it in a scratch image" >&2
    exit 1
  fi
  mkdir -p "$CACHE/images"
  # The release profile keeps line tables for local backtraces; the image does not need them.
  local packed=$CACHE/images/.sessionplane.stripped
  strip --strip-debug -o "$packed" "$bin"
  python3 "$REPO/hack/lib/oci_image.py" build --binary "$packed" --ref "$REF" --out "$TARBALL" >&2
  rm -f "$packed"
  python3 "$REPO/hack/lib/oci_image.py" verify "$TARBALL" >/dev/null
  echo "image: $REF -> $TARBALL ($(du -h "$TARBALL" | cut -f1), $((SECONDS - t0))s)" >&2
  echo "$TARBALL"
}

case ${1:-build} in
  build) build ;;
  path) echo "$TARBALL" ;;
  ref) echo "$REF" ;;
  verify) python3 "$REPO/hack/lib/oci_image.py" verify "$TARBALL" ;;
  *) sed -n '7,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
