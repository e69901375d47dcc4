//! The message bus: streams that producers append to and consumers read,
//! either as an ordered log from any sequence number or as a work queue.
//!
//! Two implementations keep one contract, so the services never know which
//! one they run on:
//! - [`NatsBus`]: NATS JetStream (file storage, retention by age and count,
//!   publishes deduplicated by message id and acknowledged once stored);
//! - [`MemoryBus`]: in-process streams for a single process without a
//!   broker, which number messages themselves and keep a bounded window.
//!
//! A [`Bus`] is a connection: a publish names its subject, and the stream
//! that captures the subject stores it. A [`BusStream`] is one stream on it,
//! read two ways:
//! - **ordered replay** ([`BusStream::subscribe`]): every retained message
//!   with `seq >= n` in order, then each new one, without gaps it could have
//!   filled and without duplicates; a failed subscription ends with an error
//!   and the caller resubscribes from the sequence after the last one it saw;
//! - **work queue** ([`BusStream::work_queue`]): a durable consumer shared
//!   by every process using its name; each message goes to one of them, is
//!   redelivered until acknowledged, and (with [`Retention::WorkQueue`])
//!   leaves the stream once acknowledged.

mod memory;
mod nats;
mod provision;
mod queue;
mod settings;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures::stream::BoxStream;
use tokio_util::sync::CancellationToken;

pub use self::{
    memory::MemoryBus,
    nats::{DEFAULT_INBOX_PREFIX, NatsArgs, NatsBus, NatsUrls, parse_inbox_prefix},
    provision::provision,
    queue::{Delivery, QueueLag, WorkQueue},
    settings::{Retention, StreamArgs, StreamSettings, StreamSpec},
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

/// The sequence numbers a stream retains: `first..=last`, empty when
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
    /// A work-queue stream at its limit refused a publish; retry later.
    #[error("stream {0} is full")]
    Full(String),
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

/// Who creates a stream that does not exist yet, which decides what
/// [`BusStream::prepare`] does. The in-process bus creates its streams
/// when they are declared, so it matters only on NATS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Provisioning {
    /// This process creates the stream if it is missing (and uses an
    /// existing one as it is): a process with no separate provisioning
    /// step, whose user may manage streams.
    #[default]
    CreateIfMissing,
    /// Someone else creates it (a provisioning job, an operator): this
    /// process only looks it up, and waits until it exists. Its user needs
    /// no right to manage streams, and asks for none.
    External,
}

/// Messages from a subscription, in sequence order.
pub type Subscription = BoxStream<'static, Result<Envelope, BusError>>;

/// A connection to the bus; cheap to clone.
#[derive(Clone)]
pub enum Bus {
    /// In-process, for a single process.
    Memory(MemoryBus),
    /// NATS JetStream.
    Nats(NatsBus),
}

impl Bus {
    /// Appends one message to the stream capturing `subject` and waits until
    /// it is stored. `id` makes retries idempotent: a message with an id
    /// already stored is not stored again.
    pub async fn publish(
        &self,
        subject: &str,
        id: &str,
        payload: Bytes,
    ) -> Result<Published, BusError> {
        match self {
            Bus::Memory(bus) => bus.publish(subject, payload),
            Bus::Nats(bus) => bus.publish(subject, id, payload).await,
        }
    }

    /// The stream `settings` describes, on this connection, created by
    /// this process if missing ([`Provisioning::CreateIfMissing`]; see
    /// [`BusStream::with_provisioning`]).
    pub fn stream(&self, settings: StreamSettings) -> BusStream {
        if let Bus::Memory(bus) = self {
            bus.declare(&settings);
        }
        BusStream {
            bus: self.clone(),
            settings: Arc::new(settings),
            provisioning: Provisioning::CreateIfMissing,
        }
    }

    /// Whether the bus can be reached right now.
    pub fn is_connected(&self) -> bool {
        match self {
            Bus::Memory(_) => true,
            Bus::Nats(bus) => bus.is_connected(),
        }
    }

    /// Short, human name of the implementation, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Bus::Memory(_) => "in-process",
            Bus::Nats(_) => "nats",
        }
    }
}

/// One stream on a bus; cheap to clone.
#[derive(Clone)]
pub struct BusStream {
    bus: Bus,
    settings: Arc<StreamSettings>,
    provisioning: Provisioning,
}

impl BusStream {
    /// The connection the stream is on.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// What the stream is.
    pub fn settings(&self) -> &StreamSettings {
        &self.settings
    }

    /// The same stream, with `provisioning` saying who creates it.
    pub fn with_provisioning(mut self, provisioning: Provisioning) -> Self {
        self.provisioning = provisioning;
        self
    }

