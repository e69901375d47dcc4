//! `udaconnect meetings`: follows the stored locations the writers
//! announce (the `LOCATIONS_STORED` stream, through one durable consumer
//! that every meetings process of its shard shares) and folds them into
//! the meetings (see `udaconnect_domain::meeting`).
//!
//! With `UDACONNECT_MEETINGS_SHARDS` above 1, the work is cut by space
//! (`udaconnect_domain::meeting::shard`): every shard reads every message
//! through its own consumer and folds in only the locations of its
//! regions, passing the others over. A consumer of a new cut starts where
//! every consumer of the old one had got to, so re-cutting skips nothing.
//!
//! It takes up to `UDACONNECT_MEETINGS_FETCH` messages at a time, waiting
//! at most `UDACONNECT_MEETINGS_LINGER` after the first, folds their
//! locations in transactions of at most `UDACONNECT_MEETINGS_FOLD_MAX`,
//! and acknowledges the messages once all have committed. A process that
//! dies before acknowledging loses nothing and counts nothing twice: the
//! messages come again, and the store folds each location in once (it
//! remembers which it has). It keeps no positions in
//! memory between batches: the store matches each location against those
//! folded in before, whenever it was sent, so a phone's backlog uploaded
//! hours late makes the meetings it would have made on time. While the
//! database is away it holds its batch, retrying, and tells the bus it is
//! still working on it.
//!
//! It also publishes every meeting written on the `MEETINGS` stream
//! ([`events`]), at least once.

mod events;
mod metrics;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::future::join_all;
use platform::{
    backoff::{Backoff, retry},
    bus::{BusStream, Delivery, WorkQueue},
    health::ReadyFlag,
    service::{BoxFuture, Component, ServiceBuilder},
};
use tokio_util::sync::CancellationToken;
use udaconnect_domain::{Store, meeting::Sighting};

use self::metrics::MeetingsMetrics;
use crate::{bus_wire, cli::MeetingsConfig};

/// How often it reads how far behind it is.
const LAG_EVERY: Duration = Duration::from_secs(1);

/// The meetings target, ready to run.
pub struct MeetingsComponent {
    store: Arc<dyn Store>,
    stored: BusStream,
    events: BusStream,
    settings: MeetingsConfig,
    metrics: MeetingsMetrics,
    consuming: ReadyFlag,
    /// Locations stored before the stream had them (the embedded demo's
    /// conference), folded in first.
    backlog: Vec<Sighting>,
}

impl MeetingsComponent {
    /// Registers its metrics and readiness on `service`.
    pub fn new(
        service: &mut ServiceBuilder,
        store: Arc<dyn Store>,
        stored: BusStream,
        events: BusStream,
        settings: MeetingsConfig,
    ) -> Self {
        let metrics = MeetingsMetrics::register(service.registry());
        let connected = stored.clone();
        service
            .readiness()
            .add_check("meetings: bus connected", move || connected.is_connected());
        let consuming = service
            .readiness()
            .flag("meetings: consuming the stored locations");
        Self {
            store,
            stored,
            events,
            settings,
            metrics,
            consuming,
            backlog: Vec::new(),
        }
    }

    /// The same, folding `backlog` in before following the stream.
    #[must_use]
    pub fn with_backlog(self, backlog: Vec<Sighting>) -> Self {
        Self { backlog, ..self }
    }

    async fn fold_backlog(&self, shutdown: &CancellationToken) {
        if self.backlog.is_empty() {
            return;
        }
        let started = Instant::now();
        let mut mine = self.backlog.clone();
        self.metrics
            .elsewhere(self.settings.shard.keep_own(&mut mine));
        for chunk in mine.chunks(self.settings.args.meetings_fold_max) {
            if shutdown.is_cancelled() {
                return;
            }
            let chunk_started = Instant::now();
            match self.store.apply_meetings(&self.settings.rules, chunk).await {
                Ok(changes) => self.metrics.folded(&changes, chunk_started.elapsed()),
                Err(err) => {
                    tracing::warn!(error = %err, "meetings: cannot fold the stored locations in");
                    return;
                }
            }
        }
        tracing::info!(
            locations = self.backlog.len(),
            took = ?started.elapsed(),
            "meetings: the stored locations folded in"
        );
    }

