//! The records: persons, and the locations their phones report.
//!
//! A location is kept the way the original stores it, as the `x`/`y` of a
//! point ([`Coordinate`]), and also as the position on the ellipsoid that
//! distances are measured on ([`Position`]). For every location written
//! by UdaConnect the two agree (`x` is the longitude, `y` the latitude).
//! Rows inherited from the original may not: some have their axes swapped,
//! and PostGIS folds those into range when it measures them; their
//! [`Position`] is what PostGIS measures, so both stores agree on it.

use serde::Serialize;

use crate::time::Timestamp;

/// A person's id (the original's `SERIAL`).
pub type PersonId = i32;
/// A location's id.
pub type LocationId = i64;

/// Longest name or company accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// Input that does not make a valid record: which field, what kind of
/// problem, and a sentence for the client. Each API answers it in its own
/// form (a JSON error, a gRPC `BadRequest`, a metric label) from these
/// parts, never by reading the sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// The field's name, as UdaConnect's v2 API calls it; an API whose
    /// clients name it otherwise renames it ([`Invalid::named`]).
    pub field: &'static str,
    /// What kind of problem.
    pub problem: Problem,
    /// What is wrong, for the client (without the field's name).
    pub message: String,
}

impl Invalid {
    /// A `problem` with `field`.
    pub fn new(field: &'static str, problem: Problem, message: impl Into<String>) -> Self {
        Self {
            field,
            problem,
            message: message.into(),
        }
    }

    /// The same, the field named as `name` calls it.
    #[must_use]
    pub fn named(self, name: impl Fn(&'static str) -> &'static str) -> Self {
        Self {
            field: name(self.field),
            ..self
        }
    }
}

/// The kinds of problem a value can have: what a program reading an error
/// can act on, whatever the words of its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Problem {
    /// Absent, and needed.
    Missing,
    /// Not the kind of value expected: not a number, not a time, not an
    /// object.
    Malformed,
    /// Of the right kind, outside the range accepted.
    OutOfRange,
    /// A time further ahead than accepted.
    InFuture,
    /// Longer than accepted.
    TooLong,
    /// Blank.
    Empty,
    /// Holds characters that are not accepted (control characters).
    BadCharacters,
    /// A key the record does not have.
    UnknownField,
    /// Names a record that does not exist.
    Unknown,
    /// Names a record that could not be looked up now: retry later.
    Unchecked,
    /// Stands for another record already: an idempotency key sent before
    /// with another location.
    Conflict,
}

impl Problem {
    /// Its name in JSON errors and metric labels: `out_of_range`.
    pub const fn label(self) -> &'static str {
        match self {
            Problem::Missing => "missing",
            Problem::Malformed => "malformed",
            Problem::OutOfRange => "out_of_range",
            Problem::InFuture => "in_future",
            Problem::TooLong => "too_long",
            Problem::Empty => "empty",
            Problem::BadCharacters => "bad_characters",
            Problem::UnknownField => "unknown_field",
            Problem::Unknown => "unknown",
            Problem::Unchecked => "unchecked",
            Problem::Conflict => "conflict",
        }
    }

    /// Its name as a gRPC `FieldViolation.reason`: `OUT_OF_RANGE`.
    pub const fn code(self) -> &'static str {
        match self {
            Problem::Missing => "MISSING",
            Problem::Malformed => "MALFORMED",
            Problem::OutOfRange => "OUT_OF_RANGE",
            Problem::InFuture => "IN_FUTURE",
            Problem::TooLong => "TOO_LONG",
            Problem::Empty => "EMPTY",
            Problem::BadCharacters => "BAD_CHARACTERS",
            Problem::UnknownField => "UNKNOWN_FIELD",
            Problem::Unknown => "UNKNOWN",
            Problem::Unchecked => "UNCHECKED",
            Problem::Conflict => "CONFLICT",
        }
    }
}

/// A person at the conference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Person {
    /// Unique, assigned by the store.
    pub id: PersonId,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Employer.
    pub company_name: String,
}

impl Person {
    /// Whether the first name, last name or company contains `needle`,
    /// which is lower case (the persons' search, any case).
    pub fn matches(&self, needle: &str) -> bool {
        [&self.first_name, &self.last_name, &self.company_name]
            .iter()
            .any(|field| field.to_lowercase().contains(needle))
    }
}

/// A person to create: names checked, trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPerson {
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Employer.
    pub company_name: String,
}

impl NewPerson {
    /// Checks each field: not blank, at most [`MAX_NAME_CHARS`], no control
    /// characters. Names are trimmed.
    pub fn new(first_name: &str, last_name: &str, company_name: &str) -> Result<Self, Invalid> {
        Ok(Self {
            first_name: name("first_name", first_name)?,
            last_name: name("last_name", last_name)?,
            company_name: name("company_name", company_name)?,
        })
    }
}

