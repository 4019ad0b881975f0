# redauth container image.
#
#   docker build --build-arg REDAUTH_GIT_COMMIT=$(git rev-parse --short=12 HEAD) \
#     -t ghcr.io/example/redauth:0.1.0 .
#
# Two stages: the builder compiles the release binary on Debian 12 (bookworm); the runtime is
# distroless "cc" on Debian 12 too. The binary links glibc, libm and libgcc_s dynamically (rustls
# and ring are compiled in, no OpenSSL), and reads the system CA roots from
# /etc/ssl/certs/ca-certificates.crt: distroless cc ships exactly those, a shell and package manager
# it does not. Keep both stages on the same Debian release so the glibc the binary was linked
# against is the one it runs with.
#
# The image runs as uid/gid 65532 ("nonroot") and needs no capabilities and no writable
# filesystem. redauth's defaults stay on loopback (127.0.0.1:6379 for clients, 127.0.0.1:9180 for
# the admin endpoints): as a sidecar it shares the pod's network namespace, so the application
# reaches it on 127.0.0.1. Give --listen / --admin-listen explicitly to listen wider (see
# deploy/README.md).

FROM rust:1-slim-bookworm AS builder
WORKDIR /build

# Dependencies first, in their own layer: build the locked dependency graph against empty
# sources, so editing src/ does not rebuild every crate. Only the manifests, Cargo.lock and the
# micro-benchmarks (which cargo must find to parse the manifest's [[bench]] targets; a release
# build compiles none of them) decide whether this layer is reused. The workspace's other member,
# the emulated cloud (emulator/, a dev-dependency of the tests), is only parsed, never built:
# its manifest plus placeholder sources are enough.
COPY Cargo.toml Cargo.lock build.rs ./
COPY emulator/Cargo.toml ./emulator/
COPY benches ./benches
RUN mkdir -p src emulator/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs emulator/src/lib.rs \
    && echo 'fn main() {}' > emulator/src/main.rs \
    && cargo build --release --locked -p redauth \
    && rm -rf src

# Then redauth itself, naming the commit it is built from (the context holds no .git):
#   docker build --build-arg REDAUTH_GIT_COMMIT=$(git rev-parse --short=12 HEAD) .
ARG REDAUTH_GIT_COMMIT=unknown
ENV REDAUTH_GIT_COMMIT=${REDAUTH_GIT_COMMIT}
# COPY keeps the files' own modification times, which may be older than
# the placeholder build above; touching them makes cargo rebuild the crate for certain.
COPY src ./src
RUN touch src/lib.rs src/main.rs \
    && cargo build --release --locked -p redauth \
    && install -D -m 0755 target/release/redauth /out/redauth

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="redauth" \
      org.opencontainers.image.description="A credential-free sidecar for managed Redis: local plain RESP in, TLS and Entra ID tokens upstream" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/redauth /usr/local/bin/redauth
USER 65532:65532
# 6379: Redis clients (loopback by default). 9180: admin endpoints /livez /startupz /readyz
# /metrics and POST /quitquitquit (loopback by default; Kubernetes probes need
# --admin-listen 0.0.0.0:9180).
EXPOSE 6379 9180
# No CMD: settings come from arguments after the image name or from REDAUTH_* variables, e.g.
#   docker run -e REDAUTH_UPSTREAM=rediss://myredis.westeurope.redis.azure.net:10000 \
#              -e REDAUTH_AUTH=entra ghcr.io/example/redauth:0.1.0
# Without an upstream redauth reports the missing setting and exits with status 2.
ENTRYPOINT ["/usr/local/bin/redauth"]
