//! What the receiver counts: messages taken from the bus, malformed payloads
//! skipped, deliveries and connected clients per transport, slow clients
//! caught up, and the intervals and bus latency of what it received.

use std::fmt::Write as _;

use beacon_hello::INTERVAL_BUCKETS_SECONDS;
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
}

impl Metrics {
    /// Creates the families and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let delivered = Family::<TransportLabel, Counter>::default();
        let clients = Family::<TransportLabel, Gauge>::default();
        // One series per transport, created now. `get_or_create` returns a
        // guard holding the family's lock: each call gets its own statement.
        let series = |transport| {
            let label = TransportLabel { transport };
            let delivered = delivered.get_or_create(&label).clone();
            let clients = clients.get_or_create(&label).clone();
            (delivered, clients)
        };
        let (sse_delivered, sse_clients) = series(Transport::Sse);
        let (ws_delivered, ws_clients) = series(Transport::Ws);
        let metrics = Self {
            received: Counter::default(),
            malformed: Counter::default(),
            lagged: Counter::default(),
            interval: Histogram::new(INTERVAL_BUCKETS_SECONDS),
            bus_latency: Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            delivered: [sse_delivered, ws_delivered],
            clients: [sse_clients, ws_clients],
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

    /// Counts a client as connected until the guard is dropped.
    pub(crate) fn client_connected(&self, transport: Transport) -> ClientGuard {
        let gauge = self.clients[transport as usize].clone();
        gauge.inc();
        ClientGuard(gauge)
    }
}

/// Decrements the connected-clients gauge when the connection ends.
pub(crate) struct ClientGuard(Gauge);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
