//! The receiver's settings.

use platform::config::parse_positive;

/// What the receiver reads from env vars or flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ReceiverArgs {
    /// Recent messages kept in memory, filled from the stream at start, to serve
    /// history and resuming clients without asking the broker.
    #[arg(long, env = "BEACON_WINDOW", default_value = "10000", value_parser = parse_window)]
    pub window: usize,

    /// Most SSE and WebSocket clients served at once; beyond, /events and /ws
    /// answer 503 with Retry-After. Default: the open-files limit, less 5 % and
    /// 64 more for the broker connection, probes and page loads.
    #[arg(long, env = "BEACON_MAX_CLIENTS", value_parser = parse_max_clients)]
    pub max_clients: Option<usize>,
}

impl ReceiverArgs {
    /// The client cap: the one set, or the one the open-files limit allows.
    pub fn client_cap(&self) -> usize {
        self.max_clients.unwrap_or_else(|| {
            let limit = platform::limits::open_files_limit()
                .map(|limit| limit.soft)
                .unwrap_or(1024);
            cap_for_open_files(limit)
        })
    }
}

/// Clients that fit in `open_files` descriptors with room left for
/// everything else a receiver opens: the broker connection, the listener,
/// probes, metrics scrapes, page loads and history requests.
pub fn cap_for_open_files(open_files: u64) -> usize {
    let reserved = 64 + open_files / 20;
    usize::try_from(open_files.saturating_sub(reserved).max(1)).unwrap_or(usize::MAX)
}

fn parse_window(input: &str) -> Result<usize, String> {
    let window = parse_positive(input)?;
    match usize::try_from(window) {
        Ok(window) if window <= 1_000_000 => Ok(window),
        _ => Err("must be at most 1000000".to_owned()),
    }
}

fn parse_max_clients(input: &str) -> Result<usize, String> {
    usize::try_from(parse_positive(input)?).map_err(|_| "is too large".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_leaves_room_below_the_open_files_limit() {
        assert_eq!(cap_for_open_files(20_000), 18_936);
        assert_eq!(cap_for_open_files(1024), 909);
        assert_eq!(cap_for_open_files(10), 1);
    }
}
