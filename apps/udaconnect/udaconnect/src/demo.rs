//! The embedded demo's live feed: the demo conference's attendees walking
//! between booths now, reporting `UDACONNECT_DEMO_FEED` locations a second
//! in all, so that the page `cargo run` opens shows a conference going on
//! (the header's rate, contacts appearing). Their locations are taken by
//! the ingest edge like any client's, and stored by the writer from the
//! bus. The feed stops after `UDACONNECT_DEMO_FEED_LIMIT` locations, the
//! embedded store keeping every location in memory, and at shutdown.

use std::{sync::Arc, time::Duration};

use platform::{
    backoff::retry,
    service::{BoxFuture, Component},
    throttle::Throttled,
};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use udaconnect_domain::{PersonId, Store, Timestamp};

use crate::access::Caller;
use crate::{
    cli::DemoFeedConfig,
    ingest::{
        edge::Edge,
        validate::{Submitted, Time},
    },
    simulate::walk::Crowd,
};

/// How often the feed hands the edge what is due: five times a second, so
/// that a few locations a second arrive one by one, not in bursts.
const TICK: Duration = Duration::from_millis(200);
/// The most attendees walking: the first persons by id (the demo's).
const MAX_WALKERS: usize = 1_000;
/// The booths they walk between.
const BOOTHS: u32 = 12;
/// The transport the edge counts the feed's locations under.
const TRANSPORT: &str = "demo";

/// A location, in the [`Pacer`]'s units: thousandths of a location a
/// second times microseconds.
const ONE: u128 = 1_000 * 1_000_000;

/// How many locations are due as time passes, at `rate` a second, in whole
/// numbers (so that 0.5 a second is one every two seconds exactly). What
/// is not sent when due (the edge refused it) is not owed later: the feed
/// never catches up in a burst.
#[derive(Debug, Clone, PartialEq)]
pub struct Pacer {
    /// Thousandths of a location a second.
    millis_per_second: u128,
    /// Owed, in [`ONE`]s.
    owed: u128,
}

impl Pacer {
    /// `rate` locations a second (to the thousandth).
    pub fn new(rate: f64) -> Self {
        // Clamped to what a u64 holds; settings stop far below.
        let millis = (rate * 1_000.0).round().clamp(0.0, u64::MAX as f64) as u64;
        Self {
            millis_per_second: u128::from(millis),
            owed: 0,
        }
    }

    /// The locations due after `elapsed` more; at most a second's worth.
    pub fn due(&mut self, elapsed: Duration) -> u64 {
        let most = (self.millis_per_second * 1_000_000).max(ONE);
        self.owed = (self.owed + self.millis_per_second * elapsed.as_micros()).min(most);
        let due = self.owed / ONE;
        self.owed %= ONE;
        u64::try_from(due).unwrap_or(u64::MAX)
    }
}

/// The feed, run as a component of `udaconnect all` on the embedded store.
pub struct DemoFeed {
    edge: Edge,
    store: Arc<dyn Store>,
    config: DemoFeedConfig,
}

impl DemoFeed {
    /// A feed handing its locations to `edge`, walking `store`'s persons.
    pub fn new(edge: Edge, store: Arc<dyn Store>, config: DemoFeedConfig) -> Self {
        Self {
            edge,
            store,
            config,
        }
    }

