//! The edge over HTTP: `POST /api/v2/locations:batch` (a JSON object with
//! a `locations` array, or NDJSON of the same items), and the single
//! location writes of both APIs, `POST /api/locations` (the original's,
//! same body, checks and answer as before) and `POST /api/v2/locations`,
//! all through the same path as gRPC ([`super::edge`]).
//!
//! A batch is read as it is parsed, each item checked when it is reached
//! and none kept unchecked: the body's own buffer, the locations taken (at
//! most `UDACONNECT_INGEST_MAX_BATCH`) and the first hundred rejections are
//! all a request holds, whatever it sends. The item past the limit ends
//! the reading with a 413.
//!
//! A batch is answered 200 when every item was taken, 207 when some were
//! rejected (the first hundred listed with their index, field and problem,
//! all counted), 400 when none was taken; 503 with `Retry-After` when the
//! bus is full or away.
use axum::{
    Json,
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::StreamExt;
use platform::http::{ApiError, ApiJson};
use serde::{
    Deserialize, Deserializer, Serialize,
    de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor},
};
use serde_json::value::RawValue;
use udaconnect_domain::{Invalid, LocationId, LocationRecord, Problem, Timestamp};
use utoipa::ToSchema;

use super::{
    edge::{Edge, Outcome, Refusal},
    items::{Batch, TooMany},
    rejections::Rejection,
    single::{self, Failure},
    validate::{Submitted, Time, shown},
};
use crate::access::Caller;
use crate::api::{
    compat_wire::{CompatLocation, CompatNewLocation},
    wire::{ErrorJson, LocationJson, NewLocationJson},
};

/// The transport label of these handlers' metrics.
const TRANSPORT: &str = "http";
/// The most characters of a parser's message repeated in an answer.
const MESSAGE_CHARS: usize = 300;

/// One location of a batch (no other key is accepted).
#[derive(Debug, ToSchema)]
pub struct BatchItemJson {
    /// Whose.
    pub person_id: i64,
    /// Latitude, degrees (−90 ..= 90).
    pub lat: f64,
    /// Longitude, degrees (−180 ..= 180).
    pub lon: f64,
    /// When (RFC 3339), from 1900 to 2100; at most
    /// `UDACONNECT_INGEST_MAX_FUTURE` ahead.
    #[schema(example = "2020-06-01T10:00:00Z")]
    pub time: String,
    /// Optional idempotency key (at most 128 characters): sent again with
    /// the same location, through any edge, it is answered with the id
    /// first answered and stored once; sent with another location, that
    /// item is rejected (`conflict`).
    pub key: Option<String>,
}

/// A batch of locations (or send NDJSON of the items, with
/// `Content-Type: application/x-ndjson`). No other key is accepted.
#[derive(Debug, ToSchema)]
pub struct BatchJson {
    /// The locations, at most `UDACONNECT_INGEST_MAX_BATCH`.
    pub locations: Vec<BatchItemJson>,
}

/// An item not taken.
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectedJson {
    /// Its position in the batch, from 0.
    pub index: usize,
    /// The field at fault (`location` for the item as a whole).
    pub field: &'static str,
    /// What kind of problem: `missing`, `malformed`, `out_of_range`,
    /// `in_future`, `too_long`, `bad_characters`, `unknown_field`,
    /// `unknown` (no such person), `unchecked` (the person could not be
    /// looked up now: retry), `conflict` (the `key` was sent before with
    /// another location: see `stored_id`).
    pub problem: &'static str,
    /// Why, for a person, naming the field.
    pub reason: String,
    /// With `conflict`: the id of the location the key stands for, as it
    /// was first sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_id: Option<LocationId>,
}

/// What became of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchReplyJson {
    /// Set when nothing was taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How many were taken.
    pub accepted: usize,
    /// The ids of those taken, in batch order.
    pub ids: Vec<LocationId>,
    /// Those not taken, never stored: the first 100 by index.
    pub rejected: Vec<RejectedJson>,
    /// How many were not taken, listed or not.
    pub rejected_count: usize,
}

