//! `beacon-chaos`: runs the hello pipeline under faults and checks that
//! nothing was lost or duplicated, end to end.
//!
//! It starts a nats-server (file store), broadcasters at a fast interval, two
//! receivers and SSE clients, then repeatedly SIGKILLs and restarts the
//! broker and the receivers and drops clients (which resume with
//! `Last-Event-ID` on either receiver). At the end it checks the stream
//! against what the broadcasters generated, and every client against the
//! stream, and prints one `RESULT {...}` line; it exits non-zero if anything
//! was lost or duplicated.

mod clients;
mod config;
mod faults;
mod run;
mod verify;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = config::ChaosArgs::parse();
    let report = run::run(config).await?;
    println!("RESULT {}", report.to_json());
    if report.lost > 0 || report.duplicated > 0 {
        std::process::exit(1);
    }
    Ok(())
}
