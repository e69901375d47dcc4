//! Logging: `LOG_FORMAT=plain` for a terminal, `json` for a log collector,
//! filtered by `RUST_LOG`.
//!
//! Logs go to stdout, one event per line, so `kubectl logs` and
//! `cargo run` show the same stream.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// Logging settings, shared by every target.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,

    /// Which events to log, in tracing's filter syntax (e.g. `info,beacon_receiver=debug`).
    #[arg(long, env = "RUST_LOG", default_value = "info", value_parser = parse_filter)]
    pub log_filter: String,
}

fn parse_filter(input: &str) -> Result<String, String> {
    EnvFilter::builder()
        .parse(input)
        .map(|_| input.to_owned())
        .map_err(|err| format!("not a log filter: {err}"))
}

/// Installs the global subscriber. Later calls (several apps in one test
/// process) keep the first one.
pub fn init(args: &LogArgs) {
    let filter = EnvFilter::builder()
        .parse(&args.log_filter)
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    // A second init only happens in tests, where the first subscriber stays.
    let _ = match args.log_format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}
