//! `udaconnect writer`: a durable consumer of the LOCATIONS stream (every
//! writer shares it, each message goes to one of them) that stores the
//! locations in batches.
//!
//! It takes up to `UDACONNECT_WRITER_FETCH` messages at a time, waiting at
//! most `UDACONNECT_WRITER_LINGER` after the first, writes them in
//! transactions of at most `UDACONNECT_WRITER_BATCH_ROWS` rows (whole
//! messages; up to `UDACONNECT_WRITER_CONCURRENCY` of them at once), and
//! acknowledges a message only once its transaction has committed. Each
//! transaction stores its rows, in id order, with one binary `COPY`, the
//! rows of persons who do not exist, the rows stored already and the
//! repeats within the batch left out first; should the copy meet a row
//! another writer stored meanwhile or a person erased meanwhile (a unique
//! or foreign-key violation), it rolls back to a savepoint and stores the
//! rows with `INSERT ... ON CONFLICT DO NOTHING` instead
//! (`udaconnect_store`'s `pg/batch.rs`). A writer that dies between commit
//! and acknowledgement loses nothing and stores nothing twice: the message
//! comes again, and its rows are duplicates by id (or by idempotency key).
//! While the database is away it holds its batch, retrying, and tells the
//! bus it is still working on it, so its memory stays bounded by one batch
//! while the stream fills. What can never be written (a message that does
//! not decode, a location of a person who does not exist, a location the
//! database rejects for good: a constraint it breaks, a privilege the
//! writer lacks) goes to the dead-letter stream with the reason, and the
//! writer goes on. A location of a person erased (still on the stream
//! when the erasure ran) is neither stored nor set aside: it is dropped,
//! its message acknowledged, counted (`writer_rows{outcome="erased"}`),
//! and no copy of it kept anywhere. A transaction the database rejects
//! for its rows' sake is stored in parts, so that only the rows it
//! rejects are set aside ([`parts`]). Once committed, and before the messages are acknowledged,
//! the rows stored are published on the stored-locations stream, which
//! the meetings target follows: a writer that dies in between stores
//! nothing again when the message comes back, and publishes it again
//! (under the same message id, which the broker deduplicates).
//! On PostgreSQL the writers also keep the location table's partitions
//! ([`maintenance`]).

mod batch;
mod maintenance;
pub mod metrics;
mod parts;

use std::{sync::Arc, time::Duration};

use platform::{
    backoff::retry,
    bus::{BusStream, WorkQueue},
    health::ReadyFlag,
    service::{BoxFuture, Component, ServiceBuilder},
};
use tokio_util::sync::CancellationToken;
use udaconnect_domain::Store;

pub use self::maintenance::MaintenanceComponent;
use self::metrics::WriterMetrics;
use crate::cli::WriterArgs;

/// How often the writer reads how far behind it is.
const LAG_EVERY: Duration = Duration::from_secs(1);

/// The writer, ready to run.
pub struct WriterComponent {
    store: Arc<dyn Store>,
    locations: BusStream,
    dead: BusStream,
    stored: BusStream,
    settings: WriterArgs,
    metrics: WriterMetrics,
    consuming: ReadyFlag,
}

impl WriterComponent {
    /// Registers the writer's metrics and readiness on `service`.
    pub fn new(
        service: &mut ServiceBuilder,
        store: Arc<dyn Store>,
        locations: BusStream,
        dead: BusStream,
        stored: BusStream,
        settings: WriterArgs,
    ) -> Self {
        let metrics = WriterMetrics::register(service.registry());
        let connected = locations.clone();
        service
            .readiness()
            .add_check("writer: bus connected", move || connected.is_connected());
        let consuming = service
            .readiness()
            .flag("writer: consuming the location stream");
        Self {
            store,
            locations,
            dead,
            stored,
            settings,
            metrics,
            consuming,
        }
    }

    async fn open(&self, shutdown: &CancellationToken) -> Option<WorkQueue> {
        if !self.locations.prepare(shutdown).await
            || !self.dead.prepare(shutdown).await
            || !self.stored.prepare(shutdown).await
        {
            return None;
        }
        retry(shutdown, "cannot open the writers' consumer yet", || {
            self.locations.work_queue(
                &self.settings.writer_consumer,
                self.settings.writer_ack_wait,
            )
        })
        .await
    }

    async fn watch_lag(&self, shutdown: &CancellationToken) {
        let Some(queue) = self.open(shutdown).await else {
            return;
        };
        queue
            .report_lag(LAG_EVERY, shutdown, |pending, age| {
                self.metrics.lag(pending, age);
            })
            .await;
    }

    async fn consume(&self, shutdown: &CancellationToken) {
        let Some(mut queue) = self.open(shutdown).await else {
            return;
        };
        tracing::info!(
            stream = %self.locations.settings().name,
            consumer = %self.settings.writer_consumer,
            bus = self.locations.kind(),
            "writer: consuming"
        );
        let writer = batch::Writer {
            store: &*self.store,
            dead: &self.dead,
            stored: &self.stored,
            settings: &self.settings,
            metrics: &self.metrics,
            shutdown,
        };
        queue
            .serve(
                self.settings.writer_fetch,
                self.settings.writer_linger,
                shutdown,
                &self.consuming,
                "writer",
                |batch| writer.write(batch),
            )
            .await;
    }
}

impl Component for WriterComponent {
    fn name(&self) -> &'static str {
        "writer"
    }

    fn run(
        self: Box<Self>,
        shutdown: CancellationToken,
        _deadline: Duration,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            tokio::join!(self.consume(&shutdown), self.watch_lag(&shutdown));
        })
    }
}
