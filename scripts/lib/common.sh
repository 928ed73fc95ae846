# shellcheck shell=bash
# Shared by the operations scripts (health_check, check_redis, check_mysql, backup, restore).
#
# Where the services are:
#   * Docker Compose: when `docker compose ps -a -q <service>` names a container of the project
#     (services `mysql`, `redis`, `api`), commands run inside it with `docker compose exec -T`
#     (a stopped container makes the check fail naming the service). MySQL is
#     used as root with the container's MYSQL_ROOT_PASSWORD / MARIADB_ROOT_PASSWORD (or the
#     caller's MYSQL_ROOT_PASSWORD), like the operations manual.
#   * otherwise the servers named by the project's own variables (animehot_dagster/settings.py):
#     DATABASE_URL, else MYSQL_HOST/MYSQL_PORT/MYSQL_USER/MYSQL_PASSWORD/MYSQL_DATABASE;
#     REDIS_URL, else REDIS_HOST/REDIS_PORT/REDIS_PASSWORD/REDIS_DB.
#   ANIMEHOT_USE_DOCKER=1 forces Docker (and fails when the container is not running),
#   ANIMEHOT_USE_DOCKER=0 never uses it; unset or `auto` decides per service.
#   ANIMEHOT_COMPOSE_DIR is the directory `docker compose` runs in (default: the project root);
#   COMPOSE_FILE etc. are honoured by docker itself.

AH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

ah_die() {
  echo "ERROR: $*" >&2
  exit 1
}

ah_warn() { echo "WARNING: $*" >&2; }

# One line of a command's error output: the last non-empty line, without "Warning" noise.
ah_oneline() {
  local text=$1 line
  line=$(printf '%s\n' "$text" | grep -v -i '^warning: using a password' | sed '/^[[:space:]]*$/d' | tail -n 1)
  printf '%s' "${line:-no output}"
}

ah_urldecode() {
  local s=${1//+/%2B}
  s=${s//%/\\x}
  printf '%b' "$s"
}

# ah_parse_url URL → URL_SCHEME URL_USER URL_PASS URL_HOST URL_PORT URL_PATH
ah_parse_url() {
  local url=$1 rest base authority userinfo hostport
  URL_SCHEME=${url%%://*}
  [ "$URL_SCHEME" != "$url" ] || return 1
  rest=${url#*://}
  base=${rest%%\?*}
  base=${base%%#*}
  authority=${base%%/*}
  if [ "$base" != "$authority" ]; then URL_PATH=${base#*/}; else URL_PATH=""; fi
  URL_USER="" URL_PASS=""
  if [[ $authority == *@* ]]; then
    userinfo=${authority%@*}
    hostport=${authority##*@}
    URL_USER=$(ah_urldecode "${userinfo%%:*}")
    if [[ $userinfo == *:* ]]; then URL_PASS=$(ah_urldecode "${userinfo#*:}"); fi
  else
    hostport=$authority
  fi
  URL_PORT=""
  if [[ $hostport == \[* ]]; then
    URL_HOST=${hostport%%]*}
    URL_HOST=${URL_HOST#[}
    [[ $hostport == *]:* ]] && URL_PORT=${hostport##*]:}
  else
    URL_HOST=${hostport%%:*}
    [[ $hostport == *:* ]] && URL_PORT=${hostport##*:}
  fi
  return 0
}

# ------------------------------------------------------------------------------ Docker Compose

ah_compose() {
  (cd "${ANIMEHOT_COMPOSE_DIR:-$AH_ROOT}" && docker compose "$@")
}

declare -A AH_DOCKER_CACHE=()

# ah_use_docker SERVICE: true when SERVICE is to be reached through `docker compose exec`.
ah_use_docker() {
  local service=$1 ids mode=${ANIMEHOT_USE_DOCKER:-auto}
  if [ -n "${AH_DOCKER_CACHE[$service]:-}" ]; then
    [ "${AH_DOCKER_CACHE[$service]}" = yes ]
    return
  fi
  case $mode in
    0 | false | no | off) AH_DOCKER_CACHE[$service]=no ;;
    1 | true | yes | on)
      command -v docker >/dev/null || ah_die "ANIMEHOT_USE_DOCKER=$mode but the docker command is not installed"
      ids=$(cd "${ANIMEHOT_COMPOSE_DIR:-$AH_ROOT}" && timeout 20 docker compose ps -q "$service" 2>&1) ||
        ah_die "ANIMEHOT_USE_DOCKER=$mode but 'docker compose ps -q $service' failed: $(ah_oneline "$ids")"
      [ -n "$ids" ] || ah_die "ANIMEHOT_USE_DOCKER=$mode but no running '$service' container (docker compose ps -q $service is empty)"
      AH_DOCKER_CACHE[$service]=yes
      ;;
    auto | "")
      # A running container, or a stopped one of this Compose project (then the check fails
      # with Docker's "service is not running" rather than trying a local server).
      if command -v docker >/dev/null &&
        ids=$(cd "${ANIMEHOT_COMPOSE_DIR:-$AH_ROOT}" && timeout 20 docker compose ps -a -q "$service" 2>/dev/null) &&
        [ -n "$ids" ]; then
        AH_DOCKER_CACHE[$service]=yes
      else
        AH_DOCKER_CACHE[$service]=no
      fi
      ;;
    *) ah_die "ANIMEHOT_USE_DOCKER=$mode: use 1 (Docker Compose), 0 (local/remote servers) or auto" ;;
  esac
  [ "${AH_DOCKER_CACHE[$service]}" = yes ]
}

# Shared option parsing: --docker / --no-docker.
ah_mode_option() {
  case $1 in
    --docker) export ANIMEHOT_USE_DOCKER=1 ;;
    --no-docker) export ANIMEHOT_USE_DOCKER=0 ;;
    *) return 1 ;;
  esac
}

# ------------------------------------------------------------------------------ MySQL

# Resolves MY_HOST MY_PORT MY_USER MY_PASS MY_DB from the environment (settings.py order).
ah_mysql_config() {
  if [ -n "${DATABASE_URL:-}" ]; then
    ah_parse_url "$DATABASE_URL" || ah_die "DATABASE_URL is not a URL: '$DATABASE_URL'"
    case $URL_SCHEME in
      mysql | mysql+* | mariadb | mariadb+*) ;;
      *) ah_die "DATABASE_URL uses '$URL_SCHEME', not MySQL: these scripts handle the MySQL/MariaDB database only" ;;
    esac
    MY_HOST=${URL_HOST:-127.0.0.1}
    MY_PORT=${URL_PORT:-3306}
    MY_USER=${URL_USER:-${MYSQL_USER:-animetop}}
    MY_PASS=$URL_PASS
    MY_DB=${URL_PATH:-${MYSQL_DATABASE:-animetop}}
    MY_SOURCE=DATABASE_URL
  else
    MY_HOST=${MYSQL_HOST:-127.0.0.1}
    MY_PORT=${MYSQL_PORT:-3306}
    MY_USER=${MYSQL_USER:-animetop}
    MY_PASS=${MYSQL_PASSWORD:-}
    MY_DB=${MYSQL_DATABASE:-animetop}
    MY_SOURCE=MYSQL_*
  fi
  [[ $MY_DB =~ ^[A-Za-z0-9_$]+$ ]] || ah_die "MySQL database name '$MY_DB' has characters these scripts do not quote"
  [[ $MY_PORT =~ ^[0-9]+$ ]] || ah_die "MySQL port '$MY_PORT' is not a number"
  # The password travels in the environment, never on a command line.
  if [ -n "$MY_PASS" ]; then export MYSQL_PWD=$MY_PASS; else unset MYSQL_PWD; fi
  ah_use_docker mysql || true # decide once, in this shell
}

