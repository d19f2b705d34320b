#!/usr/bin/env bash
# Regenerates every derived file: the CRD (from the Rust types), the chart's copy of it, and
# manifests/install.yaml (helm template of the chart). hack/check-generated.sh fails on drift.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$REPO/hack/lib/render.sh"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
render_generated "$tmp"
for f in "${GENERATED_FILES[@]}"; do
  if ! cmp -s "$tmp/$f" "$REPO/$f"; then
    mkdir -p "$(dirname "$REPO/$f")"
    cp "$tmp/$f" "$REPO/$f"
    echo "generate: updated $f"
  fi
done
