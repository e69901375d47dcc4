//! OwnTracks in HTTP mode (the booklet's `tech/http` and `tech/json`
//! pages): who sent a request ([`sender`], from its headers alone, so that
//! it can be authenticated before its body is read) and what its messages
//! hold ([`reports`]).
//!
//! The app POSTs one JSON message per request, or a JSON array of them
//! when it flushes its queue, with HTTP Basic credentials (the user, and
//! the password: the device's token) and the `X-Limit-U` / `X-Limit-D`
//! headers naming the user and the device. A `location` message becomes a
//! [`Fix`] (`lat`, `lon` and `tst` are required, `acc` is its accuracy,
//! every other element is tolerated and not read); every other `_type`
//! (`transition`, `waypoint`, `lwt`, `card`, `status`, `encrypted`, …),
//! an unknown one, and an empty body hold nothing to store.
//!
//! A message that is not one (no `_type`, or a location without its
//! position or time, or with one of the wrong type) refuses the whole
//! request: the app produces none, so such a request comes from something
//! else, and is told why. An array holds at most the number of messages
//! the caller allows (the edge's `UDACONNECT_INGEST_MAX_BATCH`): the
//! message past it refuses the request before it is read, so a request
//! never holds more than that many reports, whatever its size.
//!
//! The key of a location is `owntracks:<tst>`: the app sending a message
//! again sends the same `tst` (its pings carry the time they are sent, so
//! they do not look like one).

use axum::http::{HeaderMap, header};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde::{
    Deserialize, Deserializer,
    de::{self, DeserializeSeed, SeqAccess, Visitor},
};
use serde_json::value::RawValue;

use super::{DeviceToken, Fix, Report, accuracy, from_epoch_seconds, json_kind};

/// The header naming the device.
const DEVICE_HEADER: &str = "x-limit-d";

/// The `_type`s that hold nothing to store, each its own reason.
const OTHER_TYPES: [&str; 12] = [
    "beacon",
    "card",
    "cmd",
    "configuration",
    "encrypted",
    "lwt",
    "request",
    "status",
    "steps",
    "transition",
    "waypoint",
    "waypoints",
];

/// Who sent a request, as its headers say.
#[derive(Debug, Clone, PartialEq)]
pub struct Sender {
    /// The user of the Basic credentials.
    pub user: String,
    /// The device, as `X-Limit-D` names it, if it does.
    pub device: Option<String>,
    /// The password of the Basic credentials: the device's token.
    pub token: DeviceToken,
}

/// Why a request is not read: each a message for the app's user, never
/// repeating the credentials or a position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnTracksError {
    /// No credentials at all.
    #[error(
        "the request has no `Authorization: Basic` header; OwnTracks sends the user and the device's password with HTTP Basic authentication"
    )]
    NoCredentials,
    /// Credentials of another scheme.
    #[error("the Authorization header does not hold `Basic` credentials")]
    NotBasic,
    /// Basic credentials that are not base64.
    #[error("the Basic credentials are not base64")]
    CredentialsNotBase64,
    /// Basic credentials that are not text.
    #[error("the Basic credentials are not UTF-8 text")]
    CredentialsNotUtf8,
    /// Basic credentials without a password.
    #[error("the Basic credentials hold no password (`user:password`)")]
    NoPassword,
    /// A header with bytes that are not text.
    #[error("the {0} header is not text")]
    HeaderNotText(&'static str),
    /// A body that is not JSON.
    #[error("the body is not JSON (line {line}, column {column})")]
    NotJson {
        /// Where it stops being JSON.
        line: usize,
        /// Where it stops being JSON.
        column: usize,
    },
    /// JSON that is neither a message nor an array.
    #[error("the body must be an OwnTracks message (a JSON object) or an array of them")]
    NotMessages,
    /// An array holding more messages than the caller allows.
    #[error(
        "the request holds more than {max} messages; at most {max} are taken at once (UDACONNECT_INGEST_MAX_BATCH)"
    )]
    TooMany {
        /// The limit.
        max: usize,
    },
    /// A message that is not an OwnTracks message.
    #[error("{}{why}", place(*.index))]
    BadMessage {
        /// Its place in the array, from 0 (none for a single message).
        index: Option<usize>,
        /// What is wrong with it.
        why: String,
    },
}

