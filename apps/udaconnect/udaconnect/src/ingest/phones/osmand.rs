//! The OsmAnd protocol as Traccar Client and other apps send it, read as
//! Traccar's `OsmAndProtocolDecoder` reads it: one position per request,
//! the device named by the request.
//!
//! A body whose `Content-Type` is `application/json` is Traccar Client
//! 9's: `{"location": {"timestamp": …, "coords": {"latitude": …,
//! "longitude": …, "accuracy": …, …}, …}, "device_id": …}`. Its
//! `timestamp` is required (the decoder reads it whatever else is there).
//! Without `coords` it holds no position. A `location` that is an array
//! (a batch) is refused: the decoder takes one location.
//!
//! Otherwise the parameters are the query string's, or, when it has none,
//! the body's (`application/x-www-form-urlencoded`), as the decoder takes
//! them: grouped by name in the order each name first appears, a later
//! value of a name taking the place of an earlier one, empty values
//! skipped. `id` or `deviceid` names the device; `lat` and `lon`, or
//! `location=lat,lon`, the position (without both, as with only `cell` or
//! `wifi`, there is none); `timestamp` the time, told apart as the decoder
//! does (see `timestamp` below), and without it the time the request is
//! read (`now`), as the decoder does; `accuracy` the accuracy in meters.
//! `valid` other than `true` or `1` says the position is not to be
//! trusted: nothing is stored. `hdop` is not taken for an accuracy (it is
//! a ratio, not meters); `speed`, `bearing`, `heading`, `altitude`, `batt`
//! and every other parameter are tolerated and not read.
//!
//! A request that names no device is refused (the decoder answers it 400),
//! and so is one naming two different devices (the decoder would take the
//! last). The key of a position is `osmand:` and its time in
//! microseconds: the app retrying a request sends the same time (a
//! position without a time of its own is keyed by `now`, and so stored
//! again if sent again).

use std::{borrow::Cow, collections::HashMap};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use udaconnect_domain::Timestamp;

use super::{DeviceToken, Fix, Report, accuracy, json_kind};
use crate::urlencoded::{self, DecodeError};

/// Milliseconds in a second, microseconds in a millisecond.
const THOUSAND: i64 = 1_000;

/// A request of the app, read.
#[derive(Debug, Clone, PartialEq)]
pub struct OsmAndRequest {
    /// The device's token: `id`, `deviceid` or `device_id`, as sent.
    pub token: DeviceToken,
    /// What the request holds.
    pub report: Report,
}

/// Why a request is not read: each a message for the app's user, never
/// repeating the device's id or a position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OsmAndError {
    /// No device named.
    #[error("the request names no device: send its id as `id` or `deviceid` (`device_id` in JSON)")]
    NoDevice,
    /// Two devices named.
    #[error("the request names more than one device (`id`, `deviceid`)")]
    SeveralDevices,
    /// Parameters that are not URL-encoded text.
    #[error("the parameters are not URL-encoded UTF-8 text: {0}")]
    BadEncoding(&'static str),
    /// A parameter that does not read as what it stands for.
    #[error("{name} must be {expected}")]
    BadParameter {
        /// The parameter.
        name: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// A JSON body that is not JSON.
    #[error("the body is not JSON (line {line}, column {column})")]
    NotJson {
        /// Where it stops being JSON.
        line: usize,
        /// Where it stops being JSON.
        column: usize,
    },
    /// A JSON body without a field it must have.
    #[error("{0} is required")]
    MissingField(&'static str),
    /// A JSON field of the wrong kind.
    #[error("{field} must be {expected}, got {got}")]
    BadField {
        /// The field, as a path from the body.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
        /// What it is.
        got: &'static str,
    },
}

/// What `timestamp` may be.
const TIMESTAMP_FORMATS: &str = "seconds or milliseconds since 1970-01-01, an ISO 8601 time with its offset (2016-01-27T18:55:47Z) or YYYY-MM-DD HH:MM:SS (UTC)";
/// What a JSON `timestamp` may be.
const ISO_TIME: &str = "an ISO 8601 time with its offset, such as 2025-06-15T13:45:12.862Z";

/// Reads a request: its parameters from `query` (the URI's query, without
/// the `?`) or `body`, or its JSON `body` when `content_type` says so.
/// `now` is the position's time when the request gives none.
pub fn parse(
    query: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
    now: Timestamp,
) -> Result<OsmAndRequest, OsmAndError> {
    let json = content_type.is_some_and(|value| {
        value
            .trim_start()
            .get(.."application/json".len())
            .is_some_and(|start| start.eq_ignore_ascii_case("application/json"))
    });
    if json {
        return parse_json(body);
    }
    let mut parameters = query.map(pairs).transpose()?.unwrap_or_default();
    if parameters.is_empty() {
        let body = std::str::from_utf8(body)
            .map_err(|_| OsmAndError::BadEncoding("the body is not UTF-8"))?;
        parameters = pairs(body)?;
    }
    read_parameters(parameters, now)
}

/// The decoded `name=value` pairs of `text`, grouped by name in the order
/// each name first appears (as Traccar's decoder iterates them).
fn pairs(text: &str) -> Result<Vec<(String, String)>, OsmAndError> {
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    let mut pairs = Vec::new();
    for pair in text.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(name)?.into_owned();
        if name.is_empty() {
            continue;
        }
        let seen = first_seen.len();
        let rank = *first_seen.entry(name.clone()).or_insert(seen);
        pairs.push((rank, (name, decode(value)?.into_owned())));
    }
    pairs.sort_by_key(|(rank, _)| *rank);
    Ok(pairs.into_iter().map(|(_, pair)| pair).collect())
}

/// A URL-encoded component, or why it is not one.
fn decode(component: &str) -> Result<Cow<'_, str>, OsmAndError> {
    urlencoded::decode(component).map_err(|err| match err {
        DecodeError::BadEscape => {
            OsmAndError::BadEncoding("a % is not followed by two hexadecimal digits")
        }
        DecodeError::NotUtf8 => OsmAndError::BadEncoding("a %-encoded value is not UTF-8"),
    })
}

