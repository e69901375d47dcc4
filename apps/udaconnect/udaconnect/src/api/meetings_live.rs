//! `GET /api/v2/persons/{id}/meetings/live`: a person's meetings as they
//! start and grow, as Server-Sent Events.
//!
//! One task per process ([`MeetingsLive`]) reads the meetings written
//! since its last read every `UDACONNECT_MEETINGS_LIVE_EVERY` and hands
//! each read to every open stream, which forwards its person's; a thousand
//! open pages cost one query per period. Each event's id is where the read
//! it came from ended: a client that reconnects with `Last-Event-ID` is
//! first sent its person's meetings written since (at most a page), so it
//! misses none. A meeting is sent as it is now; one that took others in
//! covers them (the same two persons, its period holding theirs). When a
//! read or a catch-up holds more than the limit, or a stream falls behind
//! the reads, the stream is sent a `reset` event: read the meetings again.
//!
//! The task also reads the persons erased since its last read and hands
//! them to the streams: an erased person's own stream ends, and a meeting
//! with someone erased is sent to nobody (the other person is looked up
//! for each event, and is gone), even from a read made before the
//! erasure that a stream behind forwards later.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::Response,
};
use futures::stream::{self, StreamExt as _};
use platform::{
    http::ApiError,
    service::{BoxFuture, Component},
    sse,
};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use udaconnect_domain::{
    PersonId, Store,
    meeting::{FeedCursor, Kept, MAX_MEETINGS_PAGE, MeetingFeed},
};

use super::{
    meetings::{MeetingJson, json},
    params,
    state::{ApiState, store_error},
};
use crate::access::{Caller, caller::bearer};
use crate::api::wire::ErrorJson;

/// Reads kept for streams that have not forwarded them yet; a stream
/// further behind is reset.
const BACKLOG: usize = 64;

/// What the task hands the streams.
#[derive(Debug)]
pub enum LiveRead {
    /// The meetings written since the previous read.
    Meetings(MeetingFeed),
    /// The persons erased since the previous read.
    Erased(Vec<PersonId>),
}

/// The reads, for the streams to subscribe to.
pub type MeetingsReads = broadcast::Sender<Arc<LiveRead>>;

/// A channel for the reads.
pub fn channel() -> MeetingsReads {
    broadcast::channel(BACKLOG).0
}

/// The task that reads the meetings written, for every stream.
pub struct MeetingsLive {
    store: Arc<dyn Store>,
    reads: MeetingsReads,
    every: Duration,
    max: usize,
}

impl MeetingsLive {
    /// Reads `store` every `every`, at most `max` meetings at a time.
    pub fn new(store: Arc<dyn Store>, reads: MeetingsReads, every: Duration, max: usize) -> Self {
        Self {
            store,
            reads,
            every,
            max,
        }
    }

    async fn follow(self, shutdown: CancellationToken) {
        let mut cursor: Option<FeedCursor> = None;
        let mut erasures: Option<FeedCursor> = None;
        let mut interval = tokio::time::interval(self.every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                () = shutdown.cancelled() => return,
            }
            // No stream open is no error.
            match self.store.erasures(erasures.as_ref()).await {
                Ok(read) => {
                    if erasures.replace(read.cursor).is_some() && !read.persons.is_empty() {
                        let _ = self.reads.send(Arc::new(LiveRead::Erased(read.persons)));
                    }
                }
                Err(err) => tracing::debug!(error = %err, "cannot read the erasures"),
            }
            match self
                .store
                .meeting_feed(cursor.as_ref(), None, self.max)
                .await
            {
                Ok(read) => {
                    let first = cursor.is_none();
                    cursor = Some(read.cursor.clone());
                    if !first && (!read.meetings.is_empty() || !read.complete) {
                        let _ = self.reads.send(Arc::new(LiveRead::Meetings(read)));
                    }
                }
                Err(err) => tracing::debug!(error = %err, "cannot read the meetings written"),
            }
        }
    }
}

impl Component for MeetingsLive {
    fn name(&self) -> &'static str {
        "meetings live"
    }

    fn run(
        self: Box<Self>,
        shutdown: CancellationToken,
        _deadline: Duration,
    ) -> BoxFuture<'static, ()> {
        Box::pin(self.follow(shutdown))
    }
}

