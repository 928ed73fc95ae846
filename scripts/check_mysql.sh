#!/usr/bin/env bash
# MySQL data and table sizes (operations manual §7.2, §8.3).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<EOF
Usage: scripts/check_mysql.sh [--docker|--no-docker] [-h|--help]

Prints, for the configured database (it only reads):
  Data          rows of ip_metadata, ip_stats_hourly, item_snapshots and the
                unacknowledged ip_alerts (acknowledged = FALSE)            (manual §8.3)
  Table sizes   data and index size in MB and approximate rows of every table,
                largest first (information_schema.tables)               (manual §7.2)
  Connections   Threads_connected / max_connections                     (manual §7.2)

MySQL is DATABASE_URL, else MYSQL_HOST (127.0.0.1) / MYSQL_PORT (3306) / MYSQL_USER (animetop) /
MYSQL_PASSWORD / MYSQL_DATABASE (animetop); or the 'mysql' service of Docker Compose as root
when 'docker compose ps -a -q mysql' finds it (--docker / ANIMEHOT_USE_DOCKER=1 forces
that, --no-docker / ANIMEHOT_USE_DOCKER=0 forbids it).

Exits 1 with "ERROR: MySQL check failed (<where>: <reason>)" when MySQL cannot be reached or
the tables are missing (run 'animehot migrate'); 2 on bad usage.
EOF
}

while [ $# -gt 0 ]; do
  if ah_mode_option "$1"; then shift; continue; fi
  case $1 in
    -h | --help) usage; exit 0 ;;
    *) echo "ERROR: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

ah_mysql_config
WHERE=$(ah_mysql_where)
if ! reason=$(ah_mysql_ping); then
  echo "ERROR: MySQL check failed ($WHERE: $reason)" >&2
  exit 1
fi

run() { # title, sql
  local out
  ah_mysql_cmd client
  if ! out=$(timeout 60 "${AH_CMD[@]}" --table -e "$2" "$MY_DB" 2>&1); then
    echo "ERROR: MySQL check failed ($WHERE: $(ah_oneline "$out"))" >&2
    exit 1
  fi
  echo
  echo "=== $1 ==="
  printf '%s\n' "$out"
}

echo "MySQL: $WHERE"
run "Data" "
  SELECT 'ip_metadata' AS tbl, COUNT(*) AS cnt FROM ip_metadata
  UNION ALL SELECT 'ip_stats_hourly', COUNT(*) FROM ip_stats_hourly
  UNION ALL SELECT 'item_snapshots', COUNT(*) FROM item_snapshots
  UNION ALL SELECT 'ip_alerts (unacked)', COUNT(*) FROM ip_alerts WHERE acknowledged = FALSE;"
run "Table sizes" "
  SELECT table_name AS 'Table',
         ROUND(data_length/1024/1024, 2) AS 'Data (MB)',
         ROUND(index_length/1024/1024, 2) AS 'Index (MB)',
         table_rows AS 'Rows (approx.)'
  FROM information_schema.tables
  WHERE table_schema = DATABASE()
  ORDER BY data_length DESC, table_name;"
run "Connections" "SHOW GLOBAL STATUS LIKE 'Threads_connected'; SHOW GLOBAL VARIABLES LIKE 'max_connections';"
