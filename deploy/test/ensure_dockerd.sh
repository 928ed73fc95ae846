#!/usr/bin/env bash
# A Docker engine for the container tests: exits 0 at once when `docker info` answers; otherwise
# starts dockerd in the background and prints "started PID" once it answers (the caller stops that
# PID when done). Exits 1 with the reason when the engine cannot run here.
#
# The engine it starts creates no bridge and touches no firewall rule (--bridge=none
# --iptables=false): every container of the tests runs on the host network, and every build too
# (--network host), so nothing needs one. Its log: ANIMEHOT_DOCKERD_LOG (/var/log/animehot-dockerd.log).
set -euo pipefail
PATH=$PATH:/usr/sbin:/sbin

if docker info >/dev/null 2>&1; then
  echo running
  exit 0
fi
command -v docker >/dev/null || { echo "no docker command (scripts/install_system_packages.sh docker)" >&2; exit 1; }
command -v dockerd >/dev/null || { echo "no dockerd (scripts/install_system_packages.sh docker)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "dockerd is not running and only root can start it" >&2; exit 1; }
log=${ANIMEHOT_DOCKERD_LOG:-/var/log/animehot-dockerd.log}
setsid dockerd --bridge=none --iptables=false --ip-masq=false </dev/null >>"$log" 2>&1 &
pid=$!
for _ in $(seq 1 120); do
  if docker info >/dev/null 2>&1; then
    echo "started $pid"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "dockerd exited at start: $(tail -n 5 "$log" | tr '\n' ' ')" >&2
    exit 1
  fi
  sleep 0.5
done
kill "$pid" 2>/dev/null || true
echo "dockerd did not answer within 60 s: $(tail -n 5 "$log" | tr '\n' ' ')" >&2
exit 1
