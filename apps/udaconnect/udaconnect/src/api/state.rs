//! What every handler shares: the store, and the metrics of its queries;
//! and how a store's failure is answered.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::http::StatusCode;
use platform::{http::ApiError, throttle::Throttled};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::{Registry, Unit},
};
use tokio_util::sync::CancellationToken;
use udaconnect_domain::{Location, LocationId, Person, PersonId, Store, StoreError};

use super::live::LiveFeed;

/// The handlers' shared state; cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    /// Where persons and locations are kept.
    pub store: Arc<dyn Store>,
    /// Query latency and rows.
    pub metrics: ApiMetrics,
    /// The most rows the original's connection endpoint answers: a larger
    /// answer is cut there, and says so in [`super::compat::CUT_HEADER`].
    pub compat_max_rows: usize,
    /// The connection queries' slots and deadline.
    pub queries: super::gate::QueryGate,
    /// The latest counts, for live streams.
    pub live: LiveFeed,
    /// The meetings written, read for the live streams of meetings.
    pub meetings_live: super::meetings_live::MeetingsReads,
    /// Cancelled when the server shuts down: live streams end then.
    pub shutdown: CancellationToken,
    /// Who may call; where phones reach the server.
    pub access: crate::access::Access,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueryLabel {
    query: &'static str,
}

/// How long each kind of store query takes and how many rows it returns.
#[derive(Clone)]
pub struct ApiMetrics {
    latency: Family<QueryLabel, Histogram>,
    rows: Family<QueryLabel, Counter>,
    /// Answers of the original's connection endpoint cut at its row limit.
    pub compat_cut: Counter,
}

impl ApiMetrics {
    /// Creates the families and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let latency = Family::<QueryLabel, Histogram>::new_with_constructor(|| {
            platform::metrics::latency_histogram()
        });
        let rows = Family::<QueryLabel, Counter>::default();
        registry.register_with_unit(
            "query_duration",
            "Time the store took to answer, by query",
            Unit::Seconds,
            latency.clone(),
        );
        registry.register(
            "query_rows",
            "Rows (persons, locations, connections, contacts) returned by the store, by query",
            rows.clone(),
        );
        let compat_cut = Counter::default();
        registry.register(
            "compat_answers_cut",
            "Answers of the original's connection endpoint cut at UDACONNECT_COMPAT_MAX_ROWS",
            compat_cut.clone(),
        );
        Self {
            latency,
            rows,
            compat_cut,
        }
    }

    /// Records one answered query.
    pub fn observe(&self, query: &'static str, started: Instant, rows: usize) {
        let label = QueryLabel { query };
        self.latency
            .get_or_create(&label)
            .observe(started.elapsed().as_secs_f64());
        self.rows
            .get_or_create(&label)
            .inc_by(u64::try_from(rows).unwrap_or(u64::MAX));
    }
}

impl ApiState {
    /// The person `id`, or a 404 naming it.
    pub async fn person(&self, id: PersonId) -> Result<Person, ApiError> {
        self.store
            .person(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| ApiError::not_found(format!("person {id} not found")))
    }

    /// The location `id`, or a 404 naming it.
    pub async fn location(&self, id: LocationId) -> Result<Location, ApiError> {
        self.store
            .location(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| ApiError::not_found(format!("location {id} not found")))
    }
}

/// How a store's failure is answered: 503 while the database is away (the
/// client may retry), 400 for a person that does not exist, 500 for a row
/// that should not be in the database and for a statement the database
/// rejects for good (its SQLSTATE and message go to the log, never to the
/// client).
pub fn store_error(err: StoreError) -> ApiError {
    match err {
        StoreError::Unavailable(reason) => {
            // Every request meets it while the database is away: one line
            // every ten seconds, with how many.
            static UNAVAILABLE: Throttled = Throttled::new(Duration::from_secs(10));
            if let Some(requests) = UNAVAILABLE.hit() {
                tracing::warn!(%reason, requests, "store unavailable: requests answered 503");
            }
            ApiError::unavailable("the database is unavailable; retry shortly")
        }
        StoreError::UnknownPerson(id) => {
            ApiError::bad_request(format!("person_id: person {id} does not exist"))
        }
        StoreError::Corrupt(reason) => {
            tracing::error!(%reason, "invalid data in the store");
            ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("the database holds an invalid row: {reason}"),
            }
        }
        StoreError::TimedOut(after) => ApiError::unavailable(format!(
            "the store took longer than {after:?} and was stopped; retry shortly"
        )),
        StoreError::Rejected { code, message } => {
            // A privilege or a column missing fails every request alike:
            // one line every ten seconds, with how many.
            static REJECTED: Throttled = Throttled::new(Duration::from_secs(10));
            if let Some(requests) = REJECTED.hit() {
                tracing::error!(
                    code,
                    message,
                    requests,
                    "the database rejected a query: requests answered 500"
                );
            }
            ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: "the database rejected the query; the server's log says why".to_owned(),
            }
        }
    }
}

impl ApiState {
    /// The error for a failed connection query: a query stopped at its
    /// deadline says how to narrow the question; the rest as any store
    /// error.
    pub fn query_error(&self, err: StoreError) -> ApiError {
        match err {
            StoreError::TimedOut(after) => self.queries.timed_out(after),
            err => store_error(err),
        }
    }
}
