//! The original API under `/api`, kept exactly: same paths, same JSON, the
//! same connection semantics (see `udaconnect_domain::query`), so its
//! frontend and clients work unchanged. What is not kept are its bugs: a
//! new id never collides with an old one, an unknown id is a 404 and bad
//! input a 400, each with a JSON error, never a 500.

use std::time::Instant;

use axum::{
    Json,
    body::{Body, Bytes},
    extract::{Path, State},
    http::header,
    response::{IntoResponse, Response},
};
use platform::http::{ApiError, ApiJson, ApiQuery};
use serde::Deserialize;
use udaconnect_domain::{CompatQuery, NewPerson};
use utoipa::IntoParams;

use super::{
    compat_wire::{CompatConnection, CompatLocation, CompatNewPerson, CompatPerson},
    params,
    state::{ApiState, store_error},
    wire::ErrorJson,
};
use crate::access::Caller;

/// The header of a connection answer cut at the row limit, its value the
/// limit: the rows are the first ones of the whole answer, in its order.
/// The original's API has no paging, and its frontend needs an array to
/// show anything; the v2 endpoint answers any question whole, a row per
/// person.
pub const CUT_HEADER: &str = "x-truncated-at-rows";

/// Rows encoded per chunk of a connection answer.
const CHUNK_ROWS: usize = 2_000;
/// Encoded chunks waiting for the client at most: the answer is encoded
/// about as fast as the client reads it, not all at once in memory.
const CHUNKS_AHEAD: usize = 4;

/// Every person.
///
/// **Who may call:** the organiser (anyone with `UDACONNECT_OPEN_API`).
#[utoipa::path(
    get, path = "/api/persons", tag = "original",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every person, by id", body = [CompatPerson]),
        (status = 401, description = "No token (the API is not open), or one unknown or revoked", body = ErrorJson),
        (status = 403, description = "A token that does not allow this", body = ErrorJson),
    )
)]
pub async fn list_persons(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Vec<CompatPerson>>, ApiError> {
    caller.organiser()?;
    let started = Instant::now();
    let persons = state.store.persons().await.map_err(store_error)?;
    state.metrics.observe("persons", started, persons.len());
    Ok(Json(persons.iter().map(CompatPerson::from).collect()))
}

/// Creates a person (answered with 200, as the original does).
///
/// **Who may call:** the organiser (anyone with `UDACONNECT_OPEN_API`).
#[utoipa::path(
    post, path = "/api/persons", tag = "original",
    security(("bearer" = [])),
    request_body = CompatNewPerson,
    responses(
        (status = 401, description = "No token (the API is not open), or one unknown or revoked", body = ErrorJson),
        (status = 403, description = "A token that does not allow this", body = ErrorJson),
        (status = 200, description = "The person, with its new id", body = CompatPerson),
        (status = 400, description = "A missing, blank or too long field", body = ErrorJson),
    )
)]
pub async fn create_person(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(body): ApiJson<CompatNewPerson>,
) -> Result<Json<CompatPerson>, ApiError> {
    caller.organiser()?;
    let person = NewPerson::new(&body.first_name, &body.last_name, &body.company_name)
        .map_err(params::invalid)?;
    let created = state
        .store
        .create_person(&person)
        .await
        .map_err(store_error)?;
    Ok(Json(CompatPerson::from(&created)))
}

/// One person.
///
/// **Who may call:** the organiser (anyone with `UDACONNECT_OPEN_API`).
#[utoipa::path(
    get, path = "/api/persons/{person_id}", tag = "original",
    security(("bearer" = [])),
    params(("person_id" = i32, Path, description = "The person's id")),
    responses(
        (status = 401, description = "No token (the API is not open), or one unknown or revoked", body = ErrorJson),
        (status = 403, description = "A token that does not allow this", body = ErrorJson),
        (status = 200, description = "The person", body = CompatPerson),
        (status = 400, description = "Not a number", body = ErrorJson),
        (status = 404, description = "No such person", body = ErrorJson),
    )
)]
pub async fn get_person(
    State(state): State<ApiState>,
    caller: Caller,
    Path(person_id): Path<String>,
) -> Result<Json<CompatPerson>, ApiError> {
    caller.organiser()?;
    let person = state.person(params::id("person_id", &person_id)?).await?;
    Ok(Json(CompatPerson::from(&person)))
}

/// One location.
///
/// **Who may call:** the organiser (anyone with `UDACONNECT_OPEN_API`).
#[utoipa::path(
    get, path = "/api/locations/{location_id}", tag = "original",
    security(("bearer" = [])),
    params(("location_id" = i64, Path, description = "The location's id")),
    responses(
        (status = 401, description = "No token (the API is not open), or one unknown or revoked", body = ErrorJson),
        (status = 403, description = "A token that does not allow this", body = ErrorJson),
        (status = 200, description = "The location", body = CompatLocation),
        (status = 400, description = "Not a number", body = ErrorJson),
        (status = 404, description = "No such location", body = ErrorJson),
    )
)]
pub async fn get_location(
    State(state): State<ApiState>,
    caller: Caller,
    Path(location_id): Path<String>,
) -> Result<Json<CompatLocation>, ApiError> {
    caller.organiser()?;
    let location = state
        .location(params::id("location_id", &location_id)?)
        .await?;
    Ok(Json(CompatLocation::fetched(&location)))
}