/// A person's meetings as they start and grow: `meeting` events whose data
/// is a meeting as `GET /api/v2/persons/{id}/meetings` gives it, and
/// `reset` events (no data) when some were missed. The stream ends when
/// the person is erased, or its token is refused.
///
/// **Who may call:** the organiser, or the attendee themselves (their link). A browser's `EventSource` sends the token as `?access_token=`.
#[utoipa::path(
    get, path = "/api/v2/persons/{person_id}/meetings/live", tag = "v2",
    security(("bearer" = [])),
    params(
        ("person_id" = i32, Path, description = "The person's id"),
        ("Last-Event-ID" = Option<String>, Header, description = "The last event's id: the meetings written since are sent first"),
    ),
    responses(
        (status = 401, description = "No token (the API is not open), or one unknown or revoked", body = ErrorJson),
        (status = 403, description = "A token that does not allow this", body = ErrorJson),
        (status = 200, description = "A stream of `meeting` and `reset` events", content_type = "text/event-stream", body = MeetingJson),
        (status = 400, description = "Not a number, or a Last-Event-ID this API did not send", body = super::wire::ErrorJson),
        (status = 404, description = "No such person", body = super::wire::ErrorJson),
    )
)]
pub async fn live(
    State(state): State<ApiState>,
    caller: Caller,
    Path(person_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let person = params::id("person_id", &person_id)?;
    caller.reads(person)?;
    let since = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(FeedCursor::parse)
                .ok_or_else(|| ApiError::bad_request("Last-Event-ID is not one this API sent"))?,
        ),
        None => None,
    };
    // Subscribed before the person is looked up and the stream catches
    // up: a read in between is sent twice at worst, never missed, and an
    // erasure after the lookup reaches the stream.
    let reads = state.meetings_live.subscribe();
    state.person(person).await?;
    let catch_up = match &since {
        Some(since) => Some(
            state
                .store
                .meeting_feed(Some(since), Some(person), MAX_MEETINGS_PAGE)
                .await
                .map_err(store_error)?,
        ),
        None => None,
    };
    let first = match catch_up {
        Some(read) => events(&state, person, &read).await,
        None => Vec::new(),
    };
    let follow = stream::unfold(
        (reads, state.clone()),
        move |(mut reads, state)| async move {
            loop {
                match reads.recv().await {
                    Ok(read) => match &*read {
                        LiveRead::Meetings(read) => {
                            let events = events(&state, person, read).await;
                            if !events.is_empty() {
                                return Some((stream::iter(events), (reads, state)));
                            }
                        }
                        LiveRead::Erased(persons) if persons.contains(&person) => return None,
                        LiveRead::Erased(_) => {}
                    },
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        return Some((stream::iter(vec![reset()]), (reads, state)));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    )
    .flatten();
    // A link revoked while its stream is open ends the stream.
    let token = bearer(&headers).ok().flatten().map(str::to_owned);
    let access = state.access.clone();
    let events = stream::iter(first)
        .chain(follow)
        .take_until(async move { access.refused(token).await });
    Ok(sse::response(events, &state.shutdown))
}

fn reset() -> bytes::Bytes {
    sse::event(Some("reset"), None, "{}")
}

/// The events `read` makes for `person`: their meetings, the last one
/// carrying the read's cursor as its id; a `reset` if the read missed
/// some.
async fn events(state: &ApiState, person: PersonId, read: &MeetingFeed) -> Vec<bytes::Bytes> {
    let mine: Vec<&Kept> = read
        .meetings
        .iter()
        .filter(|k| k.meeting.persons.0 == person || k.meeting.persons.1 == person)
        .collect();
    let mut events = Vec::with_capacity(mine.len() + 1);
    if !read.complete {
        events.push(reset());
    }
    for (i, kept) in mine.iter().enumerate() {
        let other = if kept.meeting.persons.0 == person {
            kept.meeting.persons.1
        } else {
            kept.meeting.persons.0
        };
        let Ok(Some(with)) = state.store.person(other).await else {
            continue;
        };
        let Ok(data) = serde_json::to_string(&json(kept, &(&with).into())) else {
            continue;
        };
        let id = (i + 1 == mine.len()).then(|| read.cursor.as_str());
        events.push(sse::event(Some("meeting"), id, &data));
    }
    events
}
