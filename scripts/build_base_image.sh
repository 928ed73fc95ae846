#!/usr/bin/env bash
# Builds the local base image the images are built FROM where no image registry can be reached:
# a Debian bookworm made by debootstrap from Debian's package archive (the mirror this host's apt
# uses), with python3, python3-venv and ca-certificates, imported with `docker import`. It stands
# in for python:3.11-slim-bookworm (deploy/Dockerfile's default BASE_IMAGE): same Debian release,
# Python 3.11 as python3.
#
#   scripts/build_base_image.sh [--force]
#   docker build -f deploy/Dockerfile --build-arg BASE_IMAGE=animehot-base:bookworm --network host ...
#
# Once per machine: when the image exists it exits at once; when only the root file system tarball
# is cached (ANIMEHOT_BASE_CACHE, default /var/cache/animehot) it imports that (seconds). --force
# runs debootstrap again. Needs root, debootstrap and a running Docker engine
# (scripts/install_system_packages.sh docker; deploy/test/ensure_dockerd.sh).
set -euo pipefail

IMAGE=${ANIMEHOT_BASE_IMAGE:-animehot-base:bookworm}
SUITE=bookworm
CACHE=${ANIMEHOT_BASE_CACHE:-/var/cache/animehot}
PACKAGES=python3,python3-venv,ca-certificates
TARBALL=$CACHE/$SUITE-python3-rootfs.tar

force=0
case ${1:-} in
  --force) force=1 ;;
  "") ;;
  -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

die() { echo "build_base_image.sh: $*" >&2; exit 1; }

docker info >/dev/null 2>&1 || die "no Docker engine answers (deploy/test/ensure_dockerd.sh starts one)"
if [ "$force" = 0 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "$IMAGE is here ($(docker image inspect -f '{{.Size}}' "$IMAGE" | numfmt --to=iec)B); --force rebuilds it"
  exit 0
fi

# The archive this host's apt uses for the suite (deb822 .sources or one-line sources.list), so
# the image installs from where the host does; none found: debootstrap's default.
host_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk '/^URIs:/ {uri=$2} /^Suites:/ {for (i = 2; i <= NF; i++) if ($i == "'"$SUITE"'") {print uri; exit}}' "$f"
  done | head -n 1
  awk '$1 == "deb" && $3 == "'"$SUITE"'" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true
}

if [ "$force" = 1 ] || [ ! -s "$TARBALL" ]; then
  [ "$(id -u)" = 0 ] || die "debootstrap needs root"
  DEBOOTSTRAP=$(PATH="$PATH:/usr/sbin:/sbin" command -v debootstrap) ||
    die "debootstrap is missing (scripts/install_system_packages.sh docker)"
  mkdir -p "$CACHE"
  rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs" "$TARBALL.partial"' EXIT
  mirror=$(host_mirror | head -n 1)
  echo "debootstrap $SUITE (minbase + $PACKAGES) from ${mirror:-the default mirror of debootstrap} ..."
  started=$(date +%s)
  # shellcheck disable=SC2086 # no mirror: no argument
  "$DEBOOTSTRAP" --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" $mirror >"$rootfs.log" 2>&1 ||
    { tail -n 20 "$rootfs.log" >&2; rm -f "$rootfs.log"; die "debootstrap failed"; }
  rm -f "$rootfs.log"
  # The host's apt sources when they are this suite's (updates and security too), else debootstrap's.
  if grep -qs "$SUITE" /etc/apt/sources.list.d/*.sources /etc/apt/sources.list; then
    rm -f "$rootfs/etc/apt/sources.list"
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] && grep -q "$SUITE" "$f" && cp "$f" "$rootfs$f"
    done
  fi
  # The certificate authorities this host added (/usr/local/share/ca-certificates) are trusted in
  # the image too: behind a TLS-inspecting proxy a build's pip install needs them as the host does.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null
  fi
  # As the official slim images: no package caches, lists or manuals in the layers.
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/tmp/*
  tar -C "$rootfs" --numeric-owner -cf "$TARBALL.partial" .
  mv -f "$TARBALL.partial" "$TARBALL"
  rm -rf "$rootfs"
  trap - EXIT
  elapsed=$(( $(date +%s) - started ))
  echo "root file system: $TARBALL ($(du -h "$TARBALL" | cut -f1)) in $elapsed s"
fi

# pip uses the system's certificate store (with the host's added authorities), not its own copy.
docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["bash"]' \
  "$TARBALL" "$IMAGE" >/dev/null
echo "$IMAGE imported ($(docker image inspect -f '{{.Size}}' "$IMAGE" | numfmt --to=iec)B)"
