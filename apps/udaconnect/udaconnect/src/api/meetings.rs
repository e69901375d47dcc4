//! `GET /api/v2/persons/{id}/meetings`: whom a person met, when, where and
//! for how long, most recent first, paged by cursor (see
//! `udaconnect_domain::meeting` for what a meeting is).

use std::{collections::BTreeMap, time::Instant};

use axum::{
    Json,
    extract::{Path, State},
};
use platform::http::{ApiError, ApiQuery};
use serde::{Deserialize, Serialize};
use udaconnect_domain::{
    PersonId, Timestamp,
    meeting::{Kept, MeetingCursor, MeetingQuery},
    query::round_to_mm,
};
use utoipa::{IntoParams, ToSchema};

use super::{
    cursor, params,
    state::{ApiState, store_error},
    v2::{next_page, open_range},
    wire::{ErrorJson, PersonJson},
};
use crate::access::Caller;

/// Meetings per page unless `limit` says otherwise.
const MEETINGS_PAGE: usize = 50;

/// `GET /api/v2/persons/{id}/meetings` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MeetingsParams {
    /// Meetings that end at or after this (RFC 3339 or date); the beginning of time if absent.
    start: Option<String>,
    /// Meetings that start before this (RFC 3339 or date); the end of time if absent.
    end: Option<String>,
    /// Meetings per page, 1 to 1000 (default 50).
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Where and when the two were closest.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeetingClosestJson {
    /// Metres between them, to the millimetre.
    pub distance_m: f64,
    /// When (RFC 3339, UTC): the later of the two locations' times.
    #[schema(value_type = String, example = "2020-06-08T10:03:00Z")]
    pub at: Timestamp,
    /// Halfway between them: latitude.
    pub lat: f64,
    /// ... and longitude.
    pub lon: f64,
}

/// A period two persons spent together.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeetingJson {
    /// The meeting's id (kept as it grows; a meeting joined into an earlier one takes that one's).
    pub id: i64,
    /// The other person.
    pub with: PersonJson,
    /// From (RFC 3339, UTC).
    #[schema(value_type = String, example = "2020-06-08T10:00:00Z")]
    pub start: Timestamp,
    /// Until (RFC 3339, UTC).
    #[schema(value_type = String, example = "2020-06-08T10:25:00Z")]
    pub end: Timestamp,
    /// How long, seconds.
    pub duration_s: f64,
    /// How many pairs of their locations were close in space and time.
    pub contacts: i64,
    /// The closest moment.
    pub closest: MeetingClosestJson,
}

/// A page of a person's meetings.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeetingsPage {
    /// The meetings, most recent first.
    pub meetings: Vec<MeetingJson>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// The person's meetings: whom they met, when, where and for how long,
/// most recent first.
///
/// **Who may call:** the organiser, or the attendee themselves (their link).
#[utoipa::path(
    get, path = "/api/v2/persons/{person_id}/meetings", tag = "v2",
    security(("bearer" = [])),
    params(("person_id" = i32, Path, description = "The person's id"), MeetingsParams),
    responses(
        (status = 401, description = "No token (the API is not open), or one unknown or revoked", body = ErrorJson),
        (status = 403, description = "A token that does not allow this", body = ErrorJson),
        (status = 200, description = "A page of meetings", body = MeetingsPage),
        (status = 400, description = "A bad parameter", body = ErrorJson),
        (status = 404, description = "No such person", body = ErrorJson),
    )
)]
pub async fn meetings(
    State(state): State<ApiState>,
    caller: Caller,
    Path(person_id): Path<String>,
    ApiQuery(query): ApiQuery<MeetingsParams>,
) -> Result<Json<MeetingsPage>, ApiError> {
    let person = params::id("person_id", &person_id)?;
    caller.reads(person)?;
    let (start, end) = open_range(query.start.as_deref(), query.end.as_deref())?;
    let limit = params::limit(query.limit.as_deref(), MEETINGS_PAGE)?;
    let after = query
        .cursor
        .as_deref()
        .map(cursor::parse_meeting)
        .transpose()?;
    let started = Instant::now();
    let query = MeetingQuery {
        person,
        start,
        end,
        after,
        limit: limit + 1,
    };
    // Whether the person exists is asked beside the meetings, not first:
    // one round trip to the database fewer before the answer.
    let (_, mut found) = tokio::try_join!(state.person(person), async {
        let found = state.store.meetings(&query).await.map_err(store_error)?;
        state.metrics.observe("meetings", started, found.len());
        Ok(found)
    })?;
    let next_cursor = next_page(&mut found, limit).map(|last| {
        cursor::meeting(MeetingCursor {
            start: last.meeting.start,
            id: last.id,
        })
    });
    let others = others(&state, person, &found).await?;
    let meetings = found
        .iter()
        .filter_map(|kept| {
            let other = other_of(person, kept);
            others.get(&other).map(|with| json(kept, with))
        })
        .collect();
    Ok(Json(MeetingsPage {
        meetings,
        next_cursor,
    }))
}

fn other_of(person: PersonId, kept: &Kept) -> PersonId {
    let (a, b) = kept.meeting.persons;
    if a == person { b } else { a }
}

/// The other persons of `found`, by id (one who no longer exists left out).
pub(super) async fn others(
    state: &ApiState,
    person: PersonId,
    found: &[Kept],
) -> Result<BTreeMap<PersonId, PersonJson>, ApiError> {
    let mut ids: Vec<PersonId> = found.iter().map(|k| other_of(person, k)).collect();
    ids.sort_unstable();
    ids.dedup();
    let persons = state.store.persons_by_id(&ids).await.map_err(store_error)?;
    let mut others = BTreeMap::new();
    for person in persons.values() {
        others.insert(person.id, PersonJson::from(person));
    }
    Ok(others)
}

/// A meeting as the API answers it, with the other person.
pub(super) fn json(kept: &Kept, with: &PersonJson) -> MeetingJson {
    let meeting = &kept.meeting;
    MeetingJson {
        id: kept.id,
        with: PersonJson {
            id: with.id,
            first_name: with.first_name.clone(),
            last_name: with.last_name.clone(),
            company_name: with.company_name.clone(),
        },
        start: meeting.start,
        end: meeting.end,
        duration_s: meeting.duration_micros() as f64 / 1e6,
        contacts: meeting.contacts,
        closest: MeetingClosestJson {
            distance_m: round_to_mm(meeting.closest.metres),
            at: meeting.closest.at,
            lat: meeting.closest.place.lat,
            lon: meeting.closest.place.lon,
        },
    }
}
