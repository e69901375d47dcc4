//! What the edge counts: locations accepted, and rejected (by transport,
//! field and kind of problem), how long the bus takes to store them, and
//! requests refused for backpressure.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::{Registry, Unit},
};
use udaconnect_domain::Problem;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabel {
    transport: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabel {
    transport: &'static str,
    field: &'static str,
    problem: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabel {
    transport: &'static str,
    cause: &'static str,
}

/// The edge's metrics; cheap to clone.
#[derive(Clone)]
pub struct EdgeMetrics {
    accepted: Family<TransportLabel, Counter>,
    rejected: Family<RejectLabel, Counter>,
    refused: Family<RefusalLabel, Counter>,
    publish: Histogram,
    messages: Counter,
}

impl EdgeMetrics {
    /// Creates the families and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            accepted: Family::default(),
            rejected: Family::default(),
            refused: Family::default(),
            publish: platform::metrics::latency_histogram(),
            messages: Counter::default(),
        };
        registry.register(
            "ingest_accepted",
            "Locations accepted (stored on the bus), by transport",
            metrics.accepted.clone(),
        );
        registry.register(
            "ingest_rejected",
            "Locations rejected at the edge, by transport, field (as the v2 API names it) and problem",
            metrics.rejected.clone(),
        );
        registry.register(
            "ingest_refused",
            "Requests answered \"retry later\", by transport and cause (bus_full, bus_unavailable, ids_unavailable, keys_unavailable)",
            metrics.refused.clone(),
        );
        registry.register_with_unit(
            "ingest_publish_duration",
            "Time for the bus to store one message of accepted locations",
            Unit::Seconds,
            metrics.publish.clone(),
        );
        registry.register(
            "ingest_messages_published",
            "Messages of accepted locations stored on the bus",
            metrics.messages.clone(),
        );
        metrics
    }

    /// `count` locations accepted over `transport`.
    pub fn accepted(&self, transport: &'static str, count: usize) {
        self.accepted
            .get_or_create(&TransportLabel { transport })
            .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
    }

    /// `count` locations rejected over `transport` for `problem` with
    /// `field`.
    pub fn rejected(
        &self,
        transport: &'static str,
        field: &'static str,
        problem: Problem,
        count: u64,
    ) {
        self.rejected
            .get_or_create(&RejectLabel {
                transport,
                field,
                problem: problem.label(),
            })
            .inc_by(count);
    }

    /// A request refused for `cause`.
    pub fn refused(&self, transport: &'static str, cause: &'static str) {
        self.refused
            .get_or_create(&RefusalLabel { transport, cause })
            .inc();
    }

    /// One message stored in `seconds`.
    pub fn published(&self, seconds: f64) {
        self.publish.observe(seconds);
        self.messages.inc();
    }
}
