//! One fetched batch, written: decoded, cut into transactions of whole
//! messages, each committed (retried while the database is away, stored
//! in parts when the database rejects it, see [`super::parts`]) before its
//! messages are acknowledged; what can never be written set aside on the
//! dead-letter stream first. The locations of a person erased are neither
//! stored nor set aside: their messages are acknowledged, and nothing of
//! them is kept.

use std::collections::HashSet;

use bytes::Bytes;
use futures::{StreamExt as _, future::join_all, stream};
use platform::{
    backoff::Backoff,
    bus::{BusStream, Delivery},
};
use tokio_util::sync::CancellationToken;
use udaconnect_domain::{LocationRecord, Store};

use super::{metrics::WriterMetrics, parts::Written};
use crate::{bus_wire, cli::WriterArgs};

/// What a writer needs to write a batch.
pub struct Writer<'a> {
    pub store: &'a dyn Store,
    pub dead: &'a BusStream,
    pub stored: &'a BusStream,
    pub settings: &'a WriterArgs,
    pub metrics: &'a WriterMetrics,
    pub shutdown: &'a CancellationToken,
}

/// Messages written in one transaction, and their rows.
#[derive(Default)]
pub(super) struct Group {
    /// Each message, with how many of `records` are its own (in order).
    pub(super) deliveries: Vec<(Delivery, usize)>,
    pub(super) records: Vec<LocationRecord>,
}

