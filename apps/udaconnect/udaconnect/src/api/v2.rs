//! The v2 API under `/api/v2`: what the original's own docstring asks for,
//! answers that "integrate more smoothly for API consumers". Positions are
//! `lat`/`lon` numbers, times RFC 3339, lists are paged by cursor, and the
//! connections of a person are one entry per other person: when and where
//! they met, how often, how close, optionally only when both were there
//! within `within` of each other.

use std::time::Instant;

use axum::{
    Json,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use platform::http::{ApiError, ApiJson, ApiQuery};
use serde::Deserialize;
use udaconnect_domain::{
    ConnectionQuery, ContactCursor, LocationCursor, LocationRange, NewPerson, PersonSearch,
    Timestamp,
};
use utoipa::IntoParams;

use super::{
    cursor, params,
    state::{ApiState, store_error},
    wire::{
        ConnectionsPage, ConnectionsQueryJson, ContactJson, ErrorJson, LocationJson, LocationsPage,
        NewPersonJson, PersonJson, PersonsPage, StatsJson,
    },
};
use crate::access::{Caller, Denied};

/// Persons per page unless `limit` says otherwise.
const PERSONS_PAGE: usize = 100;
/// Locations per page unless `limit` says otherwise.
const LOCATIONS_PAGE: usize = 500;
/// Contacts per page unless `limit` says otherwise.
const CONTACTS_PAGE: usize = 50;

/// `GET /api/v2/persons` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PersonsParams {
    /// Only persons whose first name, last name or company contains this text (any case; at most 200 characters).
    q: Option<String>,
    /// `id` (the default): the first created first; `newest`: the last created first.
    order: Option<String>,
    /// Persons per page, 1 to 1000 (default 100).
    limit: Option<String>,
    /// `next_cursor` of the previous page (with the same `order`).
    cursor: Option<String>,
}

/// A page of persons, by id or newest first; optionally only those
/// matching `q`.
///
/// **Who may call:** the organiser (every person), or an attendee (their own person only).
#[utoipa::path(
    get, path = "/api/v2/persons", tag = "v2",
    security(("bearer" = [])),
    params(PersonsParams),
    responses(
        (status = 401, description = "No token (the API is not open), or one unknown or revoked", body = ErrorJson),
        (status = 403, description = "A token that does not allow this", body = ErrorJson),
        (status = 200, description = "A page of persons", body = PersonsPage),
        (status = 400, description = "A bad parameter", body = ErrorJson),
    )
)]
pub async fn persons(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<PersonsParams>,
) -> Result<Json<PersonsPage>, ApiError> {
    let limit = params::limit(query.limit.as_deref(), PERSONS_PAGE)?;
    let order = params::person_order(query.order.as_deref())?;
    let after = query
        .cursor
        .as_deref()
        .map(|token| cursor::parse_person(token, order))
        .transpose()?;
    let text = params::search_text(query.q.as_deref())?;
    if let Caller::Attendee(holder) = caller {
        // Their own person, and nobody else.
        let own = state.person(holder.person).await?;
        let first = after.is_none()
            && text
                .as_deref()
                .is_none_or(|text| own.matches(&text.to_lowercase()));
        return Ok(Json(PersonsPage {
            persons: first.then(|| PersonJson::from(&own)).into_iter().collect(),
            next_cursor: None,
        }));
    }
    caller.organiser()?;
    let started = Instant::now();
    let mut found = state
        .store
        .search_persons(&PersonSearch {
            text,
            order,
            after,
            limit: limit + 1,
        })
        .await
        .map_err(store_error)?;
    state
        .metrics
        .observe("search_persons", started, found.len());
    let next_cursor = next_page(&mut found, limit).map(|last| cursor::person(last.id, order));
    Ok(Json(PersonsPage {
        persons: found.iter().map(PersonJson::from).collect(),
        next_cursor,
    }))
}

