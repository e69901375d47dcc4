# The `beacon` image: two static binaries, `beacon` and `udaconnect`, on a
# distroless base, run as non-root. `make up` builds it once for both apps.
# The entrypoint is `beacon`: Kubernetes picks its target (`broadcaster`,
# `receiver`, `provision`; the default is `all`). UdaConnect's containers set
# `command: ["/usr/local/bin/udaconnect"]` and pick theirs (`api`, `ingest`,
# `writer`, `migrate`, `provision`, `simulate`).
#
# Dependencies are compiled in their own layer (cargo-chef), so a code change
# rebuilds only the workspace's crates. Plain layers rather than BuildKit cache
# mounts: `minikube image build` may run the classic builder.

# The Rust toolchain with cargo-chef. On Alpine the host target is musl, so the
# binary is static on every architecture without cross-compiling.
FROM rust:1.95-alpine3.23 AS chef
# musl-dev follows the Alpine release the tag above pins.
# hadolint ignore=DL3018
RUN apk add --no-cache musl-dev \
    && cargo install cargo-chef --locked --version 0.1.78
# A smaller image; the same profile for dependencies and the binaries keeps
# the cooked layer valid.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols
WORKDIR /src

# A recipe of the dependency graph: it changes only when a manifest or the
# lock file does.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked -p beacon -p udaconnect --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked -p beacon -p udaconnect \
    && install -D -m 0755 target/release/beacon /out/beacon \
    && install -D -m 0755 target/release/udaconnect /out/udaconnect

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=builder /out/beacon /out/udaconnect /usr/local/bin/
# Numeric, so that Kubernetes can check `runAsNonRoot` (distroless `nonroot`).
USER 65532:65532
# In a container the servers must listen beyond loopback.
ENV BEACON_HTTP_ADDR=0.0.0.0:8080 \
    UDACONNECT_HTTP_ADDR=0.0.0.0:8080 \
    UDACONNECT_GRPC_ADDR=0.0.0.0:50051
EXPOSE 8080 50051
ENTRYPOINT ["/usr/local/bin/beacon"]
CMD ["all"]
