//! Parsing what clients send in paths and query strings, each value
//! checked and each problem answered with a 400 that names the parameter.

use std::{fmt::Display, str::FromStr};

use chrono::{DateTime, NaiveDate, Utc};
use platform::http::ApiError;
use udaconnect_domain::{Distance, Invalid, PersonOrder, Timestamp, Within, query::MAX_PAGE};

/// An id from a path: a whole number.
pub fn id<T: FromStr>(name: &str, value: &str) -> Result<T, ApiError> {
    value
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{name} must be a whole number, got {value:?}")))
}

/// A required query parameter.
pub fn required<'a>(name: &str, value: &'a Option<String>) -> Result<&'a str, ApiError> {
    value
        .as_deref()
        .ok_or_else(|| ApiError::bad_request(format!("{name} is required")))
}

/// A calendar day, `YYYY-MM-DD`, from 1900 to 2100.
pub fn date(name: &'static str, value: &str) -> Result<NaiveDate, ApiError> {
    let day = NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d").map_err(|_| {
        ApiError::bad_request(format!(
            "{name} must be a date such as 2020-01-01, got {value:?}"
        ))
    })?;
    Timestamp::start_of(day).accepted(name).map_err(invalid)?;
    Ok(day)
}

/// An instant: RFC 3339 (`2020-06-01T10:00:00Z`, any offset) or a date,
/// meaning midnight UTC at its start; from 1900 to 2100.
pub fn instant(name: &'static str, value: &str) -> Result<Timestamp, ApiError> {
    let trimmed = value.trim();
    let time = if let Ok(time) = DateTime::parse_from_rfc3339(trimmed) {
        Timestamp::from_datetime(time.with_timezone(&Utc))
    } else if let Ok(day) = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d") {
        Timestamp::start_of(day)
    } else {
        return Err(ApiError::bad_request(format!(
            "{name} must be an RFC 3339 time such as 2020-06-01T10:00:00Z or a date such as 2020-06-01, got {value:?}"
        )));
    };
    time.accepted(name).map_err(invalid)
}

/// A distance in metres, `5` by default.
pub fn distance(name: &'static str, value: Option<&str>) -> Result<Distance, ApiError> {
    let metres = match value {
        None => 5.0,
        Some(text) => text.trim().parse::<f64>().map_err(|_| {
            ApiError::bad_request(format!("{name} must be a number of metres, got {text:?}"))
        })?,
    };
    Distance::new(name, metres).map_err(invalid)
}

/// A duration such as `10m`, `90s` or `1h 30m`.
pub fn within(name: &'static str, value: &str) -> Result<Within, ApiError> {
    let duration = humantime::parse_duration(value.trim()).map_err(|_| {
        ApiError::bad_request(format!(
            "{name} must be a duration such as 10m, 90s or 1h, got {value:?}"
        ))
    })?;
    let micros = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
    Within::from_micros(name, micros).map_err(invalid)
}

/// A page size: `default` when absent, 1 ..= [`MAX_PAGE`].
pub fn limit(value: Option<&str>, default: usize) -> Result<usize, ApiError> {
    let Some(text) = value else {
        return Ok(default);
    };
    match text.trim().parse::<usize>() {
        Ok(limit @ 1..=MAX_PAGE) => Ok(limit),
        _ => Err(ApiError::bad_request(format!(
            "limit must be a whole number from 1 to {MAX_PAGE}, got {text:?}"
        ))),
    }
}

/// The order of a page of persons: `id` (the default) or `newest`.
pub fn person_order(value: Option<&str>) -> Result<PersonOrder, ApiError> {
    match value.map(str::trim) {
        None | Some("id") => Ok(PersonOrder::Id),
        Some("newest") => Ok(PersonOrder::Newest),
        Some(other) => Err(ApiError::bad_request(format!(
            "order must be id or newest, got {other:?}"
        ))),
    }
}

/// The longest text a person search looks for, in characters: as long as
/// a name or a company may be.
pub const MAX_SEARCH_CHARS: usize = 200;

/// The text a person search looks for: trimmed, `None` if blank, refused
/// past [`MAX_SEARCH_CHARS`].
pub fn search_text(value: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(text) = value.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > MAX_SEARCH_CHARS {
        return Err(ApiError::bad_request(format!(
            "q must be at most {MAX_SEARCH_CHARS} characters"
        )));
    }
    Ok(Some(text.to_owned()))
}

/// A record that did not validate, as a 400.
pub fn invalid(err: Invalid) -> ApiError {
    ApiError::bad_request(err.to_string())
}

/// `start` must come before `end`.
pub fn ordered<T: PartialOrd + Display>(
    (start_name, start): (&str, T),
    (end_name, end): (&str, T),
) -> Result<(), ApiError> {
    if start > end {
        return Err(ApiError::bad_request(format!(
            "{start_name} ({start}) must not be after {end_name} ({end})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_parameter() {
        for err in [
            id::<i32>("person_id", "abc").expect_err("not a number"),
            date("start_date", "2020-13-01").expect_err("no month 13"),
            instant("start", "yesterday").expect_err("not a time"),
            distance("distance", Some("-1")).expect_err("negative"),
            distance("distance", Some("far")).expect_err("not a number"),
            distance("distance", Some("1e9")).expect_err("absurd"),
            within("within", "soon").expect_err("not a duration"),
            within("within", "30d").expect_err("too long"),
            limit(Some("0"), 10).expect_err("too small"),
            ordered(("start", 2), ("end", 1)).expect_err("backwards"),
        ] {
            assert_eq!(err.status, 400);
            let named = [
                "person_id",
                "start_date",
                "start",
                "distance",
                "within",
                "limit",
            ]
            .iter()
            .any(|name| err.message.contains(name));
            assert!(named, "{}", err.message);
        }
    }

    #[test]
    fn times_and_dates() {
        assert_eq!(
            instant("start", "2020-06-01").expect("a date").to_string(),
            "2020-06-01T00:00:00Z"
        );
        assert_eq!(
            instant("start", "2020-06-01T12:00:00+02:00")
                .expect("a time")
                .to_string(),
            "2020-06-01T10:00:00Z"
        );
        assert_eq!(distance("distance", None).expect("default").metres(), 5.0);
        assert_eq!(
            within("within", "10m").expect("valid").micros(),
            600_000_000
        );
        assert_eq!(limit(None, 25).expect("default"), 25);
    }

    #[test]
    fn times_and_dates_outside_1900_to_2100_are_refused_naming_the_parameter() {
        for (name, value) in [
            ("start", "0000-01-01"),
            ("start", "1899-12-31T23:59:59.999999Z"),
            ("end", "2101-01-01T00:00:00Z"),
            ("end", "2100-12-31T23:00:00-01:00"),
        ] {
            let err = instant(name, value).expect_err("refused");
            assert_eq!(err.status, 400);
            assert!(
                err.message
                    .starts_with(&format!("{name}: must be from 1900-01-01")),
                "{}",
                err.message
            );
        }
        for value in ["1899-12-31", "2101-01-01", "0000-06-01"] {
            let err = date("start_date", value).expect_err("refused");
            assert!(err.message.starts_with("start_date: "), "{}", err.message);
        }
        assert!(instant("start", "1900-01-01T00:00:00Z").is_ok());
        assert!(instant("end", "2100-12-31T23:59:59.999999Z").is_ok());
        assert!(date("end_date", "2100-12-31").is_ok());
    }
}
