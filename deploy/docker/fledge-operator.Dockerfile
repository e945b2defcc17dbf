# syntax=docker/dockerfile:1
#
# The fledge-operator image. From the repository root:
#
#   docker build -f deploy/docker/fledge-operator.Dockerfile -t ghcr.io/fledge-rs/fledge-operator:0.1.0 .
#
# Build stage: the official Rust image of the toolchain the workspace is built and tested
# with (the workspace's rust-version, 1.89, is the oldest it supports). Runtime: distroless
# cc (glibc, libgcc, CA certificates, no shell, no package manager), as UID 65532. Why not a
# static musl binary: aws-lc-rs (rustls' crypto) compiles C that then needs a musl cross
# toolchain, and musl's allocator is slow under tokio's many threads; distroless/cc runs the
# ordinary glibc build and is about as small. See docs/install.md.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# aws-lc-sys builds with cmake when no prebuilt bindings fit the platform.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake clang \
    && rm -rf /var/lib/apt/lists/*
COPY . .
# The caches keep the registry and the target directory between builds; the binary is
# copied out of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p fledge-operator \
    && install -D -m 0755 target/release/fledge-operator /out/fledge-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/fledge-operator /fledge-operator
# distroless' `nonroot` user; the Deployment also sets runAsNonRoot and this UID.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/fledge-operator"]
