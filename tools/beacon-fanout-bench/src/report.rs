//! The outcome of a run: the `RESULT` line other tools parse, and a row in
//! `BENCHMARKS.md` so that figures stay next to the command that made them.

use std::{io, path::Path, time::SystemTime};

use serde::Serialize;
use testkit::bench;

/// The table's header; rows are inserted at the end of the table that
/// starts with it, so text after the table stays where it is.
const HEADER: &str = "| date | transport | clients | receivers | rate/s | p50 ms | p99 ms | max ms | RSS/client KB | CPU % | machine | command | deliveries/s | every client got every message | load avg | note |";

/// One run's figures. The first fields are the interface other tools read;
/// the rest explain them.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub transport: &'static str,
    /// Clients that connected and stayed through the run.
    pub clients: u64,
    pub receivers: usize,
    pub rate_per_s: f64,
    pub deliveries_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Receivers' RSS with the clients connected and idle, summed.
    pub receiver_rss_mb: f64,
    /// (RSS with the idle clients − RSS before they connected) / clients.
    pub rss_per_client_kb: f64,
    /// Receivers' CPU while messages flowed, summed (100 = one core).
    pub receiver_cpu_pct: f64,
    pub clients_requested: u64,
    pub connect_failures: u64,
    pub first_connect_error: Option<String>,
    /// Messages measured (after one warm-up message).
    pub messages: u64,
    /// Clients that got every measured message once, in order.
    pub complete_clients: u64,
    /// Clients whose stream broke during the run, and the first reason.
    pub broken_clients: u64,
    pub first_break: Option<String>,
    /// Receivers' RSS after the messages, summed.
    pub receiver_rss_mb_end: f64,
    /// The load generator's own CPU while messages flowed.
    pub loadgen_cpu_pct: f64,
    /// The 1-minute load average before the run started.
    pub load_before: String,
    pub machine: String,
    pub command: String,
    pub note: String,
}

impl BenchResult {
    /// The line printed last: `RESULT {...}`.
    pub fn line(&self) -> String {
        let json =
            serde_json::to_string(self).unwrap_or_else(|err| format!("{{\"error\":\"{err}\"}}"));
        format!("RESULT {json}")
    }

    fn row(&self) -> String {
        let date = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let complete = if self.complete_clients == self.clients_requested {
            "yes".to_owned()
        } else {
            format!("{} of {}", self.complete_clients, self.clients_requested)
        };
        format!(
            "| {date} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {} | `{}` | {:.0} | {complete} | {} | {} |",
            self.transport,
            self.clients,
            self.receivers,
            self.rate_per_s,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            self.rss_per_client_kb,
            self.receiver_cpu_pct,
            self.machine,
            self.command,
            self.deliveries_per_s,
            self.load_before,
            self.note.replace('|', "/"),
        )
    }

    /// Adds this run as a row of the table in `path`, creating the file or
    /// the table when missing.
    pub fn append_to(&self, path: &Path) -> io::Result<()> {
        bench::append_row(path, "", HEADER, &self.row())
    }
}