/// Keeps the first `limit` items; the last kept one if there were more.
pub(super) fn next_page<T>(items: &mut Vec<T>, limit: usize) -> Option<&T> {
    if items.len() > limit {
        items.truncate(limit);
        items.last()
    } else {
        None
    }
}

/// Creates a person.
///
/// **Who may call:** the organiser (anyone with `UDACONNECT_OPEN_API`).
#[utoipa::path(
    post, path = "/api/v2/persons", tag = "v2",
    security(("bearer" = [])),
    request_body = NewPersonJson,
    responses(
        (status = 401, description = "No token (the API is not open), or one unknown or revoked", body = ErrorJson),
        (status = 403, description = "A token that does not allow this", body = ErrorJson),
        (status = 201, description = "Created; `Location` names it", body = PersonJson),
        (status = 400, description = "A missing, blank or too long field", body = ErrorJson),
    )
)]
pub async fn create_person(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewPersonJson>,
) -> Result<Response, ApiError> {
    caller.organiser()?;
    let person = NewPerson::new(&body.first_name, &body.last_name, &body.company_name)
        .map_err(params::invalid)?;
    let created = state
        .store
        .create_person(&person)
        .await
        .map_err(store_error)?;
    let location = format!("/api/v2/persons/{}", created.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(PersonJson::from(&created)),
    )
        .into_response())
}

/// One person.
///
/// **Who may call:** the organiser, or the attendee themselves (their link).
#[utoipa::path(
    get, path = "/api/v2/persons/{person_id}", tag = "v2",
    security(("bearer" = [])),
    params(("person_id" = i32, Path, description = "The person's id")),
    responses(
        (status = 401, description = "No token (the API is not open), or one unknown or revoked", body = ErrorJson),
        (status = 403, description = "A token that does not allow this", body = ErrorJson),
        (status = 200, description = "The person", body = PersonJson),
        (status = 400, description = "Not a number", body = ErrorJson),
        (status = 404, description = "No such person", body = ErrorJson),
    )
)]
pub async fn person(
    State(state): State<ApiState>,
    caller: Caller,
    Path(person_id): Path<String>,
) -> Result<Json<PersonJson>, ApiError> {
    let person_id = params::id("person_id", &person_id)?;
    caller.reads(person_id)?;
    let person = state.person(person_id).await?;
    Ok(Json(PersonJson::from(&person)))
}

/// A date known when compiling; a broken one fails the build.
const fn date(year: i32, month: u32, day: u32) -> chrono::NaiveDate {
    match chrono::NaiveDate::from_ymd_opt(year, month, day) {
        Some(date) => date,
        None => panic!("not a date"),
    }
}

/// Before any location: the default `start`.
fn earliest() -> Timestamp {
    const EARLIEST: chrono::NaiveDate = date(1900, 1, 1);
    Timestamp::start_of(EARLIEST)
}

/// After any location: the default `end`.
fn latest() -> Timestamp {
    const LATEST: chrono::NaiveDate = date(3000, 1, 1);
    Timestamp::start_of(LATEST)
}

/// `start` and `end` as given (RFC 3339 or dates), or the beginning and
/// the end of time; `start` not after `end`.
pub(super) fn open_range(
    start: Option<&str>,
    end: Option<&str>,
) -> Result<(Timestamp, Timestamp), ApiError> {
    let start = match start {
        Some(start) => params::instant("start", start)?,
        None => earliest(),
    };
    let end = match end {
        Some(end) => params::instant("end", end)?,
        None => latest(),
    };
    params::ordered(("start", start), ("end", end))?;
    Ok((start, end))
}

