//! The edge's one path, whatever the transport: check each location, find
//! its person, give it an id, publish the accepted ones on the LOCATIONS
//! stream in messages of at most `chunk` locations, and answer once the bus
//! has stored them all. Bad items are listed, good ones still taken; when
//! the bus is full or away, or no ids can be had, nothing is answered as
//! taken and the client is told to retry later.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::future::join_all;
use platform::{
    backoff::Backoff,
    bus::{BusError, BusStream},
    health::ReadyFlag,
};
use udaconnect_domain::{LocationId, LocationRecord, PersonId, Timestamp};

use super::{
    ids::IdPool,
    metrics::EdgeMetrics,
    persons::{Known, KnownPersons},
    validate::{self, Checked, Submitted},
};
use crate::{bus_wire, cli::IngestArgs};

/// One item not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Its position in the request, from 0.
    pub index: usize,
    /// Why, naming the field.
    pub reason: String,
}

/// What became of a request's items.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// The locations taken, ids assigned, in request order.
    pub accepted: Vec<LocationRecord>,
    /// The items not taken.
    pub rejected: Vec<Rejection>,
}

impl Outcome {
    /// The ids of the locations taken.
    pub fn ids(&self) -> Vec<LocationId> {
        self.accepted.iter().map(|record| record.id).collect()
    }
}

/// Why nothing of a request was taken: retry later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The LOCATIONS stream is full: the writers are behind.
    #[error("the location stream is full; retry later")]
    Full,
    /// The bus did not store the locations in time.
    #[error("the bus is unavailable; retry later")]
    BusUnavailable,
    /// No location ids could be reserved (the database is away).
    #[error("no location ids can be reserved now; retry later")]
    IdsUnavailable,
}

impl Refusal {
    /// The metrics label.
    pub fn cause(&self) -> &'static str {
        match self {
            Refusal::Full => "bus_full",
            Refusal::BusUnavailable => "bus_unavailable",
            Refusal::IdsUnavailable => "ids_unavailable",
        }
    }
}

/// An item that could not even be read, or one to check.
pub type Item = Result<Submitted, String>;

/// The edge; cheap to clone.
#[derive(Clone)]
pub struct Edge {
    inner: Arc<Inner>,
}

struct Inner {
    persons: KnownPersons,
    ids: IdPool,
    stream: BusStream,
    settings: IngestArgs,
    metrics: EdgeMetrics,
    room: ReadyFlag,
}

