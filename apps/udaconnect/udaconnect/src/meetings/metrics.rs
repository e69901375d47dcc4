//! What the meetings target counts: locations folded in (and those that
//! came again, and those of persons erased since), meetings started, grown
//! and joined, fold latency, retries (and serialization conflicts within a
//! fold), unreadable messages, events published, and how far behind it is.

use std::{sync::atomic::AtomicU64, time::Duration};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};
use udaconnect_domain::meeting::MeetingChanges;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// The meetings target's metrics; cheap to clone.
#[derive(Clone)]
pub struct MeetingsMetrics {
    locations: Family<OutcomeLabel, Counter>,
    meetings: Family<OutcomeLabel, Counter>,
    fold: Histogram,
    retries: Counter,
    conflicts: Counter,
    unreadable: Counter,
    events: Family<OutcomeLabel, Counter>,
    events_missed: Counter,
    pending: Gauge,
    oldest: Gauge<f64, AtomicU64>,
}

impl MeetingsMetrics {
    /// Creates the families and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            locations: Family::default(),
            meetings: Family::default(),
            fold: platform::metrics::latency_histogram(),
            retries: Counter::default(),
            conflicts: Counter::default(),
            unreadable: Counter::default(),
            events: Family::default(),
            events_missed: Counter::default(),
            pending: Gauge::default(),
            oldest: Gauge::default(),
        };
        registry.register(
            "meetings_locations",
            "Stored locations folded into the meetings: applied, already (folded in before: a redelivery), erased (of a person erased since: passed over), or elsewhere (of another shard's regions: passed over here)",
            metrics.locations.clone(),
        );
        registry.register(
            "meetings_changes",
            "Meetings started, grown, or joined into another",
            metrics.meetings.clone(),
        );
        registry.register_with_unit(
            "meetings_fold_duration",
            "Time to fold one batch in, committed",
            Unit::Seconds,
            metrics.fold.clone(),
        );
        registry.register(
            "meetings_retries",
            "Batches tried again because the store could not fold them in",
            metrics.retries.clone(),
        );
        registry.register(
            "meetings_serialization_retries",
            "Folds started again within a batch because another meetings process folding nearby locations at once conflicted (SQLSTATE 40001)",
            metrics.conflicts.clone(),
        );
        registry.register(
            "meetings_unreadable",
            "Messages of the stored-locations stream that could not be read, passed over",
            metrics.unreadable.clone(),
        );
        registry.register(
            "meetings_events",
            "Meetings published on the events' stream: published, or duplicate (published before, dropped by the broker)",
            metrics.events.clone(),
        );
        registry.register(
            "meetings_events_missed",
            "Rounds that read more meetings written than UDACONNECT_MEETINGS_EVENTS_MAX: some were not published",
            metrics.events_missed.clone(),
        );
        registry.register(
            "meetings_pending_messages",
            "Messages of the stored-locations stream not folded in yet",
            metrics.pending.clone(),
        );
        registry.register_with_unit(
            "meetings_oldest_pending_age",
            "Age of the oldest message not folded in yet",
            Unit::Seconds,
            metrics.oldest.clone(),
        );
        metrics
    }

    /// A batch folded in.
    pub fn folded(&self, changes: &MeetingChanges, took: Duration) {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let locations = |outcome| self.locations.get_or_create(&OutcomeLabel { outcome });
        locations("applied").inc_by(count(changes.applied));
        locations("already").inc_by(count(changes.already));
        locations("erased").inc_by(count(changes.erased));
        let meetings = |outcome| self.meetings.get_or_create(&OutcomeLabel { outcome });
        meetings("started").inc_by(count(changes.started.len()));
        meetings("grown").inc_by(count(changes.grown.len()));
        meetings("joined").inc_by(count(changes.joined.len()));
        self.conflicts.inc_by(count(changes.serialization_retries));
        self.fold.observe(took.as_secs_f64());
    }

    /// Locations of other shards' regions, passed over.
    pub fn elsewhere(&self, locations: usize) {
        self.locations
            .get_or_create(&OutcomeLabel {
                outcome: "elsewhere",
            })
            .inc_by(u64::try_from(locations).unwrap_or(u64::MAX));
    }

    /// A batch that will be tried again.
    pub fn retry(&self) {
        self.retries.inc();
    }

    /// An event published (or found published before).
    pub fn event(&self, duplicate: bool) {
        let outcome = if duplicate { "duplicate" } else { "published" };
        self.events.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// A round that could not publish every meeting written.
    pub fn events_missed(&self) {
        self.events_missed.inc();
    }

    /// A message passed over.
    pub fn unreadable(&self) {
        self.unreadable.inc();
    }

    /// How far behind: messages pending, and the oldest one's age.
    pub fn lag(&self, pending: u64, oldest_seconds: f64) {
        self.pending.set(i64::try_from(pending).unwrap_or(i64::MAX));
        self.oldest.set(oldest_seconds);
    }
}
