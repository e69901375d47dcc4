//! The meetings' events: every meeting written (started, grown, or grown by
//! taking others in), published on the `MEETINGS` stream as it is now.
//!
//! Every `UDACONNECT_MEETINGS_EVENTS_EVERY` a meetings process reads the
//! meetings written since the cursor recorded in the store (by snapshot,
//! as the API's live streams read them), publishes each, then records the
//! new cursor. A process that dies in between publishes them again, and so
//! may two processes at once: an event's message id is the meeting's id
//! and extent, so the broker drops a repeat within its deduplication
//! window. A meeting taken into another is not published: the one that
//! took it in covers its period, between the same two persons.

use futures::future::join_all;
use platform::bus::BusStream;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use udaconnect_domain::{
    PersonId, Position, Store, Timestamp,
    meeting::{FeedCursor, Kept},
};

use super::metrics::MeetingsMetrics;
use crate::cli::MeetingsArgs;

/// Events whose acknowledgements are awaited together.
const PUBLISH_AT_ONCE: usize = 256;

/// One event's data.
#[derive(Debug, Serialize)]
struct MeetingEvent {
    id: i64,
    persons: [PersonId; 2],
    start: Timestamp,
    end: Timestamp,
    duration_s: f64,
    contacts: i64,
    closest: ClosestEvent,
}

#[derive(Debug, Serialize)]
struct ClosestEvent {
    distance_m: f64,
    at: Timestamp,
    place: Position,
}

impl From<&Kept> for MeetingEvent {
    fn from(kept: &Kept) -> Self {
        let m = &kept.meeting;
        Self {
            id: kept.id,
            persons: [m.persons.0, m.persons.1],
            start: m.start,
            end: m.end,
            duration_s: m.duration_micros() as f64 / 1e6,
            contacts: m.contacts,
            closest: ClosestEvent {
                distance_m: m.closest.metres,
                at: m.closest.at,
                place: m.closest.place,
            },
        }
    }
}

/// The message id of `kept`'s event: the same for the same meeting in the
/// same state, whoever publishes it.
fn message_id(kept: &Kept) -> String {
    let m = &kept.meeting;
    format!(
        "meeting-{}-{}-{}-{}",
        kept.id,
        m.start.micros(),
        m.end.micros(),
        m.contacts
    )
}

/// Publishes the meetings written, until shutdown.
pub async fn publish(
    store: &dyn Store,
    events: &BusStream,
    settings: &MeetingsArgs,
    metrics: &MeetingsMetrics,
    shutdown: &CancellationToken,
) {
    if !events.prepare(shutdown).await {
        return;
    }
    let publisher = settings.meetings_consumer.as_str();
    let mut interval = tokio::time::interval(settings.meetings_events_every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Whether rounds have been missing meetings: said once when it
    // starts and once when it ends, not every round (a demo's or a
    // backfill's first seconds write far more than a round takes).
    let mut missing = false;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let max = settings.meetings_events_max;
        match round(store, events, publisher, max, metrics).await {
            Ok(complete) if complete == missing => {
                missing = !complete;
                if missing {
                    tracing::warn!(
                        max,
                        "meetings: more meetings written than one round publishes; some are not published (udaconnect_meetings_events_missed_total counts the rounds)"
                    );
                } else {
                    tracing::info!("meetings: every meeting written is published again");
                }
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, "meetings: cannot publish the meetings' events yet");
            }
        }
    }
}

/// One round: read, publish, record; whether it published every meeting
/// written since the last.
async fn round(
    store: &dyn Store,
    events: &BusStream,
    publisher: &str,
    max: usize,
    metrics: &MeetingsMetrics,
) -> Result<bool, String> {
    let since: Option<FeedCursor> = store
        .event_cursor(publisher)
        .await
        .map_err(|e| e.to_string())?;
    let read = store
        .meeting_feed(since.as_ref(), None, max)
        .await
        .map_err(|e| e.to_string())?;
    if !read.complete {
        metrics.events_missed();
    }
    // Published a chunk at a time, each chunk's acknowledgements awaited
    // together rather than one by one.
    for chunk in read.meetings.chunks(PUBLISH_AT_ONCE) {
        let published = join_all(chunk.iter().map(|kept| async move {
            let data = serde_json::to_vec(&MeetingEvent::from(kept)).map_err(|e| e.to_string())?;
            events
                .publish(&message_id(kept), data.into())
                .await
                .map_err(|e| e.to_string())
        }))
        .await;
        for outcome in published {
            metrics.event(outcome?.duplicate);
        }
    }
    if since.as_ref() != Some(&read.cursor) {
        store
            .save_event_cursor(publisher, &read.cursor)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(read.complete)
}
