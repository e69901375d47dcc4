//! The receiver's settings.

use beacon_platform::config::parse_positive;

/// What the receiver reads from env vars or flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ReceiverArgs {
    /// Recent messages kept in memory, filled from the stream at start, to serve
    /// history and resuming clients without asking the broker.
    #[arg(long, env = "BEACON_WINDOW", default_value = "10000", value_parser = parse_window)]
    pub window: usize,
}

fn parse_window(input: &str) -> Result<usize, String> {
    let window = parse_positive(input)?;
    match usize::try_from(window) {
        Ok(window) if window <= 1_000_000 => Ok(window),
        _ => Err("must be at most 1000000".to_owned()),
    }
}