# Where MySQL is, for messages.
ah_mysql_where() {
  if ah_use_docker mysql; then
    echo "docker compose service mysql, database $MY_DB"
  else
    echo "$MY_HOST:$MY_PORT, database $MY_DB, user $MY_USER"
  fi
}

_ah_local_bin() {
  local name
  for name in "$@"; do
    if command -v "$name" >/dev/null; then
      echo "$name"
      return 0
    fi
  done
  ah_die "none of $* is installed (the MySQL/MariaDB client)"
}

# ah_mysql_cmd KIND: sets AH_CMD to the command line of KIND (client, dump or admin), to which
# the caller adds its arguments. Standard input and output pass through.
ah_mysql_cmd() {
  local kind=$1 bin
  if ah_use_docker mysql; then
    AH_CMD=(env -C "${ANIMEHOT_COMPOSE_DIR:-$AH_ROOT}" docker compose exec -T)
    [ -n "${MYSQL_ROOT_PASSWORD:-}" ] && AH_CMD+=(-e "MYSQL_PWD=$MYSQL_ROOT_PASSWORD")
    # shellcheck disable=SC2016 # expanded inside the container
    AH_CMD+=(mysql sh -c '
      kind=$1; shift
      case $kind in
        client) bin=$(command -v mariadb || command -v mysql) ;;
        dump) bin=$(command -v mariadb-dump || command -v mysqldump) ;;
        admin) bin=$(command -v mariadb-admin || command -v mysqladmin) ;;
      esac
      [ -n "$bin" ] || { echo "no MySQL $kind program in the mysql container" >&2; exit 127; }
      pw=${MYSQL_PWD:-${MYSQL_ROOT_PASSWORD:-${MARIADB_ROOT_PASSWORD:-}}}
      if [ -n "$pw" ]; then MYSQL_PWD=$pw; export MYSQL_PWD; fi
      exec "$bin" -uroot "$@"' sh "$kind")
  else
    case $kind in
      client) bin=$(_ah_local_bin mariadb mysql) ;;
      dump) bin=$(_ah_local_bin mariadb-dump mysqldump) ;;
      admin) bin=$(_ah_local_bin mariadb-admin mysqladmin) ;;
    esac
    AH_CMD=("$bin" --protocol=TCP --host="$MY_HOST" --port="$MY_PORT" --user="$MY_USER")
    [ "$kind" != dump ] && AH_CMD+=(--connect-timeout=5)
  fi
  return 0
}

