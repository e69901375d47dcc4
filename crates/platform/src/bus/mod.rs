//! The message bus: an ordered, numbered log that producers append to and
//! consumers read from any sequence number.
//!
//! Two implementations keep one contract, so the services never know which
//! one they run on:
//! - [`NatsBus`]: a NATS JetStream stream (file storage, retention by age and
//!   count, publishes deduplicated by message id and acknowledged once stored);
//! - [`MemoryBus`]: an in-process log for `beacon all` without a broker, which
//!   numbers messages itself and keeps a bounded window of them.
//!
//! The contract: every published message gets the next sequence number; a
//! subscription from `n` yields every retained message with `seq >= n` in
//! order, then each new one, without gaps it could have filled and without
//! duplicates; a failed subscription ends with an error and the caller
//! resubscribes from the sequence after the last one it saw.

mod memory;
mod nats;

use bytes::Bytes;
use futures::stream::BoxStream;
use tokio_util::sync::CancellationToken;

pub use self::{
    memory::MemoryBus,
    nats::{NatsArgs, NatsBus, NatsUrls, StreamArgs},
};
use crate::backoff::retry;

/// One message as stored on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The bus-assigned sequence number, from 1.
    pub seq: u64,
    /// The message bytes, as published.
    pub payload: Bytes,
}

/// The outcome of an acknowledged publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The sequence number the message was stored under.
    pub seq: u64,
    /// The bus already held a message with this id (a retry of a publish
    /// whose acknowledgement was lost); it is stored once.
    pub duplicate: bool,
}

/// The sequence numbers the bus retains: `first..=last`, empty when
/// `first > last`. `last` is the newest sequence ever assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The oldest retained sequence.
    pub first: u64,
    /// The newest sequence.
    pub last: u64,
}

impl Bounds {
    /// Whether nothing is retained.
    pub fn is_empty(&self) -> bool {
        self.first > self.last
    }
}

/// What went wrong talking to the bus. Every variant is transient from the
/// caller's point of view: retry, resubscribe, or report not-ready.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    /// A publish that was not acknowledged; retrying with the same id is safe.
    #[error("publish not acknowledged: {0}")]
    Publish(String),
    /// A subscription that could not be started or broke off.
    #[error("subscription failed: {0}")]
    Subscribe(String),
    /// A subscriber that fell too far behind the live messages.
    #[error("subscriber fell behind by {0} messages")]
    Lagged(u64),
    /// A read of the stream or its state that failed.
    #[error("stream request failed: {0}")]
    Request(String),
}

/// Messages from a subscription, in sequence order.
pub type Subscription = BoxStream<'static, Result<Envelope, BusError>>;

/// A handle on the bus; cheap to clone.
#[derive(Clone)]
pub enum Bus {
    /// In-process, for a single `beacon all`.
    Memory(MemoryBus),
    /// NATS JetStream.
    Nats(NatsBus),
}

impl Bus {
    /// Appends one message and waits until the bus has stored it. `id` makes
    /// retries idempotent: a message with an id already stored is not stored
    /// again.
    pub async fn publish(&self, id: &str, payload: Bytes) -> Result<Published, BusError> {
        match self {
            Bus::Memory(bus) => Ok(bus.publish(payload)),
            Bus::Nats(bus) => bus.publish(id, payload).await,
        }
    }

    /// Every retained message with `seq >= from`, then each new one.
    pub async fn subscribe(&self, from: u64) -> Result<Subscription, BusError> {
        match self {
            Bus::Memory(bus) => Ok(bus.subscribe(from)),
            Bus::Nats(bus) => bus.subscribe(from).await,
        }
    }

    /// Up to `max` retained messages with `seq >= from`, oldest first: for
    /// reading history that a consumer no longer holds in memory.
    pub async fn fetch(&self, from: u64, max: usize) -> Result<Vec<Envelope>, BusError> {
        match self {
            Bus::Memory(bus) => Ok(bus.fetch(from, max)),
            Bus::Nats(bus) => bus.fetch(from, max).await,
        }
    }

    /// The retained range.
    pub async fn bounds(&self) -> Result<Bounds, BusError> {
        match self {
            Bus::Memory(bus) => Ok(bus.bounds()),
            Bus::Nats(bus) => bus.bounds().await,
        }
    }

    /// Whether the bus can be reached right now.
    pub fn is_connected(&self) -> bool {
        match self {
            Bus::Memory(_) => true,
            Bus::Nats(bus) => bus.is_connected(),
        }
    }

    /// Makes sure the stream exists, retrying with backoff until it does or
    /// `shutdown` is cancelled (then returns `false`). Services call this
    /// before they report ready, so their start order does not matter.
    pub async fn prepare(&self, shutdown: &CancellationToken) -> bool {
        let Bus::Nats(bus) = self else {
            return true;
        };
        retry(shutdown, "stream not available yet", || bus.ensure_stream())
            .await
            .is_some()
    }

    /// Short, human name of the implementation, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Bus::Memory(_) => "in-process",
            Bus::Nats(_) => "nats",
        }
    }
}
