//! UdaConnect's streams on the bus, each declared once with its settings'
//! names: `LOCATIONS` carries accepted locations from the edges to the
//! writers and refuses new ones when full (the edges then answer "retry
//! later"); `LOCATIONS_DEAD` keeps what a writer could never store, with
//! why. The dead-letter subject is not captured by `LOCATIONS`: each
//! stream captures exactly its one subject.

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

/// Refuses two streams that would collide: the same name, or the same
/// subject (a publish would land in either).
pub fn check_distinct(
    locations: &platform::bus::StreamSettings,
    dead: &platform::bus::StreamSettings,
) -> Result<(), ConfigError> {
    if locations.name == dead.name {
        return Err(ConfigError::new(
            "UDACONNECT_DEAD_STREAM",
            "--dead-stream",
            format!(
                "must differ from UDACONNECT_LOCATIONS_STREAM ({})",
                locations.name
            ),
        ));
    }
    if locations.subject == dead.subject {
        return Err(ConfigError::new(
            "UDACONNECT_DEAD_SUBJECT",
            "--dead-subject",
            format!(
                "must differ from UDACONNECT_LOCATIONS_SUBJECT ({})",
                locations.subject
            ),
        ));
    }
    Ok(())
}
