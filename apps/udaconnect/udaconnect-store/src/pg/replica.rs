//! The connection queries answered from memory: a replica of the persons
//! and locations, caught up with the database before every query.
//!
//! A month-long connections query measures a few hundred thousand pairs.
//! In SQL every candidate costs executor steps, a few hundred milliseconds
//! in all however the statement is planned; in the embedded store's R-tree
//! it costs a few nanoseconds (BENCHMARKS.md has both, side by side). So
//! the PostGIS store can keep a [`MemoryStore`] of every row, loaded once,
//! and read before each query only the rows committed since its last read
//! (by the transaction that wrote them, see migration 0006): an answer
//! covers every write committed before the query began, as the statement's
//! would. The database stays the only place anything is written; the
//! replica is rebuilt from it whenever the process starts, and whenever
//! a retention has dropped days of locations (migration 0009) since its
//! last read. The persons erased since its last read (migration 0016's
//! tombstones, read in the same snapshot) are forgotten with their
//! locations before the next query reads.
//!
//! A catch-up never waits for a query: the rows it reads are queued, and
//! the next query applies them on its blocking thread before it reads. So
//! a long query (up to its deadline) holds up neither the catch-up nor the
//! readiness check that runs it.

use std::{sync::Arc, time::Duration};

use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};
use tokio::{sync::Mutex, time::Instant};
use tokio_postgres::{IsolationLevel, Row, Transaction, types::ToSql};
use udaconnect_domain::{Location, Person, PersonId, StoreError};

use super::{
    PgStore,
    rows::{self, database, get},
    sql,
};
use crate::MemoryStore;

/// Longest the first load may take: every row of both tables.
const LOAD_DEADLINE: Duration = Duration::from_secs(600);
/// Rows fetched per round trip.
const FETCH_ROWS: i32 = 50_000;

/// The replica, shared by the store's clones.
pub struct Replica {
    state: Mutex<Option<Caught>>,
    metrics: ReplicaMetrics,
    /// How long a connection query on it may run.
    query_timeout: Option<Duration>,
}

/// What the replica holds and how its catch-ups go.
struct ReplicaMetrics {
    locations: Gauge,
    rows: Counter,
    catch_up: Histogram,
}

impl Default for ReplicaMetrics {
    fn default() -> Self {
        Self {
            locations: Gauge::default(),
            rows: Counter::default(),
            catch_up: platform::metrics::latency_histogram(),
        }
    }
}

/// The replica once loaded.
struct Caught {
    store: MemoryStore,
    /// The snapshot (`pg_snapshot` as text) under which the replica holds
    /// every committed row.
    snapshot: String,
    /// When the read that took that snapshot began: a query that arrived
    /// before needs no read of its own.
    began: Instant,
    /// Where the oldest partition started then (see [`Read::horizon`]).
    horizon: Option<f64>,
}

/// What one read brings: its snapshot, and the rows it did not show before.
struct Read {
    snapshot: String,
    /// Where the location table's oldest partition starts
    /// ([`sql::REPLICA_HORIZON`]; `None` before migration 0009): when it
    /// has moved, a retention has dropped rows, and the replica is loaded
    /// anew.
    horizon: Option<f64>,
    persons: Vec<Person>,
    locations: Vec<Location>,
    /// The persons erased since (none on a full load, which holds no
    /// row of theirs).
    erased: Vec<PersonId>,
}

impl Replica {
    /// An empty replica, loaded on first use; its connection queries stop
    /// after `query_timeout`.
    pub fn new(query_timeout: Option<Duration>) -> Self {
        Self {
            state: Mutex::default(),
            metrics: ReplicaMetrics::default(),
            query_timeout,
        }
    }

