//! The Prometheus registry shared by every part of a process.
//!
//! Parts register their own families while the app is built; the registry is
//! then frozen behind an `Arc` and `/metrics` encodes it on each scrape.

use std::sync::Arc;

pub use prometheus_client::registry::Registry;

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
