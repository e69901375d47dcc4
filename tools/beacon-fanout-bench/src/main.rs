//! `beacon-fanout-bench`: the fan-out benchmark behind `make bench-fanout`.
//!
//! Without arguments it runs one benchmark (settings from `BENCH_*` or
//! flags): a `nats-server`, `BENCH_RECEIVERS` receivers, `BENCH_CLIENTS`
//! SSE or WebSocket clients held by worker processes of this same program,
//! and messages published at `BENCH_RATE` per second. It prints one
//! `RESULT {...}` line last and adds a row to `BENCHMARKS.md`.

mod coordinator;
mod parse;
mod protocol;
mod publisher;
mod report;
mod worker;

use clap::{Parser, Subcommand};

/// How clients connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// `GET /events`, Server-Sent Events.
    Sse,
    /// `GET /ws`, WebSocket.
    Ws,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::Ws => "ws",
        }
    }
}

/// Fan-out benchmark: many clients on real receivers, messages at a fixed rate.
#[derive(Debug, Parser)]
#[command(name = "beacon-fanout-bench", version)]
struct Cli {
    #[command(subcommand)]
    role: Option<Role>,
    #[command(flatten)]
    bench: coordinator::BenchArgs,
}

#[derive(Debug, Subcommand)]
enum Role {
    /// Holds a share of the clients; started by the benchmark itself.
    #[command(hide = true)]
    Worker(worker::WorkerArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Each client is an open file: use all the hard limit allows.
    let limit = platform::limits::raise_open_files_limit()?;
    match cli.role {
        Some(Role::Worker(args)) => {
            anyhow::ensure!(
                (args.clients as u64) < limit.soft.saturating_sub(64),
                "{} clients need more files than the open-files limit of {}",
                args.clients,
                limit.soft
            );
            worker::run(args)
        }
        None => coordinator::run(cli.bench),
    }
}
