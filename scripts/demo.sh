#!/usr/bin/env bash
# `make demo`: a local control plane, scangate installed, a vulnerable deployment denied and a
# clean one admitted. Prints what it does. Cleans up unless KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/debug/scangate}
CP=${CONTROLPLANE_DIR:-target/controlplane}
KUBECTL="$CP/bin/kubectl --kubeconfig $CP/kubeconfig"
DEMO=target/demo
PORT=${DEMO_WEBHOOK_PORT:-18443}
ADMIN_PORT=${DEMO_ADMIN_PORT:-18080}
CONTROLLER_ADMIN_PORT=${DEMO_CONTROLLER_ADMIN_PORT:-18081}
RESULTS_PORT=${DEMO_RESULTS_PORT:-18444}
pids=()

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then
    say "KEEP=1: leaving it running"
    echo "  kubectl:  $KUBECTL get imagescans -A"
    echo "  stop it:  kill ${pids[*]:-}; make controlplane-stop"
    return
  fi
  say "cleaning up"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  make --no-print-directory controlplane-stop
}
trap cleanup EXIT

say "starting a local Kubernetes control plane (etcd, kube-apiserver, controllers)"
make --no-print-directory controlplane

say "installing the scangate CRDs"
run $KUBECTL apply --server-side -k deploy/crds/
$KUBECTL wait --for=condition=Established --timeout=60s crd/imagescans.scanning.scangate.dev >/dev/null

say "installing scangate's RBAC (per role, and the tenant and approver roles)"
run $KUBECTL apply --server-side -k deploy/rbac/

say "starting scangate: webhook (HTTPS on 127.0.0.1:$PORT) and controller, each as its ServiceAccount"
mkdir -p "$DEMO"
$BIN certs --out-dir "$DEMO/certs" --host 127.0.0.1 --host localhost
# Each role acts with its own ServiceAccount's rights (impersonated, as no pod runs here): only
# the controller's identity may write scan status.
kubeconfig_as() {
  sed "s|^  user:\$|  user:\n    as: system:serviceaccount:scangate-system:$1|" "$CP/kubeconfig" >"$DEMO/kubeconfig-$1"
  echo "$DEMO/kubeconfig-$1"
}
KUBECONFIG=$(kubeconfig_as scangate-webhook) $BIN webhook --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
  --tls-cert "$DEMO/certs/tls.crt" --tls-key "$DEMO/certs/tls.key" --config examples/config.yaml \
  >"$DEMO/webhook.log" 2>&1 &
pids+=($!)
KUBECONFIG=$(kubeconfig_as scangate-controller) $BIN controller --admin-listen "127.0.0.1:$CONTROLLER_ADMIN_PORT" \
  --leader-election=false --config examples/config.yaml \
  --results-listen "127.0.0.1:$RESULTS_PORT" --results-tls-cert-file "$DEMO/certs/tls.crt" \
  --results-tls-key-file "$DEMO/certs/tls.key" >"$DEMO/controller.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null || { cat "$DEMO/webhook.log"; exit 1; }
echo "webhook ready (logs: $DEMO/webhook.log)"

say "installing scangate's CRDs, RBAC and webhook configurations (deploy/local: loopback URL, local CA)"
$BIN webhook-config --url "https://127.0.0.1:$PORT" --ca-file "$DEMO/certs/ca.crt" >deploy/local/webhooks.yaml
run $KUBECTL apply --server-side -k deploy/local
$KUBECTL wait --for=condition=Established --timeout=60s crd/imagescans.scanning.scangate.dev >/dev/null

say "the shop namespace, and trusted scans of its images in scangate-system (a CI pipeline pushes the reports)"
run $KUBECTL apply -f examples/scans/namespaces.yaml
bash scripts/play-scanner.sh "$KUBECTL" "$BIN"

say "what scangate knows"
run $KUBECTL get imagescans -n scangate-system -o wide

say "a deployment of busybox:1.32.1 (1 critical, 10 high CVEs): denied"
for _ in $(seq 1 50); do
  if ! $KUBECTL apply --dry-run=server -f examples/workloads/vulnerable-deployment.yaml >/dev/null 2>&1; then break; fi
  sleep 0.2
done
if run $KUBECTL apply -f examples/workloads/vulnerable-deployment.yaml; then
  echo "UNEXPECTED: the vulnerable deployment was admitted" >&2
  exit 1
fi

say "a deployment of alpine:3.10 (passed its scan): admitted"
run $KUBECTL apply -f examples/workloads/clean-deployment.yaml
run $KUBECTL get deployments -n shop

