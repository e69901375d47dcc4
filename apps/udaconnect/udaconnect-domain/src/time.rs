//! Instants as UdaConnect stores them: microseconds since the Unix epoch,
//! UTC.
//!
//! PostgreSQL keeps `timestamp` to the microsecond; keeping the same
//! resolution everywhere (and integers, not floats) means both stores
//! compare times exactly alike, at every boundary of a query window.
//!
//! A time from a client, a location's or a query's, is taken only within
//! the years 1900 to 2100 ([`Timestamp::accepted`]): anything outside is a
//! mistake (a year 0 would be stored as `0001-01-01 BC`), and refusing it
//! keeps every time far from the ends of what the stores can hold.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

use crate::model::{Invalid, Problem};

/// Microseconds in a day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The first instant taken from a client: 1900-01-01T00:00:00Z.
pub const FIRST_ACCEPTED: Timestamp = Timestamp(-2_208_988_800_000_000);
/// The first instant past the last taken from a client:
/// 2101-01-01T00:00:00Z (the last day taken is 2100-12-31).
pub const PAST_ACCEPTED: Timestamp = Timestamp(4_133_980_800_000_000);

/// A UTC instant, to the microsecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `micros` microseconds after 1970-01-01T00:00:00Z.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the epoch.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// `time`, truncated to the microsecond.
    pub fn from_datetime(time: DateTime<Utc>) -> Self {
        Self(time.timestamp_micros())
    }

    /// A naive date-time read as UTC (how the original's `timestamp`
    /// column is meant), truncated to the microsecond.
    pub fn from_naive(time: NaiveDateTime) -> Self {
        Self(time.and_utc().timestamp_micros())
    }

    /// Midnight UTC at the start of `date`.
    pub fn start_of(date: NaiveDate) -> Self {
        Self::from_naive(date.and_time(chrono::NaiveTime::MIN))
    }

    /// The current time.
    pub fn now() -> Self {
        Self::from_datetime(Utc::now())
    }

    /// As a chrono UTC date-time.
    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// As a naive UTC date-time, for a `timestamp` column.
    pub fn to_naive(self) -> NaiveDateTime {
        self.to_datetime().naive_utc()
    }

    /// This instant, if it lies in the years taken from clients, 1900 to
    /// 2100 (UTC); otherwise a problem with `field`, the client's name for
    /// it.
    pub fn accepted(self, field: &'static str) -> Result<Self, Invalid> {
        if (FIRST_ACCEPTED..PAST_ACCEPTED).contains(&self) {
            Ok(self)
        } else {
            Err(Invalid::new(
                field,
                Problem::OutOfRange,
                format!("must be from 1900-01-01 to 2100-12-31 (UTC), got {self}"),
            ))
        }
    }

    /// This instant moved by `micros` (saturating).
    pub const fn plus_micros(self, micros: i64) -> Self {
        Self(self.0.saturating_add(micros))
    }

    /// The original API's rendering (Python's `datetime.isoformat()` of a
    /// naive time): `2020-08-18T10:37:06`, with `.ffffff` only when there
    /// are microseconds.
    pub fn to_compat_string(self) -> String {
        let naive = self.to_naive();
        if self.0.rem_euclid(1_000_000) == 0 {
            naive.format("%Y-%m-%dT%H:%M:%S").to_string()
        } else {
            naive.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
        }
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with a `Z`, with as many fractional digits as needed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            &self
                .to_datetime()
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|time| Self::from_datetime(time.with_timezone(&Utc)))
            .map_err(|err| D::Error::custom(format!("not an RFC 3339 time ({err}): {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compat_rendering_follows_python_isoformat() {
        let time = Timestamp::from_naive(
            NaiveDate::from_ymd_opt(2020, 8, 18)
                .and_then(|date| date.and_hms_opt(10, 37, 6))
                .expect("a valid time"),
        );
        assert_eq!(time.to_compat_string(), "2020-08-18T10:37:06");
        assert_eq!(
            time.plus_micros(120).to_compat_string(),
            "2020-08-18T10:37:06.000120"
        );
        assert_eq!(time.to_string(), "2020-08-18T10:37:06Z");
    }

    #[test]
    fn only_the_years_1900_to_2100_are_accepted() {
        let day = |year, month, day| {
            Timestamp::start_of(NaiveDate::from_ymd_opt(year, month, day).expect("a date"))
        };
        assert_eq!(day(1900, 1, 1), FIRST_ACCEPTED);
        assert_eq!(day(2101, 1, 1), PAST_ACCEPTED);
        assert!(FIRST_ACCEPTED.accepted("time").is_ok());
        assert!(PAST_ACCEPTED.plus_micros(-1).accepted("time").is_ok());
        for refused in [
            FIRST_ACCEPTED.plus_micros(-1),
            PAST_ACCEPTED,
            day(0, 1, 1),
            Timestamp::from_micros(i64::MIN),
            Timestamp::from_micros(i64::MAX),
        ] {
            let err = refused.accepted("start").expect_err("refused");
            assert_eq!((err.field, err.problem), ("start", Problem::OutOfRange));
            assert!(
                err.to_string()
                    .starts_with("start: must be from 1900-01-01"),
                "{err}"
            );
        }
    }

    #[test]
    fn serde_round_trips_rfc3339_and_truncates_to_micros() {
        let parsed: Timestamp =
            serde_json::from_str("\"2020-06-01T12:00:00.1234567+02:00\"").expect("parses");
        assert_eq!(parsed.to_string(), "2020-06-01T10:00:00.123456Z");
        assert_eq!(
            serde_json::to_string(&parsed).expect("serializes"),
            "\"2020-06-01T10:00:00.123456Z\""
        );
        assert!(serde_json::from_str::<Timestamp>("\"2020-06-01\"").is_err());
    }
}
