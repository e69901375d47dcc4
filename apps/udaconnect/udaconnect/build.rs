//! Generates the gRPC and bus message code from `proto/` with protox, a
//! protobuf compiler in Rust, so building needs no `protoc`; and saves the
//! descriptor set the gRPC reflection service answers with.

use std::{env, fs, path::PathBuf};

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let files = protox::compile(["udaconnect.proto", "bus.proto"], ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("udaconnect_descriptor.bin"), files.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(files)?;
    Ok(())
}
