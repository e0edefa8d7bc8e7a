# syntax=docker/dockerfile:1
# safestream-relay image. Guide: docs/deploy.md ("Docker").
# Note: this file has not been built on the project's CI machine (it has no Docker engine).
#
#   docker build -t safestream-relay .
#   docker run -d --name relay -p 8080:8080 -v relay-data:/data \
#       --env-file relay.env --stop-timeout 30 safestream-relay

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep the registry and target/ between builds (BuildKit); the binary is
# copied out of the cached target/ in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p relay --bin safestream-relay \
 && cp target/release/safestream-relay /usr/local/bin/safestream-relay

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 safestream \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin safestream \
 && mkdir /data \
 && chown safestream:safestream /data
COPY --from=build /usr/local/bin/safestream-relay /usr/local/bin/safestream-relay
ENV SAFESTREAM_LISTEN=0.0.0.0:8080 \
    SAFESTREAM_DB=/data/relay.db
VOLUME ["/data"]
EXPOSE 8080
USER 10001:10001
# The relay drains on SIGTERM (close 1001 to sockets, in-flight HTTP finishes, up to 10 s).
STOPSIGNAL SIGTERM
# No HEALTHCHECK: the image has no curl. Probe GET /readyz (and /healthz) from the
# orchestrator instead.
ENTRYPOINT ["/usr/local/bin/safestream-relay"]