    /// Who creates the stream if it does not exist.
    pub fn provisioning(&self) -> Provisioning {
        self.provisioning
    }

    /// Publishes on the stream's own subject; see [`Bus::publish`].
    pub async fn publish(&self, id: &str, payload: Bytes) -> Result<Published, BusError> {
        self.bus.publish(&self.settings.subject, id, payload).await
    }

    /// Every retained message with `seq >= from`, then each new one.
    pub async fn subscribe(&self, from: u64) -> Result<Subscription, BusError> {
        match &self.bus {
            Bus::Memory(bus) => bus.subscribe(&self.settings.name, from),
            Bus::Nats(bus) => bus.subscribe(&self.settings.name, from).await,
        }
    }

    /// Up to `max` retained messages with `seq >= from`, oldest first: for
    /// reading history that a consumer no longer holds in memory.
    pub async fn fetch(&self, from: u64, max: usize) -> Result<Vec<Envelope>, BusError> {
        match &self.bus {
            Bus::Memory(bus) => bus.fetch(&self.settings.name, from, max),
            Bus::Nats(bus) => bus.fetch(&self.settings.name, from, max).await,
        }
    }

    /// The retained range.
    pub async fn bounds(&self) -> Result<Bounds, BusError> {
        match &self.bus {
            Bus::Memory(bus) => bus.bounds(&self.settings.name),
            Bus::Nats(bus) => bus.bounds(&self.settings.name).await,
        }
    }

    /// How many messages the stream holds now: on a work-queue stream,
    /// those not yet acknowledged, to tell whether it has room.
    pub async fn messages(&self) -> Result<u64, BusError> {
        match &self.bus {
            Bus::Memory(bus) => bus.messages(&self.settings.name),
            Bus::Nats(bus) => bus.messages(&self.settings.name).await,
        }
    }

    /// Whether the bus can be reached right now.
    pub fn is_connected(&self) -> bool {
        self.bus.is_connected()
    }

    /// Short, human name of the bus implementation, for logs.
    pub fn kind(&self) -> &'static str {
        self.bus.kind()
    }

    /// Waits until the stream is there to use, retrying with backoff until
    /// it is or `shutdown` is cancelled (then returns `false`). With
    /// [`Provisioning::CreateIfMissing`] it creates a missing stream; with
    /// [`Provisioning::External`] it only looks the stream up, saying once
    /// in the log what it waits for, and never asks the server for more
    /// than that. Either way it checks the stream captures its subject.
    /// Services call this before they report ready, so their start order
    /// does not matter.
    pub async fn prepare(&self, shutdown: &CancellationToken) -> bool {
        let Bus::Nats(bus) = &self.bus else {
            return true;
        };
        match self.provisioning {
            Provisioning::CreateIfMissing => retry(shutdown, "stream not available yet", || {
                bus.ensure_stream(&self.settings)
            })
            .await
            .is_some(),
            Provisioning::External => bus.await_stream(&self.settings, shutdown).await,
        }
    }

    /// Creates the stream, or updates it to the settings. Needs a user
    /// allowed to manage streams.
    pub async fn provision(&self) -> Result<(), BusError> {
        match &self.bus {
            Bus::Memory(_) => Ok(()),
            Bus::Nats(bus) => bus.provision(&self.settings).await,
        }
    }

    /// The durable consumer `name` of this stream, shared by every process
    /// that opens it under the same name. A message not acknowledged within
    /// `ack_wait` is delivered again.
    pub async fn work_queue(&self, name: &str, ack_wait: Duration) -> Result<WorkQueue, BusError> {
        match &self.bus {
            Bus::Memory(bus) => Ok(bus.work_queue(&self.settings.name, name, ack_wait)),
            Bus::Nats(bus) => bus.work_queue(&self.settings, name, None, ack_wait).await,
        }
    }

    /// The same, for one of a family of consumers (names starting with
    /// `family`) that each take a share of every message, when the family
    /// may be cut anew: a member created later starts after what every
    /// existing member has acknowledged, so that nothing is skipped and
    /// the stream is not read again from its start. (The in-process bus
    /// lives only as long as its process: its members start with it.)
    pub async fn work_queue_in_family(
        &self,
        name: &str,
        family: &str,
        ack_wait: Duration,
    ) -> Result<WorkQueue, BusError> {
        match &self.bus {
            Bus::Memory(bus) => Ok(bus.work_queue(&self.settings.name, name, ack_wait)),
            Bus::Nats(bus) => {
                bus.work_queue(&self.settings, name, Some(family), ack_wait)
                    .await
            }
        }
    }
}
