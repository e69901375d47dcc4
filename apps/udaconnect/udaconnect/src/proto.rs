//! The code generated from `proto/` at build time: the gRPC ingest API
//! (`udaconnect.v1`, documented in `proto/udaconnect.proto`) and the
//! messages on the bus (`udaconnect.bus.v1`), plus the descriptor set the
//! reflection service answers with. `LocationBatch` alone is written by
//! hand ([`batch`]), to bound what decoding one costs.

mod batch;

pub use self::batch::{LocationBatch, MAX_DECODED_ITEMS};

/// The gRPC ingest API: messages, servers and clients.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    pub use super::LocationBatch;

    tonic::include_proto!("udaconnect.v1");
    include!(concat!(env!("OUT_DIR"), "/clients/udaconnect.v1.rs"));
}

/// What travels on the LOCATIONS and dead-letter streams.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod bus {
    tonic::include_proto!("udaconnect.bus.v1");
}

/// Every file of `proto/`, encoded, for gRPC reflection.
pub const DESCRIPTOR: &[u8] = tonic::include_file_descriptor_set!("udaconnect_descriptor");
