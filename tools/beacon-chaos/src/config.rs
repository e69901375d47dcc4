//! The run's size and shape, from env vars or flags.

use std::{path::PathBuf, time::Duration};

/// How much to broadcast and how much to break.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "beacon-chaos", version)]
pub struct ChaosArgs {
    /// Messages to broadcast before stopping.
    #[arg(long, env = "CHAOS_MESSAGES", default_value_t = 100_000)]
    pub messages: u64,

    /// Times the broker is SIGKILLed and restarted on the same store.
    #[arg(long, env = "CHAOS_BROKER_KILLS", default_value_t = 20)]
    pub broker_kills: u32,

    /// Times a receiver is SIGKILLed and restarted.
    #[arg(long, env = "CHAOS_RECEIVER_RESTARTS", default_value_t = 20)]
    pub receiver_restarts: u32,

    /// Times a client is dropped and reconnects with Last-Event-ID.
    #[arg(long, env = "CHAOS_CLIENT_RECONNECTS", default_value_t = 1_000)]
    pub client_reconnects: u32,

    /// Concurrent SSE clients.
    #[arg(long, env = "CHAOS_CLIENTS", default_value_t = 20)]
    pub clients: usize,

    /// Broadcaster processes.
    #[arg(long, env = "CHAOS_BROADCASTERS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=2))]
    pub broadcasters: u32,

    /// Shortest wait between broadcasts.
    #[arg(long, env = "CHAOS_MIN_INTERVAL", default_value = "1ms")]
    pub min_interval: String,

    /// Longest wait between broadcasts.
    #[arg(long, env = "CHAOS_MAX_INTERVAL", default_value = "5ms")]
    pub max_interval: String,

    /// The `beacon` binary [default: next to this one].
    #[arg(long, env = "CHAOS_BEACON")]
    pub beacon: Option<PathBuf>,

    /// Give up if no message arrives for this long.
    #[arg(long, env = "CHAOS_STALL_TIMEOUT", default_value = "90s", value_parser = humantime_duration)]
    pub stall_timeout: Duration,
}

fn humantime_duration(input: &str) -> Result<Duration, String> {
    let seconds = input
        .strip_suffix('s')
        .and_then(|number| number.parse::<u64>().ok())
        .ok_or_else(|| "expected whole seconds such as 90s".to_owned())?;
    Ok(Duration::from_secs(seconds))
}

impl ChaosArgs {
    /// The beacon binary to run.
    pub fn beacon_binary(&self) -> anyhow::Result<PathBuf> {
        if let Some(path) = &self.beacon {
            return Ok(path.clone());
        }
        let here = std::env::current_exe()?;
        let sibling = here.with_file_name("beacon");
        anyhow::ensure!(
            sibling.is_file(),
            "no beacon binary at {}: build it (cargo build -p beacon) or set CHAOS_BEACON",
            sibling.display()
        );
        Ok(sibling)
    }
}
