# syntax=docker/dockerfile:1
#
# The fledge-loadtester image (Flagger's loadtester API with a built-in hey). From the
# repository root:
#
#   docker build -f deploy/docker/fledge-loadtester.Dockerfile -t ghcr.io/fledge-rs/fledge-loadtester:0.1.0 .
#
# Build stage: as the operator's (the official Rust image, a cached release build).
#
# Runtime: Debian 12 slim with bash, curl and CA certificates, as UID 10001 (Flagger's
# loadtester user), not distroless. The tutorials' acceptance tests are `type: bash` tasks
# running `curl -s http://podinfo-canary.test:9898/token | grep token`, and `type: cmd` runs
# under `sh -c`: without a shell and curl those webhooks would fail, so the image carries
# them (and nothing else: no package manager cache, no Go tools). `hey` is built into the
# binary, so the tutorials' load tests need no hey binary. helm, kubectl, ghz and wrk are not
# installed: a task that needs one gets a 500 naming the tool; build FROM this image and add
# the tool when you need it (see docs/loadtester.md).

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# aws-lc-sys builds with cmake when no prebuilt bindings fit the platform.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake clang \
    && rm -rf /var/lib/apt/lists/*
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p fledge-loadtester \
    && install -D -m 0755 target/release/fledge-loadtester /out/fledge-loadtester

FROM docker.io/library/debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends bash curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --home-dir /home/app --create-home app
COPY --from=build /out/fledge-loadtester /usr/local/bin/fledge-loadtester
WORKDIR /home/app
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/fledge-loadtester"]
CMD ["-port=8080", "-log-level=info", "-timeout=1h"]
