//! The edge's one path, whatever the transport: check each location as it
//! is read (a [`Batch`], never more than the item limit), find its person,
//! give it an id, claim its idempotency key if it has one, publish the
//! accepted ones on the LOCATIONS stream in messages of at most `chunk`
//! locations, and answer once the bus has stored them all. Bad items are
//! listed (the first hundred) and counted, good ones still taken; when the
//! bus is full or away, or no ids can be had, or the keys cannot be
//! claimed, nothing is answered as taken and the client is told to retry
//! later.
//!
//! The id answered is the id stored, for retries too: a key is claimed in
//! the store (`Store::claim_keys`) before its location is published, with
//! the id the edge gave it. A key claimed before for the same location (a
//! retry, through this edge or another) is answered with the id of its
//! first claim, and the location published again under that id, so that a
//! first attempt whose publish failed after its claim still comes to be
//! stored (a writer stores nothing twice, by id); a key claimed before for
//! another location is rejected, the answer naming the location it stands
//! for. The ids taken for items answered so go unused.

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
use udaconnect_domain::{Invalid, LocationId, LocationRecord, PersonId, Problem, Store, Timestamp};

use super::{
    ids::IdPool,
    items::Batch,
    keys::{self, Claimed},
    metrics::EdgeMetrics,
    persons::{Known, KnownPersons},
    rejections::Rejections,
    validate::Checked,
};
use crate::{
    access::{Access, Caller, Denied},
    bus_wire,
    cli::IngestArgs,
};

/// How long claiming a request's keys may take before it is refused.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(3);

/// What became of a request's items.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// The locations taken, ids assigned (a retry's, its key's first), in
    /// request order.
    pub accepted: Vec<LocationRecord>,
    /// The items not taken.
    pub rejected: Rejections,
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
    /// The idempotency keys could not be claimed (the database is away).
    #[error("idempotency keys cannot be checked now; retry later")]
    KeysUnavailable,
    /// The caller may not submit these positions (none, or not all, of
    /// them its own): nothing of the request is taken.
    #[error("{0}")]
    Denied(Denied),
}

impl Refusal {
    /// The metrics label.
    pub fn cause(&self) -> &'static str {
        match self {
            Refusal::Full => "bus_full",
            Refusal::BusUnavailable => "bus_unavailable",
            Refusal::IdsUnavailable => "ids_unavailable",
            Refusal::KeysUnavailable => "keys_unavailable",
            Refusal::Denied(_) => "denied",
        }
    }
}

/// The edge; cheap to clone.
#[derive(Clone)]
pub struct Edge {
    inner: Arc<Inner>,
}

struct Inner {
    access: Access,
    persons: KnownPersons,
    ids: IdPool,
    store: Arc<dyn Store>,
    stream: BusStream,
    settings: IngestArgs,
    metrics: EdgeMetrics,
    room: ReadyFlag,
}

impl Edge {
    /// An edge publishing on `stream`, claiming keys in `store`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        access: Access,
        persons: KnownPersons,
        ids: IdPool,
        store: Arc<dyn Store>,
        stream: BusStream,
        settings: IngestArgs,
        metrics: EdgeMetrics,
        room: ReadyFlag,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                access,
                persons,
                ids,
                store,
                stream,
                settings,
                metrics,
                room,
            }),
        }
    }

    /// Who may submit positions.
    pub fn access(&self) -> &Access {
        &self.inner.access
    }

    /// The store it checks persons and claims keys in, and the phones'
    /// friends are read from.
    pub fn store(&self) -> &dyn Store {
        &*self.inner.store
    }

    /// Its settings.
    pub fn settings(&self) -> &IngestArgs {
        &self.inner.settings
    }

    /// Its metrics.
    pub fn metrics(&self) -> &EdgeMetrics {
        &self.inner.metrics
    }

    /// An empty request, to fill as it is read: checked against the
    /// current time, and holding at most `UDACONNECT_INGEST_MAX_BATCH`.
    pub fn batch(&self) -> Batch {
        let settings = &self.inner.settings;
        Batch::new(
            Timestamp::now(),
            settings.ingest_max_future,
            settings.ingest_max_batch,
        )
    }

    /// Takes what is valid of `batch`, received over `transport` from
    /// `caller`: nothing at all unless `caller` may submit every position
    /// of it (the organiser, or a phone for its own person).
    pub async fn ingest(
        &self,
        transport: &'static str,
        caller: Caller,
        batch: Batch,
    ) -> Result<Outcome, Refusal> {
        let inner = &self.inner;
        let (mut checked, mut rejected) = batch.into_parts();
        let denied = caller.submits_any().err().or_else(|| {
            checked
                .iter()
                .find_map(|(_, item)| caller.submits(item.person_id).err())
        });
        if let Some(denied) = denied {
            inner.metrics.refused(transport, "denied");
            return Err(Refusal::Denied(denied));
        }
        let unknown = self.unknown_persons(&checked).await;
        if !unknown.is_empty() {
            checked.retain(|(index, item)| match unknown.get(&item.person_id) {
                None => true,
                Some(known) => {
                    let invalid = match known {
                        Known::Unchecked => Invalid::new(
                            "person_id",
                            Problem::Unchecked,
                            format!(
                                "person {} could not be checked (the database is unavailable); retry later",
                                item.person_id
                            ),
                        ),
                        _ => Invalid::new(
                            "person_id",
                            Problem::Unknown,
                            format!("person {} does not exist", item.person_id),
                        ),
                    };
                    rejected.push(*index, invalid);
                    false
                }
            });
        }
        for (field, problem, count) in rejected.tally() {
            inner.metrics.rejected(transport, field, problem, count);
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
        let records = checked.into_iter().zip(ids).map(|((index, item), id)| {
            let record = LocationRecord {
                id,
                person_id: item.person_id,
                position: item.position,
                time: item.time,
                key: item.key,
            };
            (index, record)
        });
        let claimed = keys::claim(&*inner.store, records.collect(), CLAIM_TIMEOUT)
            .await
            .map_err(|err| {
                tracing::warn!(error = %err, "cannot claim idempotency keys");
                inner.metrics.refused(transport, "keys_unavailable");
                Refusal::KeysUnavailable
            })?;
        let published = match claimed.to_publish() {
            records if records.is_empty() => Ok(()),
            records => self.publish(&records).await,
        };
        if let Err(refusal) = published {
            inner.metrics.refused(transport, refusal.cause());
            return Err(refusal);
        }
        let Claimed {
            accepted,
            conflicts,
        } = claimed;
        inner.metrics.accepted(transport, accepted.len());
        if !conflicts.is_empty() {
            let count = u64::try_from(conflicts.len()).unwrap_or(u64::MAX);
            inner
                .metrics
                .rejected(transport, "key", Problem::Conflict, count);
        }
        for (index, stored_id) in conflicts {
            rejected.conflict(index, stored_id, keys::conflict(stored_id));
        }
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
