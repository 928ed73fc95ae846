#!/usr/bin/env bash
# Start the local MariaDB and Redis when they are installed here but not running, then wait
# for both. Exits non-zero, naming the service, when one cannot be reached: the tests need both.
set -euo pipefail

MYSQL_HOST=${TEST_MYSQL_HOST:-127.0.0.1}
REDIS_PORT=${TEST_REDIS_PORT:-6379}

mysql_up() { mariadb-admin --host="$MYSQL_HOST" --user=root ping >/dev/null 2>&1; }
redis_up() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

if ! mysql_up && [ -x /usr/sbin/mariadbd ] && [ "$(id -u)" = 0 ]; then
  echo "starting MariaDB"
  mkdir -p /run/mysqld && chown mysql /run/mysqld
  # As root mariadbd aborts without --user=mysql, yet start-stop-daemon reports success.
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
fi
if ! redis_up && command -v redis-server >/dev/null; then
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no
fi

for _ in $(seq 1 60); do
  mysql_up && redis_up && break
  sleep 1
done
mysql_up || { echo "ERROR: MariaDB/MySQL is not reachable on $MYSQL_HOST:3306 (install mariadb-server or set TEST_MYSQL_URL)" >&2; exit 1; }
redis_up || { echo "ERROR: Redis is not reachable on 127.0.0.1:$REDIS_PORT (install redis-server or set TEST_REDIS_URL)" >&2; exit 1; }
echo "MariaDB and Redis are up"
