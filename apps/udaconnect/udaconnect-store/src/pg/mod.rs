//! The production store: PostgreSQL with PostGIS, through a pool of
//! tokio-postgres connections.
//!
//! Every call is bounded: connecting, waiting for a pooled connection and
//! each statement have timeouts, so a database that goes away makes calls
//! fail fast with [`StoreError::Unavailable`] instead of hanging, and the
//! pool replaces its dead connections by itself once the database is back.
//! A statement the database refuses for good (a constraint, a privilege,
//! the schema) is [`StoreError::Rejected`] instead ([`sqlstate`]).

mod batch;
mod claims;
mod copy;
mod credentials;
mod erasure;
mod maintain;
mod meetings;
mod replica;
mod rows;
mod sql;
mod sqlstate;
mod store;
mod tls;
mod unfolded;
mod wkb;

use std::{future::Future, path::PathBuf, sync::Arc, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use prometheus_client::registry::Registry;
use udaconnect_domain::StoreError;

use self::replica::Replica;
pub use self::{
    maintain::Maintenance,
    tls::{SslMode, TlsError},
};
use crate::migrate::{self, MigrateError, MigrationReport};

/// How to reach the database, and how long to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgConfig {
    /// `postgres://user:password@host:port/database` (libpq's URL form;
    /// `sslmode` and `sslrootcert` may be given in it, as libpq takes them).
    pub url: String,
    /// TLS to the server (see [`SslMode`]); `None`: the URL's `sslmode`,
    /// else `prefer`, as libpq.
    pub ssl_mode: Option<SslMode>,
    /// The CAs trusted by `verify-ca` and `verify-full` (a PEM file);
    /// `None`: the URL's `sslrootcert`, else the system's CAs.
    pub root_cert: Option<PathBuf>,
    /// Connections kept at most.
    pub pool_size: usize,
    /// Longest wait to open a connection.
    pub connect_timeout: Duration,
    /// Longest a statement may run (the server cancels it past that).
    pub statement_timeout: Duration,
    /// Longest wait for a free connection of the pool.
    pub wait_timeout: Duration,
    /// Memory a query may sort and hash in before spilling to disk
    /// (`work_mem`): a 30-day connection query holds a few hundred
    /// thousand pairs.
    pub work_mem: String,
    /// Longest a connection query may run before it is stopped (the
    /// statement cancelled by the server, or the replica's search given
    /// up) with [`StoreError::TimedOut`]; `None`: only the statement
    /// timeout bounds it.
    pub query_timeout: Option<Duration>,
    /// Answer the connection queries from an in-memory replica of every
    /// person and location (see [`replica`]), loaded on first use and
    /// caught up before each query, instead of in SQL: for the API, which
    /// answers them; a writer or an edge has no use for one.
    pub replica: bool,
}

impl PgConfig {
    /// Defaults fit for one API process: 16 connections, 3 s to connect
    /// or to get a connection, 10 s per statement, 64 MB work memory; the
    /// connection queries in SQL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ssl_mode: None,
            root_cert: None,
            pool_size: 16,
            connect_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(10),
            wait_timeout: Duration::from_secs(3),
            work_mem: "64MB".to_owned(),
            query_timeout: None,
            replica: false,
        }
    }
}

/// Why a [`PgStore`] could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PgConfigError {
    /// The URL does not parse.
    #[error("DATABASE_URL is not a PostgreSQL URL: {0}")]
    Url(tokio_postgres::Error),
    /// The pool refused the settings.
    #[error("cannot build the connection pool: {0}")]
    Pool(String),
    /// The URL's `sslmode` is not one.
    #[error("DATABASE_URL: {0}")]
    SslMode(String),
    /// TLS cannot be set up with these settings.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// `url` without its `sslmode` and `sslrootcert` parameters (which
/// tokio-postgres does not take in libpq's form), and their values.
fn tls_params(url: &str) -> Result<(String, Option<SslMode>, Option<PathBuf>), PgConfigError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None, None));
    };
    let (mut mode, mut root) = (None, None);
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("sslmode", value)) => {
                mode = Some(value.parse().map_err(PgConfigError::SslMode)?);
            }
            Some(("sslrootcert", value)) => root = Some(PathBuf::from(value)),
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, mode, root))
}

