//! The broadcast loop: wait, stamp, publish until stored, repeat.
//!
//! A message is generated once (its id, text and send time fixed) and then
//! published until the bus acknowledges it, however long the broker is away;
//! the id makes every retry idempotent, so none is lost or stored twice. On
//! shutdown no new message is started, and the one in flight gets the
//! shutdown deadline to be acknowledged.

use std::time::Duration;

use beacon_wire::{Broadcast, Timestamp};
use bytes::Bytes;
use platform::{
    backoff::Backoff,
    bus::BusStream,
    health::{Readiness, ReadyFlag},
    service::{BoxFuture, Component},
    shutdown::with_deadline,
};

use rand::{Rng, RngExt, SeedableRng, rngs::StdRng};
use tokio_util::sync::CancellationToken;

use crate::{Metrics, Settings};

/// Publishes [`Settings::message`] at random intervals on a bus.
pub struct Broadcaster<R = StdRng> {
    bus: BusStream,
    settings: Settings,
    metrics: Metrics,
    rng: R,
    instance: String,
    ready: ReadyFlag,
}

/// What a broadcaster did before it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Messages the bus acknowledged.
    pub published: u64,
    /// A message generated but not acknowledged before the shutdown deadline.
    pub abandoned: bool,
}

impl Broadcaster<StdRng> {
    /// A broadcaster drawing its waits from an OS-seeded generator. Its
    /// readiness (bus connected, stream prepared) is registered in `readiness`.
    pub fn new(
        bus: BusStream,
        settings: Settings,
        metrics: Metrics,
        readiness: &Readiness,
    ) -> Self {
        Self::with_rng(
            bus,
            settings,
            metrics,
            readiness,
            StdRng::from_rng(&mut rand::rng()),
        )
    }
}

impl<R: Rng + Send> Broadcaster<R> {
    /// A broadcaster drawing its waits from `rng` (a fixed seed in tests).
    pub fn with_rng(
        bus: BusStream,
        settings: Settings,
        metrics: Metrics,
        readiness: &Readiness,
        mut rng: R,
    ) -> Self {
        let probe = bus.clone();
        readiness.add_check("broadcaster: bus connected", move || probe.is_connected());
        let ready = readiness.flag("broadcaster: stream prepared");
        // Identifies this run in message ids, so that ids stay unique across
        // restarts and replicas without coordination.
        let instance = format!("{:016x}", rng.random::<u64>());
        Self {
            bus,
            settings,
            metrics,
            rng,
            instance,
            ready,
        }
    }

    /// Broadcasts until `shutdown` is cancelled; the message in flight then has
    /// `deadline` to be acknowledged.
    pub async fn run(mut self, shutdown: CancellationToken, deadline: Duration) -> Summary {
        let mut summary = Summary {
            published: 0,
            abandoned: false,
        };
        if !self.bus.prepare(&shutdown).await {
            return summary;
        }
        self.ready.set(true);
        tracing::info!(
            sender = %self.settings.sender,
            min = ?self.settings.interval.min(),
            max = ?self.settings.interval.max(),
            bus = self.bus.kind(),
            "broadcasting"
        );
        for counter in 1u64.. {
            let wait = self.settings.interval.sample(&mut self.rng);
            self.metrics.interval.observe(wait.as_secs_f64());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => break,
            }
            let broadcast = Broadcast {
                id: format!("{}-{counter}", self.instance),
                text: self.settings.message.clone(),
                sender: self.settings.sender.clone(),
                sent_at: Timestamp::now(),
                interval_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            };
            let payload = match broadcast.encode() {
                Ok(payload) => Bytes::from(payload),
                Err(err) => {
                    tracing::error!(error = %err, "cannot encode a broadcast");
                    break;
                }
            };
            let publish = self.publish_until_stored(&broadcast.id, payload);
            if with_deadline(publish, &shutdown, deadline).await.is_none() {
                tracing::error!(id = %broadcast.id, "shutdown deadline passed before the last message was stored");
                summary.abandoned = true;
                break;
            }
            summary.published += 1;
        }
        self.ready.set(false);
        tracing::info!(
            published = summary.published,
            abandoned = summary.abandoned,
            "broadcaster stopped"
        );
        summary
    }

    async fn publish_until_stored(&self, id: &str, payload: Bytes) {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        loop {
            match self.bus.publish(id, payload.clone()).await {
                Ok(published) => {
                    self.metrics.published.inc();
                    tracing::debug!(
                        id,
                        seq = published.seq,
                        duplicate = published.duplicate,
                        "published"
                    );
                    return;
                }
                Err(err) => {
                    self.metrics.retries.inc();
                    let delay = backoff.next_delay();
                    tracing::warn!(id, error = %err, retry_in = ?delay, "publish failed; retrying the same message");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

impl<R: Rng + Send + Sync + 'static> Component for Broadcaster<R> {
    fn name(&self) -> &'static str {
        "broadcaster"
    }

    fn run(
        self: Box<Self>,
        shutdown: CancellationToken,
        deadline: Duration,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            Broadcaster::run(*self, shutdown, deadline).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use platform::{
        bus::{Bus, MemoryBus, StreamSettings},
        metrics::registry,
    };

    use super::*;
    use crate::IntervalRange;

    fn settings(min_ms: u64, max_ms: u64) -> Settings {
        Settings {
            interval: IntervalRange::new(
                Duration::from_millis(min_ms),
                Duration::from_millis(max_ms),
            )
            .expect("valid range"),
            message: "Hello world".to_owned(),
            sender: "test".to_owned(),
        }
    }

    /// With tokio's clock paused, time only moves when every task waits, so
    /// each broadcast must arrive exactly its drawn interval after the last.
    #[tokio::test(start_paused = true)]
    async fn waits_each_drawn_interval_before_publishing() {
        let bus =
            Bus::Memory(MemoryBus::new()).stream(StreamSettings::log("HELLO", "beacon.hello", 100));
        let mut subscription = bus.subscribe(1).await.expect("subscribes");
        let metrics = Metrics::register(&mut registry("beacon"));
        let settings = settings(1_000, 10_000);
        let broadcaster = Broadcaster::with_rng(
            bus,
            settings.clone(),
            metrics,
            &Readiness::default(),
            StdRng::seed_from_u64(3),
        );
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(broadcaster.run(shutdown.clone(), Duration::from_secs(1)));

        // The same seed draws the instance id, then the waits.
        let mut expected = StdRng::seed_from_u64(3);
        let _instance: u64 = expected.random();
        let mut previous = tokio::time::Instant::now();
        for seq in 1..=20 {
            let envelope = subscription.next().await.expect("open").expect("no error");
            let now = tokio::time::Instant::now();
            let broadcast = Broadcast::decode(&envelope.payload).expect("valid payload");
            let drawn = settings.interval.sample(&mut expected);
            assert_eq!(envelope.seq, seq);
            assert_eq!(Duration::from_millis(broadcast.interval_ms), drawn);
            assert_eq!(now - previous, drawn, "message {seq} waited its interval");
            assert!(broadcast.id.ends_with(&format!("-{seq}")));
            previous = now;
        }
        shutdown.cancel();
        let summary = task.await.expect("broadcaster task");
        assert_eq!(summary.published, 20);
        assert!(!summary.abandoned);
    }
}
