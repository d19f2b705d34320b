#!/usr/bin/env bash
# The demo: brings the cluster up (SESSIONPLANE_E2E_TARGET=local: this machine's node,
# hack/node/up.sh; kubeconfig: the current cluster), builds and loads the images, installs
# the operator with helm, applies the Store example (SessionCluster with 3 demo frontends
# and a 3-node store), waits until it is Ready, and says how to open the demo.
#
#   hack/e2e/demo.sh                 set everything up (idempotent) and print how to open it
#   hack/e2e/demo.sh port-forward    then also run the port-forward (Ctrl-C ends it)
set -euo pipefail
# shellcheck source=hack/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

E2E_NS=${DEMO_NAMESPACE:-sessionplane-demo}
PORT=${DEMO_PORT:-8080}
READY_TIMEOUT=${DEMO_READY_TIMEOUT:-300}

e2e_cluster_up
e2e_build_images
e2e_load_images
e2e_install_operator || e2e_die "helm install failed"
k create namespace "$E2E_NS" --dry-run=client -o yaml | k apply -f - >/dev/null
e2e_wait "the default ServiceAccount in $E2E_NS" 30 k -n "$E2E_NS" get serviceaccount default
k -n "$E2E_NS" apply -f "$E2E_EXAMPLE" >/dev/null
e2e_log "applied $(basename "$E2E_EXAMPLE") in $E2E_NS; waiting up to ${READY_TIMEOUT}s for it to be Ready"
replicas=$(k -n "$E2E_NS" get sessioncluster "$E2E_SC" -o jsonpath='{.spec.frontend.replicas}')
stores=$(k -n "$E2E_NS" get sessioncluster "$E2E_SC" -o jsonpath='{.spec.store.replicas}')
if ! e2e_wait_ready "$replicas" "$stores" "$READY_TIMEOUT"; then
  e2e_diagnostics
  e2e_die "the SessionCluster did not become Ready"
fi
e2e_log "ready after $((SECONDS - E2E_T0))s"

svc=$(e2e_frontend_service)
svc_port=$(k -n "$E2E_NS" get service "$svc" -o jsonpath='{.spec.ports[0].port}')
echo
k -n "$E2E_NS" get sessionclusters
echo
k -n "$E2E_NS" get pods -o wide
cat <<MSG

The demo is running. Open it in a browser:

  kubectl port-forward -n $E2E_NS svc/$svc $PORT:$svc_port
  then open http://127.0.0.1:$PORT

Log in with any name and press +1: the page shows which frontend pod answered. Reload to
land on other pods (a port-forward sticks to one pod; the Service spreads new connections),
scale with \`kubectl -n $E2E_NS scale sessioncluster/$E2E_SC --replicas=6\`, or delete pods:
you stay logged in and the counter stays right, because the session lives in the store.
MSG
if [[ $E2E_TARGET == local ]]; then
  ip=$(k -n "$E2E_NS" get service "$svc" -o jsonpath='{.spec.clusterIP}')
  echo "On this machine the Service's ClusterIP also works without a port-forward: http://$ip:$svc_port"
  echo "kubectl and helm for this cluster: eval \"\$(hack/node/up.sh)\"   (tear down: hack/node/down.sh)"
fi
if [[ ${1:-} == port-forward ]]; then
  echo
  exec kubectl port-forward -n "$E2E_NS" "svc/$svc" "$PORT:$svc_port"
fi
