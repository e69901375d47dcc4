//! The location table's upkeep, run by the writers on PostgreSQL: at start
//! and every `UDACONNECT_MAINTENANCE_EVERY`, the partitions of the next
//! `UDACONNECT_PARTITIONS_AHEAD` days (UTC) are created, so that the day
//! a row is stored for always has its partition (a row of a day without
//! one goes to the default partition, and is moved into the day's once it
//! has one); with `UDACONNECT_RETENTION`, whole days past it are dropped,
//! with their idempotency keys' claims ([`PgStore::maintain`]). The
//! database lets one writer at a time do it; the others find it done.
//!
//! A round that fails (the database away or not migrated yet, a lock held
//! past its timeout) is logged and counted, and tried again within a
//! minute; the days ahead leave much more time than that.

use std::time::Duration;

use platform::{
    backoff::Backoff,
    service::{BoxFuture, Component, ServiceBuilder},
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
};
use tokio_util::sync::CancellationToken;
use udaconnect_domain::Timestamp;
use udaconnect_store::PgStore;

use crate::cli::WriterArgs;

/// Longest wait after a failed round.
const RETRY_AT_MOST: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// The upkeep, ready to run.
pub struct MaintenanceComponent {
    store: PgStore,
    days_ahead: u16,
    retention: Option<Duration>,
    every: Duration,
    /// Rounds by outcome: `done`, `busy` (another writer's), `failed`.
    rounds: Family<OutcomeLabel, Counter>,
    /// Partitions created and dropped.
    created: Counter,
    dropped: Counter,
}

impl MaintenanceComponent {
    /// Registers the upkeep's metrics on `service`.
    pub fn new(service: &mut ServiceBuilder, store: PgStore, settings: &WriterArgs) -> Self {
        let component = Self {
            store,
            days_ahead: settings.partitions_ahead,
            retention: settings.retention,
            every: settings.maintenance_every,
            rounds: Family::default(),
            created: Counter::default(),
            dropped: Counter::default(),
        };
        let registry = service.registry();
        registry.register(
            "writer_maintenance_rounds",
            "Rounds of the location table's upkeep, by outcome",
            component.rounds.clone(),
        );
        registry.register(
            "writer_partitions_created",
            "Location partitions created ahead",
            component.created.clone(),
        );
        registry.register(
            "writer_partitions_dropped",
            "Location partitions dropped for the retention",
            component.dropped.clone(),
        );
        component
    }

    /// One round at `at`: whether it went through (or another writer's
    /// did).
    async fn round(&self, at: Timestamp) -> bool {
        let outcome = match self
            .store
            .maintain(at, self.days_ahead, self.retention)
            .await
        {
            Ok(done) if done.busy => "busy",
            Ok(done) => {
                self.created.inc_by(u64::from(done.created));
                self.dropped.inc_by(u64::from(done.dropped));
                if done.created + done.dropped > 0 || done.claims_pruned + done.default_deleted > 0
                {
                    tracing::info!(
                        created = done.created,
                        dropped = done.dropped,
                        default_deleted = done.default_deleted,
                        claims_pruned = done.claims_pruned,
                        "writer: location partitions maintained"
                    );
                }
                "done"
            }
            Err(err) => {
                tracing::warn!(error = %err, "writer: cannot maintain the location partitions yet");
                "failed"
            }
        };
        self.rounds.get_or_create(&OutcomeLabel { outcome }).inc();
        outcome != "failed"
    }
}

impl Component for MaintenanceComponent {
    fn name(&self) -> &'static str {
        "maintenance"
    }

    /// A round at start, then one every `every`; after a failure (the
    /// database away, or not migrated yet) sooner, backing off up to a
    /// minute.
    fn run(
        self: Box<Self>,
        shutdown: CancellationToken,
        _deadline: Duration,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let mut backoff = Backoff::new(Duration::from_secs(1), RETRY_AT_MOST.min(self.every));
            loop {
                let done = tokio::select! {
                    done = self.round(Timestamp::now()) => done,
                    () = shutdown.cancelled() => return,
                };
                let wait = if done {
                    backoff.reset();
                    self.every
                } else {
                    backoff.next_delay()
                };
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        })
    }
}
