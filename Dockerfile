# The `beacon` image: two binaries, `beacon` and `udaconnect`, on a
# distroless base, run as non-root. `make up` builds it once for both apps.
# The entrypoint is `beacon`: Kubernetes picks its target (`broadcaster`,
# `receiver`, `provision`; the default is `all`). UdaConnect's containers set
# `command: ["/usr/local/bin/udaconnect"]` and pick theirs (`api`, `ingest`,
# `writer`, `migrate`, `provision`, `simulate`).
#
# The binaries shipped are the ones the benchmarks measure: the same target
# (x86_64/aarch64-unknown-linux-gnu, glibc, Debian 12), the same allocator
# (glibc's malloc) and the same profile (`release`, only stripped of symbols
# here). A static musl build would ship a different allocator, which behaves
# very differently under many threads.
#
# Dependencies are compiled in their own layer (cargo-chef), so a code change
# rebuilds only the workspace's crates. Plain layers rather than BuildKit cache
# mounts: `minikube image build` may run the classic builder.

# The Rust toolchain with cargo-chef, on Debian 12 (bookworm): the glibc the
# runtime image below carries.
FROM rust:1.95-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
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

# Debian 12's glibc and libgcc, nothing else.
FROM gcr.io/distroless/cc-debian12:nonroot
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
