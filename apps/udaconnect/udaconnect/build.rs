//! Generates the gRPC and bus message code from `proto/` with protox, a
//! protobuf compiler in Rust, so building needs no `protoc`; and saves the
//! descriptor set the gRPC reflection service answers with.
//!
//! It also tells the tests whether the original's own database files are
//! beside the workspace (cfg `original_rows`): the tests that need those
//! very rows are marked ignored without them, so that the summary counts
//! them as skipped rather than passed.

use std::{env, fs, path::PathBuf};

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo::rustc-check-cfg=cfg(original_rows)");
    println!("cargo:rerun-if-env-changed=UDACONNECT_ORIGINAL_ROWS");
    // Where udaconnect_store::original::fixtures_dir looks (this crate sits
    // beside the store's, at the same depth).
    let fixtures = env::var_os("UDACONNECT_ORIGINAL_ROWS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../../shared/udaconnect")
        });
    if fixtures.join("schema.sql").is_file() {
        println!("cargo:rerun-if-changed={}", fixtures.display());
        println!("cargo::rustc-cfg=original_rows");
    }
    let files = protox::compile(["udaconnect.proto", "bus.proto"], ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("udaconnect_descriptor.bin"), files.encode_to_vec())?;
    // The servers decode requests with the platform's codec (a request
    // that is not protobuf is INVALID_ARGUMENT, not INTERNAL); the clients,
    // generated apart on the same messages, keep tonic's (a reply that is
    // not protobuf is the server's fault: INTERNAL). A batch is decoded by
    // hand (`src/proto/batch.rs`): never more items than an edge may take,
    // however many a message holds.
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .codec_path("platform::grpc::ProstCodec")
        .extern_path(
            ".udaconnect.v1.LocationBatch",
            "crate::proto::LocationBatch",
        )
        .compile_fds(files.clone())?;
    let clients = out.join("clients");
    fs::create_dir_all(&clients)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .extern_path(".udaconnect.v1", "crate::proto::v1")
        .extern_path(".udaconnect.bus.v1", "crate::proto::bus")
        .out_dir(clients)
        .compile_fds(files)?;
    Ok(())
}
