#!/usr/bin/env bash
# Grayscale run (manual §8.1): the grayscale IPs on the whole local system, then a check that data
# flowed end to end.
#
#   scripts/grayscale.sh start    start `animehot up` with the grayscale IPs in the background
#   scripts/grayscale.sh verify   check every piece and every IP; names what did not flow
#   scripts/grayscale.sh stop     stop it: every process shut down in order, as on Ctrl-C
#
# As in the manual: `make grayscale-start; sleep 60; make grayscale-verify`. verify keeps checking
# for up to GRAYSCALE_WAIT seconds (default 240) until every check passes, since the second crawl
# of an IP (its first measured one) comes one cadence interval after the first.
#
# Environment: GRAYSCALE_IPS (default ../shared/data/ips_grayscale.json), GRAYSCALE_DIR (default
# var/grayscale), GRAYSCALE_WAIT; DATABASE_URL / REDIS_URL / DAGSTER_MYSQL_URL to use servers
# instead of the embedded SQLite and private redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${GRAYSCALE_DIR:-var/grayscale}
IPS=${GRAYSCALE_IPS:-../shared/data/ips_grayscale.json}
WAIT=${GRAYSCALE_WAIT:-240}
ANIMEHOT=${ANIMEHOT:-.venv/bin/animehot}
PID_FILE=$DIR/up.pid
STATE=$DIR/run/system.env

running() { [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; }

case "${1:-}" in
  start)
    if running; then echo "grayscale already running (pid $(cat "$PID_FILE")); scripts/grayscale.sh stop first" >&2; exit 1; fi
    [ -f "$IPS" ] || { echo "ERROR: grayscale IP file $IPS not found (set GRAYSCALE_IPS)" >&2; exit 1; }
    rm -rf "$DIR/run"
    mkdir -p "$DIR"
    nohup "$ANIMEHOT" up --ips "$IPS" --dir "$DIR/run" >"$DIR/up.log" 2>&1 &
    echo $! >"$PID_FILE"
    for _ in $(seq 1 180); do
      [ -f "$STATE" ] && break
      if ! running; then echo "ERROR: the system did not start:" >&2; tail -20 "$DIR/up.log" >&2; exit 1; fi
      sleep 1
    done
    [ -f "$STATE" ] || { echo "ERROR: the system did not start within 180 s (see $DIR/up.log)" >&2; exit 1; }
    echo "grayscale started (pid $(cat "$PID_FILE")); logs in $DIR/run, state in $STATE"
    grep -E '^(API_URL|DAGSTER_URL|METRICS_URL)=' "$STATE"
    ;;
  verify)
    [ -f "$STATE" ] || { echo "ERROR: no running grayscale system ($STATE missing): make grayscale-start" >&2; exit 1; }
    exec "$ANIMEHOT" verify --state "$STATE" --wait "$WAIT"
    ;;
  stop)
    if ! running; then echo "grayscale not running"; rm -f "$PID_FILE"; exit 0; fi
    pid=$(cat "$PID_FILE")
    kill -TERM "$pid"
    for _ in $(seq 1 90); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    if kill -0 "$pid" 2>/dev/null; then echo "still running after 90 s; sending SIGKILL" >&2; kill -KILL "$pid"; fi
    rm -f "$PID_FILE"
    echo "grayscale stopped"
    ;;
  *)
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
