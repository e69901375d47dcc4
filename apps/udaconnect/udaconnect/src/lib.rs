//! The `udaconnect` binary as a library: its command line, the application
//! that runs a target, the HTTP API, the ingest edge, the writer, the
//! meetings, the simulator and the embedded demo's live feed, so integration
//! tests, the chaos harness and the benchmark build exactly what `main` runs.

pub mod access;
pub mod api;
pub mod app;
pub mod bus_wire;
pub mod cli;
pub mod demo;
pub mod ingest;
pub mod meetings;
pub mod proto;
pub mod simulate;
pub mod streams;
pub mod tools;
pub mod urlencoded;
pub mod writer;

pub use self::{app::Application, cli::Cli};
