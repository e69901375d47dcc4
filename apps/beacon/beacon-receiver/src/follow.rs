//! Follow: the stream, from the bus into the hub.
//!
//! At start it reads back the newest `window` messages so that a restarted
//! receiver still shows history, and reports ready once it has caught up to
//! where the stream was. When the subscription breaks (broker restart,
//! lost connection) it resubscribes from the sequence after the last one it
//! took, so the hub never skips or repeats a message.

use std::{sync::Arc, time::SystemTime};

use futures::StreamExt;
use platform::{
    backoff::{Backoff, retry},
    bus::{Bounds, BusStream, Envelope},
    health::ReadyFlag,
};
use tokio_util::sync::CancellationToken;

use beacon_wire::Message;

use crate::{
    frame::{Frame, FrameError, decode_message},
    hub::Hub,
    metrics::Metrics,
};

/// Moves messages from the bus into the hub.
pub struct Follower {
    pub(crate) bus: BusStream,
    pub(crate) hub: Arc<Hub>,
    pub(crate) metrics: Metrics,
    pub(crate) ready: ReadyFlag,
    pub(crate) window: usize,
}

impl Follower {
    /// Runs until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        if !self.bus.prepare(&shutdown).await {
            return;
        }
        let Some(bounds) = retry(&shutdown, "cannot read the stream's state", || {
            self.bus.bounds()
        })
        .await
        else {
            return;
        };
        let (mut next, caught_up_at) = self.starting_point(bounds);
        self.hub.start_at(next);
        tracing::info!(from = next, bus = self.bus.kind(), "following the stream");
        let mut caught_up = next > caught_up_at;
        // Paces resubscribing when subscriptions keep ending at once.
        let mut backoff = Backoff::default();
        loop {
            let Some(mut subscription) = retry(&shutdown, "cannot subscribe to the stream", || {
                self.bus.subscribe(next)
            })
            .await
            else {
                break;
            };
            self.ready.set(caught_up);
            loop {
                let item = tokio::select! {
                    item = subscription.next() => item,
                    _ = shutdown.cancelled() => None,
                };
                match item {
                    Some(Ok(envelope)) => {
                        if envelope.seq < next {
                            continue;
                        }
                        next = envelope.seq + 1;
                        self.take(&envelope);
                        backoff.reset();
                        if !caught_up && next > caught_up_at {
                            caught_up = true;
                            self.ready.set(true);
                            tracing::info!(seq = envelope.seq, "caught up with the stream");
                        }
                    }
                    Some(Err(err)) => {
                        tracing::warn!(error = %err, next, "subscription broke off; resubscribing");
                        break;
                    }
                    None => break,
                }
            }
            self.ready.set(false);
            let pause = backoff.next_delay();
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.cancelled() => break,
            }
        }
    }

    /// Where to start (the oldest message of a full window) and the newest
    /// sequence now (ready once past it).
    fn starting_point(&self, bounds: Bounds) -> (u64, u64) {
        if bounds.is_empty() {
            return (bounds.last + 1, bounds.last);
        }
        let window = u64::try_from(self.window).unwrap_or(u64::MAX);
        let from = bounds
            .first
            .max(bounds.last.saturating_sub(window.saturating_sub(1)));
        (from, bounds.last)
    }

    /// Turns one stored message into a frame in the hub.
    fn take(&self, envelope: &Envelope) {
        let frame = decode_message(envelope)
            .map_err(FrameError::from)
            .and_then(|message| {
                self.observe(&message);
                Ok(Frame::new(&message)?)
            });
        match frame {
            Ok(frame) => {
                self.metrics.received.inc();
                self.hub.push(frame);
            }
            Err(err) => {
                self.metrics.malformed.inc();
                tracing::warn!(seq = envelope.seq, error = %err, "skipping a malformed payload");
                self.hub.skip(envelope.seq);
            }
        }
    }

    fn observe(&self, message: &Message) {
        let broadcast = &message.broadcast;
        self.metrics
            .interval
            .observe(broadcast.interval_ms as f64 / 1000.0);
        if let Ok(latency) = SystemTime::now().duration_since(broadcast.sent_at.into()) {
            self.metrics.bus_latency.observe(latency.as_secs_f64());
        }
    }
}