say "a tenant (built-in edit role in shop) tries to get busybox in"
run $KUBECTL create rolebinding dev-edit -n shop --clusterrole=edit --user=dev
AS_DEV="$KUBECTL --as=dev -n shop"
expect_refused() {
  if run "$@"; then echo "UNEXPECTED: the tenant's attempt succeeded" >&2; exit 1; fi
}
echo "# its own scan of busybox is fine to create, but counts only against its namespace"
run $AS_DEV apply -f - <<'YAML'
apiVersion: scanning.scangate.dev/v1beta1
kind: ImageScan
metadata: {name: my-busybox}
spec: {registry: {image: "busybox:1.32.1"}}
YAML
echo "# writing a verdict into its scan's status, deleting the trusted report, writing an exception: refused"
expect_refused $AS_DEV patch imagescan my-busybox --subresource=status --type=merge \
  -p '{"status": {"conditions": [{"type": "Scanning", "status": "False", "reason": "JobFinished", "message": "x"}]}}'
expect_refused $KUBECTL --as=dev -n scangate-system delete configmap busybox-report
expect_refused $AS_DEV create -f - <<'YAML'
apiVersion: scanning.scangate.dev/v1beta1
kind: ScanException
metadata: {name: everything}
spec: {images: ["*"], reason: "mine", expires: "2099-01-01T00:00:00Z"}
YAML
echo "# and busybox is still denied, by the trusted result"
expect_refused $AS_DEV apply -f examples/workloads/vulnerable-deployment.yaml

say "an exception approver admits busybox in shop only, for a reviewed reason"
run $KUBECTL create rolebinding security-lead -n shop --clusterrole=scangate-exception-approver --user=security-lead
expires=$(date -u -d '+7 days' +%Y-%m-%dT%H:%M:%SZ)
run $KUBECTL --as=security-lead -n shop apply -f - <<YAML
apiVersion: scanning.scangate.dev/v1beta1
kind: ScanException
metadata: {name: legacy-tools}
spec:
  images: ["docker.io/library/busybox:1.32.1"]
  reason: "SEC-42: legacy tooling, replaced next sprint"
  expires: "$expires"
YAML
for _ in $(seq 1 50); do
  if $AS_DEV apply --dry-run=server -f examples/workloads/vulnerable-deployment.yaml >/dev/null 2>&1; then break; fi
  sleep 0.2
done
run $AS_DEV apply -f examples/workloads/vulnerable-deployment.yaml
echo "# in sandbox (warn mode) it is still only a warning of a denial: the exception is shop's"
run $KUBECTL apply --dry-run=server -n sandbox -f - <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: probe}
spec: {containers: [{name: sh, image: "busybox:1.32.1"}]}
YAML

say "what runs, and would it be admitted today: PolicyReports, kubectl scangate status, the results page"
echo "# kwok's fake node runs the admitted pods; the controller reports each running image's verdict"
for _ in $(seq 1 150); do
  results=$($KUBECTL get policyreports -n shop -o jsonpath='{range .items[*].results[*]}{.result}{"\n"}{end}' 2>/dev/null | grep -c . || true)
  [ "$results" -ge 2 ] && break
  sleep 0.2
done
run $KUBECTL get policyreports -n shop
run env KUBECONFIG="$CP/kubeconfig" $BIN status --config examples/config.yaml
PAGE="https://127.0.0.1:$RESULTS_PORT"
echo "# the results page ($PAGE) wants a token whose user may list ImageScans in every namespace"
run curl -s -o /dev/null -w '%{http_code} without a token\n' --cacert "$DEMO/certs/ca.crt" "$PAGE/"
$KUBECTL create serviceaccount security-viewer -n scangate-system >/dev/null
$KUBECTL create clusterrolebinding security-viewer --clusterrole=scangate-view \
  --serviceaccount=scangate-system:security-viewer >/dev/null
TOKEN=$($KUBECTL create token security-viewer -n scangate-system --duration=10m)
printf '$ curl -s --cacert %s -H "Authorization: Bearer $TOKEN" %s\n' "$DEMO/certs/ca.crt" "$PAGE/scans.csv"
curl -sf --cacert "$DEMO/certs/ca.crt" -H "Authorization: Bearer $TOKEN" "$PAGE/scans.csv" | tee "$DEMO/scans.csv"
grep -q busybox "$DEMO/scans.csv" || { echo "the results page did not list the busybox scan"; exit 1; }
echo "# open $PAGE in a browser (KEEP=1 keeps it running) and log in with: $KUBECTL create token security-viewer -n scangate-system"

say "done: scangate denied the vulnerable deployment, admitted the clean one, and held against the tenant"