impl Writer<'_> {
    /// Writes `batch`. Returns early, acknowledging nothing more, when
    /// shutdown starts: what is left comes again.
    pub async fn write(&self, batch: Vec<Delivery>) {
        let mut groups = vec![Group::default()];
        for delivery in batch {
            match bus_wire::decode(delivery.payload()) {
                Ok(records) => {
                    let fits = groups.last().is_some_and(|group| {
                        group.records.is_empty()
                            || group.records.len() + records.len()
                                <= self.settings.writer_batch_rows
                    });
                    if !fits {
                        groups.push(Group::default());
                    }
                    if let Some(group) = groups.last_mut() {
                        group.deliveries.push((delivery, records.len()));
                        group.records.extend(records);
                    }
                }
                Err(err) => {
                    tracing::warn!(seq = delivery.seq(), error = %err, "writer: a message that can never be written");
                    let letter = bus_wire::dead_letter(
                        err.code(),
                        err.to_string(),
                        delivery.seq(),
                        delivery.payload().clone(),
                    );
                    let id = format!("dead-{}-{}", delivery.seq(), err.code());
                    if self.set_aside(&id, letter, err.code()).await {
                        acknowledge(&[delivery]).await;
                    }
                }
            }
        }
        // Transactions at once: the database's index upkeep runs on as many
        // cores, and one group's commit overlaps the next one's rows.
        stream::iter(
            groups
                .into_iter()
                .filter(|group| !group.deliveries.is_empty()),
        )
        .for_each_concurrent(self.settings.writer_concurrency, |group| async move {
            if !self.shutdown.is_cancelled() {
                self.write_group(group).await;
            }
        })
        .await;
    }

    async fn write_group(&self, group: Group) {
        let Some(written) = self.store_group(&group).await else {
            return;
        };
        let stored: Vec<LocationRecord> = group
            .records
            .iter()
            .filter(|record| {
                !written.unknown.contains(&record.id)
                    && !written.erased.contains(&record.id)
                    && !written.rejected.contains_key(&record.id)
            })
            .cloned()
            .collect();
        if !stored.is_empty() && !self.announce(&stored).await {
            // Shutdown came first: not acknowledged, the messages come
            // again, are found stored, and are announced then.
            return;
        }
        let mut done = Vec::with_capacity(group.deliveries.len());
        if written.is_complete() {
            done.extend(group.deliveries.into_iter().map(|(delivery, _)| delivery));
        } else {
            let mut records = group.records.into_iter();
            for (delivery, count) in group.deliveries {
                let mine: Vec<LocationRecord> = records.by_ref().take(count).collect();
                if self.set_aside_unwritten(&delivery, mine, &written).await {
                    done.push(delivery);
                }
                // Otherwise not acknowledged: it comes again, and is set
                // aside then.
            }
        }
        acknowledge(&done).await;
    }

    /// Sets aside what of `mine`, the rows of `delivery`, was not stored:
    /// the locations of persons who do not exist, and those the database
    /// rejected, one dead letter each; `false` if shutdown came first.
    async fn set_aside_unwritten(
        &self,
        delivery: &Delivery,
        mine: Vec<LocationRecord>,
        written: &Written,
    ) -> bool {
        let (orphans, rest): (Vec<LocationRecord>, Vec<LocationRecord>) = mine
            .into_iter()
            .partition(|record| written.unknown.contains(&record.id));
        if !orphans.is_empty() {
            let persons: HashSet<i32> = orphans.iter().map(|record| record.person_id).collect();
            let letter = bus_wire::dead_letter(
                "unknown_person",
                format!(
                    "{} location(s) of persons that do not exist: {persons:?}",
                    orphans.len()
                ),
                delivery.seq(),
                bus_wire::encode(&orphans),
            );
            let id = format!("dead-{}-unknown_person", delivery.seq());
            if !self.set_aside(&id, letter, "unknown_person").await {
                return false;
            }
        }
        let refused: Vec<LocationRecord> = rest
            .into_iter()
            .filter(|record| written.rejected.contains_key(&record.id))
            .collect();
        if refused.is_empty() {
            return true;
        }
        let mut why: Vec<&str> = refused
            .iter()
            .filter_map(|record| written.rejected.get(&record.id))
            .map(|reason| &**reason)
            .collect();
        why.sort_unstable();
        why.dedup();
        let detail = format!(
            "{} location(s) not stored: {}",
            refused.len(),
            why.join("; ")
        );
        tracing::warn!(seq = delivery.seq(), %detail, "writer: locations the database rejected, set aside");
        let letter = bus_wire::dead_letter(
            "database_rejected",
            detail,
            delivery.seq(),
            bus_wire::encode(&refused),
        );
        let id = format!("dead-{}-database_rejected", delivery.seq());
        self.set_aside(&id, letter, "database_rejected").await
    }

    /// Publishes the rows stored for the meetings, in messages of at most
    /// a transaction's rows, retrying until the bus has them; `false` if
    /// shutdown came first.
    async fn announce(&self, stored: &[LocationRecord]) -> bool {
        for chunk in stored.chunks(self.settings.writer_batch_rows.max(1)) {
            let id = format!("stored-{}", bus_wire::message_id(chunk));
            let payload = bus_wire::encode(chunk);
            let mut backoff = Backoff::default();
            loop {
                match self.stored.publish(&id, payload.clone()).await {
                    Ok(_) => break,
                    Err(err) => {
                        let delay = backoff.next_delay();
                        tracing::warn!(error = %err, retry_in = ?delay, "writer: cannot announce stored locations yet");
                        tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            () = self.shutdown.cancelled() => return false,
                        }
                    }
                }
            }
        }
        true
    }

    /// Publishes a dead letter, retrying until stored; `false` if shutdown
    /// came first.
    async fn set_aside(&self, id: &str, letter: Bytes, reason: &'static str) -> bool {
        let mut backoff = Backoff::default();
        loop {
            match self.dead.publish(id, letter.clone()).await {
                Ok(published) => {
                    if !published.duplicate {
                        self.metrics.dead_letter(reason);
                    }
                    return true;
                }
                Err(err) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %err, retry_in = ?delay, "writer: cannot set a dead letter aside yet");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = self.shutdown.cancelled() => return false,
                    }
                }
            }
        }
    }
}

/// Acknowledges `deliveries`; a lost acknowledgement only means one more
/// delivery, whose rows are then duplicates.
async fn acknowledge(deliveries: &[Delivery]) {
    for outcome in join_all(deliveries.iter().map(Delivery::ack)).await {
        if let Err(err) = outcome {
            tracing::debug!(error = %err, "cannot acknowledge a message");
        }
    }
}
