//! Work queues: a durable consumer of a stream that hands each message to
//! one of the processes sharing it, and again until one acknowledges it.
//!
//! A worker fetches a batch, does the work, and acknowledges each message
//! only once the work is done (for a writer: committed). A worker that dies
//! first loses nothing: its messages are delivered again after the
//! consumer's acknowledgement wait, so the work must be idempotent. A
//! worker that needs longer says so with [`Delivery::in_progress`].

use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::{
    BusError, Envelope,
    memory::{MemoryAck, MemoryQueue},
    nats::NatsQueue,
};

/// How long a stopping worker waits for its last acknowledgements to go.
const FLUSH_DEADLINE: Duration = Duration::from_secs(2);

/// A durable consumer of one stream.
pub struct WorkQueue {
    inner: Inner,
}

enum Inner {
    Memory(MemoryQueue),
    Nats(Box<NatsQueue>),
}

/// How far a work queue is behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueLag {
    /// Messages not acknowledged yet: waiting, or delivered and in flight.
    pub pending: u64,
    /// When the oldest of them was published.
    pub oldest: Option<SystemTime>,
}

impl WorkQueue {
    pub(super) fn memory(queue: MemoryQueue) -> Self {
        Self {
            inner: Inner::Memory(queue),
        }
    }

    pub(super) fn nats(queue: NatsQueue) -> Self {
        Self {
            inner: Inner::Nats(Box::new(queue)),
        }
    }

    /// Waits for at least one message, then takes up to `max`, waiting at
    /// most `linger` after the first for more. Dropping the future before it
    /// returns loses nothing: what it had taken is delivered again later.
    pub async fn fetch(&mut self, max: usize, linger: Duration) -> Result<Vec<Delivery>, BusError> {
        let max = max.max(1);
        match &mut self.inner {
            Inner::Memory(queue) => queue.fetch(max, linger).await,
            Inner::Nats(queue) => queue.fetch(max, linger).await,
        }
    }

    /// Sends the acknowledgements still on their way, waiting at most
    /// `deadline`: a worker that stops says what it finished, so that it
    /// is not delivered again.
    pub async fn flush(&self, deadline: Duration) {
        if let Inner::Nats(queue) = &self.inner {
            queue.flush(deadline).await;
        }
    }

    /// Messages waiting or in flight, and the age of the oldest.
    pub async fn lag(&self) -> Result<QueueLag, BusError> {
        match &self.inner {
            Inner::Memory(queue) => queue.lag(),
            Inner::Nats(queue) => queue.lag().await,
        }
    }

    /// Fetches batches of up to `max` messages (waiting at most `linger`
    /// after the first) until `shutdown`, handing each to `work`, which
    /// acknowledges what it finished. `consuming` is on while fetching
    /// works; a fetch that fails is tried again after a backoff, logged as
    /// `who` cannot fetch.
    pub async fn serve<F, Fut>(
        &mut self,
        max: usize,
        linger: Duration,
        shutdown: &tokio_util::sync::CancellationToken,
        consuming: &crate::health::ReadyFlag,
        who: &str,
        mut work: F,
    ) where
        F: FnMut(Vec<Delivery>) -> Fut,
        Fut: Future<Output = ()>,
    {
        consuming.set(true);
        let mut backoff = crate::backoff::Backoff::default();
        loop {
            let fetched = tokio::select! {
                fetched = self.fetch(max, linger) => fetched,
                () = shutdown.cancelled() => break,
            };
            match fetched {
                Ok(batch) => {
                    backoff.reset();
                    consuming.set(true);
                    work(batch).await;
                }
                Err(err) => {
                    consuming.set(false);
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %err, retry_in = ?delay, "{who}: cannot fetch");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shutdown.cancelled() => break,
                    }
                }
            }
        }
        consuming.set(false);
        self.flush(FLUSH_DEADLINE).await;
    }

    /// Reads the lag every `every` until `shutdown`, handing `report` the
    /// messages pending and the age of the oldest in seconds (0 when none
    /// is); a read that fails is skipped.
    pub async fn report_lag(
        &self,
        every: Duration,
        shutdown: &tokio_util::sync::CancellationToken,
        report: impl Fn(u64, f64),
    ) {
        let mut interval = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                () = shutdown.cancelled() => return,
            }
            match self.lag().await {
                Ok(lag) => {
                    let age = lag
                        .oldest
                        .and_then(|oldest| SystemTime::now().duration_since(oldest).ok())
                        .map_or(0.0, |age| age.as_secs_f64());
                    report(lag.pending, age);
                }
                Err(err) => tracing::debug!(error = %err, "cannot read a work queue's lag"),
            }
        }
    }
}

/// One delivery of a message.
pub struct Delivery {
    /// The message.
    pub envelope: Envelope,
    /// How many times it has been delivered, this one included.
    pub deliveries: u64,
    acker: Acker,
}

enum Acker {
    Memory(MemoryAck),
    Nats(Box<async_nats::jetstream::Message>),
}

impl Delivery {
    pub(super) fn memory(envelope: Envelope, deliveries: u64, ack: MemoryAck) -> Self {
        Self {
            envelope,
            deliveries,
            acker: Acker::Memory(ack),
        }
    }

    pub(super) fn nats(
        envelope: Envelope,
        deliveries: u64,
        message: async_nats::jetstream::Message,
    ) -> Self {
        Self {
            envelope,
            deliveries,
            acker: Acker::Nats(Box::new(message)),
        }
    }

    /// The stream sequence.
    pub fn seq(&self) -> u64 {
        self.envelope.seq
    }

    /// The message bytes.
    pub fn payload(&self) -> &Bytes {
        &self.envelope.payload
    }

    /// The work is done: the message is not delivered again. A lost
    /// acknowledgement means one more delivery, never a loss.
    pub async fn ack(&self) -> Result<(), BusError> {
        match &self.acker {
            Acker::Memory(ack) => {
                ack.ack(self.envelope.seq);
                Ok(())
            }
            Acker::Nats(message) => message
                .ack()
                .await
                .map_err(|err| BusError::Request(format!("acknowledging: {err}"))),
        }
    }

    /// The work failed and may succeed later: deliver the message again now.
    pub async fn nak(&self) -> Result<(), BusError> {
        match &self.acker {
            Acker::Memory(ack) => {
                ack.nak(self.envelope.seq);
                Ok(())
            }
            Acker::Nats(message) => message
                .ack_with(async_nats::jetstream::AckKind::Nak(None))
                .await
                .map_err(|err| BusError::Request(format!("refusing a message: {err}"))),
        }
    }

    /// The work is still going on: restart the acknowledgement wait.
    pub async fn in_progress(&self) -> Result<(), BusError> {
        match &self.acker {
            Acker::Memory(ack) => {
                ack.in_progress(self.envelope.seq);
                Ok(())
            }
            Acker::Nats(message) => message
                .ack_with(async_nats::jetstream::AckKind::Progress)
                .await
                .map_err(|err| BusError::Request(format!("extending a delivery: {err}"))),
        }
    }
}
