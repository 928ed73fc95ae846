#!/usr/bin/env bash
# Health check of a running Anime Hot (operations manual §5.3).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<EOF
Usage: scripts/health_check.sh [--docker|--no-docker] [-h|--help]

Checks, in order, and reports every failure (not only the first):
  1. API     GET \$API_URL/health answers {"status":"ok"}      (API_URL, default http://localhost:8080)
  2. MySQL   SELECT 1 in the configured database
  3. Redis   PING
  4. queues  GET \$API_URL/api/v1/system/status: the API's own view of its database
             (data.database.connected must be true) and Redis (data.redis must be "ok");
             prints data.stats.active_items (items on sale) and unacked_alerts; WARNING (not
             a failure) when data.queues.tasks, the task queue depth, is above
             QUEUE_DEPTH_WARN (default 1000). When the API cannot count the queue, LLEN
             animetop:queue:tasks is read from Redis directly.

MySQL is DATABASE_URL, else MYSQL_HOST (127.0.0.1) / MYSQL_PORT (3306) / MYSQL_USER (animetop) /
MYSQL_PASSWORD / MYSQL_DATABASE (animetop). Redis is REDIS_URL, else REDIS_HOST (127.0.0.1) /
REDIS_PORT (6379) / REDIS_PASSWORD / REDIS_DB (0). When 'docker compose ps -a -q mysql' (or
redis) finds a container of the Compose project in the project root (ANIMEHOT_COMPOSE_DIR), that
service is checked with 'docker compose exec -T' instead (a stopped container fails the check);
--docker / ANIMEHOT_USE_DOCKER=1 forces it, --no-docker / ANIMEHOT_USE_DOCKER=0 forbids it.

Prints "OK: All health checks passed" and exits 0, or one "ERROR: <component> health check
failed (<where>: <reason>)" line per failure on stderr and exits 1. Exit 2: bad usage.
EOF
}

while [ $# -gt 0 ]; do
  if ah_mode_option "$1"; then shift; continue; fi
  case $1 in
    -h | --help) usage; exit 0 ;;
    *) echo "ERROR: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

QUEUE_DEPTH_WARN=${QUEUE_DEPTH_WARN:-1000}
[[ $QUEUE_DEPTH_WARN =~ ^[0-9]+$ ]] || ah_die "QUEUE_DEPTH_WARN='$QUEUE_DEPTH_WARN' is not a whole number"
command -v curl >/dev/null || ah_die "curl is not installed (needed for the API checks)"
command -v jq >/dev/null || ah_die "jq is not installed (needed to read the API's status)"

ah_mysql_config
ah_redis_config
API=$(ah_api_url)
FAILED=()

fail() { # component, where, reason
  echo "ERROR: $1 health check failed ($2: $3)" >&2
  FAILED+=("$1")
}

# 1. API
api_ok=0
if body=$(curl -sS -f --max-time 5 "$API/health" 2>&1); then
  if [ "$(printf '%s' "$body" | jq -r '.status? // empty' 2>/dev/null)" = ok ]; then
    api_ok=1
    echo "ok: API $API/health"
  else
    fail API "$API/health" "unexpected answer: $(printf '%s' "$body" | head -c 200)"
  fi
else
  fail API "$API/health" "$(ah_oneline "$body")"
fi

# 2. MySQL
if reason=$(ah_mysql_ping); then
  echo "ok: MySQL $(ah_mysql_where)"
else
  fail MySQL "$(ah_mysql_where)" "$reason"
fi

# 3. Redis
redis_ok=0
if reason=$(ah_redis_ping); then
  redis_ok=1
  echo "ok: Redis $(ah_redis_where)"
else
  fail Redis "$(ah_redis_where)" "$reason"
fi

# 4. the API's view, and the task queue depth
depth=""
if [ "$api_ok" = 1 ]; then
  if status=$(curl -sS -f --max-time 10 "$API/api/v1/system/status" 2>&1) &&
    printf '%s' "$status" | jq -e '.data' >/dev/null 2>&1; then
    api_db=$(printf '%s' "$status" | jq -r 'if .data.database.connected == true then "ok"
      else (.data.database.error // "not connected") end')
    api_redis=$(printf '%s' "$status" | jq -r '.data.redis // "missing"')
    [ "$api_db" = ok ] || fail MySQL "as seen by the API at $API" "$api_db"
    [ "$api_redis" = ok ] || fail Redis "as seen by the API at $API" "$api_redis"
    printf 'stats: active_items=%s unacked_alerts=%s\n' \
      "$(printf '%s' "$status" | jq -r '.data.stats.active_items // 0')" \
      "$(printf '%s' "$status" | jq -r '.data.stats.unacked_alerts // 0')"
    depth=$(printf '%s' "$status" | jq -r '.data.queues.tasks // empty')
    printf 'queues: tasks=%s results=%s dead_letter=%s\n' "${depth:-?}" \
      "$(printf '%s' "$status" | jq -r '.data.queues.results // "?"')" \
      "$(printf '%s' "$status" | jq -r '.data.queues.dead_letter // "?"')"
  else
    fail API "$API/api/v1/system/status" "$(ah_oneline "$status")"
  fi
fi
if [ -z "$depth" ] && [ "$redis_ok" = 1 ]; then
  depth=$(ah_redis llen animetop:queue:tasks 2>/dev/null || true)
fi
if [[ $depth =~ ^[0-9]+$ ]] && [ "$depth" -gt "$QUEUE_DEPTH_WARN" ]; then
  echo "WARNING: Task queue depth is high: $depth (above $QUEUE_DEPTH_WARN)"
fi

if [ ${#FAILED[@]} -gt 0 ]; then
  echo "ERROR: health check failed: $(printf '%s\n' "${FAILED[@]}" | awk '!seen[$0]++' | paste -sd, - | sed 's/,/, /g')" >&2
  exit 1
fi
echo "OK: All health checks passed"
