//! What the receiver counts: messages taken from the bus, malformed payloads
//! skipped, deliveries, connected and refused clients per transport, slow
//! clients caught up, and the intervals and bus latency of what it received.
//! The client cap is enforced here too: a client is counted as connected
//! only once admitted under it.

use std::{
    fmt::Write as _,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use beacon_wire::INTERVAL_BUCKETS_SECONDS;
use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};

/// How a client is connected.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Transport {
    /// Server-Sent Events.
    Sse,
    /// WebSocket.
    Ws,
}

impl EncodeLabelValue for Transport {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            Transport::Sse => "sse",
            Transport::Ws => "ws",
        })
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabel {
    transport: Transport,
}

/// The receiver's metrics; cheap to clone. Per-transport series are looked
/// up once here, not on every delivery.
#[derive(Clone)]
pub struct Metrics {
    pub(crate) received: Counter,
    pub(crate) malformed: Counter,
    pub(crate) lagged: Counter,
    pub(crate) interval: Histogram,
    pub(crate) bus_latency: Histogram,
    delivered: [Counter; 2],
    clients: [Gauge; 2],
    refused: [Counter; 2],
    admitted: Arc<Admitted>,
}

/// The clients admitted now, and how many may be.
#[derive(Debug)]
struct Admitted {
    now: AtomicUsize,
    cap: AtomicUsize,
}

impl Metrics {
    /// Creates the families and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let delivered = Family::<TransportLabel, Counter>::default();
        let clients = Family::<TransportLabel, Gauge>::default();
        let refused = Family::<TransportLabel, Counter>::default();
        // One series per transport, created now. `get_or_create` returns a
        // guard holding the family's lock: each call gets its own statement.
        let series = |transport| {
            let label = TransportLabel { transport };
            let delivered = delivered.get_or_create(&label).clone();
            let clients = clients.get_or_create(&label).clone();
            let refused = refused.get_or_create(&label).clone();
            (delivered, clients, refused)
        };
        let (sse_delivered, sse_clients, sse_refused) = series(Transport::Sse);
        let (ws_delivered, ws_clients, ws_refused) = series(Transport::Ws);
        let metrics = Self {
            received: Counter::default(),
            malformed: Counter::default(),
            lagged: Counter::default(),
            interval: Histogram::new(INTERVAL_BUCKETS_SECONDS),
            bus_latency: platform::metrics::latency_histogram(),
            delivered: [sse_delivered, ws_delivered],
            clients: [sse_clients, ws_clients],
            refused: [sse_refused, ws_refused],
            admitted: Arc::new(Admitted {
                now: AtomicUsize::new(0),
                cap: AtomicUsize::new(usize::MAX),
            }),
        };
        registry.register(
            "messages_received",
            "Valid messages taken from the bus",
            metrics.received.clone(),
        );
        registry.register(
            "malformed_payloads",
            "Payloads on the subject that were not valid broadcasts, skipped",
            metrics.malformed.clone(),
        );
        registry.register(
            "messages_delivered",
            "Messages written to clients",
            delivered,
        );
        registry.register("clients_connected", "Clients connected now", clients);
        registry.register(
            "clients_refused",
            "Clients answered 503 because the receiver was at its client cap (BEACON_MAX_CLIENTS)",
            refused,
        );
        registry.register(
            "slow_clients_rejoined",
            "Times a client fell behind the live messages and was caught up from its last sequence",
            metrics.lagged.clone(),
        );
        registry.register_with_unit(
            "received_interval",
            "The broadcaster's wait before each received message",
            Unit::Seconds,
            metrics.interval.clone(),
        );
        registry.register_with_unit(
            "bus_latency",
            "Time from a message's sent_at to its arrival at this receiver",
            Unit::Seconds,
            metrics.bus_latency.clone(),
        );
        metrics
    }

    /// The delivery counter of `transport`.
    pub(crate) fn delivered(&self, transport: Transport) -> &Counter {
        &self.delivered[transport as usize]
    }

    /// Sets the client cap.
    pub(crate) fn set_client_cap(&self, cap: usize) {
        self.admitted.cap.store(cap, Ordering::Relaxed);
    }

    /// The client cap.
    pub(crate) fn client_cap(&self) -> usize {
        self.admitted.cap.load(Ordering::Relaxed)
    }

    /// Admits a client under the cap, counting it as connected until the
    /// guard is dropped; `None` if the receiver is full (nothing counted:
    /// see [`Self::refused`]).
    pub(crate) fn admit(&self, transport: Transport) -> Option<ClientGuard> {
        let cap = self.admitted.cap.load(Ordering::Relaxed);
        self.admitted
            .now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (now < cap).then_some(now + 1)
            })
            .ok()?;
        let gauge = self.clients[transport as usize].clone();
        gauge.inc();
        Some(ClientGuard {
            gauge,
            admitted: Arc::clone(&self.admitted),
        })
    }

    /// Counts a client refused at the cap.
    pub(crate) fn refused(&self, transport: Transport) {
        self.refused[transport as usize].inc();
    }
}

/// Counts a client out when its connection ends.
pub(crate) struct ClientGuard {
    gauge: Gauge,
    admitted: Arc<Admitted>,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.gauge.dec();
        self.admitted.now.fetch_sub(1, Ordering::AcqRel);
    }
}