fn name(field: &'static str, value: &str) -> Result<String, Invalid> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Invalid::new(field, Problem::Empty, "must not be empty"));
    }
    let chars = value.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(Invalid::new(
            field,
            Problem::TooLong,
            format!("must be at most {MAX_NAME_CHARS} characters, got {chars}"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Invalid::new(
            field,
            Problem::BadCharacters,
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

/// A point as the original's `coordinate` column holds it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Coordinate {
    /// X: the longitude for data written by UdaConnect. The original API
    /// calls it `latitude`.
    pub x: f64,
    /// Y: the latitude for data written by UdaConnect. The original API
    /// calls it `longitude`.
    pub y: f64,
}

/// A position on the WGS 84 ellipsoid, in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Position {
    /// −90 ..= 90.
    pub lat: f64,
    /// −180 ..= 180.
    pub lon: f64,
}

impl Position {
    /// Checks the ranges (and that both are finite numbers).
    pub fn new(lat: f64, lon: f64) -> Result<Self, Invalid> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(Invalid::new(
                "lat",
                Problem::OutOfRange,
                format!("must be a number from -90 to 90, got {lat}"),
            ));
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(Invalid::new(
                "lon",
                Problem::OutOfRange,
                format!("must be a number from -180 to 180, got {lon}"),
            ));
        }
        Ok(Self { lat, lon })
    }

    /// The point UdaConnect stores for this position: `x` = longitude,
    /// `y` = latitude.
    pub fn coordinate(self) -> Coordinate {
        Coordinate {
            x: self.lon,
            y: self.lat,
        }
    }
}

/// A stored location.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    /// Unique.
    pub id: LocationId,
    /// Whose phone reported it.
    pub person_id: PersonId,
    /// The stored point, as the original API shows it.
    pub coordinate: Coordinate,
    /// Where distances are measured from.
    pub position: Position,
    /// When it was reported.
    pub time: Timestamp,
}

/// A location to store; the store assigns its id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewLocation {
    /// Whose phone reported it.
    pub person_id: PersonId,
    /// Where.
    pub position: Position,
    /// When.
    pub time: Timestamp,
}

/// A location whose id was assigned before it reached the store (by the
/// ingest edge): storing it twice stores it once, by its id and, when it
/// has one, by its client's idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct LocationRecord {
    /// Unique, assigned upstream.
    pub id: LocationId,
    /// Whose phone reported it.
    pub person_id: PersonId,
    /// Where.
    pub position: Position,
    /// When.
    pub time: Timestamp,
    /// The client's idempotency key: a retry of the same location, even
    /// through another edge under another id, is stored once.
    pub key: Option<String>,
}

impl LocationRecord {
    /// The stored location this record becomes.
    pub fn location(&self) -> Location {
        Location {
            id: self.id,
            person_id: self.person_id,
            coordinate: self.position.coordinate(),
            position: self.position,
            time: self.time,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_checked() {
        let person = NewPerson::new(" Pam ", "Trexler", "Hampton").expect("valid");
        assert_eq!(person.first_name, "Pam");
        assert_eq!(
            NewPerson::new("", "x", "y").expect_err("blank").field,
            "first_name"
        );
        let long = "x".repeat(MAX_NAME_CHARS + 1);
        assert_eq!(
            NewPerson::new("a", &long, "y").expect_err("long").field,
            "last_name"
        );
        let control = NewPerson::new("a", "b", "c\u{7}").expect_err("control");
        assert_eq!(
            (control.field, control.problem),
            ("company_name", Problem::BadCharacters)
        );
    }

    #[test]
    fn a_problem_renamed_for_an_api_keeps_its_kind_and_words() {
        let original = |field| if field == "lat" { "longitude" } else { field };
        let err = Position::new(95.0, 0.0).expect_err("lat").named(original);
        assert_eq!((err.field, err.problem), ("longitude", Problem::OutOfRange));
        assert_eq!(
            err.to_string(),
            "longitude: must be a number from -90 to 90, got 95"
        );
    }

    #[test]
    fn positions_are_in_range() {
        assert!(Position::new(37.55, -122.29).is_ok());
        let lat = Position::new(91.0, 0.0).expect_err("lat");
        assert_eq!((lat.field, lat.problem), ("lat", Problem::OutOfRange));
        assert_eq!(
            lat.to_string(),
            "lat: must be a number from -90 to 90, got 91"
        );
        assert_eq!(Position::new(0.0, -180.5).expect_err("lon").field, "lon");
        assert!(Position::new(f64::NAN, 0.0).is_err());
        let coordinate = Position::new(37.5, -122.25).expect("valid").coordinate();
        assert_eq!((coordinate.x, coordinate.y), (-122.25, 37.5));
    }
}