/// A location refused: the field at fault, as this endpoint names it, and
/// what kind of problem (as in a batch's `rejected`). A body that is not
/// JSON of the expected shape is answered with `error` alone.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvalidJson {
    /// Why, naming the field.
    pub error: String,
    /// The field at fault.
    pub field: &'static str,
    /// What kind of problem.
    pub problem: &'static str,
}

/// Stores many locations at once; answered once they are on the bus.
///
/// **Who may call:** the organiser (for anyone), or a device (for its own person only: one position for another person and nothing of the request is taken, 403).
#[utoipa::path(
    post, path = "/api/v2/locations:batch", tag = "ingest",
    security(("bearer" = [])),
    request_body(content = BatchJson, description = "JSON, or NDJSON of the items (application/x-ndjson)"),
    responses(
        (status = 401, description = "No token (the API is not open), or one unknown or revoked", body = ErrorJson),
        (status = 403, description = "A token that does not allow this", body = ErrorJson),
        (status = 200, description = "Every location taken", body = BatchReplyJson),
        (status = 207, description = "Some taken; the others counted, the first 100 listed with their index and why", body = BatchReplyJson),
        (status = 400, description = "None taken (the first 100 listed), or a body that is not a batch", body = BatchReplyJson),
        (status = 413, description = "More locations or bytes than the edge takes at once", body = ErrorJson),
        (status = 503, description = "The bus is full or away: retry after `Retry-After` seconds", body = ErrorJson),
    )
)]
pub async fn batch(
    State(edge): State<Edge>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(denied) = caller.submits_any() {
        return denied.into_response();
    }
    let limit = edge.settings().ingest_max_body;
    let bytes = match read_body(body, &headers, limit).await {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-ndjson"));
    let mut batch = edge.batch();
    let read = if ndjson {
        read_ndjson(&bytes, &mut batch).map_err(Unread::TooMany)
    } else {
        read_json(&bytes, &mut batch)
    };
    drop(bytes);
    match read {
        Ok(()) => {}
        Err(Unread::TooMany(too_many)) => return too_large(too_many.to_string()),
        Err(Unread::NotABatch(message)) => return ApiError::bad_request(message).into_response(),
    }
    if batch.is_empty() {
        return ApiError::bad_request("the batch holds no location").into_response();
    }
    match edge.ingest(TRANSPORT, caller, batch).await {
        Ok(outcome) => batch_reply(&outcome),
        Err(refusal) => refused(&edge, &refusal),
    }
}

/// The body, in one buffer of at most `limit` bytes (reserved at once
/// when the client says how long it is), or the answer refusing it.
pub(super) async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Vec<u8>, Response> {
    let too_long = || {
        too_large(format!(
            "the body is larger than {limit} bytes (UDACONNECT_INGEST_MAX_BODY)"
        ))
    };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if announced.is_some_and(|length| length > limit) {
        return Err(too_long());
    }
    let mut bytes = Vec::with_capacity(announced.unwrap_or(0));
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|err| {
            ApiError::bad_request(format!("the body could not be read: {err}")).into_response()
        })?;
        if bytes.len() + chunk.len() > limit {
            return Err(too_long());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Why a body was not read to its end.
#[derive(Debug)]
enum Unread {
    /// An item past the limit.
    TooMany(TooMany),
    /// Not a batch at all: the message for the client.
    NotABatch(String),
}

/// Reads `{"locations": [...]}` into `batch`, each item as it is reached,
/// stopping at the item past the limit.
fn read_json(bytes: &[u8], batch: &mut Batch) -> Result<(), Unread> {
    let mut too_many = None;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let read = BatchSeed {
        batch,
        too_many: &mut too_many,
    }
    .deserialize(&mut deserializer)
    .and_then(|()| deserializer.end());
    match (too_many, read) {
        (Some(too_many), _) => Err(Unread::TooMany(too_many)),
        (None, Ok(())) => Ok(()),
        (None, Err(err)) => Err(Unread::NotABatch(format!(
            "invalid JSON body: {}; expected {{\"locations\": [...]}}",
            clipped(&err.to_string())
        ))),
    }
}

/// Reads NDJSON into `batch`, one item per non-blank line, stopping at
/// the item past the limit.
fn read_ndjson(bytes: &[u8], batch: &mut Batch) -> Result<(), TooMany> {
    for line in bytes.split(|byte| *byte == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        batch.push(|| {
            let text = std::str::from_utf8(line)
                .map_err(|_| Invalid::new("location", Problem::Malformed, "must be UTF-8 text"))?;
            let raw = serde_json::from_str::<&RawValue>(text).map_err(|err| {
                Invalid::new(
                    "location",
                    Problem::Malformed,
                    format!("not a line of JSON: {}", clipped(&err.to_string())),
                )
            })?;
            item(raw.get())
        })?;
    }
    Ok(())
}

/// A parser's message, cut short: it may quote what the client sent.
fn clipped(message: &str) -> String {
    match message.char_indices().nth(MESSAGE_CHARS) {
        None => message.to_owned(),
        Some((end, _)) => format!("{}…", &message[..end]),
    }
}

/// The top-level object: `locations` and nothing else.
struct BatchSeed<'a> {
    batch: &'a mut Batch,
    too_many: &'a mut Option<TooMany>,
}

impl<'de> DeserializeSeed<'de> for BatchSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BatchSeed<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an object with a `locations` array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key::<BatchKey>()? {
            let BatchKey::Locations = key;
            if seen {
                return Err(de::Error::duplicate_field("locations"));
            }
            seen = true;
            map.next_value_seed(ItemsSeed {
                batch: &mut *self.batch,
                too_many: &mut *self.too_many,
            })?;
        }
        if seen {
            Ok(())
        } else {
            Err(de::Error::missing_field("locations"))
        }
    }
}

