//! Storing one transaction's rows: retried while the database is away or
//! busy, and, when the database rejects them for good, stored in parts so
//! that only the rows it rejects themselves are set aside.
//!
//! One row that breaks a constraint an operator added (or holds a value
//! the column cannot take) fails the whole transaction, the other
//! messages' rows with it. Such a rejection (SQLSTATE class 22, 23 or P0,
//! [`StoreError::blames_the_rows`]) splits the rows in halves, each stored
//! on its own and split again if rejected, down to single rows: with `k`
//! bad rows among `n`, some `2k·log₂ n` transactions more, and every other
//! row stored. A rejection of the statement itself (a privilege revoked, a
//! column renamed) would fail every part alike: the rows are set aside at
//! once. Either way the writer goes on with the next messages instead of
//! retrying forever.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use futures::future::join_all;
use platform::{backoff::Backoff, bus::Delivery};
use udaconnect_domain::{InsertReport, LocationId, LocationRecord, StoreError};

use super::batch::{Group, Writer};

/// What became of a group's rows beyond those stored or already there.
#[derive(Default)]
pub(super) struct Written {
    /// Rows of persons who do not exist (and never did): not stored.
    pub(super) unknown: HashSet<LocationId>,
    /// Rows of persons erased: not stored, and dropped with their
    /// messages, no copy kept anywhere.
    pub(super) erased: HashSet<LocationId>,
    /// Rows the database rejected for good, with why (the SQLSTATE and
    /// the server's message): not stored.
    pub(super) rejected: HashMap<LocationId, Arc<str>>,
}

impl Written {
    /// Whether every row was stored, or was already.
    pub(super) fn is_complete(&self) -> bool {
        self.unknown.is_empty() && self.rejected.is_empty()
    }
}

/// Tells the bus, every third of the acknowledgement wait, that a group's
/// messages are still being worked on, so that a long outage or a long
/// split does not get them delivered to another writer meanwhile.
struct KeepAlive<'a> {
    deliveries: &'a [(Delivery, usize)],
    every: Duration,
    last: Instant,
}

impl KeepAlive<'_> {
    async fn tick(&mut self) {
        if self.last.elapsed() < self.every {
            return;
        }
        let deliveries = self
            .deliveries
            .iter()
            .map(|(delivery, _)| delivery.in_progress());
        for outcome in join_all(deliveries).await {
            if let Err(err) = outcome {
                tracing::debug!(error = %err, "cannot extend a delivery");
            }
        }
        self.last = Instant::now();
    }
}

impl Writer<'_> {
    /// Stores the group's rows (see the module's documentation); `None`
    /// if shutdown came first.
    pub(super) async fn store_group(&self, group: &Group) -> Option<Written> {
        let mut alive = KeepAlive {
            deliveries: &group.deliveries,
            every: self.settings.writer_ack_wait / 3,
            last: Instant::now(),
        };
        let mut written = Written::default();
        let mut parts = vec![group.records.as_slice()];
        let mut warned = false;
        while let Some(rows) = parts.pop() {
            match self.insert(rows, &mut alive).await? {
                Ok(report) => {
                    written.unknown.extend(report.unknown_person);
                    written.erased.extend(report.erased);
                }
                Err(err) => {
                    let split = rows.len() > 1 && err.blames_the_rows();
                    if !warned {
                        tracing::warn!(error = %err, rows = rows.len(), split, "writer: the database rejected a batch");
                        warned = true;
                    }
                    if split {
                        let (first, second) = rows.split_at(rows.len() / 2);
                        parts.push(second);
                        parts.push(first);
                    } else {
                        let why: Arc<str> = err.to_string().into();
                        written
                            .rejected
                            .extend(rows.iter().map(|record| (record.id, Arc::clone(&why))));
                    }
                }
            }
        }
        Some(written)
    }

    /// Inserts `rows` (not empty), retrying while the database is away or
    /// busy; `Some(Err)` only for a rejection (which no retry would
    /// change), `None` if shutdown came first.
    async fn insert(
        &self,
        rows: &[LocationRecord],
        alive: &mut KeepAlive<'_>,
    ) -> Option<Result<InsertReport, StoreError>> {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            alive.tick().await;
            let started = Instant::now();
            let outcome = tokio::select! {
                outcome = self.store.insert_locations(rows) => outcome,
                () = self.shutdown.cancelled() => return None,
            };
            match outcome {
                Ok(report) => {
                    self.metrics
                        .committed(rows.len(), &report, started.elapsed().as_secs_f64());
                    if !report.erased.is_empty() {
                        tracing::debug!(
                            rows = report.erased.len(),
                            "writer: locations of erased persons dropped"
                        );
                    }
                    return Some(Ok(report));
                }
                Err(err @ StoreError::Rejected { .. }) => return Some(Err(err)),
                Err(err) => {
                    self.metrics.retried();
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %err, rows = rows.len(), retry_in = ?delay, "writer: cannot store a batch yet");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = self.shutdown.cancelled() => return None,
                    }
                }
            }
        }
    }
}
