//! The wire formats of the location apps people already carry, OwnTracks
//! ([`owntracks`]) and the OsmAnd protocol as Traccar Client and others
//! send it ([`osmand`]), read into what the edge takes: a position, its
//! time, its accuracy and an idempotency key ([`Fix`]), or the reason a
//! message holds nothing to store ([`Report::Nothing`]).
//!
//! These parsers only read: they neither route nor authenticate. Each
//! hands back the device's token (the string that names the device to the
//! edge) untouched, as a [`DeviceToken`] that never shows in a `Debug`
//! rendering and is never repeated in an error. Positions and times are
//! not checked here beyond their format: a [`Fix`] becomes a
//! [`Submitted`] item of a [`super::items::Batch`] ([`Fix::submitted`]),
//! and `validate.rs` checks it there like any other location (the
//! coordinates' range, the years 1900 to 2100, the time not too far
//! ahead, the key's length).
//!
//! ## Idempotency keys
//!
//! A phone's key is made of the device and the fix's time, so that an app
//! sending the same message again (OwnTracks re-posts what it could not
//! deliver, Traccar Client retries) has it stored once. The parser knows
//! the time alone and gives the protocol's part of the key (`owntracks:`
//! and the message's `tst`, `osmand:` and the fix's time in microseconds);
//! [`Fix::submitted`] puts the device in front once it is known, as
//! `device/<device id>/<part>`, with the device's id as the store knows it
//! (a number, never its token: keys are stored and shown). One device
//! sending two positions for the same time has the second rejected as a
//! `conflict`: a phone is in one place at a time.

pub mod osmand;
pub mod owntracks;

use std::fmt;

use serde_json::value::RawValue;
use udaconnect_domain::Timestamp;

use super::validate::{Submitted, Time};

/// Microseconds in a second.
const MICROS_PER_SECOND: i64 = 1_000_000;

/// The string that names a device to the edge, as the app sent it: the
/// OwnTracks HTTP Basic password, the OsmAnd `id`, `deviceid` or
/// `device_id`. It has no `Display`, and its `Debug` hides it, so that it
/// is not logged by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceToken(String);

impl DeviceToken {
    /// The token, exactly as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DeviceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceToken(…)")
    }
}

/// A position reported by a phone, ready to become a location.
#[derive(Debug, Clone, PartialEq)]
pub struct Fix {
    /// Latitude, degrees (its range is checked by `validate.rs`).
    pub latitude: f64,
    /// Longitude, degrees (its range is checked by `validate.rs`).
    pub longitude: f64,
    /// When the position was taken (its years are checked by
    /// `validate.rs`).
    pub at: Timestamp,
    /// The app's estimate of the position's error, meters, when it gave
    /// one that is a number of meters (not negative).
    pub accuracy_m: Option<f64>,
    /// The protocol's part of the idempotency key: see the module's
    /// documentation.
    pub key: String,
}

impl Fix {
    /// The item of a batch for `person_id`, reported by the device whose id
    /// in the store is `device_id`; its key is `device/<device_id>/<key>`.
    pub fn submitted(self, person_id: i64, device_id: i64) -> Submitted {
        Submitted {
            person_id,
            lat: self.latitude,
            lon: self.longitude,
            time: Time::Parsed(self.at),
            key: Some(format!("device/{device_id}/{}", self.key)),
        }
    }
}

/// What one message of a phone holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// A position to store.
    Location(Fix),
    /// Nothing to store, and why (`"transition"`, `"empty body"`,
    /// `"valid=false"`, `"no coordinates"`, …): the request is still
    /// answered as taken, so that the app does not send it again.
    Nothing(&'static str),
}

/// `seconds` since the epoch; a count too large for a [`Timestamp`] is
/// held at its largest, which the years check refuses.
fn from_epoch_seconds(seconds: i64) -> Timestamp {
    Timestamp::from_micros(seconds.saturating_mul(MICROS_PER_SECOND))
}

/// An accuracy as an app gave it, if it is a number of meters: apps send
/// a negative one (or none) when they have no estimate.
fn accuracy(meters: f64) -> Option<f64> {
    (meters.is_finite() && meters >= 0.0).then_some(meters)
}

/// What kind of JSON value `raw` is, for an error that names it without
/// repeating it (it may be a position or a token).
fn json_kind(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use udaconnect_domain::Problem;

    use super::*;
    use crate::ingest::validate;

    fn fix(at: Timestamp) -> Fix {
        Fix {
            latitude: 48.85833,
            longitude: 2.29513,
            at,
            accuracy_m: Some(5.0),
            key: "owntracks:1497476456".to_owned(),
        }
    }

    #[test]
    fn a_fix_becomes_an_item_keyed_by_its_device_and_passes_the_checks() {
        let at = from_epoch_seconds(1_497_476_456);
        let item = fix(at).submitted(7, 42);
        assert_eq!(
            item,
            Submitted {
                person_id: 7,
                lat: 48.85833,
                lon: 2.29513,
                time: Time::Parsed(at),
                key: Some("device/42/owntracks:1497476456".to_owned()),
            }
        );
        let now = from_epoch_seconds(1_600_000_000);
        let checked = validate::check(item, now, Duration::from_secs(60)).expect("valid");
        assert_eq!(checked.time.to_string(), "2017-06-14T21:40:56Z");
        assert_eq!(
            checked.key.as_deref(),
            Some("device/42/owntracks:1497476456")
        );
    }

    #[test]
    fn a_fix_outside_the_years_taken_is_refused_by_the_checks() {
        let now = from_epoch_seconds(1_600_000_000);
        let far = Duration::from_secs(u64::MAX / 2);
        for at in [
            from_epoch_seconds(-2_208_988_801),
            from_epoch_seconds(4_133_980_800),
            from_epoch_seconds(i64::MAX),
            from_epoch_seconds(i64::MIN),
        ] {
            let err = validate::check(fix(at).submitted(7, 42), now, far).expect_err("refused");
            assert_eq!((err.field, err.problem), ("time", Problem::OutOfRange));
        }
    }

    #[test]
    fn the_token_never_shows_in_debug() {
        let token = DeviceToken("s3cr3t-token".to_owned());
        assert_eq!(token.as_str(), "s3cr3t-token");
        assert!(!format!("{token:?}").contains("s3cr3t"));
    }

    #[test]
    fn only_a_number_of_meters_is_an_accuracy() {
        assert_eq!(accuracy(5.0), Some(5.0));
        assert_eq!(accuracy(0.0), Some(0.0));
        assert_eq!(accuracy(-1.0), None);
        assert_eq!(accuracy(f64::NAN), None);
        assert_eq!(accuracy(f64::INFINITY), None);
    }
}