/// Where a bad message is, as its error starts.
fn place(index: Option<usize>) -> String {
    index.map_or_else(
        || "the message: ".to_owned(),
        |index| format!("message {index}: "),
    )
}

/// Who sent a request: its Basic credentials and `X-Limit-D`, read from
/// `headers` alone, so that the sender is known before the body is read.
pub fn sender(headers: &HeaderMap) -> Result<Sender, OwnTracksError> {
    let (user, token) = credentials(headers)?;
    let device = headers
        .get(DEVICE_HEADER)
        .map(|value| {
            value
                .to_str()
                .map_err(|_| OwnTracksError::HeaderNotText("X-Limit-D"))
        })
        .transpose()?
        .filter(|device| !device.is_empty())
        .map(str::to_owned);
    Ok(Sender {
        user,
        device,
        token,
    })
}

/// The user and the password of the Basic credentials (RFC 7617: the
/// user ends at the first colon; the password may hold colons).
fn credentials(headers: &HeaderMap) -> Result<(String, DeviceToken), OwnTracksError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(OwnTracksError::NoCredentials)?
        .to_str()
        .map_err(|_| OwnTracksError::HeaderNotText("Authorization"))?;
    let (scheme, encoded) = value
        .trim()
        .split_once(' ')
        .ok_or(OwnTracksError::NotBasic)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OwnTracksError::NotBasic);
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| OwnTracksError::CredentialsNotBase64)?;
    let text = String::from_utf8(decoded).map_err(|_| OwnTracksError::CredentialsNotUtf8)?;
    match text.split_once(':') {
        Some((user, password)) if !password.is_empty() => {
            Ok((user.to_owned(), DeviceToken(password.to_owned())))
        }
        _ => Err(OwnTracksError::NoPassword),
    }
}

/// What the messages of `body` (already bounded by the caller) hold, in
/// the order sent (one for a single message or an empty body, none for an
/// empty array), at most `max` of them.
pub fn reports(body: &[u8], max: usize) -> Result<Vec<Report>, OwnTracksError> {
    match body.iter().find(|byte| !byte.is_ascii_whitespace()) {
        None => Ok(vec![Report::Nothing("empty body")]),
        Some(b'[') => array(body, max),
        Some(_) => {
            let raw: &RawValue = serde_json::from_slice(body).map_err(|err| not_json(&err))?;
            if !raw.get().starts_with('{') {
                return Err(OwnTracksError::NotMessages);
            }
            let report =
                message(raw).map_err(|why| OwnTracksError::BadMessage { index: None, why })?;
            Ok(vec![report])
        }
    }
}

/// Where `err` found the body not to be JSON (never what it found).
fn not_json(err: &serde_json::Error) -> OwnTracksError {
    OwnTracksError::NotJson {
        line: err.line(),
        column: err.column(),
    }
}

/// An array of messages, each read as it is reached, refused at the one
/// past `max`.
fn array(body: &[u8], max: usize) -> Result<Vec<Report>, OwnTracksError> {
    let mut reports = Vec::new();
    let mut failure = None;
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let read = MessagesSeed {
        max,
        reports: &mut reports,
        failure: &mut failure,
    }
    .deserialize(&mut deserializer)
    .and_then(|()| deserializer.end());
    match (failure, read) {
        (Some(failure), _) => Err(failure),
        (None, Ok(())) => Ok(reports),
        (None, Err(err)) => Err(not_json(&err)),
    }
}

/// The array: each message read when it is reached; the first failure
/// kept in `failure` and the reading stopped.
struct MessagesSeed<'a> {
    max: usize,
    reports: &'a mut Vec<Report>,
    failure: &'a mut Option<OwnTracksError>,
}

