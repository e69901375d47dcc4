//! One location through the edge, for the writes of a single location:
//! `POST /api/v2/locations`, and the original's body, which comes over
//! HTTP (`POST /api/locations`) and gRPC (`LocationService.Create`) alike
//! and is read here once for both. A problem comes back named as the
//! client named the field: the original's API calls the point's X
//! `latitude` (in its data, the longitude), its Y `longitude`, and the
//! time `creation_time`.

use chrono::{DateTime, NaiveDateTime, Utc};
use udaconnect_domain::{Invalid, LocationRecord, Problem, Timestamp};

use super::{
    edge::{Edge, Refusal},
    validate::{Submitted, Time, shown},
};
use crate::{access::Caller, api::compat_wire::CompatNewLocation};

/// Why a single location was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A bad field, or a person that does not exist: the field named as
    /// the client's API names it.
    Invalid(Invalid),
    /// Nothing taken now: retry later.
    Refused(Refusal),
}

/// Takes `item`, sent with the v2 API's or gRPC batches' names.
pub async fn v2(
    edge: &Edge,
    transport: &'static str,
    caller: Caller,
    item: Submitted,
) -> Result<LocationRecord, Failure> {
    one(edge, transport, caller, || Ok(item)).await
}

/// Takes the original's `body`.
pub async fn original(
    edge: &Edge,
    transport: &'static str,
    caller: Caller,
    body: &CompatNewLocation,
) -> Result<LocationRecord, Failure> {
    one(edge, transport, caller, || read_original(body))
        .await
        .map_err(|failure| match failure {
            Failure::Invalid(invalid) => Failure::Invalid(original_names(invalid)),
            refused @ Failure::Refused(_) => refused,
        })
}

async fn one(
    edge: &Edge,
    transport: &'static str,
    caller: Caller,
    read: impl FnOnce() -> Result<Submitted, Invalid>,
) -> Result<LocationRecord, Failure> {
    let mut batch = edge.batch();
    // A batch holds at least one location, whatever the limit.
    if let Err(too_many) = batch.push(read) {
        return Err(Failure::Invalid(Invalid::new(
            "location",
            Problem::OutOfRange,
            too_many.to_string(),
        )));
    }
    let outcome = edge
        .ingest(transport, caller, batch)
        .await
        .map_err(Failure::Refused)?;
    if let Some(record) = outcome.accepted.into_iter().next() {
        return Ok(record);
    }
    let invalid = outcome.rejected.listed().first().map_or_else(
        || Invalid::new("location", Problem::Malformed, "nothing to store"),
        |rejection| rejection.invalid.clone(),
    );
    Err(Failure::Invalid(invalid))
}

/// The original's body as a location, its problems named as the v2 API
/// names the fields: `latitude` is the point's X, the longitude, and
/// `longitude` its Y, the latitude.
fn read_original(body: &CompatNewLocation) -> Result<Submitted, Invalid> {
    let person_id = body.person_id.text();
    let person_id = person_id.parse::<i64>().map_err(|_| {
        Invalid::new(
            "person_id",
            Problem::Malformed,
            format!("must be a whole number, got {}", shown(&person_id)),
        )
    })?;
    let number = |field: &'static str, text: String| {
        text.parse::<f64>()
            .ok()
            .filter(|value| value.is_finite())
            .ok_or_else(|| {
                Invalid::new(
                    field,
                    Problem::Malformed,
                    format!("must be a number, got {}", shown(&text)),
                )
            })
    };
    let x = number("lon", body.latitude.text())?;
    let y = number("lat", body.longitude.text())?;
    let time = match &body.creation_time {
        Some(text) => iso_time(text)?,
        None => Timestamp::now(),
    };
    Ok(Submitted {
        person_id,
        lat: y,
        lon: x,
        time: Time::Parsed(time),
        key: None,
    })
}

/// `invalid`, its field named as the original's API names it.
fn original_names(invalid: Invalid) -> Invalid {
    let axis = match (invalid.field, invalid.problem) {
        ("lon", Problem::OutOfRange) => Some("the point's X, the longitude"),
        ("lat", Problem::OutOfRange) => Some("the point's Y, the latitude"),
        _ => None,
    };
    let mut named = invalid.named(|field| match field {
        "lat" => "longitude",
        "lon" => "latitude",
        "time" => "creation_time",
        other => other,
    });
    if let Some(axis) = axis {
        named.message = format!(
            "{}: this API, like the original, stores `{}` as {axis}",
            named.message, named.field
        );
    }
    named
}

/// A time as the original accepted one (ISO 8601): with an offset, or
/// without one meaning UTC; `T` or a space between date and time.
fn iso_time(value: &str) -> Result<Timestamp, Invalid> {
    let trimmed = value.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(trimmed) {
        return Ok(Timestamp::from_datetime(time.with_timezone(&Utc)));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(time) = NaiveDateTime::parse_from_str(trimmed, format) {
            return Ok(Timestamp::from_naive(time));
        }
    }
    Err(Invalid::new(
        "time",
        Problem::Malformed,
        format!(
            "must be an ISO 8601 time such as 2020-08-18T10:37:06, got {}",
            shown(value)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::compat_wire::NumberOrText;

    fn body(latitude: &str, longitude: &str, creation_time: Option<&str>) -> CompatNewLocation {
        CompatNewLocation {
            id: None,
            person_id: NumberOrText::Text("5".to_owned()),
            latitude: NumberOrText::Text(latitude.to_owned()),
            longitude: NumberOrText::Text(longitude.to_owned()),
            creation_time: creation_time.map(str::to_owned),
        }
    }

    #[test]
    fn the_originals_axes_are_swapped_and_its_times_read() {
        let item = read_original(&body("-122.29", "37.55", Some("2020-08-18 10:37:06.5")))
            .expect("a location");
        assert_eq!((item.lat, item.lon, item.person_id), (37.55, -122.29, 5));
        assert_eq!(
            item.time,
            Time::Parsed(iso_time("2020-08-18T10:37:06.500Z").expect("a time"))
        );
    }

    #[test]
    fn problems_are_named_as_the_original_names_the_fields() {
        let problem = |body| {
            let invalid = original_names(read_original(&body).expect_err("refused"));
            (invalid.field, invalid.problem)
        };
        assert_eq!(
            problem(body("west", "1", None)),
            ("latitude", Problem::Malformed)
        );
        assert_eq!(
            problem(body("1", "NaN", None)),
            ("longitude", Problem::Malformed)
        );
        assert_eq!(
            problem(body("1", "2", Some("noon"))),
            ("creation_time", Problem::Malformed)
        );
        let mut bad_id = body("1", "2", None);
        bad_id.person_id = NumberOrText::Text("five".to_owned());
        assert_eq!(problem(bad_id), ("person_id", Problem::Malformed));
        let range = original_names(Invalid::new("lon", Problem::OutOfRange, "too far"));
        assert_eq!(range.field, "latitude");
        assert!(range.message.contains("the point's X"), "{}", range.message);
    }
}
