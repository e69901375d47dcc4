//! `GET /api/v2/live`: the stored counts and the rate locations arrive at,
//! every second, as Server-Sent Events, for the page's live header.
//!
//! One task per process asks the store once a second ([`LiveStats::watch`]
//! is fed by the API component); every open stream forwards the latest
//! figures, so a thousand open pages cost one query a second. The stream
//! itself (headers, reconnect hint, keep-alive, end at shutdown, write
//! timeout) is the platform's [`platform::sse`].

use std::{collections::VecDeque, time::Duration};

use axum::{extract::State, response::Response};
use futures::stream;
use platform::sse;
use serde::Serialize;
use tokio::{sync::watch, time::Instant};
use udaconnect_domain::Stats;
use utoipa::ToSchema;

use super::state::ApiState;

/// How far back the rate is measured.
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// What the live header shows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct LiveStats {
    /// Persons stored.
    pub persons: u64,
    /// Locations stored.
    pub locations: u64,
    /// Locations stored per second, over the last few seconds.
    pub rate: f64,
}

/// Turns successive counts into [`LiveStats`] with a rate.
#[derive(Debug, Default)]
pub struct RateMeter {
    samples: VecDeque<(Instant, u64)>,
}

impl RateMeter {
    /// The figures for `stats` counted at `at`.
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
#[utoipa::path(
    get, path = "/api/v2/live", tag = "v2",
    responses((status = 200, description = "A stream of `stats` events, one a second", content_type = "text/event-stream", body = LiveStats))
)]
pub async fn live(State(state): State<ApiState>) -> Response {
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

    #[test]
    fn the_rate_is_the_growth_over_the_last_seconds() {
        let mut meter = RateMeter::default();
        let start = Instant::now();
        let stats = |locations| Stats {
            persons: 3,
            locations,
        };
        assert_eq!(meter.record(start, stats(100)).rate, 0.0);
        let second = start + Duration::from_secs(1);
        assert_eq!(meter.record(second, stats(150)).rate, 50.0);
        let later = start + Duration::from_secs(4);
        assert_eq!(meter.record(later, stats(500)).rate, 100.0);
        // Only the last five seconds count.
        let much_later = start + Duration::from_secs(10);
        let live = meter.record(much_later, stats(500));
        assert_eq!((live.locations, live.persons, live.rate), (500, 3, 0.0));
    }
}
