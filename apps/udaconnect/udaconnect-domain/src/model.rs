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

/// Input that does not make a valid record: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    /// The field's name as the client sent it.
    pub field: &'static str,
    /// What is wrong, for the client.
    pub reason: String,
}

impl Invalid {
    /// A problem with `field`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
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
        return Err(Invalid::new(field, "must not be empty"));
    }
    let chars = value.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(Invalid::new(
            field,
            format!("must be at most {MAX_NAME_CHARS} characters, got {chars}"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Invalid::new(field, "must not contain control characters"));
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
                format!("must be a number from -90 to 90, got {lat}"),
            ));
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(Invalid::new(
                "lon",
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
        assert_eq!(
            NewPerson::new("a", "b", "c\u{7}")
                .expect_err("control")
                .field,
            "company_name"
        );
    }

    #[test]
    fn positions_are_in_range() {
        assert!(Position::new(37.55, -122.29).is_ok());
        assert_eq!(Position::new(91.0, 0.0).expect_err("lat").field, "lat");
        assert_eq!(Position::new(0.0, -180.5).expect_err("lon").field, "lon");
        assert!(Position::new(f64::NAN, 0.0).is_err());
        let coordinate = Position::new(37.5, -122.25).expect("valid").coordinate();
        assert_eq!((coordinate.x, coordinate.y), (-122.25, 37.5));
    }
}