/// `GET /api/v2/persons/{id}/locations` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LocationsParams {
    /// From (RFC 3339 or date), included; the beginning of time if absent.
    start: Option<String>,
    /// Until (RFC 3339 or date), excluded; the end of time if absent.
    end: Option<String>,
    /// Locations per page, 1 to 1000 (default 500).
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of a person's locations, by time.
///
/// **Who may call:** the organiser, or the attendee themselves (their link).
#[utoipa::path(
    get, path = "/api/v2/persons/{person_id}/locations", tag = "v2",
    security(("bearer" = [])),
    params(("person_id" = i32, Path, description = "The person's id"), LocationsParams),
    responses(
        (status = 401, description = "No token (the API is not open), or one unknown or revoked", body = ErrorJson),
        (status = 403, description = "A token that does not allow this", body = ErrorJson),
        (status = 200, description = "A page of locations", body = LocationsPage),
        (status = 400, description = "A bad parameter", body = ErrorJson),
        (status = 404, description = "No such person", body = ErrorJson),
    )
)]
pub async fn person_locations(
    State(state): State<ApiState>,
    caller: Caller,
    Path(person_id): Path<String>,
    ApiQuery(query): ApiQuery<LocationsParams>,
) -> Result<Json<LocationsPage>, ApiError> {
    let person_id = params::id("person_id", &person_id)?;
    caller.reads(person_id)?;
    let (start, end) = open_range(query.start.as_deref(), query.end.as_deref())?;
    let limit = params::limit(query.limit.as_deref(), LOCATIONS_PAGE)?;
    let after = query
        .cursor
        .as_deref()
        .map(cursor::parse_location)
        .transpose()?;
    state.person(person_id).await?;
    let started = Instant::now();
    let mut found = state
        .store
        .locations_of(&LocationRange {
            person_id,
            start,
            end,
            after,
            limit: limit + 1,
        })
        .await
        .map_err(store_error)?;
    state.metrics.observe("locations_of", started, found.len());
    let next_cursor = next_page(&mut found, limit).map(|last| {
        cursor::location(LocationCursor {
            time: last.time,
            id: last.id,
        })
    });
    Ok(Json(LocationsPage {
        locations: found.iter().map(LocationJson::from).collect(),
        next_cursor,
    }))
}

/// `GET /api/v2/persons/{id}/connections` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConnectionsParams {
    /// The person's own locations from (RFC 3339 or date), included.
    /// Required: the type is optional only so that a missing one is
    /// answered with a 400 naming it.
    #[param(required = true)]
    start: Option<String>,
    /// ... until (RFC 3339 or date), excluded.
    #[param(required = true)]
    end: Option<String>,
    /// Metres, 0 to 10000 (default 5).
    distance: Option<String>,
    /// Only encounters where both were there within this time of each other
    /// (`10m`, `90s`, `1h`; at most 7 days). Without it, as the original: the
    /// others' locations from `start` to a day after `end`, at any time.
    within: Option<String>,
    /// Contacts per page, 1 to 1000 (default 50).
    limit: Option<String>,
    /// `next_cursor` of the previous page (with the same other parameters).
    cursor: Option<String>,
}

