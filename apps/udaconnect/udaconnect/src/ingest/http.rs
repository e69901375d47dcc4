//! The edge over HTTP: `POST /api/v2/locations:batch` (a JSON object with
//! a `locations` array, or NDJSON of the same items), and the single
//! location writes of both APIs, `POST /api/locations` (the original's,
//! same body, checks and answer as before) and `POST /api/v2/locations`,
//! all through the same path as gRPC ([`super::edge`]).
//!
//! A batch is answered 200 when every item was taken, 207 when some were
//! rejected (each listed with its index and why), 400 when none was
//! taken; 503 with `Retry-After` when the bus is full or away.

use axum::{
    Json,
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use platform::http::{ApiError, ApiJson};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use udaconnect_domain::{LocationId, Timestamp};
use utoipa::ToSchema;

use super::{
    edge::{Edge, Item, Outcome, Refusal, Rejection},
    validate::{Submitted, Time},
};
use crate::api::{
    compat::compat_location,
    compat_wire::{CompatLocation, CompatNewLocation},
    wire::{ErrorJson, LocationJson, NewLocationJson},
};

/// The transport label of these handlers' metrics.
const TRANSPORT: &str = "http";

/// One location of a batch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchItemJson {
    /// Whose.
    pub person_id: i64,
    /// Latitude, degrees (−90 ..= 90).
    pub lat: f64,
    /// Longitude, degrees (−180 ..= 180).
    pub lon: f64,
    /// When (RFC 3339); at most `UDACONNECT_INGEST_MAX_FUTURE` ahead.
    #[schema(example = "2020-06-01T10:00:00Z")]
    pub time: String,
    /// Optional idempotency key (at most 128 characters): sent again, the
    /// location is stored once.
    #[serde(default)]
    pub key: Option<String>,
}

/// A batch of locations (or send NDJSON of the items, with
/// `Content-Type: application/x-ndjson`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchJson {
    /// The locations.
    pub locations: Vec<BatchItemJson>,
}

/// The same, items left unread, to find which of them is bad.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LooseBatch<'a> {
    #[serde(borrow)]
    locations: Vec<&'a RawValue>,
}

/// An item not taken.
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectedJson {
    /// Its position in the batch, from 0.
    pub index: usize,
    /// Why, naming the field.
    pub reason: String,
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
    /// Those not taken, never stored.
    pub rejected: Vec<RejectedJson>,
}

/// Stores many locations at once; answered once they are on the bus.
#[utoipa::path(
    post, path = "/api/v2/locations:batch", tag = "ingest",
    request_body(content = BatchJson, description = "JSON, or NDJSON of the items (application/x-ndjson)"),
    responses(
        (status = 200, description = "Every location taken", body = BatchReplyJson),
        (status = 207, description = "Some taken; the others listed with their index and why", body = BatchReplyJson),
        (status = 400, description = "None taken (each listed), or a body that is not a batch", body = BatchReplyJson),
        (status = 413, description = "More locations or bytes than the edge takes at once", body = ErrorJson),
        (status = 503, description = "The bus is full or away: retry after `Retry-After` seconds", body = ErrorJson),
    )
)]
pub async fn batch(State(edge): State<Edge>, headers: HeaderMap, body: Body) -> Response {
    let settings = edge.settings();
    let bytes = match axum::body::to_bytes(body, settings.ingest_max_body).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return too_large(format!(
                "the body is larger than {} bytes (UDACONNECT_INGEST_MAX_BODY)",
                settings.ingest_max_body
            ));
        }
    };
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-ndjson"));
    let items = match if ndjson {
        Ok(ndjson_items(&bytes))
    } else {
        json_items(&bytes)
    } {
        Ok(items) => items,
        Err(err) => return err.into_response(),
    };
    if items.is_empty() {
        return ApiError::bad_request("the batch holds no location").into_response();
    }
    if items.len() > settings.ingest_max_batch {
        return too_large(format!(
            "the batch holds {} locations; at most {} are taken at once (UDACONNECT_INGEST_MAX_BATCH)",
            items.len(),
            settings.ingest_max_batch
        ));
    }
    match edge.ingest(TRANSPORT, items).await {
        Ok(outcome) => batch_reply(&outcome),
        Err(refusal) => retry_later(&edge, &refusal),
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
        rejected: outcome.rejected.iter().map(rejected_json).collect(),
    };
    (status, Json(reply)).into_response()
}

fn rejected_json(rejection: &Rejection) -> RejectedJson {
    RejectedJson {
        index: rejection.index,
        reason: rejection.reason.clone(),
    }
}

fn submitted(item: BatchItemJson) -> Submitted {
    Submitted {
        person_id: item.person_id,
        lat: item.lat,
        lon: item.lon,
        time: Time::Text(item.time),
        key: item.key,
    }
}

/// One item read on its own, its problem naming the field.
fn item(text: &str) -> Item {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, BatchItemJson>(&mut deserializer)
        .map(submitted)
        .map_err(|err| {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if path == "." {
                format!("not a location: {inner}")
            } else {
                format!("{path}: {inner}")
            }
        })
}

/// The items of a JSON batch: all at once, or (when one is bad) each on
/// its own, so that only the bad ones are rejected.
fn json_items(bytes: &[u8]) -> Result<Vec<Item>, ApiError> {
    if let Ok(batch) = serde_json::from_slice::<BatchJson>(bytes) {
        return Ok(batch.locations.into_iter().map(submitted).map(Ok).collect());
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::bad_request("invalid JSON body: not UTF-8"))?;
    let loose: LooseBatch = serde_json::from_str(text).map_err(|err| {
        ApiError::bad_request(format!(
            "invalid JSON body: {err}; expected {{\"locations\": [...]}}"
        ))
    })?;
    Ok(loose.locations.iter().map(|raw| item(raw.get())).collect())
}

