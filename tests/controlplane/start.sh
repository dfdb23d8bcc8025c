#!/usr/bin/env bash
# Start the local control plane in the background and wait until it is ready:
# /readyz answers ok and the "default" ServiceAccount exists in namespace
# "default" (the token controller works). Called by `make controlplane`.
# A running instance started from the same directory is stopped first: every
# start is a clean cluster.
set -euo pipefail

DIR=${CONTROLPLANE_DIR:-target/controlplane}
BIN=$DIR/bin/controlplane
KUBECTL=$DIR/bin/kubectl
TIMEOUT=${CONTROLPLANE_READY_TIMEOUT:-180}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

[ -x "$BIN" ] || { echo "controlplane: $BIN missing, run 'make controlplane-build'" >&2; exit 1; }
[ -x "$KUBECTL" ] || { echo "controlplane: $KUBECTL missing, run 'make controlplane-build'" >&2; exit 1; }

if bash "$HERE/stop.sh" --status >/dev/null 2>&1; then
  echo "controlplane: already running, restarting it for a clean cluster"
fi
bash "$HERE/stop.sh" --quiet

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
LOG=$DIR/controlplane.log
KUBECONFIG_PATH=$DIR/kubeconfig
rm -f "$DIR/controlplane.pid" "$KUBECONFIG_PATH" "$DIR/controller-manager.log" "$DIR/etcd.log"

# Webhooks (and aggregated APIs) behind a Service are called at its endpoints (EndpointSlices),
# not at its cluster IP, which nothing routes here (no kube-proxy): a test can point a Service
# at a webhook on this machine with an EndpointSlice (tests/e2e_helm.rs).
export CONTROLPLANE_APISERVER_ARGS="--enable-aggregator-routing=true${CONTROLPLANE_APISERVER_ARGS:+ $CONTROLPLANE_APISERVER_ARGS}"

start=${EPOCHREALTIME/./}
"$DIR/bin/controlplane" --dir "$DIR" --setsid --ready-timeout "${TIMEOUT}s" </dev/null >"$LOG" 2>&1 &
pid=$!

fail() {
  echo "controlplane: $*" >&2
  for f in "$LOG" "$DIR/controller-manager.log" "$DIR/etcd.log"; do
    [ -s "$f" ] || continue
    echo "---- last lines of $f ----" >&2
    tail -n 25 "$f" >&2
  done
  bash "$HERE/stop.sh" --quiet || true
  exit 1
}

deadline=$(( $(date +%s) + TIMEOUT ))
ready=
while :; do
  kill -0 "$pid" 2>/dev/null || { wait "$pid" || rc=$?; fail "process exited (status ${rc:-0}) before becoming ready"; }
  [ "$(date +%s)" -lt "$deadline" ] || fail "not ready after ${TIMEOUT}s"
  if [ -z "$ready" ]; then
    if [ -s "$KUBECONFIG_PATH" ] &&
       [ "$("$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" get --raw /readyz 2>/dev/null)" = ok ]; then
      ready=1
    fi
  elif "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" -n default get serviceaccount default >/dev/null 2>&1; then
    break
  fi
  sleep 0.2
done
ms=$(( (${EPOCHREALTIME/./} - start) / 1000 ))

echo "controlplane: ready in $((ms / 1000)).$(printf %03d $((ms % 1000)))s (pid $(cat "$DIR/controlplane.pid" 2>/dev/null || echo "$pid"))"
echo "  kubeconfig: $KUBECONFIG_PATH"
echo "  kubectl:    $DIR/bin/kubectl"
echo "  logs:       $DIR/*.log"
echo "  env:        . $DIR/env   # exports KUBECONFIG, CONTROLPLANE_KUBECTL, CONTROLPLANE_APISERVER, CONTROLPLANE_CA_FILE"
