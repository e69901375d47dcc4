//! The broadcaster's settings: its env vars and flags, and the checks that
//! need more than one of them.

use std::time::Duration;

use beacon_wire::{MAX_SENDER_BYTES, MAX_TEXT_BYTES};
use platform::config::{ConfigError, parse_duration, parse_text};

use crate::IntervalRange;

/// What the broadcaster reads from env vars or flags.
#[derive(Debug, Clone, clap::Args)]
pub struct BroadcasterArgs {
    /// Shortest wait before a broadcast (e.g. `250ms`, `1s`).
    #[arg(long, env = "BEACON_MIN_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub min_interval: Duration,

    /// Longest wait before a broadcast; waits are uniform between the two.
    #[arg(long, env = "BEACON_MAX_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub max_interval: Duration,

    /// The text broadcast.
    #[arg(long, env = "BEACON_MESSAGE", default_value = "Hello world", value_parser = parse_message)]
    pub message: String,

    /// Name this broadcaster signs its messages with [default: the host name, i.e. the pod name].
    #[arg(long, env = "BEACON_SENDER", value_parser = parse_sender)]
    pub sender: Option<String>,
}

fn parse_message(input: &str) -> Result<String, String> {
    parse_text(input, MAX_TEXT_BYTES)
}

fn parse_sender(input: &str) -> Result<String, String> {
    parse_text(input, MAX_SENDER_BYTES)
}

/// Checked settings, ready to run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where each wait is drawn from.
    pub interval: IntervalRange,
    /// The text broadcast.
    pub message: String,
    /// The name messages are signed with.
    pub sender: String,
}

impl BroadcasterArgs {
    /// Checks the settings together and fills in the host name.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let interval =
            IntervalRange::new(self.min_interval, self.max_interval).ok_or_else(|| {
                ConfigError::new(
                    "BEACON_MIN_INTERVAL",
                    "--min-interval",
                    format!(
                        "{} is longer than BEACON_MAX_INTERVAL ({})",
                        humanize(self.min_interval),
                        humanize(self.max_interval)
                    ),
                )
            })?;
        let sender = match &self.sender {
            Some(sender) => sender.clone(),
            None => host_name(),
        };
        Ok(Settings {
            interval,
            message: self.message.clone(),
            sender,
        })
    }
}

/// `2000ms` → `2s`, `1500ms` → `1500ms`: close to what an operator typed.
fn humanize(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// The host name (a pod's name on Kubernetes), or `beacon` if it has none.
fn host_name() -> String {
    hostname::get()
        .ok()
        .and_then(|name| name.into_string().ok())
        .map(|name| name.chars().take(MAX_SENDER_BYTES).collect::<String>())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "beacon".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(min_ms: u64, max_ms: u64) -> BroadcasterArgs {
        BroadcasterArgs {
            min_interval: Duration::from_millis(min_ms),
            max_interval: Duration::from_millis(max_ms),
            message: "Hello world".to_owned(),
            sender: None,
        }
    }

    #[test]
    fn min_above_max_names_both_variables() {
        let err = args(5_000, 2_000).settings().expect_err("refused");
        assert_eq!(err.var, "BEACON_MIN_INTERVAL");
        assert!(err.problem.contains("5s"), "{err}");
        assert!(err.problem.contains("BEACON_MAX_INTERVAL (2s)"), "{err}");
    }

    #[test]
    fn the_sender_defaults_to_the_host_name() {
        let settings = args(1, 2).settings().expect("valid");
        assert!(!settings.sender.is_empty());
        assert_eq!(settings.interval.min(), Duration::from_millis(1));
    }

    #[test]
    fn messages_and_senders_are_bounded() {
        assert!(parse_message("  ").is_err());
        assert!(parse_message(&"x".repeat(MAX_TEXT_BYTES + 1)).is_err());
        assert_eq!(parse_sender(" pod-1 "), Ok("pod-1".to_owned()));
    }
}
