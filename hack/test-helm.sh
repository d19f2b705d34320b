#!/usr/bin/env bash
# Installs the chart into the local control plane (hack/cluster.sh) and checks what it
# created: the CRD is Established, the operator's Deployment, ServiceAccount, RBAC and metrics
# Service exist with the hardening the chart promises, the RBAC grants what the operator needs
# and nothing broad, every example in manifests/examples passes the API server's validation,
# and `helm uninstall` removes the release. No kubelet is needed: the pod stays Pending.
#
# Uses its own release and namespace (SESSIONPLANE_HELM_TEST_NS, default sessionplane-helmtest)
# so it cannot clobber an install other tests made.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NS=${SESSIONPLANE_HELM_TEST_NS:-sessionplane-helmtest}
REL=sp-helmtest
FULLNAME=$REL-sessionplane
SA=system:serviceaccount:$NS:$FULLNAME
EXAMPLES_NS=$NS-examples
failures=0

"$REPO/hack/cluster.sh" up >/dev/null
eval "$("$REPO/hack/cluster.sh" env)"
K=(kubectl --request-timeout=30s)

pass() { printf 'ok    %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; failures=$((failures + 1)); }
check() { # description command...
  local what=$1
  shift
  if "$@" >/dev/null 2>&1; then pass "$what"; else fail "$what"; fi
}
expect_eq() { # description expected actual
  if [[ $2 == "$3" ]]; then pass "$1"; else fail "$1: expected '$2', got '$3'"; fi
}
jp() { "${K[@]}" -n "$NS" get "$1" -o "jsonpath=$2"; }

cleanup() {
  helm uninstall "$REL" -n "$NS" --wait --timeout 60s >/dev/null 2>&1 || true
  "${K[@]}" delete namespace "$NS" "$EXAMPLES_NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup

check "helm lint --strict" helm lint --strict "$REPO/charts/sessionplane"

# helm installs a CRD only when it is absent and never upgrades it; bring the cluster's copy up
# to the chart's so the examples below are checked against the current schema.
check "chart CRD applies (server-side) over any older copy" \
  "${K[@]}" apply --server-side --force-conflicts --field-manager=sessionplane-test-helm \
  -f "$REPO/charts/sessionplane/crds/"

helm install "$REL" "$REPO/charts/sessionplane" -n "$NS" --create-namespace --wait=false \
  --set image.pullPolicy=Never --set replicaCount=2 >/dev/null
pass "helm install $REL into namespace $NS"

check "CRD sessionclusters.sessionplane.dev is Established" \
  "${K[@]}" wait --for=condition=Established --timeout=60s crd/sessionclusters.sessionplane.dev
for obj in deployment/$FULLNAME serviceaccount/$FULLNAME service/$FULLNAME-metrics \
  role/$FULLNAME-leader-election rolebinding/$FULLNAME-leader-election; do
  check "$obj exists" "${K[@]}" -n "$NS" get "$obj"
done
for obj in clusterrole/$FULLNAME clusterrolebinding/$FULLNAME; do
  check "$obj exists" "${K[@]}" get "$obj"
done

c='{.spec.template.spec.containers[0]'
expect_eq "operator runs 'sessionplane operator'" '["operator"]' "$(jp deployment/$FULLNAME "$c.args}")"
expect_eq "replicas follow values" 2 "$(jp deployment/$FULLNAME '{.spec.replicas}')"
expect_eq "pullPolicy follows values" Never "$(jp deployment/$FULLNAME "$c.imagePullPolicy}")"
expect_eq "readOnlyRootFilesystem" true "$(jp deployment/$FULLNAME "$c.securityContext.readOnlyRootFilesystem}")"
expect_eq "allowPrivilegeEscalation false" false "$(jp deployment/$FULLNAME "$c.securityContext.allowPrivilegeEscalation}")"
expect_eq "capabilities drop ALL" '["ALL"]' "$(jp deployment/$FULLNAME "$c.securityContext.capabilities.drop}")"
expect_eq "pod runAsNonRoot" true "$(jp deployment/$FULLNAME '{.spec.template.spec.securityContext.runAsNonRoot}')"
expect_eq "seccomp RuntimeDefault" RuntimeDefault "$(jp deployment/$FULLNAME '{.spec.template.spec.securityContext.seccompProfile.type}')"
expect_eq "liveness probe /healthz" /healthz "$(jp deployment/$FULLNAME "$c.livenessProbe.httpGet.path}")"
expect_eq "readiness probe /readyz" /readyz "$(jp deployment/$FULLNAME "$c.readinessProbe.httpGet.path}")"
expect_eq "metrics Service targets port 8080" 8080 "$(jp service/$FULLNAME-metrics '{.spec.ports[0].port}')"

