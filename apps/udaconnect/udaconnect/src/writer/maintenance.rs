//! The partitioned tables' upkeep, run by the writers on PostgreSQL: at
//! start and every `UDACONNECT_MAINTENANCE_EVERY`, the partitions of the
//! next `UDACONNECT_PARTITIONS_AHEAD` days (UTC) are created, in
//! `location` and in the meetings' `meeting_position`, so that the day a
//! row is stored for always has its partition (a row of a day without one
//! goes to the default partition, and is moved into the day's once it has
//! one); with `UDACONNECT_RETENTION`, whole days past it are dropped from
//! both, with the idempotency keys' claims of those days and the meetings
//! that ended before them ([`PgStore::maintain`]). The database lets one
//! writer at a time do it; the others find it done.
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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabel {
    table: &'static str,
}

/// The upkeep, ready to run.
pub struct MaintenanceComponent {
    store: PgStore,
    days_ahead: u16,
    retention: Option<Duration>,
    every: Duration,
    /// Rounds by outcome: `done`, `busy` (another writer's), `failed`.
    rounds: Family<OutcomeLabel, Counter>,
    /// Partitions created and dropped, by table (`location`,
    /// `meeting_position`).
    created: Family<TableLabel, Counter>,
    dropped: Family<TableLabel, Counter>,
    /// Meetings deleted for the retention.
    meetings_pruned: Counter,
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
            created: Family::default(),
            dropped: Family::default(),
            meetings_pruned: Counter::default(),
        };
        let registry = service.registry();
        registry.register(
            "writer_maintenance_rounds",
            "Rounds of the partitioned tables' upkeep, by outcome",
            component.rounds.clone(),
        );
        registry.register(
            "writer_partitions_created",
            "Day partitions created ahead, by table",
            component.created.clone(),
        );
        registry.register(
            "writer_partitions_dropped",
            "Day partitions dropped for the retention, by table",
            component.dropped.clone(),
        );
        registry.register(
            "writer_meetings_pruned",
            "Meetings deleted for the retention",
            component.meetings_pruned.clone(),
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
            Ok(done) => {
                for (table, created, dropped) in [
                    ("location", done.created, done.dropped),
                    (
                        "meeting_position",
                        done.positions_created,
                        done.positions_dropped,
                    ),
                ] {
                    let label = TableLabel { table };
                    self.created
                        .get_or_create(&label)
                        .inc_by(u64::from(created));
                    self.dropped
                        .get_or_create(&label)
                        .inc_by(u64::from(dropped));
                }
                let created = done.created + done.positions_created;
                let dropped = done.dropped + done.positions_dropped;
                self.meetings_pruned.inc_by(done.meetings_pruned);
                if created + dropped > 0
                    || done.claims_pruned
                        + done.default_deleted
                        + done.positions_default_deleted
                        + done.meetings_pruned
                        > 0
                {
                    tracing::info!(
                        created = done.created,
                        dropped = done.dropped,
                        default_deleted = done.default_deleted,
                        claims_pruned = done.claims_pruned,
                        positions_created = done.positions_created,
                        positions_dropped = done.positions_dropped,
                        positions_default_deleted = done.positions_default_deleted,
                        meetings_pruned = done.meetings_pruned,
                        "writer: partitions maintained"
                    );
                }
                if done.busy { "busy" } else { "done" }
            }
            Err(err) => {
                tracing::warn!(error = %err, "writer: cannot maintain the partitions yet");
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
