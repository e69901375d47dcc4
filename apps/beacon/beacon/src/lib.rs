//! The `beacon` binary as a library: its command line and the application
//! that runs a target, so integration tests build exactly what `main` runs.

pub mod app;
pub mod cli;

pub use self::{app::Application, cli::Cli};