    async fn open(&self, shutdown: &CancellationToken) -> Option<WorkQueue> {
        if !self.stored.prepare(shutdown).await {
            return None;
        }
        let (name, family) = self.settings.args.consumer();
        retry(shutdown, "cannot open the meetings' consumer yet", || {
            self.stored
                .work_queue_in_family(&name, family, self.settings.args.meetings_ack_wait)
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
            stream = %self.stored.settings().name,
            consumer = %self.settings.args.consumer().0,
            shard = self.settings.shard.index(),
            shards = self.settings.shard.count(),
            bus = self.stored.kind(),
            "meetings: consuming"
        );
        queue
            .serve(
                self.settings.args.meetings_fetch,
                self.settings.args.meetings_linger,
                shutdown,
                &self.consuming,
                "meetings",
                |batch| self.fold(batch, shutdown),
            )
            .await;
    }

    /// Folds one fetched batch in, retrying while the store is away;
    /// acknowledges it once committed. Returns early, acknowledging
    /// nothing, when shutdown starts: the batch comes again.
    async fn fold(&self, batch: Vec<Delivery>, shutdown: &CancellationToken) {
        let mut sightings = Vec::new();
        for delivery in &batch {
            match bus_wire::decode(delivery.payload()) {
                Ok(records) => sightings.extend(records.iter().map(|record| Sighting {
                    id: record.id,
                    person: record.person_id,
                    at: record.time,
                    position: record.position,
                })),
                // What the writers announce is what they stored, and the
                // rows are in the database: a message that cannot be read
                // is logged, counted and passed over.
                Err(err) => {
                    tracing::warn!(seq = delivery.seq(), error = %err, "meetings: a message that cannot be read");
                    self.metrics.unreadable();
                }
            }
        }
        self.metrics
            .elsewhere(self.settings.shard.keep_own(&mut sightings));
        let mut kept_alive = Instant::now();
        // At most UDACONNECT_MEETINGS_FOLD_MAX locations a transaction:
        // what a fold holds grows with the meetings its locations start.
        for chunk in sightings.chunks(self.settings.args.meetings_fold_max) {
            let mut backoff = Backoff::default();
            loop {
                if kept_alive.elapsed() >= self.settings.args.meetings_ack_wait / 3 {
                    join_all(batch.iter().map(Delivery::in_progress)).await;
                    kept_alive = Instant::now();
                }
                let started = Instant::now();
                match self.store.apply_meetings(&self.settings.rules, chunk).await {
                    Ok(changes) => {
                        self.metrics.folded(&changes, started.elapsed());
                        break;
                    }
                    Err(err) => {
                        self.metrics.retry();
                        let delay = backoff.next_delay();
                        tracing::warn!(error = %err, retry_in = ?delay, "meetings: cannot fold locations in yet");
                        tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            () = shutdown.cancelled() => return,
                        }
                    }
                }
            }
        }
        for outcome in join_all(batch.iter().map(Delivery::ack)).await {
            if let Err(err) = outcome {
                tracing::debug!(error = %err, "cannot acknowledge a message");
            }
        }
    }
}

impl Component for MeetingsComponent {
    fn name(&self) -> &'static str {
        "meetings"
    }

    fn run(
        self: Box<Self>,
        shutdown: CancellationToken,
        _deadline: Duration,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            // The backlog beside the stream: folding is the same in any
            // order, and a demo's API is ready at once.
            tokio::join!(
                self.fold_backlog(&shutdown),
                self.consume(&shutdown),
                self.watch_lag(&shutdown),
                events::publish(
                    &*self.store,
                    &self.events,
                    &self.settings.args,
                    &self.metrics,
                    &shutdown
                )
            );
        })
    }
}