/// The PostGIS store.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// Longest any one call may take, end to end.
    deadline: Duration,
    /// The connection queries' replica, if they are answered from one.
    replica: Option<Arc<Replica>>,
    /// How long a connection query may run (see [`PgConfig::query_timeout`]).
    query_timeout: Option<Duration>,
    /// Longest wait for a connection: part of a timed query's deadline.
    wait: Duration,
}

impl PgStore {
    /// A store on the database at `config.url`. Connects lazily: a database
    /// that is down now makes calls fail until it is up.
    pub fn new(config: &PgConfig) -> Result<Self, PgConfigError> {
        let (url, url_mode, url_root) = tls_params(&config.url)?;
        let ssl_mode = config.ssl_mode.or(url_mode).unwrap_or(SslMode::Prefer);
        let root_cert = config.root_cert.clone().or(url_root);
        let tls = tls::connector(ssl_mode, root_cert.as_ref())?;
        let mut pg: tokio_postgres::Config = url.parse().map_err(PgConfigError::Url)?;
        pg.ssl_mode(ssl_mode.wire());
        // Statements are prepared once per connection, but planned for
        // their parameters every time (a millisecond or two): a generic
        // plan, which PostgreSQL would switch to after five runs, evaluates
        // the search boxes' arithmetic on the distance for every candidate
        // instead of once, and a month-long connections query takes half
        // as long again.
        let options = format!(
            "{} -c statement_timeout={} -c work_mem={} -c plan_cache_mode=force_custom_plan",
            pg.get_options().unwrap_or_default(),
            config.statement_timeout.as_millis(),
            config.work_mem
        );
        pg.options(options.trim_start())
            .application_name("udaconnect")
            .connect_timeout(config.connect_timeout)
            .tcp_user_timeout(config.statement_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        let manager = Manager::from_config(
            pg,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.wait_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|err| PgConfigError::Pool(err.to_string()))?;
        Ok(Self {
            pool,
            deadline: config.wait_timeout + config.connect_timeout + config.statement_timeout,
            replica: config
                .replica
                .then(|| Arc::new(Replica::new(config.query_timeout))),
            query_timeout: config.query_timeout,
            wait: config.wait_timeout + config.connect_timeout,
        })
    }

    /// Registers the connections replica's metrics in `registry`, if the
    /// store keeps one: locations held, rows caught up, catch-up time.
    pub fn register_metrics(&self, registry: &mut Registry) {
        if let Some(replica) = &self.replica {
            replica.register(registry);
        }
    }

    /// Applies the migrations not yet applied (see [`crate::migrate`]).
    pub async fn migrate(&self) -> Result<MigrationReport, StoreMigrateError> {
        let mut client = self.client().await?;
        Ok(migrate::migrate(&mut client).await?)
    }

    /// A pooled connection. Failing to get one is `Unavailable` whatever
    /// the server said, a refused password or a database that does not
    /// exist (SQLSTATE 28, 3D) too: no statement was tried, so nothing is
    /// the rows' fault, and a password rotated before the processes using
    /// it restart must make a writer hold its batch, not set every message
    /// aside.
    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|err| {
            StoreError::Unavailable(format!("no database connection: {}", with_causes(&err)))
        })
    }

    /// Runs `work`, failing with `Unavailable` if it takes longer than any
    /// call may.
    async fn bounded<T>(
        &self,
        what: &str,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.deadline, work)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "{what}: no answer from the database within {:?}",
                    self.deadline
                )))
            })
    }
}

/// `err` and every error beneath it: tokio-postgres says "error
/// performing TLS handshake" and keeps the reason (an unknown issuer, a
/// name that does not match) as its source, which an operator needs.
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        let line = inner.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = inner.source();
    }
    text
}

/// Why [`PgStore::migrate`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreMigrateError {
    /// No connection.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The migrations failed.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_tls_parameters_are_taken_out_of_the_url() {
        let (url, mode, root) = tls_params(
            "postgres://u:p@db:5432/x?sslmode=verify-full&application_name=a&sslrootcert=/ca.pem",
        )
        .expect("valid");
        assert_eq!(url, "postgres://u:p@db:5432/x?application_name=a");
        assert_eq!(mode, Some(SslMode::VerifyFull));
        assert_eq!(root, Some(PathBuf::from("/ca.pem")));
        let (url, mode, root) = tls_params("postgres://db/x").expect("valid");
        assert_eq!((url.as_str(), mode, root), ("postgres://db/x", None, None));
        let err = tls_params("postgres://db/x?sslmode=allow").expect_err("not a supported mode");
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    }
}