/// What the parameters say, in the decoder's order.
fn read_parameters(
    parameters: Vec<(String, String)>,
    now: Timestamp,
) -> Result<OsmAndRequest, OsmAndError> {
    let mut token: Option<String> = None;
    let mut valid = true;
    let mut time = None;
    let mut latitude = None;
    let mut longitude = None;
    let mut accuracy_m = None;
    for (name, value) in parameters {
        if value.is_empty() {
            continue;
        }
        match name.as_str() {
            "id" | "deviceid" => match &token {
                Some(named) if *named != value => return Err(OsmAndError::SeveralDevices),
                _ => token = Some(value),
            },
            "valid" => valid = value.eq_ignore_ascii_case("true") || value == "1",
            "timestamp" => time = Some(timestamp(&value)?),
            "lat" => latitude = Some(double("lat", &value)?),
            "lon" => longitude = Some(double("lon", &value)?),
            "location" => {
                let mut parts = value.split(',');
                let (Some(lat), Some(lon)) = (parts.next(), parts.next()) else {
                    return Err(OsmAndError::BadParameter {
                        name: "location",
                        expected: "a latitude and a longitude, separated by a comma",
                    });
                };
                latitude = Some(double("location", lat)?);
                longitude = Some(double("location", lon)?);
            }
            "accuracy" => accuracy_m = accuracy(double("accuracy", &value)?),
            _ => {}
        }
    }
    let token = DeviceToken(token.ok_or(OsmAndError::NoDevice)?);
    let report = match (valid, latitude, longitude) {
        (false, _, _) => Report::Nothing("valid=false"),
        (true, Some(latitude), Some(longitude)) => {
            let at = time.unwrap_or(now);
            Report::Location(Fix {
                latitude,
                longitude,
                at,
                accuracy_m,
                key: key(at),
            })
        }
        (true, _, _) => Report::Nothing("no coordinates"),
    };
    Ok(OsmAndRequest { token, report })
}

/// A number as Java's `Double.parseDouble` reads it (blanks around it
/// allowed); its range is left to the checks of each location.
fn double(name: &'static str, value: &str) -> Result<f64, OsmAndError> {
    value
        .trim_matches(|c: char| c <= ' ')
        .parse()
        .map_err(|_| OsmAndError::BadParameter {
            name,
            expected: "a number",
        })
}

/// A `timestamp` parameter, told apart as the decoder does: a whole number
/// (sign allowed) is seconds below 2147483647 (`Integer.MAX_VALUE`) and
/// milliseconds from there on; other text holding a `T` is ISO 8601 with
/// an offset; anything else is `YYYY-MM-DD HH:MM:SS`, read as UTC.
fn timestamp(value: &str) -> Result<Timestamp, OsmAndError> {
    if let Ok(number) = value.parse::<i64>() {
        let millis = if number < i64::from(i32::MAX) {
            number.saturating_mul(THOUSAND)
        } else {
            number
        };
        return Ok(Timestamp::from_micros(millis.saturating_mul(THOUSAND)));
    }
    let parsed = if value.contains('T') {
        iso(value)
    } else {
        NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S")
            .ok()
            .map(Timestamp::from_naive)
    };
    parsed.ok_or(OsmAndError::BadParameter {
        name: "timestamp",
        expected: TIMESTAMP_FORMATS,
    })
}

/// An ISO 8601 time with its offset.
fn iso(value: &str) -> Option<Timestamp> {
    DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|time| Timestamp::from_datetime(time.with_timezone(&Utc)))
}

/// The key of a position taken at `at`.
fn key(at: Timestamp) -> String {
    format!("osmand:{}", at.micros())
}