impl<'de> DeserializeSeed<'de> for MessagesSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for MessagesSeed<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an array of OwnTracks messages")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            let index = self.reports.len();
            let read = if index >= self.max {
                Err(OwnTracksError::TooMany { max: self.max })
            } else {
                message(raw).map_err(|why| OwnTracksError::BadMessage {
                    index: Some(index),
                    why,
                })
            };
            match read {
                Ok(report) => self.reports.push(report),
                Err(failure) => {
                    *self.failure = Some(failure);
                    return Err(de::Error::custom("a message is refused"));
                }
            }
        }
        Ok(())
    }
}

/// The elements of a message that are read; the others are tolerated.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(rename = "_type", borrow)]
    kind: Option<&'a RawValue>,
    #[serde(borrow)]
    lat: Option<&'a RawValue>,
    #[serde(borrow)]
    lon: Option<&'a RawValue>,
    #[serde(borrow)]
    tst: Option<&'a RawValue>,
    #[serde(borrow)]
    acc: Option<&'a RawValue>,
}

/// What one message holds, or what is wrong with it.
fn message(raw: &RawValue) -> Result<Report, String> {
    if !raw.get().starts_with('{') {
        return Err(format!("must be a JSON object, got {}", json_kind(raw)));
    }
    let message: Message<'_> = serde_json::from_str(raw.get())
        .map_err(|err| format!("is not an OwnTracks message ({err})"))?;
    let kind = message.kind.ok_or("has no _type")?;
    let kind: String = serde_json::from_str(kind.get())
        .map_err(|_| format!("_type must be a string, got {}", json_kind(kind)))?;
    if kind != "location" {
        return Ok(Report::Nothing(
            OTHER_TYPES
                .iter()
                .find(|other| **other == kind)
                .copied()
                .unwrap_or("unknown _type"),
        ));
    }
    let latitude = number("lat", required("lat", message.lat)?)?;
    let longitude = number("lon", required("lon", message.lon)?)?;
    let tst = required("tst", message.tst)?;
    let seconds: i64 = serde_json::from_str(tst.get()).map_err(|_| {
        format!(
            "tst must be a whole number of seconds since 1970-01-01, got {}",
            kind_of_number(tst, "a fraction or a number out of range")
        )
    })?;
    let accuracy_m = match message.acc {
        None => None,
        Some(acc) => accuracy(number("acc", acc)?),
    };
    Ok(Report::Location(Fix {
        latitude,
        longitude,
        at: from_epoch_seconds(seconds),
        accuracy_m,
        key: format!("owntracks:{seconds}"),
    }))
}

/// `raw`, the value of `element`, which a location must have.
fn required<'a>(element: &str, raw: Option<&'a RawValue>) -> Result<&'a RawValue, String> {
    raw.ok_or_else(|| format!("a location must have {element}"))
}

/// `raw`, the value of `element`, as a number.
fn number(element: &str, raw: &RawValue) -> Result<f64, String> {
    serde_json::from_str(raw.get()).map_err(|_| {
        format!(
            "{element} must be a number, got {}",
            kind_of_number(raw, "a number out of range")
        )
    })
}

