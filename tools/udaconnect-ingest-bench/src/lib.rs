//! What the ingest benchmarks share: settings from the environment,
//! waiting for a process to be ready, and running the simulator to its
//! summary.

use std::{path::Path, process::Command, time::Duration};

use anyhow::Context as _;
use serde_json::Value;
use testkit::{AppProcess, eventually};

/// The environment variable `name`, or `default`.
pub fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// Waits (at most a minute) until `process` answers `/readyz` with 200:
/// connected to the bus and the database.
pub async fn ready(process: &AppProcess) {
    let url = format!("{}/readyz", process.base_url());
    eventually(
        "the process to be ready",
        Duration::from_secs(60),
        || async {
            let response = reqwest::get(&url).await.ok()?;
            response.status().is_success().then_some(())
        },
    )
    .await;
}

/// Runs `udaconnect simulate args` to its end and returns its summary.
/// The processes measured run an open API, and are measured with batches of
/// any attendees: an organiser's token in the caller's environment is not
/// passed on (with one the simulator would send as phones, one attendee a
/// request, to an API that does not know the token).
pub fn simulate(binary: &Path, args: &[String]) -> anyhow::Result<Value> {
    let output = Command::new(binary)
        .arg("simulate")
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("UDACONNECT_ORGANISER_TOKEN")
        .output()
        .context("run udaconnect simulate")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("SUMMARY "))
        .with_context(|| format!("no summary: {}", String::from_utf8_lossy(&output.stderr)))?;
    Ok(serde_json::from_str(line)?)
}
