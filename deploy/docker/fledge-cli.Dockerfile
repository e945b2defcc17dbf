# syntax=docker/dockerfile:1
#
# The `fledge` command (crates/fledge-cli: validate, migrate, crd, simulate) as an image, for
# CI pipelines that check manifests. From the repository root:
#
#   docker build -f deploy/docker/fledge-cli.Dockerfile -t ghcr.io/fledge-rs/fledge-cli:0.1.0 .
#   docker run --rm -v "$PWD:/work:ro" -w /work ghcr.io/fledge-rs/fledge-cli:0.1.0 validate canary.yaml
#   kubectl get canaries -A -o yaml | docker run --rm -i ghcr.io/fledge-rs/fledge-cli:0.1.0 validate -
#
# Unlike the operator, the command is pure Rust (no TLS, no C: it reads files and stdin and
# prints), so it links statically against musl and runs on distroless `static` (no libc, no
# shell, no package manager), as UID 65532. The build stage runs on the image's own platform
# (`docker buildx build --platform linux/arm64` builds natively or under emulation), so the
# musl target is the build machine's.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
RUN rustup target add "$(uname -m)-unknown-linux-musl"
COPY . .
# The caches keep the registry and the target directory between builds; the binary is
# copied out of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(uname -m)-unknown-linux-musl" \
    && cargo build --release --locked -p fledge-cli --target "$target" \
    && install -D -m 0755 "target/$target/release/fledge" /out/fledge

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/fledge /fledge
# distroless' `nonroot` user.
USER 65532:65532
ENTRYPOINT ["/fledge"]
CMD ["--help"]