# The controller manager turns the Deployment into a ReplicaSet: proof the control plane works
# end to end, and that the chart's selector matches its template.
rs_ok() { [[ -n $("${K[@]}" -n "$NS" get replicaset -l app.kubernetes.io/instance="$REL" -o name) ]]; }
ok=0
for _ in $(seq 1 60); do rs_ok && { ok=1; break; }; sleep 0.5; done
if ((ok)); then pass "controller manager created the operator's ReplicaSet"; else fail "no ReplicaSet for the operator Deployment after 30s"; fi

# RBAC: what the operator needs...
for sub in status scale; do
  check "operator can patch sessionclusters/$sub" \
    "${K[@]}" auth can-i patch sessionclusters.sessionplane.dev --subresource="$sub" --as="$SA" -A
done
for want in "watch sessionclusters.sessionplane.dev" "patch deployments.apps" "delete statefulsets.apps" \
  "create secrets" "patch configmaps" "create poddisruptionbudgets.policy" "patch ingresses.networking.k8s.io" \
  "patch httproutes.gateway.networking.k8s.io" "patch backendtrafficpolicies.gateway.envoyproxy.io" \
  "create events.events.k8s.io" "list pods"; do
  check "operator can $want" "${K[@]}" auth can-i $want --as="$SA" -A
done
check "operator can update its lease in $NS" "${K[@]}" auth can-i update leases.coordination.k8s.io --as="$SA" -n "$NS"
# ...and nothing broad.
for deny in "create pods" "delete pods" "delete nodes" "create clusterroles.rbac.authorization.k8s.io" \
  "delete customresourcedefinitions.apiextensions.k8s.io" "delete sessionclusters.sessionplane.dev" \
  "get nodes"; do
  if "${K[@]}" auth can-i $deny --as="$SA" -A >/dev/null 2>&1; then fail "operator must not $deny"; else pass "operator cannot $deny"; fi
done
if "${K[@]}" auth can-i update leases.coordination.k8s.io --as="$SA" -n kube-system >/dev/null 2>&1; then
  fail "operator must not touch leases outside $NS"
else
  pass "operator cannot touch leases outside $NS"
fi
if "${K[@]}" auth can-i create pods --subresource=exec --as="$SA" -A >/dev/null 2>&1; then
  fail "operator must not exec into pods"
else
  pass "operator cannot exec into pods"
fi
rules=$("${K[@]}" get clusterrole "$FULLNAME" -o jsonpath='{.rules[*].verbs}{.rules[*].resources}{.rules[*].apiGroups}')
if [[ $rules == *'"*"'* ]]; then fail "ClusterRole has a wildcard: $rules"; else pass "ClusterRole has no wildcard verbs, resources or groups"; fi

# Every example passes the CRD's schema and CEL rules.
"${K[@]}" create namespace "$EXAMPLES_NS" >/dev/null
for ex in "$REPO"/manifests/examples/*.yaml; do
  check "example $(basename "$ex") is accepted by the API server" \
    "${K[@]}" -n "$EXAMPLES_NS" apply --server-side --dry-run=server -f "$ex"
done

if helm uninstall "$REL" -n "$NS" --wait --timeout 60s >/dev/null; then pass "helm uninstall"; else fail "helm uninstall"; fi
gone() { ! "${K[@]}" get clusterrole "$FULLNAME" >/dev/null 2>&1 && ! "${K[@]}" -n "$NS" get deployment "$FULLNAME" >/dev/null 2>&1; }
check "uninstall removed the Deployment and the ClusterRole" gone

if ((failures)); then
  echo "test-helm: $failures check(s) failed"
  exit 1
fi
echo "test-helm: all checks passed"
