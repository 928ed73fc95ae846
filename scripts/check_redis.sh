#!/usr/bin/env bash
# Redis queue status (operations manual §7.3, §8.2, §8.4).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<EOF
Usage: scripts/check_redis.sh [--docker|--no-docker] [--peek N] [-h|--help]

Prints, labelled, the length of every Redis structure of the crawl pipeline (SPEC §6; the same
figures as 'animehot queue stats'):
  Queue Status    LLEN animetop:queue:tasks, :results, :tasks:processing, :results:processing
                  HLEN animetop:queue:tasks:started, :results:started (in-flight timestamps)
  Schedule ZSET   ZCARD animetop:schedule:pending, how many are overdue, the next N entries
  Pending Set     SCARD animetop:queue:tasks:pending (IPs with a task queued or in flight)
  Processed Set   SCARD animetop:processed (result task ids already applied)
  Dead Letters    LLEN animetop:queue:tasks:deadletter, animetop:queue:results:deadletter
  Memory          used_memory_human, maxmemory_human (INFO memory)
It only reads. To look at or clear dead letters use 'animehot dlq list|requeue|clear'
(manual §8.4).

Redis is REDIS_URL, else REDIS_HOST (127.0.0.1) / REDIS_PORT (6379) / REDIS_PASSWORD / REDIS_DB (0),
or the 'redis' service of Docker Compose when 'docker compose ps -a -q redis' finds it
(a stopped container fails the check)
(--docker / ANIMEHOT_USE_DOCKER=1 forces that, --no-docker / ANIMEHOT_USE_DOCKER=0 forbids it).

  --peek N   schedule entries to show (default 5, 0 for none)

Exits 1 with "ERROR: Redis check failed (<where>: <reason>)" when Redis cannot be reached;
2 on bad usage.
EOF
}

PEEK=5
while [ $# -gt 0 ]; do
  if ah_mode_option "$1"; then shift; continue; fi
  case $1 in
    -h | --help) usage; exit 0 ;;
    --peek) [ $# -ge 2 ] && [[ $2 =~ ^[0-9]+$ ]] || { echo "ERROR: --peek needs a number" >&2; exit 2; }
      PEEK=$2; shift 2 ;;
    *) echo "ERROR: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

ah_redis_config
WHERE=$(ah_redis_where)
if ! reason=$(ah_redis_ping); then
  echo "ERROR: Redis check failed ($WHERE: $reason)" >&2
  exit 1
fi

Q=animetop:queue
# label | command | key
CHECKS=(
  "Queue Status|LLEN|$Q:tasks"
  "Queue Status|LLEN|$Q:results"
  "Queue Status|LLEN|$Q:tasks:processing"
  "Queue Status|LLEN|$Q:results:processing"
  "Queue Status|HLEN|$Q:tasks:started"
  "Queue Status|HLEN|$Q:results:started"
  "Schedule ZSET|ZCARD|animetop:schedule:pending"
  "Pending Set|SCARD|$Q:tasks:pending"
  "Processed Set|SCARD|animetop:processed"
  "Dead Letters|LLEN|$Q:tasks:deadletter"
  "Dead Letters|LLEN|$Q:results:deadletter"
)

now=$(date +%s)
commands=""
for check in "${CHECKS[@]}"; do
  IFS='|' read -r _ cmd key <<<"$check"
  commands+="$cmd $key"$'\n'
done
commands+="ZCOUNT animetop:schedule:pending -inf ($now"$'\n'

ah_redis_cmd
errors=$(mktemp)
trap 'rm -f "$errors"' EXIT
if ! replies=$(printf '%s' "$commands" | timeout 30 "${AH_CMD[@]}" 2>"$errors"); then
  echo "ERROR: Redis check failed ($WHERE: $(ah_oneline "$(cat "$errors")$replies"))" >&2
  exit 1
fi
mapfile -t values <<<"$replies"
if [ "${#values[@]}" -ne $((${#CHECKS[@]} + 1)) ]; then
  echo "ERROR: Redis check failed ($WHERE: unexpected replies: $(ah_oneline "$replies"))" >&2
  exit 1
fi

echo "Redis: $WHERE"
section=""
problems=0
for i in "${!CHECKS[@]}"; do
  IFS='|' read -r label cmd key <<<"${CHECKS[$i]}"
  if [ "$label" != "$section" ]; then
    echo
    echo "=== $label ==="
    section=$label
  fi
  value=${values[$i]}
  if ! [[ $value =~ ^[0-9]+$ ]]; then
    problems=1
    value="ERROR: $value"
  fi
  printf '%-40s %-6s %s\n' "$key" "$cmd" "$value"
  if [ "$key" = animetop:schedule:pending ]; then
    printf '%-40s %-6s %s\n' "  of which overdue" ZCOUNT "${values[${#CHECKS[@]}]}"
    if [ "$PEEK" -gt 0 ] && [[ $value =~ ^[0-9]+$ ]] && [ "$value" -gt 0 ]; then
      echo "  next $PEEK (ip, next crawl):"
      ah_redis zrange animetop:schedule:pending 0 $((PEEK - 1)) WITHSCORES |
        paste - - | while IFS=$'\t' read -r member score; do
          printf '    %-12s %s\n' "$member" "$(date -d "@${score%.*}" '+%Y-%m-%d %H:%M:%S %Z' 2>/dev/null || echo "$score")"
        done
    fi
  fi
done

dead=0
for v in "${values[9]}" "${values[10]}"; do
  [[ $v =~ ^[0-9]+$ ]] && dead=$((dead + v))
done
if [ "$dead" -gt 0 ]; then
  echo "  -> $dead message(s) in dead letters: 'animehot dlq list --tasks' / '--results'"
fi

echo
echo "=== Memory ==="
ah_redis info memory | tr -d '\r' | grep -E '^(used_memory_human|used_memory_peak_human|maxmemory_human|maxmemory_policy):' |
  sed 's/:/ = /' || true

if [ "$problems" = 1 ]; then
  echo "ERROR: Redis check failed ($WHERE: some keys could not be measured, see above)" >&2
  exit 1
fi
