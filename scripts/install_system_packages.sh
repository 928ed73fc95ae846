#!/usr/bin/env bash
# Install the Debian packages a profile needs, those that are missing, and nothing else.
#
#   scripts/install_system_packages.sh [PROFILE…]      (default: test)
#
#   test    what `make test` and .ci/run need: MariaDB (server and client: the backup scripts use
#           mariadb-dump), Redis, Chromium (Playwright cannot download its own browser here; the
#           crawler runs /usr/bin/chromium), nginx and openssl (the deploy tests run nginx with
#           the production config and a self-signed certificate), promtool (Debian's prometheus
#           package ships it: the alert rules are checked with it), curl and jq (the operations
#           scripts the tests run), wrk (the API benchmark's load generator; the benchmark suite's
#           test runs it)
#   bench   what `make bench` needs beyond the services: wrk
#   demo    what `make demo` needs beyond Python: redis-server (it starts a private one)
#   docker  the container tests: docker.io and debootstrap (to build a base image offline)
#
# As root it runs `apt-get update` once and installs what is missing. Otherwise it prints the one
# `apt-get install …` line needed and exits 1. Exits 0 at once when nothing is missing.
set -euo pipefail

profiles=("$@")
((${#profiles[@]})) || profiles=(test)

# "package probe": the package is missing when its probe fails; a probe is a command name, or
# an absolute path that must be executable.
test_packages=(
  "mariadb-server /usr/sbin/mariadbd"
  "mariadb-client mariadb-dump"
  "redis-server redis-server"
  "redis-tools redis-cli"
  "chromium /usr/bin/chromium"
  "fonts-noto-cjk /usr/share/fonts/opentype/noto"  # Japanese text in the dashboard's browser tests and screenshots
  "nginx-light nginx"
  "openssl openssl"
  "prometheus promtool"
  "curl curl"
  "jq jq"
  "wrk wrk"
)
bench_packages=(
  "wrk wrk"
)
demo_packages=(
  "redis-server redis-server"
)
docker_packages=(
  "docker.io dockerd"
  "debootstrap debootstrap"
)

present() {
  local probe=$1
  if [[ $probe == /* ]]; then
    [ -x "$probe" ]
  else
    # nginx and debootstrap live in /usr/sbin, which a non-root PATH often lacks.
    PATH="$PATH:/usr/sbin:/sbin" command -v "$probe" >/dev/null 2>&1
  fi
}

missing=()
for profile in "${profiles[@]}"; do
  case $profile in
    test) entries=("${test_packages[@]}") ;;
    bench) entries=("${bench_packages[@]}") ;;
    demo) entries=("${demo_packages[@]}") ;;
    docker) entries=("${docker_packages[@]}") ;;
    *) echo "install_system_packages.sh: unknown profile '$profile' (test, bench, demo, docker)" >&2; exit 2 ;;
  esac
  for entry in "${entries[@]}"; do
    read -r package probe <<<"$entry"
    if ! present "$probe" && [[ " ${missing[*]-} " != *" $package "* ]]; then
      missing+=("$package")
    fi
  done
done

((${#missing[@]})) || exit 0

line="apt-get install -y ${missing[*]}"
if [ "$(id -u)" != 0 ]; then
  echo "missing system packages for ${profiles[*]}; as root run:" >&2
  echo "  apt-get update && $line" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "missing system packages for ${profiles[*]}: ${missing[*]} (Debian names; no apt-get here)" >&2
  exit 1
fi
echo "installing system packages for ${profiles[*]}: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}"
for entry in "${test_packages[@]}" "${bench_packages[@]}" "${demo_packages[@]}" "${docker_packages[@]}"; do
  read -r package probe <<<"$entry"
  if [[ " ${missing[*]} " == *" $package "* ]] && ! present "$probe"; then
    echo "ERROR: $package was installed but $probe is still missing" >&2
    exit 1
  fi
done