/// Traccar Client 9's body.
#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow)]
    device_id: Option<&'a RawValue>,
    #[serde(borrow)]
    location: Option<&'a RawValue>,
}

/// Its `location`; every other field is tolerated and not read.
#[derive(Deserialize)]
struct Location<'a> {
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow)]
    coords: Option<&'a RawValue>,
}

/// Its `location.coords`; every other field is tolerated and not read.
#[derive(Deserialize)]
struct Coords<'a> {
    #[serde(borrow)]
    latitude: Option<&'a RawValue>,
    #[serde(borrow)]
    longitude: Option<&'a RawValue>,
    #[serde(borrow)]
    accuracy: Option<&'a RawValue>,
}

/// Reads Traccar Client 9's JSON body.
fn parse_json(body: &[u8]) -> Result<OsmAndRequest, OsmAndError> {
    let raw: &RawValue = serde_json::from_slice(body).map_err(|err| OsmAndError::NotJson {
        line: err.line(),
        column: err.column(),
    })?;
    let root: Body<'_> = object("the body", raw)?;
    let device = root.device_id.ok_or(OsmAndError::NoDevice)?;
    let device: String = field("device_id", device, "a string")?;
    if device.is_empty() {
        return Err(OsmAndError::NoDevice);
    }
    let token = DeviceToken(device);
    let location = root.location.ok_or(OsmAndError::MissingField("location"))?;
    if location.get().starts_with('[') {
        return Err(OsmAndError::BadField {
            field: "location",
            expected: "one location (a batch of them is not taken)",
            got: "an array",
        });
    }
    let location: Location<'_> = object("location", location)?;
    let timestamp = location
        .timestamp
        .ok_or(OsmAndError::MissingField("location.timestamp"))?;
    let timestamp: String = field("location.timestamp", timestamp, ISO_TIME)?;
    let at = iso(&timestamp).ok_or(OsmAndError::BadField {
        field: "location.timestamp",
        expected: ISO_TIME,
        got: "another string",
    })?;
    let Some(coords) = location.coords else {
        return Ok(OsmAndRequest {
            token,
            report: Report::Nothing("no coordinates"),
        });
    };
    let coords: Coords<'_> = object("location.coords", coords)?;
    let latitude = coords
        .latitude
        .ok_or(OsmAndError::MissingField("location.coords.latitude"))?;
    let longitude = coords
        .longitude
        .ok_or(OsmAndError::MissingField("location.coords.longitude"))?;
    let accuracy_m = match coords.accuracy {
        None => None,
        Some(raw) => accuracy(number("location.coords.accuracy", raw)?),
    };
    Ok(OsmAndRequest {
        token,
        report: Report::Location(Fix {
            latitude: number("location.coords.latitude", latitude)?,
            longitude: number("location.coords.longitude", longitude)?,
            at,
            accuracy_m,
            key: key(at),
        }),
    })
}

/// `raw`, the value of `field`, as the object `T`.
fn object<'a, T: Deserialize<'a>>(
    field: &'static str,
    raw: &'a RawValue,
) -> Result<T, OsmAndError> {
    let wrong = || OsmAndError::BadField {
        field,
        expected: "an object",
        got: json_kind(raw),
    };
    if !raw.get().starts_with('{') {
        return Err(wrong());
    }
    serde_json::from_str(raw.get()).map_err(|_| OsmAndError::BadField {
        field,
        expected: "an object with each field once",
        got: "a field given twice",
    })
}

/// `raw`, the value of `field`, as a `T` (`expected` says what that is).
fn field<'a, T: Deserialize<'a>>(
    field: &'static str,
    raw: &'a RawValue,
    expected: &'static str,
) -> Result<T, OsmAndError> {
    serde_json::from_str(raw.get()).map_err(|_| OsmAndError::BadField {
        field,
        expected,
        got: json_kind(raw),
    })
}

