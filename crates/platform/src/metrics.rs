//! The Prometheus registry shared by every part of a process.
//!
//! Parts register their own families while the app is built; the registry is
//! then frozen behind an `Arc` and `/metrics` encodes it on each scrape.

use std::sync::Arc;

use prometheus_client::metrics::histogram::Histogram;
pub use prometheus_client::registry::Registry;

/// The buckets, in seconds, of every latency histogram: half a millisecond
/// to ten seconds, so that dashboards compare any two of them bucket for
/// bucket.
pub const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram of durations in seconds, on [`LATENCY_BUCKETS_SECONDS`].
pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS_SECONDS)
}

/// A registry whose metric names all start with `<prefix>_` (the
/// application's name, such as `beacon`).
pub fn registry(prefix: &str) -> Registry {
    Registry::with_prefix(prefix)
}

/// The text exposition of `registry` (OpenMetrics, which Prometheus reads).
pub fn encode(registry: &Arc<Registry>) -> String {
    let mut body = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut body, registry);
    body
}

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