    /// Registers the replica's metrics in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let metrics = &self.metrics;
        registry.register(
            "replica_locations",
            "Locations the connections replica holds",
            metrics.locations.clone(),
        );
        registry.register(
            "replica_caught_up_rows",
            "Persons and locations the connections replica read after its first load",
            metrics.rows.clone(),
        );
        registry.register_with_unit(
            "replica_catch_up_duration",
            "Time to read and add what was committed since the replica's last read",
            Unit::Seconds,
            metrics.catch_up.clone(),
        );
    }

    /// The replica, holding every row committed before this call: loaded
    /// on first use, then caught up. The work runs on a task of its own,
    /// so a caller that gives up (a readiness check's timeout) does not
    /// throw away a load half done.
    pub async fn current(self: &Arc<Self>, pg: &PgStore) -> Result<MemoryStore, StoreError> {
        let arrived = Instant::now();
        let replica = Arc::clone(self);
        let pg = pg.clone();
        tokio::spawn(async move { replica.catch_up(&pg, arrived).await })
            .await
            .map_err(|err| StoreError::Unavailable(format!("the replica did not load: {err}")))?
    }

    async fn catch_up(&self, pg: &PgStore, arrived: Instant) -> Result<MemoryStore, StoreError> {
        let mut state = self.state.lock().await;
        let began = Instant::now();
        if let Some(caught) = &mut *state {
            if caught.began >= arrived {
                return Ok(caught.store.clone());
            }
            let read = pg
                .bounded("catching up", read(pg, Some(&caught.snapshot)))
                .await?;
            if read.horizon == caught.horizon {
                let rows = read.persons.len() + read.locations.len();
                caught.store.add_rows(read.persons, read.locations);
                if !read.erased.is_empty() {
                    tracing::debug!(
                        persons = read.erased.len(),
                        "persons erased: the replica forgets them"
                    );
                }
                caught.store.forget_persons(read.erased);
                caught.snapshot = read.snapshot;
                caught.began = began;
                self.held(&caught.store);
                self.metrics
                    .rows
                    .inc_by(u64::try_from(rows).unwrap_or(u64::MAX));
                self.metrics.catch_up.observe(began.elapsed().as_secs_f64());
                return Ok(caught.store.clone());
            }
            // Rows are only ever added, but for whole days a retention
            // drops: those are forgotten by loading anew.
            tracing::info!(
                "location partitions dropped since the replica's last read: loading it anew"
            );
        }
        let caught = self.load(pg, began).await?;
        let store = caught.store.clone();
        *state = Some(caught);
        Ok(store)
    }

    /// Every row, read and indexed afresh.
    async fn load(&self, pg: &PgStore, began: Instant) -> Result<Caught, StoreError> {
        let read = tokio::time::timeout(LOAD_DEADLINE, read(pg, None))
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "loading the replica took longer than {LOAD_DEADLINE:?}"
                ))
            })??;
        let (snapshot, horizon, locations) = (read.snapshot, read.horizon, read.locations.len());
        // Bulk-loading the R-tree is a second of CPU at a million.
        let timeout = self.query_timeout;
        let store = tokio::task::spawn_blocking(move || {
            let store = MemoryStore::of_rows(read.persons, read.locations);
            match timeout {
                Some(timeout) => store.with_query_timeout(timeout),
                None => store,
            }
        })
        .await
        .map_err(|err| {
            StoreError::Unavailable(format!("the replica's index was not built: {err}"))
        })?;
        tracing::info!(
            locations,
            took_ms = began.elapsed().as_millis(),
            "connections replica loaded"
        );
        self.held(&store);
        Ok(Caught {
            store,
            snapshot,
            began,
            horizon,
        })
    }

    /// Records how many locations `store` holds.
    fn held(&self, store: &MemoryStore) {
        self.metrics
            .locations
            .set(i64::try_from(store.held()).unwrap_or(i64::MAX));
    }
}

/// Every row committed under a new snapshot and not under `since` (all of
/// them without `since`), in one read-only transaction.
async fn read(pg: &PgStore, since: Option<&str>) -> Result<Read, StoreError> {
    let mut client = pg.client().await?;
    let transaction = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(database)?;
    if since.is_none() {
        transaction
            .batch_execute("SET LOCAL statement_timeout = 0")
            .await
            .map_err(database)?;
    }
    // The transaction's snapshot is taken by its first query: this one.
    let row = transaction
        .query_one(sql::SNAPSHOT, &[])
        .await
        .map_err(database)?;
    let snapshot: String = get(&row, 0, "snapshot")?;
    let migrated: bool = get(&row, 1, "schema")?;
    if !migrated {
        return Err(StoreError::Unavailable(
            "the replica needs migration 0006 (`written_by`): run `udaconnect migrate`".into(),
        ));
    }
    let partitioned: bool = get(&row, 2, "schema")?;
    let erasable: bool = get(&row, 3, "schema")?;
    let horizon: Option<f64> = if partitioned {
        let row = transaction
            .query_one(sql::REPLICA_HORIZON, &[])
            .await
            .map_err(database)?;
        get(&row, 0, "the oldest partition")?
    } else {
        None
    };
    let (persons, locations) = match since {
        None => (sql::PERSONS, sql::REPLICA_LOCATIONS),
        Some(_) => (sql::REPLICA_PERSONS_SINCE, sql::REPLICA_LOCATIONS_SINCE),
    };
    let params: Vec<&(dyn ToSql + Sync)> = match &since {
        None => Vec::new(),
        Some(since) => vec![since],
    };
    let persons = fetch(&transaction, persons, &params, rows::person).await?;
    let locations = fetch(&transaction, locations, &params, rows::found_location).await?;
    let erased = if since.is_some() && erasable {
        fetch(&transaction, sql::ERASED_SINCE, &params, |row| {
            get(row, 0, "an erased person")
        })
        .await?
    } else {
        Vec::new()
    };
    transaction.commit().await.map_err(database)?;
    Ok(Read {
        snapshot,
        horizon,
        persons,
        locations,
        erased,
    })
}

/// Every row of `statement`, a batch at a time, as `parse` makes them. A
/// row it rejects (a person whose name is NULL, a point that is not a
/// number: rows written by hand) is logged and left out: the SQL queries
/// could not answer with it either.
async fn fetch<T>(
    transaction: &Transaction<'_>,
    statement: &str,
    params: &[&(dyn ToSql + Sync)],
    parse: fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let portal = transaction
        .bind(statement, params)
        .await
        .map_err(database)?;
    let mut parsed = Vec::new();
    loop {
        let batch = transaction
            .query_portal(&portal, FETCH_ROWS)
            .await
            .map_err(database)?;
        if batch.is_empty() {
            return Ok(parsed);
        }
        for row in &batch {
            match parse(row) {
                Ok(item) => parsed.push(item),
                Err(err) => tracing::warn!(error = %err, "a row the replica leaves out"),
            }
        }
    }
}
