//! The checks an edge makes on each location before anything is taken:
//! a position on the ellipsoid, a time that parses, lies in the years
//! taken from clients and is not too far in the future, a sane idempotency
//! key. Whether the person exists is checked after, against the known
//! persons (see [`super::persons`]). Each problem is an [`Invalid`] naming
//! the field as the v2 API and the gRPC batches call it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use udaconnect_domain::{Invalid, PersonId, Position, Problem, Timestamp};

/// The longest idempotency key, in characters.
pub const MAX_KEY_CHARS: usize = 128;
/// The most characters of a client's value repeated in an error.
const SHOWN_CHARS: usize = 40;

/// One location as a client sent it, fields not yet checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    /// Whose.
    pub person_id: i64,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// When: RFC 3339.
    pub time: Time,
    /// The client's idempotency key, if any (empty is none).
    pub key: Option<String>,
}

/// A location's time as it arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum Time {
    /// RFC 3339 text.
    Text(String),
    /// Already parsed (the original's API parses its own formats).
    Parsed(Timestamp),
}

/// A location that passed the field checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// Whose.
    pub person_id: PersonId,
    /// Where.
    pub position: Position,
    /// When.
    pub time: Timestamp,
    /// The client's idempotency key.
    pub key: Option<String>,
}

/// Checks the fields of `item`.
pub fn check(item: Submitted, now: Timestamp, max_future: Duration) -> Result<Checked, Invalid> {
    let person_id = PersonId::try_from(item.person_id)
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            Invalid::new(
                "person_id",
                Problem::OutOfRange,
                format!("must be a positive id, got {}", item.person_id),
            )
        })?;
    let position = Position::new(item.lat, item.lon)?;
    let time = match item.time {
        Time::Parsed(time) => time,
        Time::Text(text) => DateTime::parse_from_rfc3339(text.trim())
            .map(|time| Timestamp::from_datetime(time.with_timezone(&Utc)))
            .map_err(|_| {
                Invalid::new(
                    "time",
                    Problem::Malformed,
                    format!(
                        "must be an RFC 3339 time such as 2020-06-01T10:00:00Z, got {}",
                        shown(&text)
                    ),
                )
            })?,
    }
    .accepted("time")?;
    let latest = now.plus_micros(i64::try_from(max_future.as_micros()).unwrap_or(i64::MAX));
    if time > latest {
        return Err(Invalid::new(
            "time",
            Problem::InFuture,
            format!(
                "{time} is more than {} in the future",
                humantime::format_duration(max_future)
            ),
        ));
    }
    let key = match item.key {
        Some(key) if key.is_empty() => None,
        Some(key) if key.chars().count() > MAX_KEY_CHARS => {
            return Err(Invalid::new(
                "key",
                Problem::TooLong,
                format!("must be at most {MAX_KEY_CHARS} characters"),
            ));
        }
        Some(key) if key.chars().any(char::is_control) => {
            return Err(Invalid::new(
                "key",
                Problem::BadCharacters,
                "must not contain control characters",
            ));
        }
        other => other,
    };
    Ok(Checked {
        person_id,
        position,
        time,
        key,
    })
}

/// A client's value as an error repeats it: quoted, and cut short, so
/// that an error never grows with what the client sent.
pub fn shown(value: &str) -> String {
    match value.char_indices().nth(SHOWN_CHARS) {
        None => format!("{value:?}"),
        Some((end, _)) => format!("{:?}…", &value[..end]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(lat: f64, lon: f64, time: &str) -> Submitted {
        Submitted {
            person_id: 1,
            lat,
            lon,
            time: Time::Text(time.to_owned()),
            key: None,
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_micros(1_600_000_000_000_000)
    }

    #[test]
    fn each_field_is_named_with_its_problem() {
        let minute = Duration::from_secs(60);
        let problem = |item| {
            let err = check(item, now(), minute).expect_err("refused");
            (err.field, err.problem)
        };
        let time = "2020-06-01T10:00:00Z";
        assert_eq!(problem(item(91.0, 0.0, time)), ("lat", Problem::OutOfRange));
        assert_eq!(
            problem(item(0.0, 181.0, time)),
            ("lon", Problem::OutOfRange)
        );
        assert_eq!(
            problem(item(f64::NAN, 0.0, time)),
            ("lat", Problem::OutOfRange)
        );
        assert_eq!(
            problem(item(0.0, 0.0, "noon")),
            ("time", Problem::Malformed)
        );
        assert_eq!(
            problem(item(0.0, 0.0, "2030-01-01T00:00:00Z")),
            ("time", Problem::InFuture)
        );
        assert_eq!(
            problem(item(0.0, 0.0, "0000-01-01T00:00:00Z")),
            ("time", Problem::OutOfRange)
        );
        assert_eq!(
            problem(item(0.0, 0.0, "1899-12-31T23:59:59Z")),
            ("time", Problem::OutOfRange)
        );
        let mut bad_person = item(0.0, 0.0, time);
        bad_person.person_id = i64::from(i32::MAX) + 1;
        assert_eq!(problem(bad_person), ("person_id", Problem::OutOfRange));
        let mut long_key = item(0.0, 0.0, time);
        long_key.key = Some("k".repeat(MAX_KEY_CHARS + 1));
        assert_eq!(problem(long_key), ("key", Problem::TooLong));
        let mut control = item(0.0, 0.0, time);
        control.key = Some("a\u{0}b".to_owned());
        assert_eq!(problem(control), ("key", Problem::BadCharacters));
    }

    #[test]
    fn a_year_past_2100_is_out_of_range_however_far_ahead_times_may_be() {
        let err = check(
            item(0.0, 0.0, "2101-01-01T00:00:00Z"),
            now(),
            Duration::from_secs(u64::MAX / 2),
        )
        .expect_err("refused");
        assert_eq!((err.field, err.problem), ("time", Problem::OutOfRange));
    }

    #[test]
    fn a_good_item_is_taken_and_an_empty_key_is_none() {
        let mut good = item(37.55, -122.29, "2020-06-01T12:00:00+02:00");
        good.key = Some(String::new());
        let checked = check(good, now(), Duration::from_secs(60)).expect("valid");
        assert_eq!(checked.time.to_string(), "2020-06-01T10:00:00Z");
        assert_eq!(checked.key, None);
        // A little in the future is a clock that drifts.
        let soon = now().plus_micros(30_000_000).to_string();
        assert!(check(item(0.0, 0.0, &soon), now(), Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn a_long_value_is_shown_cut_short() {
        let err = check(
            item(0.0, 0.0, &"é".repeat(1_000_000)),
            now(),
            Duration::from_secs(60),
        )
        .expect_err("not a time");
        assert!(err.message.len() < 200, "{}", err.message);
        assert!(err.message.ends_with('…'), "{}", err.message);
        assert_eq!(shown("noon"), "\"noon\"");
    }
}