/// `raw`, the value of `field`, as a number.
fn number(field: &'static str, raw: &RawValue) -> Result<f64, OsmAndError> {
    serde_json::from_str(raw.get()).map_err(|_| OsmAndError::BadField {
        field,
        expected: "a number",
        got: match json_kind(raw) {
            "a number" => "a number out of range",
            other => other,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::phones::from_epoch_seconds;

    /// The time the tests' requests are read.
    fn now() -> Timestamp {
        from_epoch_seconds(1_750_000_000)
    }

    fn query(query: &str) -> Result<OsmAndRequest, OsmAndError> {
        parse(Some(query), None, b"", now())
    }

    fn json(body: &str) -> Result<OsmAndRequest, OsmAndError> {
        parse(None, Some("application/json"), body.as_bytes(), now())
    }

    /// The position `request` holds, and the token it names.
    fn fix_of(request: Result<OsmAndRequest, OsmAndError>) -> (String, Fix) {
        let request = request.expect("read");
        match request.report {
            Report::Location(fix) => (request.token.as_str().to_owned(), fix),
            other => panic!("not a location: {other:?}"),
        }
    }

    /// What `fix` says: its token, position, time and accuracy.
    fn said(token: &str, fix: &Fix) -> (String, f64, f64, String, Option<f64>) {
        (
            token.to_owned(),
            fix.latitude,
            fix.longitude,
            fix.at.to_string(),
            fix.accuracy_m,
        )
    }

    fn expect(
        token: &str,
        lat: f64,
        lon: f64,
        at: &str,
    ) -> (String, f64, f64, String, Option<f64>) {
        (token.to_owned(), lat, lon, at.to_owned(), None)
    }

    // Each request of Traccar's OsmAndProtocolDecoderTest, testDecodeQuery,
    // in its order.

    #[test]
    fn decoder_test_1_cell_and_wifi_only_hold_no_coordinates() {
        let request = query(
            "id=123456&timestamp=1377177267&cell=257,02,16,2224&cell=257,02,16,2223,-90&wifi=00-14-22-01-23-45,-80&wifi=00-1C-B3-09-85-15,-70",
        )
        .expect("read");
        assert_eq!(request.token.as_str(), "123456");
        assert_eq!(request.report, Report::Nothing("no coordinates"));
    }

    #[test]
    fn decoder_test_2_no_device_id_is_refused() {
        // The decoder returns no position and answers 400.
        assert_eq!(
            query("timestamp=1377177267&lat=60.0&lon=30.0"),
            Err(OsmAndError::NoDevice)
        );
    }

    #[test]
    fn decoder_test_3_an_iso_timestamp() {
        let (token, fix) = fix_of(query(
            "id=902064&lat=42.06288&lon=-88.23412&timestamp=2016-01-27T18%3A55%3A47Z&hdop=6.0&altitude=224.0&speed=0.0",
        ));
        assert_eq!(
            said(&token, &fix),
            expect("902064", 42.06288, -88.23412, "2016-01-27T18:55:47Z")
        );
        assert_eq!(fix.key, "osmand:1453920947000000");
    }

    #[test]
    fn decoder_test_4_a_timestamp_in_milliseconds() {
        let (token, fix) = fix_of(query(
            "id=902064&lat=42.06288&lon=-88.23412&timestamp=1442068686579&hdop=6.0&altitude=224.0&speed=0.0",
        ));
        assert_eq!(
            said(&token, &fix),
            expect("902064", 42.06288, -88.23412, "2015-09-12T14:38:06.579Z")
        );
        assert_eq!(fix.key, "osmand:1442068686579000");
    }

    #[test]
    fn decoder_test_5_a_date_and_time_with_a_plus_for_its_space_and_the_id_last() {
        let (token, fix) = fix_of(query(
            "lat=49.60688&lon=6.15788&timestamp=2014-06-04+09%3A10%3A11&altitude=384.7&speed=0.0&id=353861053849681",
        ));
        assert_eq!(
            said(&token, &fix),
            expect("353861053849681", 49.60688, 6.15788, "2014-06-04T09:10:11Z")
        );
    }

    #[test]
    fn decoder_test_6_a_timestamp_in_seconds_with_speed_bearing_altitude_hdop() {
        let (token, fix) = fix_of(query(
            "id=123456&timestamp=1377177267&lat=60.0&lon=30.0&speed=0.0&bearing=0.0&altitude=0&hdop=0.0",
        ));
        assert_eq!(
            said(&token, &fix),
            expect("123456", 60.0, 30.0, "2013-08-22T13:14:27Z")
        );
        assert_eq!(fix.key, "osmand:1377177267000000");
    }

    #[test]
    fn decoder_test_7_the_least_a_position_needs() {
        let (token, fix) = fix_of(query("id=123456&timestamp=1377177267&lat=60.0&lon=30.0"));
        assert_eq!(
            said(&token, &fix),
            expect("123456", 60.0, 30.0, "2013-08-22T13:14:27Z")
        );
    }

    #[test]
    fn decoder_test_8_deviceid_and_no_timestamp_take_the_time_read() {
        let (token, fix) = fix_of(query(
            "lat=60.0&lon=30.0&speed=0.0&heading=0.0&vacc=0&hacc=0&altitude=0&deviceid=123456",
        ));
        assert_eq!(fix.at, now());
        assert_eq!(
            said(&token, &fix),
            expect("123456", 60.0, 30.0, "2025-06-15T15:06:40Z")
        );
        assert_eq!(fix.key, format!("osmand:{}", now().micros()));
    }

    #[test]
    fn decoder_test_9_battery_and_no_timestamp() {
        let (token, fix) = fix_of(query(
            "id=861001000719969&lat=41.666667&lon=-0.883333&altitude=350.059479&speed=0.000000&batt=87",
        ));
        assert_eq!(
            said(&token, &fix),
            expect(
                "861001000719969",
                41.666667,
                -0.883333,
                "2025-06-15T15:06:40Z"
            )
        );
    }

    #[test]
    fn decoder_test_10_location_holds_both_coordinates() {
        let (token, fix) = fix_of(query("id=123456&timestamp=1377177267&location=60.0,30.0"));
        assert_eq!(
            said(&token, &fix),
            expect("123456", 60.0, 30.0, "2013-08-22T13:14:27Z")
        );
    }

    #[test]
    fn decoder_test_11_unknown_parameters_are_tolerated() {
        let (token, fix) = fix_of(query(
            "id=123456789012345&timestamp=1504763810&lat=40.7232948571&lon=-74.0061408571&bearing=7.19889788244&speed=40&ignition=true&rpm=933&fuel=24",
        ));
        assert_eq!(
            said(&token, &fix),
            expect(
                "123456789012345",
                40.7232948571,
                -74.0061408571,
                "2017-09-07T05:56:50Z"
            )
        );
    }

    // Each request of Traccar's OsmAndProtocolDecoderTest, testDecodeJson,
    // in its order.

    #[test]
    fn decoder_json_test_1_traccar_client_9() {
        let (token, fix) = fix_of(json(
            r#"{"location":{"timestamp":"2025-06-15T13:45:12.862Z","coords":{"latitude":37.4219983,"longitude":-122.084,"accuracy":5,"speed":0,"heading":-1,"altitude":5},"is_moving":false,"odometer":0,"event":"motionchange","battery":{"level":1,"is_charging":false},"activity":{"type":"still"},"extras":{},"_":"&id=48241179&lat=37.4219983&lon=-122.084&timestamp=2025-06-15T13:45:12.862Z&"},"device_id":"48241179"}"#,
        ));
        assert_eq!(
            said(&token, &fix),
            (
                "48241179".to_owned(),
                37.4219983,
                -122.084,
                "2025-06-15T13:45:12.862Z".to_owned(),
                Some(5.0)
            )
        );
        assert_eq!(fix.key, "osmand:1749995112862000");
    }

    #[test]
    fn decoder_json_test_2_extras_of_every_kind() {
        let (token, fix) = fix_of(json(
            r#"{"location":{"timestamp":"2025-06-15T13:45:12.862Z","coords":{"latitude":37.4219983,"longitude":-122.084,"accuracy":5,"speed":0,"heading":-1,"altitude":5},"is_moving":false,"odometer":0,"event":"motionchange","battery":{"level":1,"is_charging":false},"activity":{"type":"still"},"extras":{"device_string_test":"long_device_id","device_bool_test":true,"device_bool_false_test":false,"device_integer_test":1,"device_double_test":1.345,"device_very_long_double_test":1763636.3442},"_":"&id=48241179&lat=37.4219983&lon=-122.084&timestamp=2025-06-15T13:45:12.862Z&"},"device_id":"48241179"}"#,
        ));
        assert_eq!(
            said(&token, &fix),
            (
                "48241179".to_owned(),
                37.4219983,
                -122.084,
                "2025-06-15T13:45:12.862Z".to_owned(),
                Some(5.0)
            )
        );
    }

    #[test]
    fn decoder_json_test_3_ios_with_its_timestamp_last() {
        let (token, fix) = fix_of(json(
            r#"{"location":{"extras":{},"mock":true,"coords":{"speed_accuracy":-1,"speed":-1,"longitude":-122.406417,"ellipsoidal_altitude":0,"floor":null,"heading_accuracy":-1,"latitude":37.785834000000001,"accuracy":5,"altitude_accuracy":-1,"altitude":0,"heading":-1},"is_moving":false,"age":188,"odometer":0,"uuid":"2FB04C65-99CF-42AB-8DD3-EBCB4B108BF8","event":"motionchange","battery":{"level":-1,"is_charging":false},"activity":{"type":"unknown","confidence":100},"timestamp":"2025-05-09T04:11:30.579Z"},"device_id":"658765"}"#,
        ));
        assert_eq!(
            said(&token, &fix),
            (
                "658765".to_owned(),
                37.785834,
                -122.406417,
                "2025-05-09T04:11:30.579Z".to_owned(),
                Some(5.0)
            )
        );
    }

    #[test]
    fn decoder_json_test_4_android_moving() {
        let (token, fix) = fix_of(json(
            r#"{"location":{"event":"motionchange","is_moving":false,"uuid":"0e9a2473-a9a7-4c00-997b-fb97d2154e75","timestamp":"2021-07-21T08:06:34.444Z","odometer":0,"coords":{"latitude":-6.1148096,"longitude":106.6837015,"accuracy":3.8,"speed":18.67,"speed_accuracy":0.26,"heading":63,"heading_accuracy":0.28,"altitude":35.7,"altitude_accuracy":3.8},"activity":{"type":"still","confidence":100},"battery":{"is_charging":false,"level":0.79},"extras":{}},"device_id":"8737767034"}"#,
        ));
        assert_eq!(
            said(&token, &fix),
            (
                "8737767034".to_owned(),
                -6.1148096,
                106.6837015,
                "2021-07-21T08:06:34.444Z".to_owned(),
                Some(3.8)
            )
        );
    }

    #[test]
    fn a_form_body_is_read_when_the_query_has_no_parameters() {
        let body = b"id=123456&timestamp=1377177267&lat=60.0&lon=30.0&accuracy=12.5";
        let form = Some("application/x-www-form-urlencoded");
        for query in [None, Some(""), Some("&")] {
            let (token, fix) = fix_of(parse(query, form, body, now()));
            assert_eq!(
                said(&token, &fix),
                (
                    "123456".to_owned(),
                    60.0,
                    30.0,
                    "2013-08-22T13:14:27Z".to_owned(),
                    Some(12.5)
                )
            );
        }
        // A query with parameters is read alone, as the decoder does.
        let (token, fix) = fix_of(parse(
            Some("id=654321&lat=1.0&lon=2.0&timestamp=1377177267"),
            form,
            body,
            now(),
        ));
        assert_eq!(
            said(&token, &fix),
            expect("654321", 1.0, 2.0, "2013-08-22T13:14:27Z")
        );
        assert_eq!(
            parse(None, form, b"id=1&lat=\xff", now()),
            Err(OsmAndError::BadEncoding("the body is not UTF-8"))
        );
    }

    #[test]
    fn the_content_type_says_json_whatever_its_parameters_and_case() {
        let body = br#"{"location":{"timestamp":"2025-06-15T13:45:12Z","coords":{"latitude":1.5,"longitude":2.5}},"device_id":"x"}"#;
        for content_type in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
        ] {
            let (token, fix) = fix_of(parse(
                Some("id=ignored&lat=9&lon=9"),
                Some(content_type),
                body,
                now(),
            ));
            assert_eq!(
                said(&token, &fix),
                expect("x", 1.5, 2.5, "2025-06-15T13:45:12Z")
            );
        }
    }

    #[test]
    fn timestamps_are_told_apart_as_the_decoder_does() {
        let at = |value: &str| timestamp(value).map(|time| time.to_string());
        // Whole numbers below 2147483647 are seconds, from it milliseconds.
        assert_eq!(at("1377177267").as_deref(), Ok("2013-08-22T13:14:27Z"));
        assert_eq!(at("+1377177267").as_deref(), Ok("2013-08-22T13:14:27Z"));
        assert_eq!(at("2147483646").as_deref(), Ok("2038-01-19T03:14:06Z"));
        assert_eq!(at("2147483647").as_deref(), Ok("1970-01-25T20:31:23.647Z"));
        assert_eq!(
            at("1442068686579").as_deref(),
            Ok("2015-09-12T14:38:06.579Z")
        );
        assert_eq!(at("0").as_deref(), Ok("1970-01-01T00:00:00Z"));
        assert_eq!(at("-86400").as_deref(), Ok("1969-12-31T00:00:00Z"));
        // Text with a T is ISO 8601 with its offset.
        assert_eq!(
            at("2016-01-27T18:55:47Z").as_deref(),
            Ok("2016-01-27T18:55:47Z")
        );
        assert_eq!(
            at("2016-01-27T20:55:47.25+02:00").as_deref(),
            Ok("2016-01-27T18:55:47.250Z")
        );
        // Other text is YYYY-MM-DD HH:MM:SS, UTC.
        assert_eq!(
            at("2014-06-04 09:10:11").as_deref(),
            Ok("2014-06-04T09:10:11Z")
        );
        let refused = Err(OsmAndError::BadParameter {
            name: "timestamp",
            expected: TIMESTAMP_FORMATS,
        });
        for bad in [
            "yesterday",
            "2016-01-27T18:55:47",
            "2016-01-27",
            "2014-06-04 09:10",
            "2014-06-04 09:10:11Z",
            "1.5",
            "99999999999999999999",
        ] {
            assert_eq!(at(bad), refused.clone(), "{bad}");
        }
        assert!(
            query("id=1&lat=1&lon=2&timestamp=noon")
                .expect_err("refused")
                .to_string()
                .starts_with("timestamp must be seconds or milliseconds")
        );
    }

    #[test]
    fn a_time_outside_the_years_taken_still_parses_for_the_checks_to_refuse() {
        // validate.rs refuses these; the parser hands them on.
        let (_, fix) = fix_of(query("id=1&lat=1&lon=2&timestamp=1899-12-31T23%3A59%3A59Z"));
        assert_eq!(fix.at.to_string(), "1899-12-31T23:59:59Z");
        assert!(fix.at.accepted("time").is_err());
        let (_, fix) = fix_of(query("id=1&lat=1&lon=2&timestamp=9223372036854775807"));
        assert_eq!(fix.at, Timestamp::from_micros(i64::MAX));
        assert!(fix.at.accepted("time").is_err());
    }

    #[test]
    fn valid_other_than_true_or_1_holds_nothing() {
        for valid in ["false", "0", "FALSE", "no", "A"] {
            let request = query(&format!("id=1&lat=1&lon=2&valid={valid}")).expect("read");
            assert_eq!(request.report, Report::Nothing("valid=false"), "{valid}");
        }
        for valid in ["true", "TRUE", "1", ""] {
            let (_, fix) = fix_of(query(&format!("id=1&lat=1&lon=2&valid={valid}")));
            assert_eq!((fix.latitude, fix.longitude), (1.0, 2.0), "{valid}");
        }
        // The last value counts.
        let request = query("id=1&lat=1&lon=2&valid=true&valid=false").expect("read");
        assert_eq!(request.report, Report::Nothing("valid=false"));
    }

    #[test]
    fn without_both_coordinates_there_is_no_position() {
        for partial in ["id=1&lat=1", "id=1&lon=2", "id=1&lat=&lon=2", "id=1"] {
            let request = query(partial).expect("read");
            assert_eq!(
                request.report,
                Report::Nothing("no coordinates"),
                "{partial}"
            );
        }
    }

    #[test]
    fn accuracy_is_in_meters_and_hdop_is_not_taken_for_it() {
        let accuracy = |extra: &str| {
            fix_of(query(&format!("id=1&lat=1&lon=2&{extra}")))
                .1
                .accuracy_m
        };
        assert_eq!(accuracy("accuracy=12.5"), Some(12.5));
        assert_eq!(accuracy("accuracy=-1"), None);
        assert_eq!(accuracy("hdop=6.0"), None);
        assert_eq!(accuracy("hdop=6.0&accuracy=%2012%20"), Some(12.0));
    }

    #[test]
    fn malformed_parameters_are_refused_by_name() {
        let refused = |query: &str| self::query(query).expect_err("refused").to_string();
        assert_eq!(refused("id=1&lat=north&lon=2"), "lat must be a number");
        assert_eq!(refused("id=1&lat=1&lon=2e"), "lon must be a number");
        assert_eq!(
            refused("id=1&accuracy=good&lat=1&lon=2"),
            "accuracy must be a number"
        );
        assert_eq!(
            refused("id=1&location=60.0"),
            "location must be a latitude and a longitude, separated by a comma"
        );
        assert_eq!(refused("id=1&location=60.0,"), "location must be a number");
        assert_eq!(
            query("id=1&lat=%zz"),
            Err(OsmAndError::BadEncoding(
                "a % is not followed by two hexadecimal digits"
            ))
        );
        assert_eq!(
            query("id=1&lat=1%4"),
            Err(OsmAndError::BadEncoding(
                "a % is not followed by two hexadecimal digits"
            ))
        );
        assert_eq!(
            query("id=%ff&lat=1&lon=2"),
            Err(OsmAndError::BadEncoding("a %-encoded value is not UTF-8"))
        );
    }

    #[test]
    fn out_of_range_coordinates_are_left_to_the_checks() {
        let (_, fix) = fix_of(query("id=1&lat=91&lon=NaN"));
        assert_eq!(fix.latitude, 91.0);
        assert!(fix.longitude.is_nan());
    }

    #[test]
    fn the_device_is_named_once_and_its_token_kept_as_sent() {
        let (token, _) = fix_of(query("id=a%20b%2Bc%3D&lat=1&lon=2"));
        assert_eq!(token, "a b+c=");
        let (token, _) = fix_of(query("id=7&deviceid=7&lat=1&lon=2"));
        assert_eq!(token, "7");
        let err = query("id=s3cr3t-1&deviceid=s3cr3t-2&lat=1&lon=2").expect_err("refused");
        assert_eq!(err, OsmAndError::SeveralDevices);
        assert!(!err.to_string().contains("s3cr3t"));
        assert_eq!(query("id=&lat=1&lon=2"), Err(OsmAndError::NoDevice));
        assert_eq!(query("lat=1&lon=2&valid=false"), Err(OsmAndError::NoDevice));
        let request = query("id=s3cr3t&lat=1&lon=2").expect("read");
        assert!(!format!("{request:?}").contains("s3cr3t"));
    }

    #[test]
    fn parameters_are_grouped_by_name_as_the_decoder_iterates_them() {
        // Traccar reads all of lat's values (1, then 4) before location's,
        // which was named before lon: location sets the latitude last.
        let (_, fix) = fix_of(query("id=1&lat=1&location=2,3&lat=4&lon=5"));
        assert_eq!((fix.latitude, fix.longitude), (2.0, 5.0));
        // A later value of a name replaces an earlier one.
        let (_, fix) = fix_of(query(
            "id=1&lat=1&lon=2&timestamp=1377177267&timestamp=1504763810",
        ));
        assert_eq!(fix.at.to_string(), "2017-09-07T05:56:50Z");
        // Names without a value, and values without a name, are skipped.
        let (_, fix) = fix_of(query("&&id=1&flag&=7&lat=1&lon=2"));
        assert_eq!((fix.latitude, fix.longitude), (1.0, 2.0));
    }

    #[test]
    fn a_json_body_without_coords_holds_nothing() {
        let request = json(
            r#"{"location":{"timestamp":"2025-06-15T13:45:12.862Z","is_moving":false,"event":"heartbeat"},"device_id":"48241179"}"#,
        )
        .expect("read");
        assert_eq!(request.token.as_str(), "48241179");
        assert_eq!(request.report, Report::Nothing("no coordinates"));
    }

    #[test]
    fn a_json_batch_is_refused_as_the_decoder_does() {
        let err = json(
            r#"{"location":[{"timestamp":"2025-06-15T13:45:12.862Z","coords":{"latitude":1,"longitude":2}}],"device_id":"48241179"}"#,
        )
        .expect_err("refused");
        assert_eq!(
            err.to_string(),
            "location must be one location (a batch of them is not taken), got an array"
        );
    }

    #[test]
    fn a_malformed_json_body_is_refused_by_field() {
        let refused = |body: &str| json(body).expect_err("refused");
        assert_eq!(
            refused("id=1&lat=1"),
            OsmAndError::NotJson { line: 1, column: 1 }
        );
        assert!(matches!(
            refused(r#"{"device_id":"1""#),
            OsmAndError::NotJson { .. }
        ));
        assert_eq!(
            refused(r#"[{"device_id":"1"}]"#).to_string(),
            "the body must be an object, got an array"
        );
        assert_eq!(
            refused(r#"{"location":{"timestamp":"2025-06-15T13:45:12Z"}}"#),
            OsmAndError::NoDevice
        );
        assert_eq!(
            refused(r#"{"location":{"timestamp":"2025-06-15T13:45:12Z"},"device_id":""}"#),
            OsmAndError::NoDevice
        );
        assert_eq!(
            refused(r#"{"location":{"timestamp":"2025-06-15T13:45:12Z"},"device_id":48241179}"#)
                .to_string(),
            "device_id must be a string, got a number"
        );
        assert_eq!(
            refused(r#"{"device_id":"1"}"#),
            OsmAndError::MissingField("location")
        );
        assert_eq!(
            refused(r#"{"device_id":"1","location":{"coords":{"latitude":1,"longitude":2}}}"#),
            OsmAndError::MissingField("location.timestamp")
        );
        assert_eq!(
            refused(r#"{"device_id":"1","location":{"timestamp":1749995112862}}"#).to_string(),
            format!("location.timestamp must be {ISO_TIME}, got a number")
        );
        assert_eq!(
            refused(r#"{"device_id":"1","location":{"timestamp":"2025-06-15 13:45:12"}}"#)
                .to_string(),
            format!("location.timestamp must be {ISO_TIME}, got another string")
        );
        let at = r#""timestamp":"2025-06-15T13:45:12Z""#;
        assert_eq!(
            refused(&format!(
                r#"{{"device_id":"1","location":{{{at},"coords":{{"longitude":2}}}}}}"#
            )),
            OsmAndError::MissingField("location.coords.latitude")
        );
        assert_eq!(
            refused(&format!(
                r#"{{"device_id":"1","location":{{{at},"coords":{{"latitude":1}}}}}}"#
            )),
            OsmAndError::MissingField("location.coords.longitude")
        );
        let why = refused(&format!(
            r#"{{"device_id":"1","location":{{{at},"coords":{{"latitude":"37.42","longitude":2}}}}}}"#
        ))
        .to_string();
        assert_eq!(
            why,
            "location.coords.latitude must be a number, got a string"
        );
        assert!(!why.contains("37.42"));
        assert_eq!(
            refused(&format!(
                r#"{{"device_id":"1","location":{{{at},"coords":{{"latitude":1,"longitude":1e999}}}}}}"#
            ))
            .to_string(),
            "location.coords.longitude must be a number, got a number out of range"
        );
        assert_eq!(
            refused(&format!(
                r#"{{"device_id":"1","location":{{{at},"coords":{{"latitude":1,"longitude":2,"accuracy":"5"}}}}}}"#
            ))
            .to_string(),
            "location.coords.accuracy must be a number, got a string"
        );
        assert_eq!(
            refused(&format!(
                r#"{{"device_id":"1","location":{{{at},"coords":[1,2]}}}}"#
            ))
            .to_string(),
            "location.coords must be an object, got an array"
        );
        assert_eq!(
            refused(r#"{"device_id":"1","device_id":"2","location":{}}"#).to_string(),
            "the body must be an object with each field once, got a field given twice"
        );
    }

    #[test]
    fn a_negative_json_accuracy_is_none() {
        let (_, fix) = fix_of(json(
            r#"{"location":{"timestamp":"2025-06-15T13:45:12Z","coords":{"latitude":1,"longitude":2,"accuracy":-1}},"device_id":"1"}"#,
        ));
        assert_eq!(fix.accuracy_m, None);
    }
}
