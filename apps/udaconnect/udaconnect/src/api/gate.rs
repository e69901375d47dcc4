//! The connection queries' gate: at most a set number answered at once,
//! each within a deadline.
//!
//! A connection query over a wide area or a long time measures millions of
//! pairs; a few of them at once would take every core and make each other
//! slower still, while the cheap endpoints (persons, `/readyz`, `/metrics`)
//! must keep answering. So a connection query takes one of
//! `UDACONNECT_QUERY_CONCURRENCY` slots, or is answered 503 at once when
//! none is free, and runs at most `UDACONNECT_QUERY_TIMEOUT` (the store
//! stops it: the statement is cancelled, the in-memory search checks its
//! deadline), past which it is answered 503 too; either way with
//! `Retry-After`, and told how to ask a narrower question.

use std::{sync::Arc, time::Duration};

use platform::http::ApiError;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How to narrow a connection question that takes too long.
pub const NARROWER: &str = "ask for fewer days, a shorter distance, or (v2) a shorter `within`";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabel {
    reason: &'static str,
}

/// The slots, and what was refused.
#[derive(Clone)]
pub struct QueryGate {
    slots: Arc<Semaphore>,
    concurrency: usize,
    timeout: Duration,
    refused: Family<RefusedLabel, Counter>,
    running: Gauge,
}

/// A query's slot, given back when dropped.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    running: Gauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.running.dec();
    }
}

impl QueryGate {
    /// `concurrency` slots for queries stopped after `timeout`; counts
    /// registered in `registry`.
    pub fn new(concurrency: usize, timeout: Duration, registry: &mut Registry) -> Self {
        let refused = Family::<RefusedLabel, Counter>::default();
        registry.register(
            "connection_queries_refused",
            "Connection queries answered 503: no slot free in time (busy) or stopped at their deadline (timed_out)",
            refused.clone(),
        );
        let running = Gauge::default();
        registry.register(
            "connection_queries_running",
            "Connection queries being answered now (at most UDACONNECT_QUERY_CONCURRENCY)",
            running.clone(),
        );
        Self {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            concurrency: concurrency.max(1),
            timeout,
            refused,
            running,
        }
    }

    /// A slot, held until the returned permit drops; a 503 if none is
    /// free.
    pub fn slot(&self) -> Result<Slot, ApiError> {
        let permit = Arc::clone(&self.slots).try_acquire_owned().map_err(|_| {
            self.count("busy");
            ApiError::unavailable(format!(
                "{} connection questions are being answered, each for at most {:?}; retry shortly, or {NARROWER}",
                self.concurrency, self.timeout
            ))
        })?;
        self.running.inc();
        Ok(Slot {
            _permit: permit,
            running: self.running.clone(),
        })
    }

    /// The 503 for a query the store stopped after `after`.
    pub fn timed_out(&self, after: Duration) -> ApiError {
        self.count("timed_out");
        ApiError::unavailable(format!(
            "the question took longer than {after:?} and was stopped: {NARROWER}"
        ))
    }

    fn count(&self, reason: &'static str) {
        self.refused.get_or_create(&RefusedLabel { reason }).inc();
    }
}