ah_mysql() {
  local kind=$1
  shift
  ah_mysql_cmd "$kind"
  "${AH_CMD[@]}" "$@"
}

# ------------------------------------------------------------------------------ Redis

# Resolves RD_HOST RD_PORT RD_USER RD_PASS RD_DB RD_TLS from REDIS_URL or REDIS_* (settings.py).
ah_redis_config() {
  RD_TLS=0 RD_USER=""
  if [ -n "${REDIS_URL:-}" ]; then
    ah_parse_url "$REDIS_URL" || ah_die "REDIS_URL is not a URL: '$REDIS_URL'"
    case $URL_SCHEME in
      redis) ;;
      rediss) RD_TLS=1 ;;
      *) ah_die "REDIS_URL uses '$URL_SCHEME': these scripts handle redis:// and rediss:// URLs" ;;
    esac
    RD_HOST=${URL_HOST:-127.0.0.1}
    RD_PORT=${URL_PORT:-6379}
    RD_USER=$URL_USER
    RD_PASS=$URL_PASS
    RD_DB=${URL_PATH:-0}
    RD_DB=${RD_DB%%/*}
    RD_DB=${RD_DB:-0}
  else
    RD_HOST=${REDIS_HOST:-127.0.0.1}
    RD_PORT=${REDIS_PORT:-6379}
    RD_PASS=${REDIS_PASSWORD:-}
    RD_DB=${REDIS_DB:-0}
  fi
  [[ $RD_DB =~ ^[0-9]+$ ]] || ah_die "Redis database '$RD_DB' is not a number"
  if [ -n "$RD_PASS" ]; then export REDISCLI_AUTH=$RD_PASS; else unset REDISCLI_AUTH; fi
  ah_use_docker redis || true # decide once, in this shell
}

ah_redis_where() {
  if ah_use_docker redis; then
    echo "docker compose service redis, db $RD_DB"
  else
    echo "$RD_HOST:$RD_PORT, db $RD_DB"
  fi
}

# ah_redis_cmd: sets AH_CMD to redis-cli on the configured server and database.
ah_redis_cmd() {
  if ah_use_docker redis; then
    AH_CMD=(env -C "${ANIMEHOT_COMPOSE_DIR:-$AH_ROOT}" docker compose exec -T)
    [ -n "$RD_PASS" ] && AH_CMD+=(-e "REDISCLI_AUTH=$RD_PASS")
    AH_CMD+=(redis redis-cli -n "$RD_DB")
  else
    AH_CMD=(redis-cli -h "$RD_HOST" -p "$RD_PORT" -n "$RD_DB")
    [ -n "$RD_USER" ] && AH_CMD+=(--user "$RD_USER")
    [ "$RD_TLS" = 1 ] && AH_CMD+=(--tls)
  fi
  return 0
}

ah_redis() {
  ah_redis_cmd
  "${AH_CMD[@]}" "$@"
}

# ah_redis_ping: prints nothing and succeeds, or prints the reason and fails.
ah_redis_ping() {
  ah_redis_cmd
  _ah_probe 10 PONG "${AH_CMD[@]}" ping
}

# ah_mysql_ping: runs SELECT 1 in the configured database; prints the reason and fails otherwise.
ah_mysql_ping() {
  ah_mysql_cmd client
  _ah_probe 15 1 "${AH_CMD[@]}" --batch --skip-column-names -e 'SELECT 1' "$MY_DB"
}

# _ah_probe SECONDS EXPECTED COMMAND...: succeeds when COMMAND prints the line EXPECTED in time;
# otherwise prints one line of why (its error output, else its output) and fails.
_ah_probe() {
  local seconds=$1 expected=$2 out err errfile rc=0
  shift 2
  errfile=$(mktemp)
  out=$(timeout "$seconds" "$@" 2>"$errfile") || rc=$?
  err=$(cat "$errfile")
  rm -f "$errfile"
  if [ "$rc" = 0 ] && grep -qxF -- "$expected" <<<"$out"; then
    return 0
  fi
  if [ "$rc" = 124 ]; then
    echo "no answer within ${seconds}s"
  elif [ -n "$(ah_oneline "$err" | sed 's/^no output$//')" ]; then
    ah_oneline "$err"
  else
    ah_oneline "$out"
  fi
  return 1
}

# ------------------------------------------------------------------------------ API

ah_api_url() {
  local url=${API_URL:-http://localhost:8080}
  echo "${url%/}"
}

# ------------------------------------------------------------------------------ misc

ah_size() {
  numfmt --to=iec --suffix=B "$(stat -c %s "$1")" 2>/dev/null || stat -c '%s bytes' "$1"
}
