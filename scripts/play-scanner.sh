#!/usr/bin/env bash
# Plays the scanner for the demo: real reports from tests/fixtures/reports/ are pushed the way a
# CI pipeline does (`scangate report --to-configmap`), and the controller evaluates them.
# Without a controller in this build, the example statuses are written directly.
# Usage: play-scanner.sh "KUBECTL..." SCANGATE_BIN
set -euo pipefail
KUBECTL=$1
BIN=$2
KUBECONFIG_PATH=$(echo "$KUBECTL" | sed -n 's/.*--kubeconfig \([^ ]*\).*/\1/p')

# Builds before the controller landed say so; a built one fails fast on a missing kubeconfig.
probe=$(KUBECONFIG=/nonexistent timeout 10 $BIN controller --admin-listen 127.0.0.1:0 2>&1 || true)
if ! grep -q 'not built' <<<"$probe"; then
  $KUBECTL apply -f examples/cluster/scanpolicy.yaml -f examples/cluster/imagescans.yaml
  echo "$ scangate report grype-0.94.0_busybox-1.32.1.json --to-configmap shop/busybox"
  KUBECONFIG=$KUBECONFIG_PATH $BIN report tests/fixtures/reports/grype/grype-0.94.0_busybox-1.32.1.json --to-configmap shop/busybox
  echo "$ scangate report trivy_alpine-3.10_image_golden.sarif --to-configmap shop/alpine"
  KUBECONFIG=$KUBECONFIG_PATH $BIN report tests/fixtures/reports/sarif/trivy_alpine-3.10_image_golden.sarif --to-configmap shop/alpine
  for scan in busybox alpine; do
    $KUBECTL wait -n shop "imagescan/$scan" --for=jsonpath='{.status.conditions[?(@.type=="Succeeded")].status}'=True --timeout=60s >/dev/null
  done
else
  echo "(no controller in this build: writing the example scan statuses directly)"
  $KUBECTL apply -f examples/cluster/scanpolicy.yaml -f examples/scans/busybox.yaml -f examples/scans/alpine.yaml
  $KUBECTL apply --server-side --subresource=status -f examples/scans/busybox.yaml -f examples/scans/alpine.yaml
fi
