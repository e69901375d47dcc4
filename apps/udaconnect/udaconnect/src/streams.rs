//! UdaConnect's streams on the bus, each declared once with its settings'
//! names: `LOCATIONS` carries accepted locations from the edges to the
//! writers and refuses new ones when full (the edges then answer "retry
//! later"); `LOCATIONS_DEAD` keeps what a writer could never store, with
//! why; `LOCATIONS_STORED` carries what the writers stored, once
//! committed, to the meetings target; `MEETINGS` carries each meeting as
//! it starts and grows, for whoever follows them. Each stream captures
//! exactly its one subject.

use platform::{
    bus::{Retention, StreamSpec},
    config::ConfigError,
};

/// The work queue of accepted locations.
#[derive(Debug, Clone)]
pub struct Locations;

impl StreamSpec for Locations {
    const ENV_PREFIX: &'static str = "UDACONNECT_LOCATIONS";
    const FLAG_PREFIX: &'static str = "locations-";
    const HOLDS: &'static str = "accepted locations";
    const NAME: &'static str = "LOCATIONS";
    const SUBJECT: &'static str = "udaconnect.locations";
    const MAX_AGE: &'static str = "7d";
    const MAX_MESSAGES: &'static str = "100000";
    const RETENTION: Retention = Retention::WorkQueue;
}

/// The dead letters: what could never be written.
#[derive(Debug, Clone)]
pub struct DeadLetters;

impl StreamSpec for DeadLetters {
    const ENV_PREFIX: &'static str = "UDACONNECT_DEAD";
    const FLAG_PREFIX: &'static str = "dead-";
    const HOLDS: &'static str = "locations that could never be written";
    const NAME: &'static str = "LOCATIONS_DEAD";
    const SUBJECT: &'static str = "udaconnect.locations.dead";
    const MAX_AGE: &'static str = "30d";
    const MAX_MESSAGES: &'static str = "1000000";
    const RETENTION: Retention = Retention::Log;
}

/// The locations stored, as the writers committed them: a history the
/// meetings target follows. When full it drops its oldest, never holding
/// up a writer; the meetings target's lag says how far behind it is.
#[derive(Debug, Clone)]
pub struct Stored;

impl StreamSpec for Stored {
    const ENV_PREFIX: &'static str = "UDACONNECT_STORED";
    const FLAG_PREFIX: &'static str = "stored-";
    const HOLDS: &'static str = "stored locations, for the meetings";
    const NAME: &'static str = "LOCATIONS_STORED";
    const SUBJECT: &'static str = "udaconnect.stored";
    const MAX_AGE: &'static str = "1d";
    const MAX_MESSAGES: &'static str = "1000000";
    const RETENTION: Retention = Retention::Log;
}

/// The meetings as they start and grow: a history anyone may follow.
#[derive(Debug, Clone)]
pub struct MeetingEvents;

impl StreamSpec for MeetingEvents {
    const ENV_PREFIX: &'static str = "UDACONNECT_EVENTS";
    const FLAG_PREFIX: &'static str = "events-";
    const HOLDS: &'static str = "meetings as they start and grow";
    const NAME: &'static str = "MEETINGS";
    const SUBJECT: &'static str = "udaconnect.meetings";
    const MAX_AGE: &'static str = "7d";
    const MAX_MESSAGES: &'static str = "1000000";
    const RETENTION: Retention = Retention::Log;
}

/// Refuses streams that would collide: two of the same name, or of the
/// same subject (a publish would land in either).
pub fn check_distinct(
    streams: &[(&str, &platform::bus::StreamSettings)],
) -> Result<(), ConfigError> {
    for (i, (prefix, stream)) in streams.iter().enumerate() {
        for (other_prefix, other) in &streams[..i] {
            if stream.name == other.name {
                return Err(ConfigError::new(
                    &format!("{prefix}_STREAM"),
                    &format!("--{}-stream", flag(prefix)),
                    format!("must differ from {other_prefix}_STREAM ({})", other.name),
                ));
            }
            if stream.subject == other.subject {
                return Err(ConfigError::new(
                    &format!("{prefix}_SUBJECT"),
                    &format!("--{}-subject", flag(prefix)),
                    format!(
                        "must differ from {other_prefix}_SUBJECT ({})",
                        other.subject
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The flag prefix of an env prefix: `UDACONNECT_DEAD` → `dead`.
fn flag(prefix: &str) -> String {
    prefix
        .trim_start_matches("UDACONNECT_")
        .to_ascii_lowercase()
        .replace('_', "-")
}