/// The items of an NDJSON batch: one per non-blank line.
fn ndjson_items(bytes: &[u8]) -> Vec<Item> {
    bytes
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .map(|line| match serde_json::from_slice::<BatchItemJson>(line) {
            Ok(parsed) => Ok(submitted(parsed)),
            Err(_) => match std::str::from_utf8(line) {
                Ok(text) => item(text),
                Err(_) => Err("not a location: not UTF-8".to_owned()),
            },
        })
        .collect()
}

fn too_large(message: String) -> Response {
    ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message,
    }
    .into_response()
}

/// 503 with `Retry-After`.
fn retry_later(edge: &Edge, refusal: &Refusal) -> Response {
    let seconds = edge.settings().ingest_retry_after.as_secs().max(1);
    let mut response = ApiError::unavailable(refusal.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// One location through the edge: the record taken, or the answer.
async fn one(edge: &Edge, item: Submitted) -> Result<udaconnect_domain::LocationRecord, Response> {
    match edge.ingest(TRANSPORT, vec![Ok(item)]).await {
        Ok(outcome) => match (
            outcome.accepted.into_iter().next(),
            outcome.rejected.first(),
        ) {
            (Some(record), _) => Ok(record),
            (None, Some(rejection)) => {
                Err(ApiError::bad_request(rejection.reason.clone()).into_response())
            }
            (None, None) => Err(ApiError::bad_request("nothing to store").into_response()),
        },
        Err(refusal) => Err(retry_later(edge, &refusal)),
    }
}

/// Stores a location, as the original: `latitude` is the point's X (the
/// longitude), `longitude` its Y. Answered with its id once it is on the
/// bus; readable a moment later, once a writer has stored it.
#[utoipa::path(
    post, path = "/api/locations", tag = "original",
    request_body = CompatNewLocation,
    responses(
        (status = 200, description = "The location, with its new id", body = CompatLocation),
        (status = 400, description = "A bad field, or a person that does not exist", body = ErrorJson),
        (status = 503, description = "The bus is full or away: retry after `Retry-After` seconds", body = ErrorJson),
    )
)]
pub async fn create_compat(
    State(edge): State<Edge>,
    ApiJson(body): ApiJson<CompatNewLocation>,
) -> Response {
    let location = match compat_location(&body) {
        Ok(location) => location,
        Err(err) => return err.into_response(),
    };
    let item = Submitted {
        person_id: i64::from(location.person_id),
        lat: location.position.lat,
        lon: location.position.lon,
        time: Time::Parsed(location.time),
        key: None,
    };
    match one(&edge, item).await {
        Ok(record) => Json(CompatLocation::fetched(&record.location())).into_response(),
        Err(response) => response,
    }
}

/// Stores one location; answered with its id once it is on the bus.
#[utoipa::path(
    post, path = "/api/v2/locations", tag = "v2",
    request_body = NewLocationJson,
    responses(
        (status = 201, description = "Taken; `Location` names it (readable once written)", body = LocationJson),
        (status = 400, description = "A bad field, or a person that does not exist", body = ErrorJson),
        (status = 503, description = "The bus is full or away: retry after `Retry-After` seconds", body = ErrorJson),
    )
)]
pub async fn create_v2(
    State(edge): State<Edge>,
    ApiJson(body): ApiJson<NewLocationJson>,
) -> Response {
    let item = Submitted {
        person_id: i64::from(body.person_id),
        lat: body.lat,
        lon: body.lon,
        time: Time::Parsed(body.time.unwrap_or_else(Timestamp::now)),
        key: None,
    };
    match one(&edge, item).await {
        Ok(record) => {
            let path = format!("/api/v2/locations/{}", record.id);
            (
                StatusCode::CREATED,
                [(header::LOCATION, path)],
                Json(LocationJson::from(&record.location())),
            )
                .into_response()
        }
        Err(response) => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_item_is_named_by_index_and_field_and_the_others_read() {
        let body = br#"{"locations": [
            {"person_id": 1, "lat": 1.0, "lon": 2.0, "time": "2020-06-01T10:00:00Z"},
            {"person_id": 1, "lat": "north", "lon": 2.0, "time": "2020-06-01T10:00:00Z"},
            {"person_id": 1, "lat": 1.0, "lon": 2.0, "time": "2020-06-01T10:00:00Z", "extra": 1}
        ]}"#;
        let items = json_items(body).expect("a batch");
        assert!(items[0].is_ok());
        assert!(
            items[1].as_ref().expect_err("bad").starts_with("lat:"),
            "{items:?}"
        );
        assert!(
            items[2].as_ref().expect_err("bad").contains("extra"),
            "{items:?}"
        );
        assert!(json_items(b"[1, 2]").is_err());
        assert!(
            json_items(b"{\"locations\": []}")
                .expect("empty")
                .is_empty()
        );
    }

    #[test]
    fn ndjson_skips_blank_lines() {
        let body = b"{\"person_id\": 1, \"lat\": 1.0, \"lon\": 2.0, \"time\": \"2020-06-01T10:00:00Z\", \"key\": \"a\"}\n\n  \n{\"person_id\": 2}\n";
        let items = ndjson_items(body);
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].as_ref().expect("ok").key.as_deref(), Some("a"));
        assert!(items[1].is_err());
    }
}
