//! The `udaconnect` binary as a library: its command line, the application
//! that runs a target, and the HTTP API, so integration tests build exactly
//! what `main` runs.

pub mod api;
pub mod app;
pub mod cli;
pub mod tools;

pub use self::{app::Application, cli::Cli};
