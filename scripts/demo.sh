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

say "starting scangate: webhook (HTTPS on 127.0.0.1:$PORT) and controller"
mkdir -p "$DEMO"
$BIN certs --out-dir "$DEMO/certs" --host 127.0.0.1 --host localhost
KUBECONFIG=$CP/kubeconfig $BIN webhook --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
  --tls-cert "$DEMO/certs/tls.crt" --tls-key "$DEMO/certs/tls.key" --config examples/config.yaml \
  >"$DEMO/webhook.log" 2>&1 &
pids+=($!)
# Builds before the controller landed say so; a built one fails fast on a missing kubeconfig.
probe=$(KUBECONFIG=/nonexistent timeout 10 $BIN controller --admin-listen 127.0.0.1:0 2>&1 || true)
if ! grep -q 'not built' <<<"$probe"; then
  KUBECONFIG=$CP/kubeconfig $BIN controller --admin-listen "127.0.0.1:$CONTROLLER_ADMIN_PORT" --leader-election=false \
    >"$DEMO/controller.log" 2>&1 &
  pids+=($!)
fi
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

say "the shop namespace, and scans of its images"
run $KUBECTL apply -f examples/scans/namespaces.yaml
bash scripts/play-scanner.sh "$KUBECTL" "$BIN"

say "what scangate knows"
run $KUBECTL get imagescans -n shop -o wide

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

say "done: scangate denied the vulnerable deployment and admitted the clean one"
