#!/usr/bin/env bash
# Restore MySQL (and optionally Redis) from backup.sh's files (operations manual §9.1, §9.4).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<EOF
Usage: scripts/restore.sh [--yes] [--docker|--no-docker] BACKUP.sql.gz [REDIS.rdb]
       make restore BACKUP=/backup/animetop/mysql_YYYYMMDD_HHMMSS.sql.gz

What it does:
  MySQL  checks the file (gzip -t; a plain .sql works too), creates the configured database if
         it is missing (utf8mb4), then loads the dump into it. The dump replaces every table it
         contains (DROP TABLE IF EXISTS + CREATE + INSERT); tables that are not in the dump are
         left alone. Afterwards it prints the row count of every table.
  Redis  (only when REDIS.rdb is given; an RDB holds the whole server, every db)
         - Docker Compose: reads dir, dbfilename, appendonly, appenddirname and appendfilename
           from the running redis, 'docker compose stop redis', then in a one-off container on
           the same volume ('docker compose run --rm --no-deps -T --entrypoint sh redis',
           scripts/lib/redis_restore_inside.sh) puts the snapshot at <dir>/<dbfilename> and,
           when appendonly is on (our compose file), also as the base of a new AOF directory
           (Redis 7 loads only the AOF then); the files replaced are kept beside as
           *.before-restore-STAMP. Then 'docker compose start redis' and a PING check.
         - without Docker it does NOT touch Redis: it cannot stop and start a server it does not
           manage. It prints the steps (with the server's dir and dbfilename when it can read
           them) and exits 3 after the MySQL restore.
  By hand with appendonly on: stop Redis, move the appendonly dir aside, start it with
  --appendonly no, check the data, then 'redis-cli CONFIG SET appendonly yes' (rewrites the AOF).

Before it (manual §9.4): stop whatever writes (api, Dagster daemon and code server, crawlers),
e.g. 'docker compose stop api'; afterwards start them and run scripts/check_mysql.sh,
scripts/check_redis.sh and scripts/health_check.sh.

It asks for confirmation (type "yes") unless --yes is given; without a terminal and without
--yes it refuses.

MySQL is DATABASE_URL, else MYSQL_HOST (127.0.0.1) / MYSQL_PORT (3306) / MYSQL_USER (animetop) /
MYSQL_PASSWORD / MYSQL_DATABASE (animetop) — the user needs CREATE, DROP, INSERT, ALTER and
CREATE ROUTINE on it; or the 'mysql' service of Docker Compose as root. Redis is REDIS_URL,
else REDIS_HOST/REDIS_PORT/REDIS_PASSWORD, or the 'redis' service of Docker Compose.
(--docker / ANIMEHOT_USE_DOCKER=1 forces Docker, --no-docker / ANIMEHOT_USE_DOCKER=0 forbids it.)

Exit status: 0 done; 1 failed; 2 bad usage or not confirmed; 3 MySQL restored, Redis left for
you (no Docker).
EOF
}

YES=0
FILES=()
while [ $# -gt 0 ]; do
  if ah_mode_option "$1"; then shift; continue; fi
  case $1 in
    -h | --help) usage; exit 0 ;;
    -y | --yes) YES=1; shift ;;
    --) shift; FILES+=("$@"); break ;;
    -*) echo "ERROR: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) FILES+=("$1"); shift ;;
  esac
done
if [ ${#FILES[@]} -lt 1 ] || [ ${#FILES[@]} -gt 2 ]; then
  echo "ERROR: give the MySQL backup (BACKUP.sql.gz) and optionally the Redis snapshot (REDIS.rdb); see --help" >&2
  exit 2
fi
SQL=${FILES[0]}
RDB=${FILES[1]:-}

# ------------------------------------------------------------------ check the files first
[ -f "$SQL" ] && [ -r "$SQL" ] || ah_die "MySQL backup $SQL: no such readable file"
case $SQL in
  *.gz) gzip -t "$SQL" 2>/dev/null || ah_die "MySQL backup $SQL is not a valid gzip file (truncated?)"
    READ_SQL=(gzip -dc -- "$SQL") ;;
  *) READ_SQL=(cat -- "$SQL") ;;
esac
# (process substitutions: a reader that stops early must not fail the check through pipefail)
if [ "$(head -c 5 < <("${READ_SQL[@]}" 2>/dev/null))" = REDIS ]; then
  ah_die "$SQL is a Redis snapshot, not a MySQL dump: give the .sql.gz first and the .rdb second"
fi
if ! LC_ALL=C grep -qI . < <(head -c 65536 < <("${READ_SQL[@]}" 2>/dev/null)); then
  ah_die "$SQL is not a SQL text dump"
fi
if ! grep -q '^-- Dump completed' < <("${READ_SQL[@]}" | tail -n 1); then
  ah_warn "$SQL does not end with mysqldump's '-- Dump completed' line: it may be incomplete"
fi
if [ -n "$RDB" ]; then
  [ -f "$RDB" ] && [ -r "$RDB" ] || ah_die "Redis snapshot $RDB: no such readable file"
  [ "$(head -c 5 "$RDB")" = REDIS ] || ah_die "Redis snapshot $RDB is not an RDB file (it does not start with REDIS)"
fi

ah_mysql_config
MY_WHERE=$(ah_mysql_where)
if [ -n "$RDB" ]; then
  ah_redis_config
  RD_WHERE=$(ah_redis_where)
fi

# ------------------------------------------------------------------ confirm
echo "About to restore:"
echo "  MySQL  $SQL ($(ah_size "$SQL"))  ->  $MY_WHERE  (tables in the dump are replaced)"
if [ -n "$RDB" ]; then
  if ah_use_docker redis; then
    echo "  Redis  $RDB ($(ah_size "$RDB"))  ->  $RD_WHERE  (all Redis data is replaced; redis is restarted)"
  else
    echo "  Redis  $RDB ($(ah_size "$RDB"))  ->  not automatic without Docker: the steps are printed"
  fi
