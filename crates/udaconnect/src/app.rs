//! Assembling and running a target: bind, open the store, build the
//! components the target runs, serve, and stop within the shutdown
//! deadline.
//!
//! [`Application::build`] binds the listener first, so tests (and the log
//! line people click) get the real port before anything runs;
//! [`Application::run_until_stopped`] takes the shutdown token from its
//! caller: a signal handler in `main`, a plain token in tests.

use std::{sync::Arc, time::Duration};

use axum::Router;
use beacon_platform::{
    backoff::retry,
    config::ConfigError,
    health::ReadyFlag,
    service::{BoxFuture, Component, Service, ServiceBuilder},
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use udaconnect_connect::{Store, Timestamp, conference};
use udaconnect_store::{MemoryStore, PgConfig, PgStore};

use crate::{
    api::{
        self, ApiMetrics, ApiState,
        live::{LiveStats, RateMeter},
    },
    cli::{Config, StoreConfig, redacted},
};

/// How often the store is asked for its counts: for `/readyz`, and for
/// the live header.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long a readiness check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// The demo conference's first day (a Monday).
const DEMO_FIRST_DAY: &str = "2020-06-08";

/// A target, bound and ready to run.
pub struct Application {
    service: Service,
}

impl Application {
    /// Binds the HTTP listener, opens the store and builds the components
    /// `config` asks for. Errors are settings that cannot be used.
    pub async fn build(config: Config) -> Result<Self, ConfigError> {
        let (store, migrate): (Arc<dyn Store>, Option<PgStore>) = match &config.store {
            StoreConfig::Postgres { url, migrate } => {
                let pg = PgStore::new(&PgConfig::new(url.clone())).map_err(|err| {
                    ConfigError::new("DATABASE_URL", "--database-url", err.to_string())
                })?;
                tracing::info!(database = %redacted(url), "store: PostgreSQL");
                (Arc::new(pg.clone()), migrate.then_some(pg))
            }
            StoreConfig::Embedded { seed } => {
                let first_day = demo_first_day();
                let store = MemoryStore::from_dataset(&conference::demo(first_day, *seed));
                tracing::info!(
                    seed,
                    first_day = %first_day,
                    "store: embedded, with a demo conference (set DATABASE_URL for PostgreSQL)"
                );
                (Arc::new(store), None)
            }
        };
        Self::assemble(config, store, migrate).await
    }

    /// [`Self::build`] on a store given by the caller instead of the one
    /// `config.store` names: for benchmarks that load their own data.
    pub async fn with_store(config: Config, store: Arc<dyn Store>) -> Result<Self, ConfigError> {
        Self::assemble(config, store, None).await
    }

    async fn assemble(
        config: Config,
        store: Arc<dyn Store>,
        migrate: Option<PgStore>,
    ) -> Result<Self, ConfigError> {
        let mut service = ServiceBuilder::bind(config.target, &config.http, "udaconnect").await?;
        let metrics = ApiMetrics::register(service.registry());
        let ready = service.readiness().flag("api: store answering");
        let (live, feed) = watch::channel(None);
        service.add(ApiComponent {
            state: ApiState {
                store,
                metrics,
                compat_max_rows: config.api.compat_max_rows,
                live: feed,
                shutdown: CancellationToken::new(),
            },
            ready,
            live,
            migrate,
        });
        Ok(Self {
            service: service.build(),
        })
    }

    /// The port the HTTP server listens on.
    pub fn port(&self) -> u16 {
        self.service.port()
    }

    /// Where a browser on this machine reaches the server.
    pub fn url(&self) -> String {
        self.service.url()
    }

    /// Runs until `shutdown` is cancelled, then stops within the deadline.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        self.service.run_until_stopped(shutdown).await
    }
}

fn demo_first_day() -> Timestamp {
    let day = chrono::NaiveDate::parse_from_str(DEMO_FIRST_DAY, "%Y-%m-%d").unwrap_or_default();
    Timestamp::start_of(day)
}

/// The HTTP API over the store; ready while the store answers.
struct ApiComponent {
    state: ApiState,
    ready: ReadyFlag,
    /// Where the counts for live streams are published.
    live: watch::Sender<Option<LiveStats>>,
    /// The store to migrate before reporting ready, if asked to.
    migrate: Option<PgStore>,
}

impl Component for ApiComponent {
    fn name(&self) -> &'static str {
        "api"
    }

    fn serves_page(&self) -> bool {
        true
    }

    fn router(&self, shutdown: &CancellationToken) -> Option<Router> {
        let state = ApiState {
            shutdown: shutdown.clone(),
            ..self.state.clone()
        };
        Some(api::router(state))
    }

    fn run(
        self: Box<Self>,
        shutdown: CancellationToken,
        _deadline: Duration,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if let Some(pg) = &self.migrate {
                let Some(report) = retry(&shutdown, "cannot migrate the database yet", || {
                    pg.migrate()
                })
                .await
                else {
                    return;
                };
                tracing::info!(%report, "database migrated");
            }
            watch_store(&self.state, &self.ready, &self.live, &shutdown).await;
        })
    }
}

/// Asks the store for its counts every [`CHECK_EVERY`]: an answer keeps
/// `ready` on and feeds the live streams, a failure turns `ready` off.
/// Each change is logged, not each check.
async fn watch_store(
    state: &ApiState,
    ready: &ReadyFlag,
    live: &watch::Sender<Option<LiveStats>>,
    shutdown: &CancellationToken,
) {
    let mut interval = tokio::time::interval(CHECK_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut answering = None;
    let mut meter = RateMeter::default();
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let outcome = tokio::time::timeout(CHECK_TIMEOUT, state.store.stats()).await;
        if let Ok(Ok(stats)) = outcome {
            live.send_replace(Some(meter.record(tokio::time::Instant::now(), stats)));
        }
        let now = matches!(outcome, Ok(Ok(_)));
        ready.set(now);
        if answering != Some(now) {
            match outcome {
                Ok(Ok(_)) => tracing::info!(store = state.store.kind(), "store answering"),
                Ok(Err(err)) => tracing::warn!(error = %err, "store not answering"),
                Err(_) => tracing::warn!(timeout = ?CHECK_TIMEOUT, "store not answering in time"),
            }
            answering = Some(now);
        }
    }
}
