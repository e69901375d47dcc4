//! `DELETE /api/v2/persons/{id}`: an attendee's data is theirs, and goes
//! with them (see `udaconnect_domain::erasure`).
//!
//! The store removes the person and every row about them in one
//! transaction and remembers the erasure; everything that holds persons
//! in memory learns of it from the store: the edges refuse their locations
//! within a refresh, the writers drop those still on the bus, the meetings
//! pass their sightings over, the connections replica forgets them before
//! its next answer, and their live stream of meetings ends. The organiser
//! may erase anyone; an attendee, themselves (their link).

use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use platform::http::ApiError;

use crate::access::Caller;

use super::{
    params,
    state::{ApiState, store_error},
    wire::ErrorJson,
};

/// Erases a person: them, their locations, the meetings' record of those,
/// every meeting they were either side of, and their idempotency keys'
/// claims, and their links' and devices' credentials, in one
/// transaction. Their id is never given again.
///
/// **Who may call:** the organiser, or the attendee themselves (their link).
#[utoipa::path(
    delete, path = "/api/v2/persons/{person_id}", tag = "v2",
    security(("bearer" = [])),
    params(("person_id" = i32, Path, description = "The person's id")),
    responses(
        (status = 204, description = "Erased: no answer of the API mentions them any more"),
        (status = 400, description = "Not a number", body = ErrorJson),
        (status = 401, description = "No token (the API is not open), or one unknown or revoked", body = ErrorJson),
        (status = 403, description = "Another person's, or a device's token", body = ErrorJson),
        (status = 404, description = "No such person (or erased already)", body = ErrorJson),
    )
)]
pub async fn erase(
    State(state): State<ApiState>,
    caller: Caller,
    Path(person_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = params::id("person_id", &person_id)?;
    caller.reads(id)?;
    let erased = state
        .store
        .erase_person(id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("person {id} not found")))?;
    state.access.forget_person(id);
    tracing::info!(
        person_id = id,
        locations = erased.locations,
        meeting_positions = erased.meeting_positions,
        meetings = erased.meetings,
        key_claims = erased.key_claims,
        "person erased"
    );
    Ok(StatusCode::NO_CONTENT)
}
