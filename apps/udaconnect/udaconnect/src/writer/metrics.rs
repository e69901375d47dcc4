//! What the writer counts: rows stored (and duplicates left alone, and
//! erased persons' rows dropped), batch sizes, commit latency, dead
//! letters by reason, retries, and how far behind it is (messages
//! pending, age of the oldest).

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};
use udaconnect_domain::InsertReport;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// The writer's metrics; cheap to clone.
#[derive(Clone)]
pub struct WriterMetrics {
    rows: Family<OutcomeLabel, Counter>,
    batch_rows: Histogram,
    commit: Histogram,
    dead: Family<ReasonLabel, Counter>,
    retries: Counter,
    pending: Gauge,
    oldest: Gauge<f64, AtomicU64>,
}

impl WriterMetrics {
    /// Creates the families and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            rows: Family::default(),
            batch_rows: Histogram::new([
                1.0, 10.0, 100.0, 500.0, 1000.0, 2500.0, 5000.0, 10_000.0, 25_000.0, 50_000.0,
            ]),
            commit: platform::metrics::latency_histogram(),
            dead: Family::default(),
            retries: Counter::default(),
            pending: Gauge::default(),
            oldest: Gauge::default(),
        };
        registry.register(
            "writer_rows",
            "Locations written: inserted, duplicate (already stored: a redelivery or a client's retry), or erased (of a person erased while they were on their way: dropped)",
            metrics.rows.clone(),
        );
        registry.register(
            "writer_batch_rows",
            "Rows per transaction",
            metrics.batch_rows.clone(),
        );
        registry.register_with_unit(
            "writer_commit_duration",
            "Time to write and commit one transaction",
            Unit::Seconds,
            metrics.commit.clone(),
        );
        registry.register(
            "writer_dead_letters",
            "Messages or locations set aside on the dead-letter stream, by reason",
            metrics.dead.clone(),
        );
        registry.register(
            "writer_store_retries",
            "Transactions tried again because the database was unavailable",
            metrics.retries.clone(),
        );
        registry.register(
            "writer_pending_messages",
            "Messages of the location stream not yet written and acknowledged",
            metrics.pending.clone(),
        );
        registry.register_with_unit(
            "writer_oldest_pending_age",
            "Age of the oldest message not yet written",
            Unit::Seconds,
            metrics.oldest.clone(),
        );
        metrics
    }

    /// One transaction of `rows` rows committed in `seconds`, as `report`
    /// says.
    pub fn committed(&self, rows: usize, report: &InsertReport, seconds: f64) {
        self.batch_rows.observe(rows as f64);
        self.commit.observe(seconds);
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        for (outcome, n) in [
            ("inserted", report.inserted),
            ("duplicate", report.duplicates),
            ("erased", report.erased.len()),
        ] {
            self.rows
                .get_or_create(&OutcomeLabel { outcome })
                .inc_by(count(n));
        }
    }

    /// One dead letter for `reason`.
    pub fn dead_letter(&self, reason: &'static str) {
        self.dead.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// One transaction to try again.
    pub fn retried(&self) {
        self.retries.inc();
    }

    /// How far behind the writers are.
    pub fn lag(&self, pending: u64, oldest_seconds: f64) {
        self.pending.set(i64::try_from(pending).unwrap_or(i64::MAX));
        self.oldest.set(oldest_seconds);
    }
}
