#!/usr/bin/env bash
# Running pods in the local control plane: kube-scheduler and kwok, which plays the kubelet of
# fake Nodes (pods scheduled there go Running with no container runtime). Test tooling only.
#   nodes.sh start    after start.sh: start both, create the fake Nodes, wait until they are Ready
#   nodes.sh stop     stop what `start` started (found through its pid files)
#   nodes.sh status   exit 0 if both run
# Env: CONTROLPLANE_DIR (target/controlplane), CONTROLPLANE_FAKE_NODES (1; 0 = neither runs and
# pods stay Pending), KWOK (target/tools/kwok), CONTROLPLANE_READY_TIMEOUT (180),
# CONTROLPLANE_SCHEDULER_ARGS (extra kube-scheduler flags, space-separated; e.g. its client's QPS).
# Both use the admin kubeconfig (test cluster). A pid is only signalled if it still runs the
# binary it was started as (guards against a recycled pid).
set -uo pipefail

DIR=${CONTROLPLANE_DIR:-target/controlplane}
NODES=${CONTROLPLANE_FAKE_NODES:-1}
KWOK=${KWOK:-target/tools/kwok}
TIMEOUT=${CONTROLPLANE_READY_TIMEOUT:-180}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MODE=${1:-}
# The annotation kwok selects the Nodes it plays by.
ANNOTATION=kwok.x-k8s.io/node
COMPONENTS=(kube-scheduler kwok)

# ours PID NAME: the process runs the binary NAME.
ours() {
  local pid=$1 arg0
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  arg0=$(tr '\0' '\n' <"/proc/$pid/cmdline" | head -n1)
  [ "$(basename -- "$arg0")" = "$2" ]
}
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
readpid() { [ -f "$1" ] && tr -dc '0-9' <"$1"; }

stop() {
  local name pid i
  for name in "${COMPONENTS[@]}"; do
    pid=$(readpid "$DIR/$name.pid")
    if ours "$pid" "$name"; then
      kill -TERM "$pid" 2>/dev/null
      for ((i = 0; i < 100; i++)); do alive "$pid" || break; sleep 0.1; done
      if alive "$pid"; then
        echo "controlplane: $name (pid $pid) still running after 10s, killing it" >&2
        kill -KILL "$pid" 2>/dev/null
      fi
      [ "$MODE" = --quiet ] || echo "controlplane: stopped $name (pid $pid)"
    fi
    rm -f "$DIR/$name.pid"
  done
}

status() {
  local name pid rc=0
  for name in "${COMPONENTS[@]}"; do
    pid=$(readpid "$DIR/$name.pid")
    if ours "$pid" "$name"; then echo "controlplane: $name running, pid $pid"
    else echo "controlplane: $name not running"; rc=1; fi
  done
  return $rc
}

# launch NAME ARGS...: start a binary in its own session, log and pid file in $DIR.
launch() {
  local name=$1
  shift
  setsid "$@" </dev/null >"$DIR/$name.log" 2>&1 &
  echo $! >"$DIR/$name.pid"
}

fail() {
  echo "controlplane: $*" >&2
  for name in "${COMPONENTS[@]}"; do
    [ -s "$DIR/$name.log" ] || continue
    echo "---- last lines of $DIR/$name.log ----" >&2
    tail -n 25 "$DIR/$name.log" >&2
  done
  MODE=--quiet stop
  # Like start.sh: a failed start leaves nothing running.
  bash "$HERE/stop.sh" --quiet || true
  exit 1
}

start() {
  local kubeconfig=$DIR/kubeconfig kubectl=$DIR/bin/kubectl i name deadline ready
  MODE=--quiet stop
  [ "$NODES" -gt 0 ] 2>/dev/null || { echo "controlplane: no fake nodes (CONTROLPLANE_FAKE_NODES=$NODES): pods stay Pending"; return 0; }
  [ -s "$kubeconfig" ] || fail "$kubeconfig missing: start the control plane first (make controlplane)"
  for bin in "$DIR/bin/kube-scheduler" "$KWOK"; do
    [ -x "$bin" ] || fail "$bin missing, run 'make controlplane-build'"
  done
  launch kube-scheduler "$(cd "$DIR/bin" && pwd)/kube-scheduler" --kubeconfig="$kubeconfig" \
    --leader-elect=false --secure-port=0 ${CONTROLPLANE_SCHEDULER_ARGS:-}
  launch kwok "$(cd "$(dirname "$KWOK")" && pwd)/kwok" --kubeconfig="$kubeconfig" \
    --config="$HERE/kwok-stages.yaml" --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector="$ANNOTATION=fake" --cidr=10.0.128.0/17 --node-ip=127.0.0.1
  for ((i = 0; i < NODES; i++)); do
    "$kubectl" --kubeconfig "$kubeconfig" apply -f - >/dev/null <<NODE || fail "cannot create Node kwok-node-$i"
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {$ANNOTATION: fake}
  labels: {type: kwok, kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64}
NODE
  done
  deadline=$(( $(date +%s) + TIMEOUT ))
  while :; do
    for name in "${COMPONENTS[@]}"; do
      ours "$(readpid "$DIR/$name.pid")" "$name" || fail "$name exited (see $DIR/$name.log)"
    done
    ready=$("$kubectl" --kubeconfig "$kubeconfig" get nodes -l type=kwok \
      -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null | grep -c '^True$')
    [ "${ready:-0}" -ge "$NODES" ] && break
    [ "$(date +%s)" -lt "$deadline" ] || fail "fake nodes not Ready after ${TIMEOUT}s"
    sleep 0.2
  done
  # The apiserver taints a new Node not-ready; the node lifecycle controller, which would lift
  # the taint once kwok reports Ready, does not run here (no kubelet heartbeats to watch).
  for ((i = 0; i < NODES; i++)); do
    "$kubectl" --kubeconfig "$kubeconfig" taint node "kwok-node-$i" node.kubernetes.io/not-ready:NoSchedule-       >/dev/null 2>&1 || true
  done
  echo "controlplane: $NODES fake node(s) Ready (kwok pid $(readpid "$DIR/kwok.pid"), kube-scheduler pid $(readpid "$DIR/kube-scheduler.pid")); pods run"
}

case "$MODE" in
  start) start ;;
  stop | --quiet) stop ;;
  status) status ;;
  *) echo "usage: nodes.sh start|stop|status" >&2; exit 2 ;;
esac
