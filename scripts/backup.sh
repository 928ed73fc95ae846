#!/usr/bin/env bash
# Backup of MySQL and Redis with retention (operations manual §9.1–§9.3).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<EOF
Usage: scripts/backup.sh [--dir DIR] [--mysql-only|--redis-only] [--docker|--no-docker] [-h|--help]

Writes into BACKUP_DIR (default /backup/animetop; --dir overrides):
  mysql_YYYYMMDD_HHMMSS.sql.gz   mysqldump/mariadb-dump of the configured database
                                 (--single-transaction --routines --triggers --hex-blob, no
                                 CREATE DATABASE: it restores into any database name), gzipped
  redis_YYYYMMDD_HHMMSS.rdb      an RDB snapshot taken with 'redis-cli --rdb' (a full sync over
                                 the network: it needs no access to the Redis host's disk)
then deletes *.sql.gz and *.rdb files directly in BACKUP_DIR older than BACKUP_RETENTION_DAYS
days (default 7; 0 keeps everything). Retention runs only after both backups succeeded.

Each file is written under a temporary name (.NAME.partial) and renamed only when complete
and verified (gzip -t and mysqldump's "Dump completed" trailer; the RDB starts with REDIS), so
a failed run leaves no file that looks like a backup, and exits non-zero.

MySQL is DATABASE_URL, else MYSQL_HOST (127.0.0.1) / MYSQL_PORT (3306) / MYSQL_USER (animetop) /
MYSQL_PASSWORD / MYSQL_DATABASE (animetop); Redis is REDIS_URL, else REDIS_HOST / REDIS_PORT /
REDIS_PASSWORD. With Docker Compose ('docker compose ps -a -q mysql' / 'redis' finds the
container, or --docker / ANIMEHOT_USE_DOCKER=1) the dump and snapshot are taken inside the
containers with 'docker compose exec -T' (MySQL as root with the container's root password).
The user needs the SELECT, SHOW VIEW, TRIGGER and LOCK TABLES privileges on the database.
EOF
}

DO_MYSQL=1
DO_REDIS=1
while [ $# -gt 0 ]; do
  if ah_mode_option "$1"; then shift; continue; fi
  case $1 in
    -h | --help) usage; exit 0 ;;
    --dir) [ $# -ge 2 ] || { echo "ERROR: --dir needs a directory" >&2; exit 2; }
      BACKUP_DIR=$2; shift 2 ;;
    --mysql-only) DO_REDIS=0; shift ;;
    --redis-only) DO_MYSQL=0; shift ;;
    *) echo "ERROR: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ "$DO_MYSQL$DO_REDIS" != 00 ] || { echo "ERROR: --mysql-only and --redis-only exclude each other" >&2; exit 2; }

BACKUP_DIR=${BACKUP_DIR:-/backup/animetop}
RETENTION=${BACKUP_RETENTION_DAYS:-7}
[[ $RETENTION =~ ^[0-9]+$ ]] || ah_die "BACKUP_RETENTION_DAYS='$RETENTION' is not a whole number of days"
DATE=$(date +%Y%m%d_%H%M%S)

mkdir -p "$BACKUP_DIR" 2>/dev/null || ah_die "cannot create BACKUP_DIR $BACKUP_DIR (set BACKUP_DIR or --dir to a writable directory)"
[ -w "$BACKUP_DIR" ] || ah_die "BACKUP_DIR $BACKUP_DIR is not writable (set BACKUP_DIR or --dir)"
BACKUP_DIR=$(cd "$BACKUP_DIR" && pwd)

PARTIALS=()
cleanup() {
  local f
  for f in "${PARTIALS[@]}"; do rm -f -- "$f"; done
}
trap cleanup EXIT

WROTE=()

