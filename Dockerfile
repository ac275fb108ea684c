# syntax=docker/dockerfile:1
# session-vault: multi-stage build. Build on the Swift 6.3 image, run on slim Debian with only
# the runtime libraries (libsqlite3, libcrypto, libpq), as a non-root user, with data on a volume.

FROM swift:6.3-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      pkg-config libsqlite3-dev libssl-dev libcurl4-openssl-dev libpq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Resolve dependencies first so that source edits reuse this layer.
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
# The manifest declares the test targets too, so SwiftPM needs their folders to exist.
COPY Tests ./Tests
# session-vault-run is the wrapper behind `session-vault run` (URLSession, so it links libcurl;
# the server does not): a second binary, installed beside the first, where `run` looks for it.
RUN swift build -c release --static-swift-stdlib --product session-vault \
 && swift build -c release --static-swift-stdlib --product session-vault-run \
 && install -D -m 0755 "$(swift build -c release --show-bin-path)/session-vault" /out/session-vault \
 && install -D -m 0755 "$(swift build -c release --show-bin-path)/session-vault-run" /out/session-vault-run

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libsqlite3-0 libssl3 libpq5 curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 vault \
 && useradd --system --uid 10001 --gid vault --home-dir /data --shell /usr/sbin/nologin vault \
 && install -d -o vault -g vault -m 0700 /data
# libcurl4 (session-vault-run's HTTP and TLS) comes with the curl package above.
COPY --from=build /out/session-vault /out/session-vault-run /usr/local/bin/
USER vault:vault
VOLUME ["/data"]
ENV SESSION_VAULT_LISTEN=0.0.0.0:8080 \
    SESSION_VAULT_DATA_DIR=/data \
    SESSION_VAULT_STORAGE=file:/data/vault.db \
    SESSION_VAULT_LOG_FORMAT=json
EXPOSE 8080
# The drain deadline (8 s) stays below Docker's default 10 s stop timeout.
# Healthy means ready: a sealed vault, one draining, or one whose database file was removed is
# reported unhealthy; a full disk is not (reads still work; /readyz says "writable": false).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
  CMD curl -fsS -o /dev/null http://127.0.0.1:8080/readyz || exit 1
# Exec form: the vault is PID 1's only process and receives SIGTERM directly.
ENTRYPOINT ["/usr/local/bin/session-vault"]
CMD ["serve"]
