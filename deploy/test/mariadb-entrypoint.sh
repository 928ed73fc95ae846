#!/bin/bash
# The mysql image's entrypoint, as far as the compose files use it, for Debian's MariaDB: on the
# first start (an empty data directory) it creates the system tables, the root password, the
# database and user of MYSQL_DATABASE / MYSQL_USER / MYSQL_PASSWORD, then sources
# /docker-entrypoint-initdb.d/*.sh (with docker_process_sql) and runs *.sql; then the server.
set -euo pipefail
if [ "${1:0:1}" = - ]; then set -- mariadbd "$@"; fi
if [ "$1" != mariadbd ]; then exec "$@"; fi
shift
DATADIR=/var/lib/mysql
SOCKET=/run/mysqld/init.sock
mkdir -p /run/mysqld
chown mysql:mysql /run/mysqld "$DATADIR"

docker_process_sql() {
  mariadb --protocol=socket --socket="$SOCKET" -uroot "$@"
}

sql_string() { # a value as a quoted SQL string
  local value=${1//\\/\\\\}
  printf "'%s'" "${value//\'/\\\'}"
}

if [ ! -d "$DATADIR/mysql" ]; then
  : "${MYSQL_ROOT_PASSWORD:?MYSQL_ROOT_PASSWORD must be set on the first start}"
  echo "initialising $DATADIR"
  mariadb-install-db --user=mysql --datadir="$DATADIR" --skip-test-db \
    --auth-root-authentication-method=socket >/dev/null
  mariadbd --user=mysql --datadir="$DATADIR" --skip-networking --socket="$SOCKET" &
  pid=$!
  for _ in $(seq 1 60); do
    mariadb-admin --socket="$SOCKET" -uroot ping >/dev/null 2>&1 && break
    sleep 1
  done
  root=$(sql_string "$MYSQL_ROOT_PASSWORD")
  {
    echo "DELETE FROM mysql.global_priv WHERE User = '';"
    echo "ALTER USER root@localhost IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD($root);"
    echo "CREATE USER root@'%' IDENTIFIED BY $root;"
    echo "GRANT ALL PRIVILEGES ON *.* TO root@'%' WITH GRANT OPTION;"
    if [ -n "${MYSQL_DATABASE:-}" ]; then
      echo "CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
    fi
    if [ -n "${MYSQL_USER:-}" ]; then
      echo "CREATE USER '$MYSQL_USER'@'%' IDENTIFIED BY $(sql_string "${MYSQL_PASSWORD:-}");"
      [ -z "${MYSQL_DATABASE:-}" ] || echo "GRANT ALL PRIVILEGES ON \`$MYSQL_DATABASE\`.* TO '$MYSQL_USER'@'%';"
    fi
    echo "FLUSH PRIVILEGES;"
  } | docker_process_sql
  for f in /docker-entrypoint-initdb.d/*; do
    case $f in
      *.sh) echo "running $f"; . "$f" ;;
      *.sql) echo "running $f"; docker_process_sql <"$f" ;;
    esac
  done
  mariadb-admin --socket="$SOCKET" -uroot shutdown
  wait "$pid" || true
  echo "initialised"
fi
exec mariadbd --user=mysql --datadir="$DATADIR" "$@"