backup_mysql() {
  ah_mysql_config
  local where final tmp err
  where=$(ah_mysql_where)
  final="$BACKUP_DIR/mysql_$DATE.sql.gz"
  tmp="$BACKUP_DIR/.mysql_$DATE.sql.gz.partial"
  [ ! -e "$final" ] || ah_die "$final already exists"
  PARTIALS+=("$tmp")
  err=$(mktemp)
  PARTIALS+=("$err")
  echo "MySQL: dumping $where ..."
  ah_mysql_cmd dump
  if ! "${AH_CMD[@]}" --single-transaction --quick --routines --triggers --hex-blob \
    --no-tablespaces --default-character-set=utf8mb4 "$MY_DB" 2>"$err" | gzip -c >"$tmp"; then
    ah_die "MySQL backup failed ($where: $(ah_oneline "$(cat "$err")"))"
  fi
  gzip -t "$tmp" 2>/dev/null || ah_die "MySQL backup failed: $tmp is not a valid gzip file"
  # mysqldump ends a complete dump with "-- Dump completed on ...".
  if ! grep -q '^-- Dump completed' < <(gzip -dc "$tmp" | tail -n 1); then
    ah_die "MySQL backup failed ($where: the dump is incomplete: $(ah_oneline "$(cat "$err")"))"
  fi
  mv -f -- "$tmp" "$final"
  WROTE+=("$final")
}

backup_redis() {
  ah_redis_config
  local where final tmp out
  where=$(ah_redis_where)
  final="$BACKUP_DIR/redis_$DATE.rdb"
  tmp="$BACKUP_DIR/.redis_$DATE.rdb.partial"
  [ ! -e "$final" ] || ah_die "$final already exists"
  PARTIALS+=("$tmp")
  echo "Redis: snapshot of $where ..."
  if ! reason=$(ah_redis_ping); then
    ah_die "Redis backup failed ($where: $reason)"
  fi
  ah_redis_cmd
  if ah_use_docker redis; then
    # redis-cli --rdb inside the container, the file streamed out through exec -T.
    local inner
    # shellcheck disable=SC2016 # expanded inside the container
    inner='f=/tmp/animehot_backup_$$.rdb; redis-cli -n 0 --rdb "$f" >&2 && cat "$f"; rc=$?; rm -f "$f"; exit $rc'
    local docker_cmd=(env -C "${ANIMEHOT_COMPOSE_DIR:-$AH_ROOT}" docker compose exec -T)
    [ -n "$RD_PASS" ] && docker_cmd+=(-e "REDISCLI_AUTH=$RD_PASS")
    if ! out=$("${docker_cmd[@]}" redis sh -c "$inner" 2>&1 >"$tmp"); then
      ah_die "Redis backup failed ($where: $(ah_oneline "$out"))"
    fi
  else
    if ! out=$("${AH_CMD[@]}" --rdb "$tmp" 2>&1); then
      ah_die "Redis backup failed ($where: $(ah_oneline "$out"))"
    fi
  fi
  [ "$(head -c 5 "$tmp" 2>/dev/null)" = REDIS ] ||
    ah_die "Redis backup failed ($where: the snapshot is not an RDB file: $(ah_oneline "${out:-}"))"
  mv -f -- "$tmp" "$final"
  WROTE+=("$final")
}

if [ "$DO_MYSQL" = 1 ]; then backup_mysql; fi
if [ "$DO_REDIS" = 1 ]; then backup_redis; fi

echo "Backup completed: $DATE"
for f in "${WROTE[@]}"; do
  printf '  wrote %s (%s)\n' "$f" "$(ah_size "$f")"
done

if [ "$RETENTION" -gt 0 ]; then
  deleted=0
  while IFS= read -r -d '' old; do
    echo "  deleted $old (older than $RETENTION days)"
    rm -f -- "$old"
    deleted=$((deleted + 1))
  done < <(find "$BACKUP_DIR" -maxdepth 1 -type f \( -name '*.sql.gz' -o -name '*.rdb' \) \
    -mmin +$((RETENTION * 24 * 60)) -print0)
  echo "Retention: $RETENTION days, $deleted old backup file(s) deleted"
else
  echo "Retention: disabled (BACKUP_RETENTION_DAYS=0)"
fi
