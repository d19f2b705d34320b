#!/usr/bin/env bash
# Fails when a generated file is stale: crds/ against the Rust types, the chart's CRD copy
# against crds/, manifests/install.yaml against `helm template` of the chart.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$REPO/hack/lib/render.sh"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
render_generated "$tmp"
stale=0
for f in "${GENERATED_FILES[@]}"; do
  if [[ ! -f $REPO/$f ]]; then
    echo "check-generated: $f is missing" >&2
    stale=1
  elif ! diff -u "$REPO/$f" "$tmp/$f" >"$tmp/diff" 2>&1; then
    echo "check-generated: $f is stale:" >&2
    head -40 "$tmp/diff" >&2
    stale=1
  fi
done
if ((stale)); then
  echo "check-generated: run hack/generate.sh and commit the result" >&2
  exit 1
fi
echo "check-generated: ${GENERATED_FILES[*]} are up to date"