fi
if [ "$YES" != 1 ]; then
  if [ ! -t 0 ]; then
    echo "ERROR: not confirmed: run it in a terminal, or pass --yes" >&2
    exit 2
  fi
  read -r -p 'Type "yes" to continue: ' answer
  if [ "$answer" != yes ]; then
    echo "Aborted: nothing was changed." >&2
    exit 2
  fi
fi

# ------------------------------------------------------------------ MySQL
echo "MySQL: restoring into $MY_WHERE ..."
if ! out=$(ah_mysql client -e "CREATE DATABASE IF NOT EXISTS \`$MY_DB\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci" 2>&1); then
  ah_die "MySQL restore failed ($MY_WHERE: cannot create the database: $(ah_oneline "$out"))"
fi
err=$(mktemp)
trap 'rm -f "$err"' EXIT
ah_mysql_cmd client
if ! "${READ_SQL[@]}" | "${AH_CMD[@]}" --default-character-set=utf8mb4 "$MY_DB" 2>"$err"; then
  ah_die "MySQL restore failed ($MY_WHERE: $(ah_oneline "$(cat "$err")")); the database may be partly restored"
fi
echo "MySQL: restored. Rows per table:"
counts_sql=$(ah_mysql client --batch --skip-column-names -e \
  "SELECT CONCAT('SELECT ''', table_name, ''', COUNT(*) FROM \`', table_name, '\`;') FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY table_name" "$MY_DB")
if [ -n "$counts_sql" ]; then
  ah_mysql client --batch --skip-column-names -e "$counts_sql" "$MY_DB" | awk -F'\t' '{ printf "  %-20s %s\n", $1, $2 }'
fi

# ------------------------------------------------------------------ Redis
[ -n "$RDB" ] || { echo "Restore completed."; exit 0; }

config_get() { # name → value, from the running server
  ah_redis config get "$1" 2>/dev/null | sed -n 2p | tr -d '\r'
}

if ah_use_docker redis; then
  reason=$(ah_redis_ping) || ah_die "Redis restore failed ($RD_WHERE: $reason; it must be running to read its configuration; MySQL was restored)"
  dir=$(config_get dir)
  dbfilename=$(config_get dbfilename)
  aof=$(config_get appendonly)
  aofdir=$(config_get appenddirname)
  aofname=$(config_get appendfilename)
  [ -n "$dir" ] && [ -n "$dbfilename" ] ||
    ah_die "Redis restore failed ($RD_WHERE: CONFIG GET dir/dbfilename gave nothing; is CONFIG renamed?; MySQL was restored)"
  if [ "$aof" = yes ] && [ -z "$aofdir" ]; then
    ah_die "Redis restore refused ($RD_WHERE: appendonly is on and this Redis has no multi-part AOF (older than 7): restore by hand, see --help; MySQL was restored)"
  fi
  stamp=$(date +%Y%m%d_%H%M%S)
  echo "Redis: stopping the redis service, placing the snapshot in $dir (appendonly $aof), starting it ..."
  ah_compose stop redis || ah_die "Redis restore failed: 'docker compose stop redis' failed (MySQL was restored)"
  if ! ah_compose run --rm --no-deps -T --entrypoint sh redis -c "$(cat "$AH_ROOT/scripts/lib/redis_restore_inside.sh")" \
    sh "$dir" "$dbfilename" "$aof" "$aofdir" "$aofname" "$stamp" <"$RDB"; then
    ah_compose start redis || true
    ah_die "Redis restore failed: the snapshot could not be placed in the redis volume; redis was started again on its old data (MySQL was restored)"
  fi
  ah_compose start redis || ah_die "Redis restore failed: 'docker compose start redis' failed after placing the snapshot (MySQL was restored)"
  for _ in $(seq 1 30); do
    if ah_redis_ping >/dev/null; then break; fi
    sleep 1
  done
  reason=$(ah_redis_ping) || ah_die "Redis restore failed ($RD_WHERE: redis does not answer after the restart: $reason)"
  echo "Redis: restored, $(ah_redis dbsize | tr -d '\r') keys in db $RD_DB."
  echo "Restore completed."
  exit 0
fi

dir="" dbfilename="" aof=""
if ah_redis_ping >/dev/null; then
  dir=$(config_get dir)
  dbfilename=$(config_get dbfilename)
  aof=$(config_get appendonly)
fi
target="${dir:-<the Redis 'dir'>}/${dbfilename:-dump.rdb}"
cat <<EOF

Redis was NOT restored: without Docker this script does not stop or start Redis.
To restore $RDB into the Redis at $RD_HOST:$RD_PORT, on that host:
  1. stop the writers (crawlers, dispatcher, Dagster), then stop Redis without saving:
       redis-cli -h $RD_HOST -p $RD_PORT SHUTDOWN NOSAVE      (or: systemctl stop redis-server)
  2. copy the snapshot over its RDB file (same owner as before):
       cp $RDB $target
EOF
if [ "$aof" = yes ]; then
  cat <<EOF
  3. appendonly is ON: move ${dir:-<dir>}/appendonlydir aside, start Redis with --appendonly no,
     check the data, then: redis-cli -h $RD_HOST -p $RD_PORT CONFIG SET appendonly yes
EOF
else
  echo "  3. start Redis again (systemctl start redis-server, or your usual command)"
fi
echo "  4. check: scripts/check_redis.sh"
echo
echo "MySQL restore completed; Redis restore left to you (exit 3)."
exit 3
