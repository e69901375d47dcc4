//! The original API's JSON, byte for byte where clients can tell.
//!
//! The original (Flask + marshmallow) renders a location's point as two
//! strings taken from its text form, `ST_POINT(x y)`: `latitude` is the
//! point's X and `longitude` its Y. Its own data has the longitude in X, so
//! its "latitude" is in truth a longitude; clients of the original send
//! and read it that way, and so do these endpoints. Numbers are rendered as
//! the original renders them: a connection's coordinates went through
//! Python's `repr(float)`, a fetched location's through PostGIS's
//! `ST_AsText`; times are Python's `isoformat()` of a naive UTC time.

use serde::{Deserialize, Serialize};
use udaconnect_domain::{Location, Person};
use utoipa::ToSchema;

/// A person, as the original shows one.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompatPerson {
    /// The person's id.
    pub id: i32,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Employer.
    pub company_name: String,
}

impl From<&Person> for CompatPerson {
    fn from(person: &Person) -> Self {
        Self {
            id: person.id,
            first_name: person.first_name.clone(),
            last_name: person.last_name.clone(),
            company_name: person.company_name.clone(),
        }
    }
}

/// A location, as the original shows one. `latitude` is the point's X (in
/// the original's data, the longitude) and `longitude` its Y.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompatLocation {
    /// The location's id.
    pub id: i64,
    /// Whose location.
    pub person_id: i32,
    /// The point's Y, as text.
    #[schema(example = "37.553441")]
    pub longitude: String,
    /// The point's X, as text.
    #[schema(example = "-122.290883")]
    pub latitude: String,
    /// When, UTC without an offset (`2020-08-18T10:37:06`).
    #[schema(example = "2020-08-18T10:37:06")]
    pub creation_time: String,
}

impl CompatLocation {
    /// As `GET /api/locations/{id}` renders it (PostGIS text form).
    pub fn fetched(location: &Location) -> Self {
        Self::render(location, postgis_text)
    }

    /// As the connection endpoint renders it (Python's `repr`).
    pub fn in_connection(location: &Location) -> Self {
        Self::render(location, python_repr)
    }

    fn render(location: &Location, number: fn(f64) -> String) -> Self {
        Self {
            id: location.id,
            person_id: location.person_id,
            longitude: number(location.coordinate.y),
            latitude: number(location.coordinate.x),
            creation_time: location.time.to_compat_string(),
        }
    }
}

/// One row of the original's connection answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompatConnection {
    /// The other person's location.
    pub location: CompatLocation,
    /// The other person.
    pub person: CompatPerson,
}

/// The body of `POST /api/persons`. An `id` is accepted and ignored, as
/// the original does; the store assigns one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompatNewPerson {
    /// Ignored.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub id: Option<serde_json::Value>,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Employer.
    pub company_name: String,
}

/// The body of `POST /api/locations`: `latitude` is the point's X and
/// `longitude` its Y, as in the original (send the longitude as
/// `latitude`). Numbers may be given as strings, as the original expects,
/// or as JSON numbers.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompatNewLocation {
    /// Ignored: the store assigns the id.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub id: Option<serde_json::Value>,
    /// Whose location.
    #[schema(value_type = i32)]
    pub person_id: NumberOrText,
    /// The point's X: −180 ..= 180.
    #[schema(value_type = String, example = "-122.290883")]
    pub latitude: NumberOrText,
    /// The point's Y: −90 ..= 90.
    #[schema(value_type = String, example = "37.553441")]
    pub longitude: NumberOrText,
    /// When (ISO 8601; without an offset it is UTC). Defaults to now.
    #[serde(default)]
    #[schema(example = "2020-08-18T10:37:06")]
    pub creation_time: Option<String>,
}

/// A number a client may send as JSON number or as text.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum NumberOrText {
    /// `-122.29`
    Number(serde_json::Number),
    /// `"-122.29"`
    Text(String),
}

impl NumberOrText {
    /// The value as text, trimmed.
    pub fn text(&self) -> String {
        match self {
            NumberOrText::Number(number) => number.to_string(),
            NumberOrText::Text(text) => text.trim().to_owned(),
        }
    }
}

/// Python's `repr(float)`: the shortest text that reads back as the same
/// number, always with a `.0` or an exponent, exponents from 1e16 and below
/// 1e-4 (`1e-05`, `1.5e+16`).
pub fn python_repr(value: f64) -> String {
    if !value.is_finite() {
        return if value.is_nan() {
            "nan".to_owned()
        } else if value > 0.0 {
            "inf".to_owned()
        } else {
            "-inf".to_owned()
        };
    }
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-4..1e16).contains(&magnitude) {
        let scientific = format!("{value:e}");
        let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
        let exponent: i32 = exponent.parse().unwrap_or(0);
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    let plain = format!("{value}");
    if plain.contains('.') {
        plain
    } else {
        format!("{plain}.0")
    }
}

/// PostGIS's `ST_AsText` of a coordinate: the shortest text that reads
/// back as the same number, without a trailing `.0`.
pub fn postgis_text(value: f64) -> String {
    format!("{value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_render_as_python_does() {
        assert_eq!(python_repr(-122.290883), "-122.290883");
        assert_eq!(python_repr(37.553441), "37.553441");
        assert_eq!(python_repr(35.0), "35.0");
        assert_eq!(python_repr(0.0), "0.0");
        assert_eq!(python_repr(-0.0), "-0.0");
        assert_eq!(python_repr(0.00001), "1e-05");
        assert_eq!(python_repr(0.0001), "0.0001");
        assert_eq!(python_repr(1.5e16), "1.5e+16");
        assert_eq!(python_repr(0.1 + 0.2), "0.30000000000000004");
    }

    #[test]
    fn floats_render_as_postgis_does() {
        assert_eq!(postgis_text(-122.290883), "-122.290883");
        assert_eq!(postgis_text(35.0), "35");
    }

    #[test]
    fn numbers_may_come_as_text() {
        let body: CompatNewLocation = serde_json::from_str(
            r#"{"person_id": "5", "latitude": -122.29, "longitude": "37.55 ", "creation_time": "2020-08-18T10:37:06"}"#,
        )
        .expect("parses");
        assert_eq!(body.person_id.text(), "5");
        assert_eq!(body.latitude.text(), "-122.29");
        assert_eq!(body.longitude.text(), "37.55");
        assert!(
            serde_json::from_str::<CompatNewLocation>(
                r#"{"person_id": 1, "latitude": "1", "longitude": "2", "extra": 1}"#
            )
            .is_err()
        );
    }
}