    async fn walk(self, shutdown: CancellationToken) {
        let Some(ids) = retry(&shutdown, "demo feed: cannot read the persons yet", || {
            self.store.person_ids_after(0)
        })
        .await
        else {
            return;
        };
        let walkers: Vec<PersonId> = ids.into_iter().take(MAX_WALKERS).collect();
        if walkers.is_empty() {
            tracing::info!("demo feed: nobody to walk");
            return;
        }
        tracing::info!(
            rate = self.config.rate,
            attendees = walkers.len(),
            limit = self.config.limit,
            "demo feed: attendees walking"
        );
        let mut crowd = Crowd::new(&walkers, self.config.seed, BOOTHS);
        let mut last_step = vec![Instant::now(); walkers.len()];
        let mut next = 0;
        let mut pacer = Pacer::new(self.config.rate);
        let mut sent: u64 = 0;
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_tick = Instant::now();
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let now = Instant::now();
            let due = pacer
                .due(now.duration_since(last_tick))
                .min(self.config.limit.saturating_sub(sent));
            last_tick = now;
            if due == 0 {
                continue;
            }
            let time = Timestamp::now();
            let mut batch = self.edge.batch();
            for _ in 0..due {
                let index = next % walkers.len();
                next += 1;
                let seconds = now.duration_since(last_step[index]).as_secs_f64();
                last_step[index] = now;
                let attendee = crowd.step(index, seconds);
                let item = Submitted {
                    person_id: i64::from(attendee.person_id),
                    lat: attendee.position.lat,
                    lon: attendee.position.lon,
                    time: Time::Parsed(time),
                    key: None,
                };
                if batch.push(|| Ok(item)).is_err() {
                    // More than the edge takes at once: the rest next time.
                    break;
                }
            }
            let outcome = tokio::select! {
                // The demo's own feed, the organiser's in effect.
                outcome = self.edge.ingest(TRANSPORT, Caller::Organiser, batch) => outcome,
                () = shutdown.cancelled() => return,
            };
            match outcome {
                Ok(outcome) => {
                    sent += u64::try_from(outcome.accepted.len()).unwrap_or(u64::MAX);
                    if outcome.rejected.count() > 0 {
                        static REJECTED: Throttled = Throttled::new(Duration::from_secs(10));
                        if let Some(times) = REJECTED.hit() {
                            tracing::warn!(
                                rejected = outcome.rejected.count(),
                                times,
                                "demo feed: locations rejected by the edge"
                            );
                        }
                    }
                }
                Err(refusal) => {
                    static REFUSED: Throttled = Throttled::new(Duration::from_secs(10));
                    if let Some(times) = REFUSED.hit() {
                        tracing::warn!(%refusal, times, "demo feed: the edge refused its locations");
                    }
                }
            }
            if sent >= self.config.limit {
                tracing::info!(
                    sent,
                    "demo feed: stopped at UDACONNECT_DEMO_FEED_LIMIT locations"
                );
                return;
            }
        }
    }
}

impl Component for DemoFeed {
    fn name(&self) -> &'static str {
        "demo feed"
    }

    fn run(
        self: Box<Self>,
        shutdown: CancellationToken,
        _deadline: Duration,
    ) -> BoxFuture<'static, ()> {
        Box::pin(self.walk(shutdown))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `rate` a second makes due at each of `ticks` ticks `every`
    /// apart.
    fn due(rate: f64, every: Duration, ticks: usize) -> Vec<u64> {
        let mut pacer = Pacer::new(rate);
        (0..ticks).map(|_| pacer.due(every)).collect()
    }

    #[test]
    fn five_a_second_is_one_every_tick() {
        assert_eq!(due(5.0, TICK, 10), vec![1; 10]);
    }

    #[test]
    fn less_than_one_a_tick_adds_up() {
        let half = due(0.5, TICK, 20);
        assert_eq!(half.iter().sum::<u64>(), 2, "{half:?}");
        assert_eq!(half[9], 1, "{half:?}");
        assert_eq!(due(12.5, TICK, 10).iter().sum::<u64>(), 25);
    }

    #[test]
    fn a_late_tick_owes_at_most_a_second() {
        let mut pacer = Pacer::new(5.0);
        assert_eq!(pacer.due(Duration::from_secs(60)), 5);
        assert_eq!(pacer.due(TICK), 1);
        let mut slow = Pacer::new(0.2);
        assert_eq!(slow.due(Duration::from_secs(60)), 1);
        assert_eq!(slow.due(TICK), 0);
    }
}