/// The keys of the top-level object.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum BatchKey {
    Locations,
}

/// The `locations` array, each item read, checked and filed as it is
/// reached; never a list of them all.
struct ItemsSeed<'a> {
    batch: &'a mut Batch,
    too_many: &'a mut Option<TooMany>,
}

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an array of locations")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // Each item is first taken as raw JSON (a slice of the body, not a
        // copy), so that a bad one is rejected alone and the others read.
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            if let Err(too_many) = self.batch.push(|| item(raw.get())) {
                *self.too_many = Some(too_many);
                return Err(de::Error::custom(too_many));
            }
        }
        Ok(())
    }
}

/// One item, valid JSON, read as a location: its problem names the field.
fn item(raw: &str) -> Result<Submitted, Invalid> {
    if !raw.starts_with('{') {
        return Err(Invalid::new(
            "location",
            Problem::Malformed,
            format!(
                "must be an object such as {{\"person_id\": 1, \"lat\": 37.55, \"lon\": -122.29, \"time\": \"2020-06-01T10:00:00Z\"}}, got {}",
                shown(raw)
            ),
        ));
    }
    let mut fields = ItemFields::default();
    let mut problem = None;
    let mut deserializer = serde_json::Deserializer::from_str(raw);
    let read = (&mut deserializer).deserialize_map(ItemVisitor {
        fields: &mut fields,
        problem: &mut problem,
    });
    if let Some(problem) = problem {
        return Err(problem);
    }
    read.map_err(|err| Invalid::new("location", Problem::Malformed, clipped(&err.to_string())))?;
    let ItemFields {
        person_id,
        lat,
        lon,
        time,
        key,
    } = fields;
    Ok(Submitted {
        person_id: value("person_id", person_id, "a whole number")?,
        lat: value("lat", lat, "a number")?,
        lon: value("lon", lon, "a number")?,
        time: Time::Text(value("time", time, "a string")?),
        key: match key {
            None => None,
            Some(raw) => value("key", Some(raw), "a string or null")?,
        },
    })
}

/// The raw value of each field of an item, as found.
#[derive(Default)]
struct ItemFields<'a> {
    person_id: Option<&'a RawValue>,
    lat: Option<&'a RawValue>,
    lon: Option<&'a RawValue>,
    time: Option<&'a RawValue>,
    key: Option<&'a RawValue>,
}

/// `raw`, the value of `field`, as a `T` (`kind` says what a `T` is).
fn value<'a, T: Deserialize<'a>>(
    field: &'static str,
    raw: Option<&'a RawValue>,
    kind: &str,
) -> Result<T, Invalid> {
    let raw = raw.ok_or_else(|| Invalid::new(field, Problem::Missing, "is required"))?;
    serde_json::from_str(raw.get()).map_err(|_| {
        Invalid::new(
            field,
            Problem::Malformed,
            format!("must be {kind}, got {}", shown(raw.get())),
        )
    })
}

