#!/usr/bin/env bash
# The main job: a single-node Kubernetes on this machine (built from source the first time),
# the sessionplane operator installed with Helm, the Store example with the demo frontend,
# and how to open it in a browser. Tear down with `bash hack/node/down.sh`.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/e2e/demo.sh" "$@"
