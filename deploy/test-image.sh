#!/usr/bin/env bash
# Builds the container image from the root Dockerfile and runs the container tests
# (tests/container.rs) against it with a real Docker Engine. `.ci/run` calls it; run it by hand as
# root (it installs Debian's docker.io and debootstrap when they are missing and starts dockerd
# when none answers). It fails, never skips, when Docker cannot be installed or started.
#
# No image registry is reachable here, so the Dockerfile's runtime base (debian:bookworm-slim)
# is made locally when Docker does not have it: `debootstrap --variant=minbase bookworm`, slimmed
# the way Debian's official -slim images are (debuerreotype's slimify: no docs, man pages or
# locales), then `docker import`ed under that exact name. The Dockerfile CI builds is the one users
# build; CI builds its `prebuilt` target with the release binary built here.
#
# Environment:
#   MIRROR_IMAGE          the tag to build (default mirror:test)
#   MIRROR_IMAGE_BINARY   skip the cargo build and use this binary (a path in the build context
#                         that .dockerignore lets through: target/release/mirror)
#   MIRROR_IMAGE_BASE_CACHE  where the debootstrap base is cached between runs
#                         (default target/image-base; never committed)
#   DOCKER                the docker client (default: Debian's /usr/bin/docker, matching dockerd)
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { printf '\n==> test-image: %s (%ds)\n' "$*" "$((SECONDS - started))"; }
fail() { echo "test-image: $*" >&2; exit 1; }

IMAGE="${MIRROR_IMAGE:-mirror:test}"
BASE_IMAGE="debian:bookworm-slim" # the FROM of the Dockerfile's runtime-base stage
CACHE="${MIRROR_IMAGE_BASE_CACHE:-target/image-base}"
WORK="target/test-image"
mkdir -p "$WORK"

# --- Docker Engine ----------------------------------------------------------------------------
if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
  step "installing Debian's docker.io and debootstrap"
  [ "$(id -u)" = 0 ] || fail "docker.io and debootstrap are missing; run as root to install them"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io debootstrap
fi
if [ -z "${DOCKER:-}" ]; then
  # Debian's client matches Debian's dockerd; a newer client elsewhere on PATH wants buildx.
  if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=$(command -v docker); fi
fi
export DOCKER

started_dockerd=""
root=""
cleanup() {
  local status=$?
  [ -z "$root" ] || rm -rf "$root"
  # Containers the tests started (they remove their own; this covers a crash or an interrupt).
  ids=$("$DOCKER" ps -aq --filter label=io.mirror.test=container 2>/dev/null || true)
  if [ -n "$ids" ]; then
    echo "test-image: removing leftover test containers" >&2
    # shellcheck disable=SC2086
    "$DOCKER" rm -f $ids >/dev/null 2>&1 || true
  fi
  if [ -n "$started_dockerd" ]; then
    kill "$started_dockerd" 2>/dev/null || true
    wait "$started_dockerd" 2>/dev/null || true
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! "$DOCKER" info >/dev/null 2>&1; then
  step "starting dockerd (log: $WORK/dockerd.log)"
  [ "$(id -u)" = 0 ] || fail "no Docker daemon answers and only root can start one"
  # No bridge and no iptables rules: every container of the tests uses the host's network
  # (loopback), and the build reaches Debian's mirror through it too.
  dockerd --bridge=none --iptables=false --ip-masq=false >"$WORK/dockerd.log" 2>&1 &
  started_dockerd=$!
  for _ in $(seq 60); do
    "$DOCKER" info >/dev/null 2>&1 && break
    kill -0 "$started_dockerd" 2>/dev/null || { tail -20 "$WORK/dockerd.log" >&2; fail "dockerd exited"; }
    sleep 1
  done
  "$DOCKER" info >/dev/null 2>&1 || { tail -20 "$WORK/dockerd.log" >&2; fail "dockerd did not answer within 60 s"; }
fi
"$DOCKER" version --format 'docker client {{.Client.Version}}, engine {{.Server.Version}}'

# --- the runtime base -------------------------------------------------------------------------
if ! "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  tarball="$CACHE/bookworm-slim.tar"
  if [ ! -s "$tarball" ]; then
    step "making $BASE_IMAGE with debootstrap --variant=minbase bookworm"
    [ "$(id -u)" = 0 ] || fail "debootstrap needs root"
    mkdir -p "$CACHE"
    root=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$CACHE/debootstrap.log" 2>&1 \
      || { tail -20 "$CACHE/debootstrap.log" >&2; fail "debootstrap failed"; }
    # As debuerreotype does for Debian's official images: the security suite, no package
    # lists or caches, and -slim's dpkg excludes (kept for packages installed later).
    cat >"$root/etc/apt/sources.list" <<'EOF'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
    find "$root/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$root"/usr/share/{groff,info,linda,lintian,locale,man}/* \
      "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
      "$root"/var/log/* "$root"/tmp/*
    tar --numeric-owner -C "$root" -cf "$tarball.partial" .
    mv "$tarball.partial" "$tarball"
    rm -rf "$root"
    root=""
  else
    step "importing the cached base $tarball"
  fi
  "$DOCKER" import \
    --change 'CMD ["bash"]' \
    --change 'LABEL io.mirror.base="debootstrap --variant=minbase bookworm, slimmed (deploy/test-image.sh)"' \
    "$tarball" "$BASE_IMAGE" >/dev/null
fi
"$DOCKER" image inspect -f "base $BASE_IMAGE: {{.Size}} bytes" "$BASE_IMAGE"

# --- the binary and the image -----------------------------------------------------------------
binary="${MIRROR_IMAGE_BINARY:-target/release/mirror}"
if [ -z "${MIRROR_IMAGE_BINARY:-}" ]; then
  step "building the production binary (cargo build --release --locked --no-default-features)"
  cargo build --release --locked --no-default-features --bin mirror
fi
[ -x "$binary" ] || fail "$binary is not an executable"
case "$binary" in
  /*) fail "MIRROR_IMAGE_BINARY must be a path inside the repository (the build context)" ;;
esac
echo "binary $binary: $(stat -c %s "$binary") bytes"

step "docker build --target prebuilt -t $IMAGE"
build_started=$SECONDS
"$DOCKER" build --network host --target prebuilt --build-arg "BINARY=$binary" -t "$IMAGE" .
echo "image built in $((SECONDS - build_started)) s"
"$DOCKER" image inspect -f "image $IMAGE: {{.Size}} bytes" "$IMAGE"

# --- the container tests ----------------------------------------------------------------------
step "container tests (tests/container.rs)"
MIRROR_TEST_IMAGE="$IMAGE" cargo test --locked --test container -- --ignored --test-threads 1
step "ok"