/// The original's connection query parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConnectionParams {
    /// First day (`YYYY-MM-DD`), included. Required: the type is optional
    /// only so that a missing one is answered with a 400 naming it.
    #[param(required = true)]
    start_date: Option<String>,
    /// The person's own locations end before this day; the others' a day later.
    #[param(required = true)]
    end_date: Option<String>,
    /// Metres (default 5).
    distance: Option<String>,
}

/// Every other person's location within `distance` metres of one of the
/// person's own in the date range: one row per pair, as the original.
///
/// **Who may call:** the organiser (anyone with `UDACONNECT_OPEN_API`).
#[utoipa::path(
    get, path = "/api/persons/{person_id}/connection", tag = "original",
    security(("bearer" = [])),
    params(("person_id" = i32, Path, description = "The person's id"), ConnectionParams),
    responses(
        (status = 401, description = "No token (the API is not open), or one unknown or revoked", body = ErrorJson),
        (status = 403, description = "A token that does not allow this", body = ErrorJson),
        (status = 200, description = "One row per (own location, other location) pair, in the original's order; an answer of more than UDACONNECT_COMPAT_MAX_ROWS rows is cut there, with the header X-Truncated-At-Rows", body = [CompatConnection],
            headers(("X-Truncated-At-Rows" = u64, description = "Present when the answer was cut: the row limit"))),
        (status = 400, description = "A bad parameter", body = ErrorJson),
        (status = 404, description = "No such person", body = ErrorJson),
        (status = 503, description = "The question took longer than UDACONNECT_QUERY_TIMEOUT, or UDACONNECT_QUERY_CONCURRENCY questions were being answered: retry after Retry-After, or ask a narrower question", body = ErrorJson),
    )
)]
pub async fn connection(
    State(state): State<ApiState>,
    caller: Caller,
    Path(person_id): Path<String>,
    ApiQuery(query): ApiQuery<ConnectionParams>,
) -> Result<Response, ApiError> {
    caller.organiser()?;
    let person_id = params::id("person_id", &person_id)?;
    let start = params::date(
        "start_date",
        params::required("start_date", &query.start_date)?,
    )?;
    let end = params::date("end_date", params::required("end_date", &query.end_date)?)?;
    params::ordered(("start_date", start), ("end_date", end))?;
    let distance = params::distance("distance", query.distance.as_deref())?;
    state.person(person_id).await?;
    let _slot = state.queries.slot()?;
    let started = Instant::now();
    let mut rows = state
        .store
        .compat_connections(&CompatQuery {
            person_id,
            start,
            end,
            distance,
            limit: state.compat_max_rows.saturating_add(1),
        })
        .await
        .map_err(|err| state.query_error(err))?;
    let cut = rows.len() > state.compat_max_rows;
    if cut {
        rows.truncate(state.compat_max_rows);
        state.metrics.compat_cut.inc();
        tracing::info!(
            limit = state.compat_max_rows,
            "a connection answer of the original's API was cut at its row limit"
        );
    }
    state
        .metrics
        .observe("compat_connections", started, rows.len());
    let mut response = (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(encoded(rows)),
    )
        .into_response();
    if cut {
        response
            .headers_mut()
            .insert(CUT_HEADER, header::HeaderValue::from(state.compat_max_rows));
    }
    Ok(response)
}

/// The answer as a JSON array, encoded in chunks off the async workers as
/// the client reads it (an answer may be hundreds of thousands of rows).
fn encoded(
    rows: Vec<udaconnect_domain::CompatConnection>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let (chunks, mut receiver) = tokio::sync::mpsc::channel(CHUNKS_AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut buffer = Vec::with_capacity(CHUNK_ROWS * 300);
        buffer.push(b'[');
        for (index, row) in rows.iter().enumerate() {
            if index > 0 {
                buffer.push(b',');
            }
            let row = CompatConnection {
                location: CompatLocation::in_connection(&row.location),
                person: CompatPerson::from(&*row.person),
            };
            if let Err(err) = serde_json::to_writer(&mut buffer, &row) {
                let _ = chunks.blocking_send(Err(std::io::Error::other(err)));
                return;
            }
            if (index + 1) % CHUNK_ROWS == 0 {
                let chunk = Bytes::from(std::mem::take(&mut buffer));
                // A client gone away closes the channel: stop encoding.
                if chunks.blocking_send(Ok(chunk)).is_err() {
                    return;
                }
            }
        }
        buffer.push(b']');
        let _ = chunks.blocking_send(Ok(Bytes::from(buffer)));
    });
    futures::stream::poll_fn(move |context| receiver.poll_recv(context))
}
