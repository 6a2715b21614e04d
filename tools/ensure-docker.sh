#!/usr/bin/env bash
# Make sure a Docker engine answers on /var/run/docker.sock.
# Installs Debian's docker.io when dockerd is missing, starts dockerd when it is
# not running (clearing a stale pidfile left by a killed engine) and waits for
# the socket to answer. Safe to run again and again.
set -euo pipefail

SOCK=/var/run/docker.sock
PIDFILE=/var/run/docker.pid
LOG=${PYWEB_DOCKERD_LOG:-/var/log/pyweb-dockerd.log}
WAIT=${PYWEB_DOCKERD_WAIT:-60}

say() { printf 'ensure-docker: %s\n' "$*" >&2; }

engine_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if engine_answers; then
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  say "dockerd missing: installing Debian's docker.io"
  bash "$(dirname "$0")/ensure-packages.sh" dockerd=docker.io
fi
if ! command -v docker >/dev/null 2>&1; then
  say "docker client missing after install"; exit 1
fi

# A pidfile whose process is gone (or is not dockerd) makes dockerd refuse to
# start; remove it, and a socket nobody listens on with it.
if [ -f "$PIDFILE" ]; then
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  if [ -z "$pid" ] || ! [ -d "/proc/$pid" ] || ! grep -q dockerd "/proc/$pid/comm" 2>/dev/null; then
    say "removing stale pidfile $PIDFILE (pid '${pid}')"
    rm -f "$PIDFILE" "$SOCK"
  fi
fi
# containerd started by a previous dockerd keeps its own pidfile.
cpid=/var/run/docker/containerd/containerd.pid
if [ -f "$cpid" ] && ! [ -d "/proc/$(cat "$cpid" 2>/dev/null || echo 0)" ]; then
  rm -f "$cpid"
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  say "starting dockerd (log: $LOG)"
  # setsid: the engine must outlive the make/CI step that started it.
  setsid nohup dockerd >>"$LOG" 2>&1 </dev/null &
fi

for _ in $(seq "$WAIT"); do
  if engine_answers; then
    say "engine $(docker version --format '{{.Server.Version}}') ready"
    exit 0
  fi
  sleep 1
done
say "Docker engine did not answer on $SOCK within ${WAIT}s; last log lines:"
tail -n 20 "$LOG" >&2 || true
exit 1
