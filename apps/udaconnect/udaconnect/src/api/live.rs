//! `GET /api/v2/live`: the stored counts and the rate locations arrive at,
//! every second, as Server-Sent Events, for the page's live header.
//!
//! One task per process asks the store once a second ([`LiveStats::watch`]
//! is fed by the API component); every open stream forwards the latest
//! figures, so a thousand open pages cost one query a second. The stream
//! itself (headers, reconnect hint, keep-alive, end at shutdown, write
//! timeout) is the platform's [`platform::sse`].

use std::{collections::VecDeque, time::Duration};

use axum::{
    extract::State,
    response::{IntoResponse, Response},
};
use futures::stream;
use platform::sse;
use serde::Serialize;
use tokio::{sync::watch, time::Instant};
use udaconnect_domain::Stats;
use utoipa::ToSchema;

use super::state::ApiState;
use crate::access::Caller;
use crate::api::wire::ErrorJson;

/// How far back the rate is measured: long enough that locations stored
/// in bursts (a client's batch every few seconds, a writer's transaction)
/// show as the average they make, short enough to follow a change within
/// half a minute. Counted once a second, it holds about 30 samples.
const RATE_WINDOW: Duration = Duration::from_secs(30);

/// What the live header shows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct LiveStats {
    /// Persons stored.
    pub persons: u64,
    /// Locations stored.
    pub locations: u64,
    /// Locations stored per second: a moving average over the last 30
    /// seconds (over the time since the first count, before that).
    pub rate: f64,
}

/// Turns successive counts into [`LiveStats`] with a rate: the locations
/// stored between the oldest count of the last [`RATE_WINDOW`] and the
/// latest, divided by the time between the two.
#[derive(Debug, Default)]
pub struct RateMeter {
    samples: VecDeque<(Instant, u64)>,
}

impl RateMeter {
    /// The figures for `stats` counted at `at` (no earlier than the
    /// previous count).
    pub fn record(&mut self, at: Instant, stats: Stats) -> LiveStats {
        self.samples.push_back((at, stats.locations));
        while self
            .samples
            .front()
            .is_some_and(|(then, _)| at.duration_since(*then) > RATE_WINDOW)
        {
            self.samples.pop_front();
        }
        let rate = match (self.samples.front(), self.samples.back()) {
            (Some((first_at, first)), Some((last_at, last))) if last_at > first_at => {
                last.saturating_sub(*first) as f64 / last_at.duration_since(*first_at).as_secs_f64()
            }
            _ => 0.0,
        };
        LiveStats {
            persons: stats.persons,
            locations: stats.locations,
            rate,
        }
    }
}

/// The latest figures, shared by every stream.
pub type LiveFeed = watch::Receiver<Option<LiveStats>>;

/// The stored counts and the arrival rate, once a second, as SSE events
/// named `stats` whose data is the JSON of [`LiveStats`].
///
/// **Who may call:** the organiser, or an attendee. A browser's `EventSource` sends the token as `?access_token=`.
#[utoipa::path(
    get, path = "/api/v2/live", tag = "v2",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A stream of `stats` events, one a second", content_type = "text/event-stream", body = LiveStats),
        (status = 401, description = "No token (the API is not open), or one unknown or revoked", body = ErrorJson),
        (status = 403, description = "A token that does not allow this", body = ErrorJson),
    )
)]
pub async fn live(State(state): State<ApiState>, caller: Caller) -> Response {
    if let Err(denied) = caller.reads_counts() {
        return denied.into_response();
    }
    let mut feed = state.live.clone();
    // The latest figures at once, then each new one.
    feed.mark_changed();
    let events = stream::unfold(feed, |mut feed| async move {
        loop {
            feed.changed().await.ok()?;
            let Some(stats) = *feed.borrow_and_update() else {
                continue;
            };
            let data = serde_json::to_string(&stats).ok()?;
            return Some((sse::event(Some("stats"), None, &data), feed));
        }
    });
    sse::response(events, &state.shutdown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(locations: u64) -> Stats {
        Stats {
            persons: 3,
            locations,
        }
    }

    #[test]
    fn the_rate_is_the_growth_over_the_time_counted() {
        let mut meter = RateMeter::default();
        let start = Instant::now();
        assert_eq!(meter.record(start, stats(100)).rate, 0.0);
        let second = start + Duration::from_secs(1);
        assert_eq!(meter.record(second, stats(150)).rate, 50.0);
        let later = start + Duration::from_secs(4);
        assert_eq!(meter.record(later, stats(500)).rate, 100.0);
        // Only the last thirty seconds count.
        let much_later = start + Duration::from_secs(40);
        let live = meter.record(much_later, stats(500));
        assert_eq!((live.locations, live.persons, live.rate), (500, 3, 0.0));
    }

    /// Counts once a second for two minutes of `per_second` locations
    /// stored `every` seconds in one go (from `offset` seconds in); the
    /// rates shown once the window is full.
    fn rates_of_bursts(per_second: u64, every: u64, offset: u64) -> Vec<f64> {
        let mut meter = RateMeter::default();
        let start = Instant::now();
        let mut stored = 1_000;
        let mut rates = Vec::new();
        for second in 0..120 {
            if second >= offset && (second - offset).is_multiple_of(every) {
                stored += per_second * every;
            }
            let live = meter.record(start + Duration::from_secs(second), stats(stored));
            assert_eq!(live.locations, stored);
            if second >= 30 {
                rates.push(live.rate);
            }
        }
        rates
    }

    #[test]
    fn a_steady_feed_in_bursts_shows_its_average() {
        // Five a second as one location each 200 ms, batches of ten every
        // two seconds, or fifty every ten: 5/s throughout, never 0 and
        // never 12.
        for (every, offset) in [(1, 0), (2, 1), (5, 3), (10, 0), (10, 7)] {
            let rates = rates_of_bursts(5, every, offset);
            assert!(
                rates.iter().all(|rate| (rate - 5.0).abs() < 1e-9),
                "every {every} s from {offset} s: {rates:?}"
            );
        }
    }

    #[test]
    fn before_the_window_is_full_the_rate_is_over_the_time_counted() {
        let mut meter = RateMeter::default();
        let start = Instant::now();
        meter.record(start, stats(0));
        for second in 1..=10 {
            let live = meter.record(start + Duration::from_secs(second), stats(second * 5));
            assert_eq!(live.rate, 5.0, "after {second} s");
        }
    }

    #[test]
    fn a_feed_that_stops_fades_out_within_the_window() {
        let mut meter = RateMeter::default();
        let start = Instant::now();
        for second in 0..=60 {
            meter.record(start + Duration::from_secs(second), stats(second * 5));
        }
        let stopped = 300;
        let halfway = meter.record(start + Duration::from_secs(75), stats(stopped));
        assert_eq!(halfway.rate, 75.0 / 30.0);
        let gone = meter.record(start + Duration::from_secs(91), stats(stopped));
        assert_eq!(gone.rate, 0.0);
    }
}