/// Files each key of an item's object; the first problem ends it (an item
/// is rejected for one reason).
struct ItemVisitor<'a, 'de> {
    fields: &'a mut ItemFields<'de>,
    problem: &'a mut Option<Invalid>,
}

impl<'de> Visitor<'de> for ItemVisitor<'_, 'de> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a location")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<ItemKey>()? {
            let (field, slot) = match key {
                ItemKey::PersonId => ("person_id", &mut self.fields.person_id),
                ItemKey::Lat => ("lat", &mut self.fields.lat),
                ItemKey::Lon => ("lon", &mut self.fields.lon),
                ItemKey::Time => ("time", &mut self.fields.time),
                ItemKey::Key => ("key", &mut self.fields.key),
                ItemKey::Other(name) => {
                    *self.problem = Some(Invalid::new(
                        "location",
                        Problem::UnknownField,
                        format!(
                            "{name} is not a field of a location (person_id, lat, lon, time, key)"
                        ),
                    ));
                    return Err(de::Error::custom("unknown field"));
                }
            };
            if slot.is_some() {
                *self.problem = Some(Invalid::new(field, Problem::Malformed, "is given twice"));
                return Err(de::Error::custom("duplicate field"));
            }
            *slot = Some(map.next_value()?);
        }
        Ok(())
    }
}

/// A key of an item's object.
enum ItemKey {
    PersonId,
    Lat,
    Lon,
    Time,
    Key,
    /// Not a field of a location: the key as the client sent it, quoted
    /// and cut short.
    Other(String),
}

impl<'de> Deserialize<'de> for ItemKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(ItemKeyVisitor)
    }
}

struct ItemKeyVisitor;

impl Visitor<'_> for ItemKeyVisitor {
    type Value = ItemKey;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a field of a location")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<ItemKey, E> {
        Ok(match key {
            "person_id" => ItemKey::PersonId,
            "lat" => ItemKey::Lat,
            "lon" => ItemKey::Lon,
            "time" => ItemKey::Time,
            "key" => ItemKey::Key,
            other => ItemKey::Other(shown(other)),
        })
    }
}

fn batch_reply(outcome: &Outcome) -> Response {
    let status = match (outcome.accepted.is_empty(), outcome.rejected.is_empty()) {
        (false, true) => StatusCode::OK,
        (false, false) => StatusCode::MULTI_STATUS,
        (true, _) => StatusCode::BAD_REQUEST,
    };
    let reply = BatchReplyJson {
        error: outcome
            .accepted
            .is_empty()
            .then(|| "no location was taken".to_owned()),
        accepted: outcome.accepted.len(),
        ids: outcome.ids(),
        rejected: outcome
            .rejected
            .listed()
            .iter()
            .map(rejected_json)
            .collect(),
        rejected_count: outcome.rejected.count(),
    };
    (status, Json(reply)).into_response()
}

fn rejected_json(rejection: &Rejection) -> RejectedJson {
    RejectedJson {
        index: rejection.index,
        field: rejection.invalid.field,
        problem: rejection.invalid.problem.label(),
        reason: rejection.invalid.to_string(),
        stored_id: rejection.stored_id,
    }
}

pub(super) fn too_large(message: String) -> Response {
    ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message,
    }
    .into_response()
}

