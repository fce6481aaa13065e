# The `mirror` container image: `mirror run` as a non-root PID 1 on Debian bookworm-slim.
#
# Two ways to build it, one runtime (stage `runtime-base`, shared by both):
#
#   docker build -t mirror .
#       Users: compiles the production binary from this checkout in stage `build` (the official
#       Rust image) and copies it into the runtime image (stage `runtime`, the default target).
#       `az acr build --image mirror:<tag> .` runs this one in Azure (docs/deploy.md).
#
#   docker build --target prebuilt --build-arg BINARY=target/release/mirror -t mirror .
#       CI (deploy/test-image.sh): the same runtime with a binary built outside Docker by
#       `cargo build --release --locked --no-default-features`, because no Rust toolchain image
#       can be pulled there. Stage `prebuilt` comes before `build`, so the classic builder, which
#       builds every stage up to the target, never needs the Rust image.
#
# The production binary is built without the `demo` feature: no embedded simulators
# (sizes in docs/deploy.md). Configuration: mount it at /etc/mirror/mirror.toml; secrets come from
# the environment through `${VAR}` in it. The image needs no writable path of its own: state lives
# in the landing zone, so it runs with a read-only root file system.

# --- certs: the CA bundle, without the openssl package it needs to be built ---------------------
FROM debian:bookworm-slim AS certs
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# --- runtime-base: everything but the binary -------------------------------------------------
FROM debian:bookworm-slim AS runtime-base

# CA certificates: OneLake, Entra ID and Fabric are reached over TLS with the system's roots
# (MongoDB's driver carries its own). Rebuild the image to update them.
COPY --from=certs /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt

# A fixed numeric user, so that Kubernetes' runAsNonRoot can verify it and volume ownership is
# predictable; no shell, no home directory to write.
RUN groupadd --system --gid 10001 mirror \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin mirror \
    && mkdir -p /etc/mirror /var/lib/mirror \
    && chown 10001:10001 /var/lib/mirror

# The working directory is where `./mirror-state` would go for a configuration whose sink keeps
# no state (mount a volume there); the Open Mirroring sink keeps checkpoints in the landing zone.
WORKDIR /var/lib/mirror
# A configuration made of environment variables only, for the Azure deployments (deploy/azure).
COPY deploy/mirror-from-env.toml /etc/mirror/from-env.toml
ENV MIRROR_CONFIG=/etc/mirror/mirror.toml \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    MIRROR_HEALTH_URL=http://127.0.0.1:8080/health

LABEL org.opencontainers.image.title="mirror" \
      org.opencontainers.image.description="Keeps Microsoft Fabric in sync with MongoDB through Open Mirroring" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/mirror-rs/mirror"

USER 10001:10001
EXPOSE 8080
# `mirror health` GETs $MIRROR_HEALTH_URL (the API's /health) and exits 0 only on a 2xx answer:
# the image has no curl, and needs none.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["mirror", "health"]
# mirror is PID 1 itself (no shell in between): SIGTERM drains, flushes and commits within
# engine.shutdown_timeout (30 s by default), then exits 0. Give the runtime more time than that
# before it kills: `docker stop -t 45`, Kubernetes' terminationGracePeriodSeconds.
STOPSIGNAL SIGTERM
ENTRYPOINT ["mirror"]
CMD ["run", "--config", "/etc/mirror/mirror.toml", "--api-address", "0.0.0.0:8080"]

# --- prebuilt: the runtime with a binary built outside Docker (CI) ---------------------------
FROM runtime-base AS prebuilt
ARG BINARY=target/release/mirror
COPY ${BINARY} /usr/local/bin/mirror

# --- build: the production binary from source (users) ----------------------------------------
FROM rust:1.88-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --no-default-features --bin mirror \
    && cp target/release/mirror /mirror

# --- runtime: the default target, the image users build --------------------------------------
FROM runtime-base AS runtime
COPY --from=build /mirror /usr/local/bin/mirror