/// What `raw` is, saying `number` of a number that was refused.
fn kind_of_number(raw: &RawValue, number: &'static str) -> &'static str {
    match json_kind(raw) {
        "a number" => number,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use udaconnect_domain::Timestamp;

    use super::*;

    const MAX: usize = 10;
    const TOKEN: &str = "s3cr3t:with-colon";

    /// The app's headers: Basic credentials of `jane` and the token, and
    /// `X-Limit-U` / `X-Limit-D`.
    fn app_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        let credentials = STANDARD.encode(format!("jane:{TOKEN}"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {credentials}")).expect("a header"),
        );
        headers.insert("x-limit-u", HeaderValue::from_static("jane"));
        headers.insert("x-limit-d", HeaderValue::from_static("phone"));
        headers
    }

    fn read(body: &str) -> Result<Vec<Report>, OwnTracksError> {
        reports(body.as_bytes(), MAX)
    }

    fn one(body: &str) -> Report {
        let reports = read(body).expect("read");
        assert_eq!(reports.len(), 1, "{reports:?}");
        reports.into_iter().next().expect("one report")
    }

    fn location(body: &str) -> Fix {
        match one(body) {
            Report::Location(fix) => fix,
            other => panic!("not a location: {other:?}"),
        }
    }

    fn refused(body: &str) -> String {
        let err = read(body).expect_err("refused");
        assert!(matches!(err, OwnTracksError::BadMessage { .. }), "{err:?}");
        err.to_string()
    }

    fn at(seconds: i64) -> Timestamp {
        from_epoch_seconds(seconds)
    }

    #[test]
    fn the_booklets_traccar_location_is_a_fix() {
        let fix = location(
            r#"{"lon":2.29513,"lat":48.85833,"_type":"location","tst":1497476456, "tid":"JJ"}"#,
        );
        assert_eq!(
            fix,
            Fix {
                latitude: 48.85833,
                longitude: 2.29513,
                at: at(1_497_476_456),
                accuracy_m: None,
                key: "owntracks:1497476456".to_owned(),
            }
        );
        assert_eq!(fix.at.to_string(), "2017-06-14T21:40:56Z");
    }

    #[test]
    fn the_booklets_full_location_is_a_fix_with_its_accuracy() {
        let fix = location(
            r#"{
              "cog": 271,
              "batt": 41,
              "lon": 2.29513,
              "acc": 5,
              "vel": 61,
              "vac": 21,
              "lat": 48.85833,
              "t": "u",
              "tst": 1497508651,
              "alt": 167,
              "_type": "location",
              "topic": "owntracks/jane/iphone",
              "p": 71,
              "tid": "JJ"
            }"#,
        );
        assert_eq!(
            fix,
            Fix {
                latitude: 48.85833,
                longitude: 2.29513,
                at: at(1_497_508_651),
                accuracy_m: Some(5.0),
                key: "owntracks:1497508651".to_owned(),
            }
        );
        assert_eq!(fix.at.to_string(), "2017-06-15T06:37:31Z");
    }

    #[test]
    fn the_booklets_greenwich_location_is_a_fix() {
        // The booklet's Greenwich example, its placeholders made numbers.
        let fix = location(
            r#"{"_type": "location", "alt": 160, "cog": 0, "dist": 189, "trip": 279122,
                "lat": 45.46427, "lon": 9.18951, "vel": 12, "t": "t", "tst": 1406803894}"#,
        );
        assert_eq!((fix.latitude, fix.longitude), (45.46427, 9.18951));
        assert_eq!(fix.at.to_string(), "2014-07-31T10:51:34Z");
        assert_eq!(fix.accuracy_m, None);
    }

    #[test]
    fn a_current_apps_location_with_every_element_is_a_fix() {
        // The elements the JSON page lists for a location today.
        let fix = location(
            r#"{"_type":"location","BSSID":"b0:f2:8:45:94:33","SSID":"Home Wifi","acc":14,
                "alt":27,"batt":63,"bs":1,"cog":12,"conn":"w","created_at":1702299604,
                "inregions":["Home","Office"],"inrids":["5ea0b1","7da3c9"],"lat":52.51633,
                "lon":13.37779,"m":1,"p":101.372,"rad":50,"t":"p","tid":"ja",
                "topic":"owntracks/jane/phone","tst":1702299600,"vac":3,"vel":0}"#,
        );
        assert_eq!((fix.latitude, fix.longitude), (52.51633, 13.37779));
        assert_eq!(fix.at, at(1_702_299_600));
        assert_eq!(fix.accuracy_m, Some(14.0));
        assert_eq!(fix.key, "owntracks:1702299600");
    }

    #[test]
    fn the_booklets_other_messages_hold_nothing() {
        let cases = [
            (
                r#"{"_type": "transition", "wtst": 1425042603, "lat": 12.34, "lon": 44.5,
                    "tst": 1427634603, "acc": 130, "tid": "JP", "event": "enter",
                    "desc": "my Indian restaurant", "t": "b"}"#,
                "transition",
            ),
            (
                r#"{"_type": "waypoint", "desc": "Free text entered on device",
                    "lat": 48.85833, "lon": 2.29513, "rad": 100, "tst": 1425042603,
                    "shared": true, "tid": "XX", "uuid": "YYYYYYYYYYYYYYYYY",
                    "major": 17, "minor": 1}"#,
                "waypoint",
            ),
            (r#"{"_type":"lwt","tst": 1380738247}"#, "lwt"),
            (
                r#"{"_type": "card", "name": "Jane Jolie",
                    "face": "iV1CFEVkMhmCIKBUKh3 ... ghAAAAABJRU5ErkJggg=="}"#,
                "card",
            ),
            (
                // The status message's elements as the JSON page lists them.
                r#"{"_type":"status","iOS":{"version":"17.3.5","locale":"en_GB",
                    "localeUsesMetricSystem":true,"altimeter":{"authorizationStatus":
                    "authorized","isRelativeAltitudeAvailable":true},"locationManager":
                    {"authorizationStatus":"authorizedAlways","accuracyAuthorization":
                    "fullAccuracy"},"backgroundRefreshStatus":"available"}}"#,
                "status",
            ),
            (r#"{"_type":"cmd","action":"reportLocation"}"#, "cmd"),
            (
                r#"{"_type":"steps","tst":1400000000,"steps":1234,"from":1399990000,"to":1400000000}"#,
                "steps",
            ),
            (
                r#"{"_type":"beacon","desc":"Kitchen","uuid":"CA271EAE-5FA8-4E80-8F08-2A302A95A959",
                    "major":1,"minor":1,"tst":1400000000,"acc":1,"rssi":-60,"prox":1}"#,
                "beacon",
            ),
            (
                r#"{"_type":"encrypted","data":"bXkgc2VjcmV0IGxvY2F0aW9u"}"#,
                "encrypted",
            ),
            (
                r#"{"_type":"configuration","mode":3,"url":"https://example.com/pub","waypoints":[]}"#,
                "configuration",
            ),
            (
                r#"{"_type":"waypoints","_creator":"jane","waypoints":[{"_type":"waypoint",
                    "desc":"Home","lat":48.85833,"lon":2.29513,"rad":100,"tst":1425042603}]}"#,
                "waypoints",
            ),
            (r#"{"_type":"request","request":"tour"}"#, "request"),
            (
                r#"{"_type":"frobnicate","lat":1.0,"lon":2.0,"tst":3}"#,
                "unknown _type",
            ),
        ];
        for (body, why) in cases {
            assert_eq!(one(body), Report::Nothing(why), "{body}");
        }
    }

    #[test]
    fn an_empty_body_holds_nothing_and_an_empty_array_no_message() {
        assert_eq!(one(""), Report::Nothing("empty body"));
        assert_eq!(one(" \r\n\t"), Report::Nothing("empty body"));
        assert_eq!(read("[]").expect("read"), []);
    }

    #[test]
    fn an_array_is_read_message_by_message() {
        let reports = read(
            r#"[{"_type":"location","lat":1.5,"lon":2.5,"tst":1600000000,"acc":-1},
                {"_type":"lwt","tst":1600000001},
                {"_type":"location","lat":-3,"lon":4,"tst":1600000002,"acc":7.5}]"#,
        )
        .expect("read");
        assert_eq!(
            reports,
            [
                Report::Location(Fix {
                    latitude: 1.5,
                    longitude: 2.5,
                    at: at(1_600_000_000),
                    accuracy_m: None,
                    key: "owntracks:1600000000".to_owned(),
                }),
                Report::Nothing("lwt"),
                Report::Location(Fix {
                    latitude: -3.0,
                    longitude: 4.0,
                    at: at(1_600_000_002),
                    accuracy_m: Some(7.5),
                    key: "owntracks:1600000002".to_owned(),
                }),
            ]
        );
    }

    #[test]
    fn the_message_past_the_limit_refuses_the_array() {
        let message = r#"{"_type":"lwt","tst":1}"#;
        let at_limit = format!("[{}]", [message; MAX].join(","));
        assert_eq!(read(&at_limit).expect("at the limit").len(), MAX);
        // The message past the limit refuses the request before it is read:
        // a bad one is not looked at.
        let past = format!("[{},{{\"_type\":\"location\"}}]", [message; MAX].join(","));
        assert_eq!(read(&past), Err(OwnTracksError::TooMany { max: MAX }));
        assert!(
            OwnTracksError::TooMany { max: MAX }
                .to_string()
                .contains("at most 10")
        );
    }

    #[test]
    fn a_location_without_its_position_or_time_is_refused() {
        // The booklet's second Traccar example has no tst.
        let why = refused(
            r#"{"lon":2.29513,"lat":48.85833,"_type":"location","topic":"owntracks/jane/phone", "tid": "JJ"}"#,
        );
        assert_eq!(why, "the message: a location must have tst");
        assert_eq!(
            refused(r#"{"_type":"location","lon":2.0,"tst":1}"#),
            "the message: a location must have lat"
        );
        assert_eq!(
            refused(r#"{"_type":"location","lat":null,"lon":2.0,"tst":1}"#),
            "the message: a location must have lat"
        );
        assert_eq!(
            refused(r#"{"_type":"location","lat":1.0,"tst":1}"#),
            "the message: a location must have lon"
        );
    }

    #[test]
    fn elements_of_the_wrong_type_are_refused_without_repeating_them() {
        // Before version 0.5.11 (Android) and 8.0 (iOS) the apps sent
        // numbers as strings; those are refused, and named by kind only.
        let why = refused(r#"{"_type":"location","lat":"48.85833","lon":2.0,"tst":1}"#);
        assert_eq!(why, "the message: lat must be a number, got a string");
        assert!(!why.contains("48.85"));
        assert_eq!(
            refused(r#"{"_type":"location","lat":1.0,"lon":[2.0],"tst":1}"#),
            "the message: lon must be a number, got an array"
        );
        assert_eq!(
            refused(r#"{"_type":"location","lat":1.0,"lon":1e400,"tst":1}"#),
            "the message: lon must be a number, got a number out of range"
        );
        assert_eq!(
            refused(r#"{"_type":"location","lat":1.0,"lon":2.0,"tst":"1497476456"}"#),
            "the message: tst must be a whole number of seconds since 1970-01-01, got a string"
        );
        assert_eq!(
            refused(r#"{"_type":"location","lat":1.0,"lon":2.0,"tst":1497476456.5}"#),
            "the message: tst must be a whole number of seconds since 1970-01-01, got a fraction or a number out of range"
        );
        assert_eq!(
            refused(r#"{"_type":"location","lat":1.0,"lon":2.0,"tst":1,"acc":"5"}"#),
            "the message: acc must be a number, got a string"
        );
        assert_eq!(
            refused(r#"{"_type":5,"lat":1.0,"lon":2.0,"tst":1}"#),
            "the message: _type must be a string, got a number"
        );
        assert_eq!(
            refused(r#"{"lat":1.0,"lon":2.0,"tst":1}"#),
            "the message: has no _type"
        );
        assert!(
            refused(r#"{"_type":"location","lat":1.0,"lat":3.0,"lon":2.0,"tst":1}"#)
                .contains("duplicate field `lat`")
        );
    }

    #[test]
    fn a_bad_message_of_an_array_is_named_by_its_place() {
        let err = read(
            r#"[{"_type":"lwt","tst":1},{"_type":"location","lat":1.0,"tst":1},{"_type":"lwt"}]"#,
        )
        .expect_err("refused");
        assert_eq!(err.to_string(), "message 1: a location must have lon");
        let err = read(r#"[{"_type":"lwt","tst":1}, 7]"#).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "message 1: must be a JSON object, got a number"
        );
    }

    #[test]
    fn a_body_that_is_not_messages_is_refused() {
        assert_eq!(
            read("_type=location"),
            Err(OwnTracksError::NotJson { line: 1, column: 1 })
        );
        assert!(matches!(
            read(r#"{"_type":"location","lat":1.0"#),
            Err(OwnTracksError::NotJson { .. })
        ));
        assert!(matches!(
            read(r#"[{"_type":"lwt","tst":1}"#),
            Err(OwnTracksError::NotJson { .. })
        ));
        assert!(matches!(
            read(r#"{"_type":"lwt"} {"_type":"lwt"}"#),
            Err(OwnTracksError::NotJson { .. })
        ));
        assert_eq!(read("42"), Err(OwnTracksError::NotMessages));
        assert_eq!(read(r#""location""#), Err(OwnTracksError::NotMessages));
        let not_utf8 = reports(b"{\"_type\":\"\xff\"}", MAX);
        assert!(matches!(not_utf8, Err(OwnTracksError::NotJson { .. })));
    }

    #[test]
    fn a_time_outside_the_years_taken_still_parses_for_the_checks_to_refuse() {
        // validate.rs refuses these; the parser hands them on.
        let fix = location(r#"{"_type":"location","lat":1.0,"lon":2.0,"tst":-2208988801}"#);
        assert_eq!(fix.at.to_string(), "1899-12-31T23:59:59Z");
        let fix = location(r#"{"_type":"location","lat":1.0,"lon":2.0,"tst":9223372036854775807}"#);
        assert_eq!(fix.at, Timestamp::from_micros(i64::MAX));
        assert!(fix.at.accepted("time").is_err());
    }

    #[test]
    fn the_credentials_and_the_device_are_read_from_the_headers() {
        let request = sender(&app_headers()).expect("read");
        assert_eq!(request.user, "jane");
        assert_eq!(request.device.as_deref(), Some("phone"));
        assert_eq!(request.token.as_str(), TOKEN);
        assert!(!format!("{request:?}").contains("s3cr3t"));

        let mut headers = app_headers();
        headers.remove("x-limit-d");
        let credentials = STANDARD.encode("jane:token");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("basic  {credentials} ")).expect("a header"),
        );
        let request = sender(&headers).expect("read");
        assert_eq!(request.device, None);
        assert_eq!(request.token.as_str(), "token");
    }

    #[test]
    fn bad_credentials_are_refused_without_repeating_them() {
        let with = |authorization: Option<&str>| {
            let mut headers = app_headers();
            headers.remove(header::AUTHORIZATION);
            if let Some(value) = authorization {
                headers.insert(
                    header::AUTHORIZATION,
                    HeaderValue::from_str(value).expect("a header"),
                );
            }
            sender(&headers).expect_err("refused")
        };
        let basic = |credentials: &[u8]| format!("Basic {}", STANDARD.encode(credentials));
        assert_eq!(with(None), OwnTracksError::NoCredentials);
        assert_eq!(with(Some("Bearer s3cr3t")), OwnTracksError::NotBasic);
        assert_eq!(with(Some("Basic")), OwnTracksError::NotBasic);
        assert_eq!(
            with(Some("Basic s3cr3t!!")),
            OwnTracksError::CredentialsNotBase64
        );
        assert_eq!(
            with(Some(&basic(b"jane:s3cr3t\xff"))),
            OwnTracksError::CredentialsNotUtf8
        );
        assert_eq!(
            with(Some(&basic(b"jane-s3cr3t"))),
            OwnTracksError::NoPassword
        );
        assert_eq!(with(Some(&basic(b"jane:"))), OwnTracksError::NoPassword);
        let mut headers = app_headers();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(b"Basic \xffs3cr3t").expect("a header"),
        );
        assert_eq!(
            sender(&headers),
            Err(OwnTracksError::HeaderNotText("Authorization"))
        );
        let mut headers = app_headers();
        headers.insert(
            "x-limit-d",
            HeaderValue::from_bytes(b"ph\xffone").expect("a header"),
        );
        assert_eq!(
            sender(&headers),
            Err(OwnTracksError::HeaderNotText("X-Limit-D"))
        );
        for err in [
            with(Some("Basic s3cr3t!!")),
            with(Some(&basic(b"jane-s3cr3t"))),
            with(Some(&basic(b"jane:s3cr3t\xff"))),
        ] {
            assert!(!err.to_string().contains("s3cr3t"), "{err}");
        }
    }
}
