//! What the broadcaster counts: messages stored, publish retries, and the
//! waits it drew (a histogram that should fill the configured range evenly).

use beacon_wire::INTERVAL_BUCKETS_SECONDS;
use prometheus_client::{
    metrics::{counter::Counter, histogram::Histogram},
    registry::{Registry, Unit},
};

/// The broadcaster's metric families; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    pub(crate) published: Counter,
    pub(crate) retries: Counter,
    pub(crate) interval: Histogram,
}

impl Metrics {
    /// Creates the families and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            published: Counter::default(),
            retries: Counter::default(),
            interval: Histogram::new(INTERVAL_BUCKETS_SECONDS),
        };
        registry.register(
            "messages_published",
            "Messages the bus acknowledged as stored",
            metrics.published.clone(),
        );
        registry.register(
            "publish_retries",
            "Publish attempts repeated after a failure or a missing acknowledgement",
            metrics.retries.clone(),
        );
        registry.register_with_unit(
            "broadcast_interval",
            "Waits drawn before each broadcast",
            Unit::Seconds,
            metrics.interval.clone(),
        );
        metrics
    }
}
