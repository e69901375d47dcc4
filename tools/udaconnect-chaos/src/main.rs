//! `udaconnect-chaos`: UdaConnect's ingest under faults, checked end to end.
//!
//! It starts a nats-server (file store), PostgreSQL with PostGIS, an edge
//! and two writers (processes of the `udaconnect` binary), and clients that
//! send batches of locations with idempotency keys as fast as the edge takes
//! them, sending again whatever was not acknowledged. Meanwhile it SIGKILLs
//! a writer and starts it again, SIGKILLs the broker and restarts it on the
//! same store, stops PostgreSQL (fast shutdown) and starts it again, and
//! puts poison straight on the bus. The clients also send locations again,
//! as they were (a retry, to be answered with the id first answered) and
//! with another latitude under their key (a conflict, to be rejected naming
//! that id). At the end every location the edge acknowledged must be in
//! the database exactly once, under the id answered and as first sent,
//! none it rejected, and the dead-letter stream must hold exactly the
//! poison. It prints one `RESULT {...}` line and exits non-zero on any
//! loss, duplicate, wrong id or location, or broken answer.

mod clients;
mod faults;
mod run;
mod verify;

use std::{path::PathBuf, time::Duration};

use clap::Parser;

/// The run's size and shape.
#[derive(Debug, Clone, Parser)]
#[command(name = "udaconnect-chaos", version)]
pub struct ChaosArgs {
    /// Locations the edge must acknowledge before the run stops.
    #[arg(long, env = "CHAOS_LOCATIONS", default_value_t = 1_000_000)]
    pub locations: u64,
    /// Times a writer is SIGKILLed and started again.
    #[arg(long, env = "CHAOS_WRITER_KILLS", default_value_t = 10)]
    pub writer_kills: u32,
    /// Times the broker is SIGKILLed and restarted on the same store.
    #[arg(long, env = "CHAOS_BROKER_KILLS", default_value_t = 5)]
    pub broker_kills: u32,
    /// Times PostgreSQL is stopped (fast shutdown) and started again.
    #[arg(long, env = "CHAOS_DB_RESTARTS", default_value_t = 5)]
    pub db_restarts: u32,
    /// Concurrent clients.
    #[arg(long, env = "CHAOS_CLIENTS", default_value_t = 8)]
    pub clients: usize,
    /// Locations per batch.
    #[arg(long, env = "CHAOS_BATCH", default_value_t = 500)]
    pub batch: usize,
    /// Poison messages put straight on the bus.
    #[arg(long, env = "CHAOS_POISON", default_value_t = 6)]
    pub poison: u32,
    /// The `udaconnect` binary [default: next to this one].
    #[arg(long, env = "CHAOS_UDACONNECT")]
    pub udaconnect: Option<PathBuf>,
    /// Give up if nothing is acknowledged for this many seconds.
    #[arg(long, env = "CHAOS_STALL_SECONDS", default_value_t = 120)]
    pub stall_seconds: u64,
}

impl ChaosArgs {
    fn binary(&self) -> anyhow::Result<PathBuf> {
        if let Some(path) = &self.udaconnect {
            return Ok(path.clone());
        }
        let sibling = std::env::current_exe()?.with_file_name("udaconnect");
        anyhow::ensure!(
            sibling.is_file(),
            "no udaconnect binary at {}: build it (cargo build -p udaconnect) or set CHAOS_UDACONNECT",
            sibling.display()
        );
        Ok(sibling)
    }

    fn stall(&self) -> Duration {
        Duration::from_secs(self.stall_seconds)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = ChaosArgs::parse();
    let report = run::run(args).await?;
    println!("RESULT {}", report.to_json());
    if report.lost > 0 || report.duplicated > 0 || !report.clean() {
        std::process::exit(1);
    }
    Ok(())
}