impl Edge {
    /// An edge publishing on `stream`.
    pub fn new(
        persons: KnownPersons,
        ids: IdPool,
        stream: BusStream,
        settings: IngestArgs,
        metrics: EdgeMetrics,
        room: ReadyFlag,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                persons,
                ids,
                stream,
                settings,
                metrics,
                room,
            }),
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &IngestArgs {
        &self.inner.settings
    }

    /// Its metrics.
    pub fn metrics(&self) -> &EdgeMetrics {
        &self.inner.metrics
    }

    /// Takes what is valid of `items`, received over `transport`.
    pub async fn ingest(
        &self,
        transport: &'static str,
        items: Vec<Item>,
    ) -> Result<Outcome, Refusal> {
        let inner = &self.inner;
        let now = Timestamp::now();
        let mut rejected = Vec::new();
        let mut checked: Vec<(usize, Checked)> = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            match item.and_then(|item| validate::check(item, now, inner.settings.ingest_max_future))
            {
                Ok(item) => checked.push((index, item)),
                Err(reason) => {
                    inner.metrics.rejected(transport, reason_label(&reason));
                    rejected.push(Rejection { index, reason });
                }
            }
        }
        let unknown = self.unknown_persons(&checked).await;
        if !unknown.is_empty() {
            checked.retain(|(index, item)| match unknown.get(&item.person_id) {
                None => true,
                Some(known) => {
                    let reason = match known {
                        Known::Unchecked => format!(
                            "person_id: person {} could not be checked (the database is unavailable); retry later",
                            item.person_id
                        ),
                        _ => format!("person_id: person {} does not exist", item.person_id),
                    };
                    inner.metrics.rejected(transport, "unknown_person");
                    rejected.push(Rejection {
                        index: *index,
                        reason,
                    });
                    false
                }
            });
            rejected.sort_by_key(|rejection| rejection.index);
        }
        if checked.is_empty() {
            return Ok(Outcome {
                accepted: Vec::new(),
                rejected,
            });
        }
        let ids = inner.ids.take(checked.len()).await.map_err(|err| {
            tracing::warn!(error = %err, "no location ids");
            inner.metrics.refused(transport, "ids_unavailable");
            Refusal::IdsUnavailable
        })?;
        let accepted: Vec<LocationRecord> = checked
            .into_iter()
            .zip(ids)
            .map(|((_, item), id)| LocationRecord {
                id,
                person_id: item.person_id,
                position: item.position,
                time: item.time,
                key: item.key,
            })
            .collect();
        if let Err(refusal) = self.publish(&accepted).await {
            inner.metrics.refused(transport, refusal.cause());
            return Err(refusal);
        }
        inner.metrics.accepted(transport, accepted.len());
        Ok(Outcome { accepted, rejected })
    }

    /// The persons of `checked` the edge does not know, each asked once.
    async fn unknown_persons(&self, checked: &[(usize, Checked)]) -> HashMap<PersonId, Known> {
        let mut misses: Vec<PersonId> = checked
            .iter()
            .map(|(_, item)| item.person_id)
            .filter(|id| !self.inner.persons.holds(*id))
            .collect();
        misses.sort_unstable();
        misses.dedup();
        let mut unknown = HashMap::new();
        for id in misses {
            let known = self.inner.persons.knows(id).await;
            if known != Known::Yes {
                unknown.insert(id, known);
            }
        }
        unknown
    }

    /// Publishes `records` in chunks, all at once, each retried (under the
    /// same message id) until stored, refused as full, or out of time.
    async fn publish(&self, records: &[LocationRecord]) -> Result<(), Refusal> {
        let inner = &self.inner;
        if !inner.stream.is_connected() {
            return Err(Refusal::BusUnavailable);
        }
        let deadline = Instant::now() + inner.settings.ingest_publish_timeout;
        let chunks = records.chunks(inner.settings.ingest_chunk.max(1));
        let outcomes = join_all(chunks.map(|chunk| self.publish_chunk(chunk, deadline))).await;
        if outcomes.contains(&Err(Refusal::Full)) {
            inner.room.set(false);
            return Err(Refusal::Full);
        }
        outcomes.into_iter().collect()
    }

    async fn publish_chunk(
        &self,
        chunk: &[LocationRecord],
        deadline: Instant,
    ) -> Result<(), Refusal> {
        let inner = &self.inner;
        let id = bus_wire::message_id(chunk);
        let payload = bus_wire::encode(chunk);
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            let started = Instant::now();
            let attempt = tokio::time::timeout_at(
                deadline.into(),
                inner.stream.publish(&id, payload.clone()),
            )
            .await;
            match attempt {
                Ok(Ok(_)) => {
                    inner.metrics.published(started.elapsed().as_secs_f64());
                    return Ok(());
                }
                Ok(Err(BusError::Full(_))) => return Err(Refusal::Full),
                Ok(Err(err)) => {
                    let delay = backoff.next_delay();
                    if Instant::now() + delay >= deadline {
                        tracing::warn!(error = %err, "publish not acknowledged in time");
                        return Err(Refusal::BusUnavailable);
                    }
                    tracing::debug!(error = %err, "publish failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(_) => return Err(Refusal::BusUnavailable),
            }
        }
    }
}

/// A short label for a rejection reason: the field it names.
fn reason_label(reason: &str) -> &'static str {
    match reason.split(':').next().unwrap_or_default() {
        "person_id" => "bad_person_id",
        "lat" | "lon" => "bad_position",
        "time" => "bad_time",
        "key" => "bad_key",
        _ => "unreadable",
    }
}