/// 401 or 403 for a caller who may not submit these positions, else 503
/// with `Retry-After`.
pub(super) fn refused(edge: &Edge, refusal: &Refusal) -> Response {
    if let Refusal::Denied(denied) = refusal {
        return denied.clone().into_response();
    }
    let seconds = edge.settings().ingest_retry_after.as_secs().max(1);
    let mut response = ApiError::unavailable(refusal.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// The answer to a single location not taken.
pub(super) fn failed(edge: &Edge, failure: Failure) -> Response {
    match failure {
        Failure::Invalid(invalid) => (
            StatusCode::BAD_REQUEST,
            Json(InvalidJson {
                error: invalid.to_string(),
                field: invalid.field,
                problem: invalid.problem.label(),
            }),
        )
            .into_response(),
        Failure::Refused(refusal) => refused(edge, &refusal),
    }
}

/// Stores a location, as the original: `latitude` is the point's X (the
/// longitude), `longitude` its Y. Answered with its id once it is on the
/// bus; readable a moment later, once a writer has stored it.
///
/// **Who may call:** the organiser (anyone with `UDACONNECT_OPEN_API`).
#[utoipa::path(
    post, path = "/api/locations", tag = "original",
    security(("bearer" = [])),
    request_body = CompatNewLocation,
    responses(
        (status = 401, description = "No token (the API is not open), or one unknown or revoked", body = ErrorJson),
        (status = 403, description = "A token that does not allow this", body = ErrorJson),
        (status = 200, description = "The location, with its new id", body = CompatLocation),
        (status = 400, description = "A bad field, or a person that does not exist (named, with the kind of problem)", body = InvalidJson),
        (status = 503, description = "The bus is full or away: retry after `Retry-After` seconds", body = ErrorJson),
    )
)]
pub async fn create_compat(
    State(edge): State<Edge>,
    caller: Caller,
    ApiJson(body): ApiJson<CompatNewLocation>,
) -> Response {
    // The original's endpoints are the organiser's (or everyone's, open).
    if let Err(denied) = caller.organiser() {
        return denied.into_response();
    }
    match single::original(&edge, TRANSPORT, caller, &body).await {
        Ok(record) => Json(CompatLocation::fetched(&record.location())).into_response(),
        Err(failure) => failed(&edge, failure),
    }
}

/// Stores one location; answered with its id once it is on the bus.
///
/// **Who may call:** the organiser (for anyone), or a device (for its own person only, else 403).
#[utoipa::path(
    post, path = "/api/v2/locations", tag = "v2",
    security(("bearer" = [])),
    request_body = NewLocationJson,
    responses(
        (status = 401, description = "No token (the API is not open), or one unknown or revoked", body = ErrorJson),
        (status = 403, description = "A token that does not allow this", body = ErrorJson),
        (status = 201, description = "Taken; `Location` names it (readable once written)", body = LocationJson),
        (status = 400, description = "A bad field, or a person that does not exist (named, with the kind of problem)", body = InvalidJson),
        (status = 503, description = "The bus is full or away: retry after `Retry-After` seconds", body = ErrorJson),
    )
)]
pub async fn create_v2(
    State(edge): State<Edge>,
    caller: Caller,
    ApiJson(body): ApiJson<NewLocationJson>,
) -> Response {
    if let Err(denied) = caller.submits_any() {
        return denied.into_response();
    }
    let item = Submitted {
        person_id: i64::from(body.person_id),
        lat: body.lat,
        lon: body.lon,
        time: Time::Parsed(body.time.unwrap_or_else(Timestamp::now)),
        key: None,
    };
    match single::v2(&edge, TRANSPORT, caller, item).await {
        Ok(record) => created(&record),
        Err(failure) => failed(&edge, failure),
    }
}

