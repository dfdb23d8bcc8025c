#!/usr/bin/env bash
# Stop the processes started by start.sh, found through their pid files:
# the controlplane process (etcd + kube-apiserver) and its
# kube-controller-manager child. A pid is only signalled if it still runs our
# binary (guards against a recycled pid).
#   stop.sh            stop, report
#   stop.sh --quiet    stop, say nothing when nothing runs
#   stop.sh --status   exit 0 if running (prints the env file), 1 if not
set -uo pipefail

DIR=${CONTROLPLANE_DIR:-target/controlplane}
MODE=${1:-}
MAIN_PID_FILE=$DIR/controlplane.pid
CM_PID_FILE=$DIR/controller-manager.pid

# ours PID: the process runs .../controlplane (the main binary or its
# `controlplane controller-manager` child).
ours() {
  local pid=$1 arg0
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  arg0=$(tr '\0' '\n' <"/proc/$pid/cmdline" | head -n1)
  [ "$(basename -- "$arg0")" = controlplane ]
}
# alive PID: the process exists and is not a zombie.
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
readpid() { [ -f "$1" ] && tr -dc '0-9' <"$1"; }

main_pid=$(readpid "$MAIN_PID_FILE")
cm_pid=$(readpid "$CM_PID_FILE")

if [ "$MODE" = --status ]; then
  if ours "$main_pid"; then
    echo "controlplane: running, pid $main_pid${cm_pid:+ (controller-manager $cm_pid)}"
    [ -f "$DIR/env" ] && cat "$DIR/env"
    exit 0
  fi
  echo "controlplane: not running"
  exit 1
fi

# stop_pid PID NAME SECONDS: SIGTERM, wait, then SIGKILL.
stop_pid() {
  local pid=$1 name=$2 secs=$3 i
  ours "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < secs * 10; i++)); do
    alive "$pid" || { echo "controlplane: stopped $name (pid $pid)"; return 0; }
    sleep 0.1
  done
  echo "controlplane: $name (pid $pid) still running after ${secs}s, killing it" >&2
  kill -KILL "$pid" 2>/dev/null
  sleep 0.2
}

stopped=
if ours "$main_pid"; then stop_pid "$main_pid" controlplane 60; stopped=1; fi
# The main process stops its child; this only catches a leftover one.
if ours "$cm_pid"; then stop_pid "$cm_pid" controller-manager 10; stopped=1; fi
rm -f "$MAIN_PID_FILE" "$CM_PID_FILE"
if [ -z "$stopped" ] && [ "$MODE" != --quiet ]; then
  echo "controlplane: not running"
fi
exit 0
