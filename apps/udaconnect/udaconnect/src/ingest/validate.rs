//! The checks an edge makes on each location before anything is taken:
//! a position on the ellipsoid, a time that parses and is not too far in
//! the future, a sane idempotency key. Whether the person exists is
//! checked after, against the known persons (see [`super::persons`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use udaconnect_domain::{PersonId, Position, Timestamp};

/// The longest idempotency key, in characters.
pub const MAX_KEY_CHARS: usize = 128;

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

/// Checks the fields of `item`; the error names the field and says why.
pub fn check(item: Submitted, now: Timestamp, max_future: Duration) -> Result<Checked, String> {
    let person_id = PersonId::try_from(item.person_id)
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| format!("person_id: must be a positive id, got {}", item.person_id))?;
    let position = Position::new(item.lat, item.lon).map_err(|err| err.to_string())?;
    let time = match item.time {
        Time::Parsed(time) => time,
        Time::Text(text) => DateTime::parse_from_rfc3339(text.trim())
            .map(|time| Timestamp::from_datetime(time.with_timezone(&Utc)))
            .map_err(|_| {
                format!("time: must be an RFC 3339 time such as 2020-06-01T10:00:00Z, got {text:?}")
            })?,
    };
    let latest = now.plus_micros(i64::try_from(max_future.as_micros()).unwrap_or(i64::MAX));
    if time > latest {
        return Err(format!(
            "time: {time} is more than {} in the future",
            humantime::format_duration(max_future)
        ));
    }
    let key = match item.key {
        Some(key) if key.is_empty() => None,
        Some(key) if key.chars().count() > MAX_KEY_CHARS => {
            return Err(format!("key: must be at most {MAX_KEY_CHARS} characters"));
        }
        Some(key) if key.chars().any(char::is_control) => {
            return Err("key: must not contain control characters".to_owned());
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
    fn each_field_is_named_when_wrong() {
        let minute = Duration::from_secs(60);
        let reason = |item| check(item, now(), minute).expect_err("refused");
        assert!(reason(item(91.0, 0.0, "2020-06-01T10:00:00Z")).starts_with("lat"));
        assert!(reason(item(0.0, 181.0, "2020-06-01T10:00:00Z")).starts_with("lon"));
        assert!(reason(item(f64::NAN, 0.0, "2020-06-01T10:00:00Z")).starts_with("lat"));
        assert!(reason(item(0.0, 0.0, "noon")).starts_with("time"));
        assert!(reason(item(0.0, 0.0, "2030-01-01T00:00:00Z")).contains("future"));
        let mut bad_person = item(0.0, 0.0, "2020-06-01T10:00:00Z");
        bad_person.person_id = i64::from(i32::MAX) + 1;
        assert!(reason(bad_person).starts_with("person_id"));
        let mut long_key = item(0.0, 0.0, "2020-06-01T10:00:00Z");
        long_key.key = Some("k".repeat(MAX_KEY_CHARS + 1));
        assert!(reason(long_key).starts_with("key"));
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
}
