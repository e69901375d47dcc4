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
    // A batch is decoded by hand (`src/proto/batch.rs`): never more items
    // than an edge may take, however many a message holds.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .extern_path(
            ".udaconnect.v1.LocationBatch",
            "crate::proto::LocationBatch",
        )
        .compile_fds(files)?;
    Ok(())
}
