//! What the coordinator and its worker processes say to each other: one
//! JSON object per line, commands on the worker's stdin, reports on its
//! stdout. A worker whose stdin closes exits, so none outlives a run.

use serde::{Deserialize, Serialize};

/// Coordinator to worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Answer [`Report::Reached`] once every open client has seen `seq`, or
    /// after `timeout_ms`.
    Await { seq: u64, timeout_ms: u64 },
    /// Count and time messages from `seq` on; earlier ones only warm up.
    MeasureFrom { seq: u64 },
    /// Answer [`Report::Final`] for the messages `first..=last`.
    Report { first: u64, last: u64 },
}

/// Worker to coordinator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "report", rename_all = "snake_case")]
pub enum Report {
    /// Every client has connected or failed to.
    Connected {
        ok: u64,
        failed: u64,
        first_error: Option<String>,
    },
    /// How many open clients had seen `seq` when the worker answered.
    Reached { seq: u64, reached: u64, open: u64 },
    /// The measurements.
    Final(Totals),
}

/// A worker's measurements of the measured messages.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Totals {
    /// Latency histogram: (microseconds, count) pairs.
    pub latency_us: Vec<(u64, u64)>,
    /// Messages delivered.
    pub deliveries: u64,
    /// Clients that got every message `first..=last` once, in order.
    pub complete: u64,
    /// Clients still connected.
    pub open: u64,
    /// Clients whose stream broke, and the first reason.
    pub broken: u64,
    pub first_break: Option<String>,
}