/// The persons who were near this person: one entry each, most encounters
/// first.
///
/// **Who may call:** the organiser, or the attendee themselves (their link).
#[utoipa::path(
    get, path = "/api/v2/persons/{person_id}/connections", tag = "v2",
    security(("bearer" = [])),
    params(("person_id" = i32, Path, description = "The person's id"), ConnectionsParams),
    responses(
        (status = 401, description = "No token (the API is not open), or one unknown or revoked", body = ErrorJson),
        (status = 403, description = "A token that does not allow this", body = ErrorJson),
        (status = 200, description = "A page of contacts", body = ConnectionsPage),
        (status = 400, description = "A bad parameter", body = ErrorJson),
        (status = 404, description = "No such person", body = ErrorJson),
        (status = 503, description = "The question took longer than UDACONNECT_QUERY_TIMEOUT, or UDACONNECT_QUERY_CONCURRENCY questions were being answered: retry after Retry-After, or ask a narrower question", body = ErrorJson),
    )
)]
pub async fn connections(
    State(state): State<ApiState>,
    caller: Caller,
    Path(person_id): Path<String>,
    ApiQuery(query): ApiQuery<ConnectionsParams>,
) -> Result<Json<ConnectionsPage>, ApiError> {
    let person_id = params::id("person_id", &person_id)?;
    caller.reads(person_id)?;
    let start = params::instant("start", params::required("start", &query.start)?)?;
    let end = params::instant("end", params::required("end", &query.end)?)?;
    params::ordered(("start", start), ("end", end))?;
    let distance = params::distance("distance", query.distance.as_deref())?;
    let within = query
        .within
        .as_deref()
        .map(|within| params::within("within", within))
        .transpose()?;
    let limit = params::limit(query.limit.as_deref(), CONTACTS_PAGE)?;
    let fingerprint = cursor::fingerprint(&format!(
        "{person_id}|{}|{}|{}|{:?}",
        start.micros(),
        end.micros(),
        distance.metres().to_bits(),
        within.map(|within| within.micros())
    ));
    let after = query
        .cursor
        .as_deref()
        .map(|token| cursor::parse_contact(token, fingerprint))
        .transpose()?;
    let person = state.person(person_id).await?;
    let _slot = state.queries.slot()?;
    let started = Instant::now();
    let mut contacts = state
        .store
        .connections(&ConnectionQuery {
            person_id,
            start,
            end,
            distance,
            within,
            after,
            limit: limit + 1,
        })
        .await
        .map_err(|err| state.query_error(err))?;
    state
        .metrics
        .observe("connections", started, contacts.len());
    let next_cursor = next_page(&mut contacts, limit)
        .map(|last| cursor::contact(ContactCursor::after(last), fingerprint));
    Ok(Json(ConnectionsPage {
        person: PersonJson::from(&person),
        query: ConnectionsQueryJson {
            start,
            end,
            distance_m: distance.metres(),
            within_s: within.map(|within| within.micros() as f64 / 1e6),
        },
        contacts: contacts.iter().map(ContactJson::from).collect(),
        next_cursor,
    }))
}

/// One location.
///
/// **Who may call:** the organiser, or the attendee whose location it is.
#[utoipa::path(
    get, path = "/api/v2/locations/{location_id}", tag = "v2",
    security(("bearer" = [])),
    params(("location_id" = i64, Path, description = "The location's id")),
    responses(
        (status = 401, description = "No token (the API is not open), or one unknown or revoked", body = ErrorJson),
        (status = 403, description = "A token that does not allow this", body = ErrorJson),
        (status = 200, description = "The location", body = LocationJson),
        (status = 400, description = "Not a number", body = ErrorJson),
        (status = 404, description = "No such location", body = ErrorJson),
    )
)]
pub async fn location(
    State(state): State<ApiState>,
    caller: Caller,
    Path(location_id): Path<String>,
) -> Result<Json<LocationJson>, ApiError> {
    let id = params::id("location_id", &location_id)?;
    if let Caller::Attendee(holder) = caller {
        // Theirs, or refused: whether another's exists is not told.
        let theirs = state.store.location(id).await.map_err(store_error)?;
        return match theirs {
            Some(location) if location.person_id == holder.person => {
                Ok(Json(LocationJson::from(&location)))
            }
            _ => Err(Denied::Forbidden(format!(
                "an attendee's link reads only its own person's locations; location {id} is not one"
            ))
            .into()),
        };
    }
    caller.organiser()?;
    let location = state.location(id).await?;
    Ok(Json(LocationJson::from(&location)))
}

/// How many persons and locations are stored.
///
/// **Who may call:** the organiser, or an attendee.
#[utoipa::path(
    get, path = "/api/v2/stats", tag = "v2",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Counts", body = StatsJson),
        (status = 401, description = "No token (the API is not open), or one unknown or revoked", body = ErrorJson),
        (status = 403, description = "A token that does not allow this", body = ErrorJson),
    )
)]
pub async fn stats(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<StatsJson>, ApiError> {
    caller.reads_counts()?;
    let stats = state.store.stats().await.map_err(store_error)?;
    Ok(Json(StatsJson {
        persons: stats.persons,
        locations: stats.locations,
        store: state.store.kind(),
    }))
}
