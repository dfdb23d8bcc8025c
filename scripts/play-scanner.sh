#!/usr/bin/env bash
# Plays a trusted CI pipeline for the demo: real reports from tests/fixtures/reports/ are pushed
# into scangate-system the way a pipeline does (`scangate report --to-configmap`), and the
# controller evaluates them with the admin's policy. The demo's admin is a trusted reporter.
# Usage: play-scanner.sh "KUBECTL..." SCANGATE_BIN
set -euo pipefail
KUBECTL=$1
BIN=$2
KUBECONFIG_PATH=$(echo "$KUBECTL" | sed -n 's/.*--kubeconfig \([^ ]*\).*/\1/p')

$KUBECTL apply -f examples/cluster/scanpolicy.yaml -f examples/cluster/imagescans.yaml
echo "$ scangate report grype-0.94.0_busybox-1.32.1.json --to-configmap scangate-system/busybox"
KUBECONFIG=$KUBECONFIG_PATH $BIN report tests/fixtures/reports/grype/grype-0.94.0_busybox-1.32.1.json --to-configmap scangate-system/busybox
# Trivy's golden SARIF scanned alpine 3.10 from a tarball, so it names the file, not an image,
# and scangate only stores a report for the scan's image: the pipeline says which image it was.
echo "$ scangate report trivy_alpine-3.10_image_golden.sarif --image docker.io/library/alpine:3.10 --to-configmap scangate-system/alpine"
KUBECONFIG=$KUBECONFIG_PATH $BIN report tests/fixtures/reports/sarif/trivy_alpine-3.10_image_golden.sarif \
  --image docker.io/library/alpine:3.10 --to-configmap scangate-system/alpine
for scan in busybox alpine; do
  $KUBECTL wait -n scangate-system "imagescan/$scan" --for=jsonpath='{.status.conditions[?(@.type=="Succeeded")].status}'=True --timeout=60s >/dev/null
done