fn created(record: &LocationRecord) -> Response {
    let path = format!("/api/v2/locations/{}", record.id);
    (
        StatusCode::CREATED,
        [(header::LOCATION, path)],
        Json(LocationJson::from(&record.location())),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn batch(max_items: usize) -> Batch {
        Batch::new(
            Timestamp::from_micros(1_600_000_000_000_000),
            Duration::from_secs(60),
            max_items,
        )
    }

    /// The indexes taken, and each rejection's index, field and problem.
    fn results(batch: &Batch) -> (Vec<usize>, Vec<(usize, &'static str, &'static str)>) {
        let (taken, rejected) = batch.results();
        let rejected = rejected
            .listed()
            .iter()
            .map(|r| (r.index, r.invalid.field, r.invalid.problem.label()))
            .collect();
        (taken, rejected)
    }

    #[test]
    fn a_bad_item_is_named_by_index_field_and_problem_and_the_others_read() {
        let body = br#"{"locations": [
            {"person_id": 1, "lat": 1.0, "lon": 2.0, "time": "2020-06-01T10:00:00Z"},
            {"person_id": 1, "lat": "north", "lon": 2.0, "time": "2020-06-01T10:00:00Z"},
            {"person_id": 1, "lat": 1.0, "lon": 2.0, "time": "2020-06-01T10:00:00Z", "extra": 1},
            [1, 2],
            {"person_id": 1, "lat": 1.0, "time": "2020-06-01T10:00:00Z"},
            {"person_id": 1, "lat": 1.0, "lat": 1.0, "lon": 2.0, "time": "2020-06-01T10:00:00Z"},
            {"person_id": 1.5, "lat": 1.0, "lon": 2.0, "time": "2020-06-01T10:00:00Z"},
            {"person_id": 1, "lat": 1.0, "lon": 2.0, "time": "2020-06-01T10:00:00Z", "key": null},
            {"person_id": 1, "lat": 1.0, "lon": 2.0, "time": "2020-06-01T10:00:00Z", "key": 7}
        ]}"#;
        let mut read = batch(100);
        read_json(body, &mut read).expect("a batch");
        assert_eq!(
            results(&read),
            (
                vec![0, 7],
                vec![
                    (1, "lat", "malformed"),
                    (2, "location", "unknown_field"),
                    (3, "location", "malformed"),
                    (4, "lon", "missing"),
                    (5, "lat", "malformed"),
                    (6, "person_id", "malformed"),
                    (8, "key", "malformed"),
                ]
            )
        );
    }

    #[test]
    fn a_decimal_is_read_as_the_double_nearest_it() {
        // serde_json's default parser reads this one a bit off: a gRPC
        // client sends the nearest double, and the two must be the same
        // location.
        let text = "54.772360933540028";
        let raw = format!(
            r#"{{"person_id": 1, "lat": {text}, "lon": -{text}, "time": "2020-06-01T10:00:00Z"}}"#
        );
        let item = item(&raw).expect("a location");
        let nearest: f64 = text.parse().expect("a number");
        assert_eq!(item.lat.to_bits(), nearest.to_bits());
        assert_eq!(item.lon.to_bits(), (-nearest).to_bits());
    }

    #[test]
    fn a_body_that_is_not_a_batch_is_refused_whole() {
        for body in [
            &b"[1, 2]"[..],
            b"{\"locations\": [], \"other\": 1}",
            b"{\"locations\": [], \"locations\": []}",
            b"{}",
            b"{\"locations\": 5}",
            b"{\"locations\": [1, 2]} trailing",
            b"{\"locations\": [1, 2",
        ] {
            let read = read_json(body, &mut batch(10));
            assert!(
                matches!(read, Err(Unread::NotABatch(_))),
                "{}: {read:?}",
                String::from_utf8_lossy(body)
            );
        }
        let mut empty = batch(10);
        read_json(b"{\"locations\": []}", &mut empty).expect("an empty batch");
        assert!(empty.is_empty());
    }

    #[test]
    fn reading_stops_at_the_item_past_the_limit() {
        let mut read = batch(3);
        let outcome = read_json(b"{\"locations\": [1, 2, 3, 4, not JSON", &mut read);
        assert!(
            matches!(outcome, Err(Unread::TooMany(TooMany { max: 3 }))),
            "{outcome:?}"
        );
        let mut lines = batch(3);
        assert_eq!(
            read_ndjson(b"1\n2\n3\n4\n\xff", &mut lines),
            Err(TooMany { max: 3 })
        );
        assert!(read_json(b"{\"locations\": [1, 2, 3]}", &mut batch(3)).is_ok());
    }

    #[test]
    fn ndjson_skips_blank_lines_and_names_what_is_not_a_line_of_json() {
        let body = b"{\"person_id\": 1, \"lat\": 1.0, \"lon\": 2.0, \"time\": \"2020-06-01T10:00:00Z\", \"key\": \"a\"}\n\n  \n{\"person_id\": 2}\n\xff\xfe\n{\"person_id\": 1} {}\n";
        let mut read = batch(10);
        read_ndjson(body, &mut read).expect("read");
        assert_eq!(
            results(&read),
            (
                vec![0],
                vec![
                    (1, "lat", "missing"),
                    (2, "location", "malformed"),
                    (3, "location", "malformed"),
                ]
            )
        );
    }
}
