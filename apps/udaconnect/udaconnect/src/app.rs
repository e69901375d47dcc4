//! Assembling and running a target: bind, open the store and the bus,
//! build the components the target runs, serve, and stop within the
//! shutdown deadline.
//!
//! The HTTP routes are composed here, once: the query API's (`all`,
//! `api`), the ingest edge's location writes (`all`, `ingest`), and one
//! OpenAPI document describing exactly those; no path is routed twice.
//! Where the edge runs, `/` is also OsmAnd's bare address: its requests
//! are readdressed to OsmAnd's path before routing
//! ([`crate::ingest::phone_http::osmand_at_root`]).
//! `all` on the embedded store also runs the demo's live feed
//! ([`crate::demo`]), through its edge.
//! `writer` serves only `/livez`, `/readyz` and `/metrics`.
//!
//! [`Application::build`] binds the listener first, so tests (and the log
//! line people click) get the real port before anything runs;
//! [`Application::run_until_stopped`] takes the shutdown token from its
//! caller: a signal handler in `main`, a plain token in tests.

use std::{sync::Arc, time::Duration};

use axum::{Extension, Router};
use platform::{
    backoff::retry,
    bus::{Bus, MemoryBus, NatsBus},
    config::ConfigError,
    health::ReadyFlag,
    service::{BoxFuture, Component, Service, ServiceBuilder},
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use udaconnect_domain::{Store, Timestamp, conference, meeting::Sighting};
use udaconnect_store::{MemoryStore, PgConfig, PgStore};
use utoipa_axum::router::OpenApiRouter;

use crate::{
    access::{self, Access},
    api::{
        self, ApiMetrics, ApiState,
        gate::QueryGate,
        live::{LiveStats, RateMeter},
        meetings_live::{self, MeetingsLive},
    },
    cli::{BusConfig, Config, StoreConfig, redacted},
    demo::DemoFeed,
    ingest::{IngestComponent, phone_http::osmand_at_root},
    meetings::MeetingsComponent,
    writer::{MaintenanceComponent, WriterComponent},
};

/// How often the store is asked for its counts: for `/readyz`, and for
/// the live header.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long a readiness check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// The demo conference's first day (a Monday).
const DEMO_FIRST_DAY: chrono::NaiveDate = match chrono::NaiveDate::from_ymd_opt(2020, 6, 8) {
    Some(day) => day,
    None => panic!("the demo's first day is a date"),
};

/// A target, bound and ready to run.
pub struct Application {
    service: Service,
    grpc: Option<std::net::SocketAddr>,
}

impl Application {
    /// Binds the HTTP listener, opens the store and builds the components
    /// `config` asks for. Errors are settings that cannot be used.
    pub async fn build(config: Config) -> Result<Self, ConfigError> {
        let mut backlog = Vec::new();
        let (store, pg): (Arc<dyn Store>, Option<Postgres>) = match &config.store {
            StoreConfig::Postgres {
                url,
                pg,
                migrate,
                replica,
            } => {
                let pg = PgStore::new(&PgConfig {
                    replica: *replica,
                    query_timeout: config.api.as_ref().map(|api| api.query_timeout),
                    ..pg.config(url)
                })
                .map_err(|err| {
                    ConfigError::new("DATABASE_URL", "--database-url", err.to_string())
                })?;
                tracing::info!(database = %redacted(url), replica, "store: PostgreSQL");
                let migrate = *migrate;
                (Arc::new(pg.clone()), Some(Postgres { store: pg, migrate }))
            }
            StoreConfig::Embedded { seed } => {
                let first_day = demo_first_day();
                let demo = conference::demo(first_day, *seed);
                let mut store = MemoryStore::from_dataset(&demo);
                if config
                    .meetings
                    .as_ref()
                    .is_some_and(|meetings| meetings.args.demo_meetings)
                {
                    backlog = demo
                        .locations
                        .iter()
                        .map(|record| Sighting {
                            id: record.id,
                            person: record.person_id,
                            at: record.time,
                            position: record.position,
                        })
                        .collect();
                }
                if let Some(api) = &config.api {
                    store = store.with_query_timeout(api.query_timeout);
                }
                tracing::info!(
                    seed,
                    first_day = %first_day,
                    "store: embedded, with a demo conference (set DATABASE_URL for PostgreSQL)"
                );
                (Arc::new(store), None)
            }
        };
        Self::assemble(config, store, pg, backlog).await
    }

    async fn assemble(
        config: Config,
        store: Arc<dyn Store>,
        pg: Option<Postgres>,
        backlog: Vec<Sighting>,
    ) -> Result<Self, ConfigError> {
        let mut service = ServiceBuilder::bind(config.target, &config.http, "udaconnect").await?;
        if let Some(pg) = &pg {
            pg.store.register_metrics(service.registry());
        }
        let access = config.access.as_ref().map(|settings| {
            tracing::info!(
                open_api = settings.open_api,
                organiser_token = settings.organiser_token.is_some(),
                "access: {}",
                if settings.open_api {
                    "open API: everyone reads and writes everything without a token"
                } else {
                    "tokens required"
                }
            );
            Access::new(Arc::clone(&store), settings, service.registry())
        });
        let mut routes: Option<OpenApiRouter> = None;
        // Live streams end on this token, which the routes' component
        // cancels when the service shuts down.
        let streams = CancellationToken::new();
        let watch = if let Some(api) = &config.api {
            let metrics = ApiMetrics::register(service.registry());
            let ready = service.readiness().flag("api: store answering");
            let (live, feed) = watch::channel(None);
            let meetings_reads = meetings_live::channel();
            let queries =
                QueryGate::new(api.query_concurrency, api.query_timeout, service.registry());
            routes = Some(api::routes(ApiState {
                store: Arc::clone(&store),
                metrics,
                queries,
                compat_max_rows: api.compat_max_rows,
                live: feed,
                meetings_live: meetings_reads.clone(),
                shutdown: streams.clone(),
                access: access.clone().ok_or_else(|| {
                    ConfigError::new(
                        "UDACONNECT_OPEN_API",
                        "--open-api",
                        "the API needs its access rules",
                    )
                })?,
            }));
            service.add(MeetingsLive::new(
                Arc::clone(&store),
                meetings_reads,
                api.meetings_live_every,
                api.meetings_live_max,
            ));
            Some(Watch { ready, live })
        } else {
            None
        };
        if let (Some(settings), Some(pg)) = (&config.writer, &pg) {
            let upkeep = MaintenanceComponent::new(&mut service, pg.store.clone(), settings);
            service.add(upkeep);
        }
        service.add(StoreComponent {
            store: Arc::clone(&store),
            watch,
            migrate: pg.filter(|pg| pg.migrate).map(|pg| pg.store),
        });
        let mut grpc = None;
        let mut edge_runs = false;
        if let Some(bus_config) = &config.bus {
            let bus = connect(bus_config, config.target).await?;
            if let Some(settings) = config.ingest.clone() {
                let edge = IngestComponent::build(
                    &mut service,
                    Arc::clone(&store),
                    access.clone().ok_or_else(|| {
                        ConfigError::new(
                            "UDACONNECT_OPEN_API",
                            "--open-api",
                            "an edge needs its access rules",
                        )
                    })?,
                    bus.stream(bus_config.locations.clone())
                        .with_provisioning(bus_config.provisioning),
                    settings,
                )
                .await?;
                grpc = edge.grpc_addr().ok();
                edge_runs = true;
                if let Some(feed) = config.demo_feed {
                    service.add(DemoFeed::new(edge.edge(), Arc::clone(&store), feed));
                }
                let edge_routes = edge.routes();
                routes = Some(match routes {
                    Some(api) => api.merge(edge_routes),
                    None => edge_routes,
                });
                service.add(edge);
            }
            if let Some(settings) = config.writer.clone() {
                let writer = WriterComponent::new(
                    &mut service,
                    Arc::clone(&store),
                    bus.stream(bus_config.locations.clone())
                        .with_provisioning(bus_config.provisioning),
                    bus.stream(bus_config.dead.clone())
                        .with_provisioning(bus_config.provisioning),
                    bus.stream(bus_config.stored.clone())
                        .with_provisioning(bus_config.provisioning),
                    settings,
                );
                service.add(writer);
            }
            if let Some(settings) = config.meetings.clone() {
                let meetings = MeetingsComponent::new(
                    &mut service,
                    Arc::clone(&store),
                    bus.stream(bus_config.stored.clone())
                        .with_provisioning(bus_config.provisioning),
                    bus.stream(bus_config.events.clone())
                        .with_provisioning(bus_config.provisioning),
                    settings,
                )
                .with_backlog(backlog);
                service.add(meetings);
            }
        }
        if let Some(routes) = routes {
            let mut router = api::router(routes);
            if let Some(access) = access {
                router = router
                    .layer(Extension(access))
                    .layer(axum::middleware::map_request(access::query_token));
            }
            service.add(RoutesComponent {
                router,
                page: config.api.is_some(),
                osmand_at_root: edge_runs,
                streams,
            });
        }
        Ok(Self {
            service: service.build(),
            grpc,
        })
    }

    /// Where the gRPC server listens, for a target with an ingest edge.
    pub fn grpc_addr(&self) -> Option<std::net::SocketAddr> {
        self.grpc
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
    Timestamp::start_of(DEMO_FIRST_DAY)
}

/// The bus `config` names: NATS, or (`all` without `NATS_URL`) in-process.
async fn connect(config: &BusConfig, target: &str) -> Result<Bus, ConfigError> {
    match &config.nats.nats_url {
        Some(urls) => {
            let bus = NatsBus::connect(urls, &config.nats, &format!("udaconnect-{target}"))
                .await
                .map_err(|err| ConfigError::new("NATS_URL", "--nats-url", err.to_string()))?;
            Ok(Bus::Nats(bus))
        }
        None => {
            tracing::info!("bus: in-process (set NATS_URL for NATS JetStream)");
            Ok(Bus::Memory(MemoryBus::new()))
        }
    }
}

/// The HTTP routes of the target, composed once.
struct RoutesComponent {
    router: Router,
    /// Whether the target serves the page (the query API does).
    page: bool,
    /// Whether the bare address takes OsmAnd's requests (the edge does).
    osmand_at_root: bool,
    /// Cancelled at shutdown: the routes' long-lived streams end on it.
    streams: CancellationToken,
}

impl Component for RoutesComponent {
    fn name(&self) -> &'static str {
        "http"
    }

    fn serves_page(&self) -> bool {
        self.page
    }

    fn router(&self, _shutdown: &CancellationToken) -> Option<Router> {
        let mut router = self.router.clone();
        if self.page {
            router = router.merge(api::page::assets());
        }
        let mut whole = router.clone();
        if self.page {
            whole = whole.merge(api::page::index());
        }
        if !self.osmand_at_root {
            return Some(whole);
        }
        // `/` is first read as OsmAnd's bare address, then routed on the
        // whole router: an OsmAnd request to OsmAnd's path, anything else
        // (the page) as it came. Every other path is routed once, here.
        let root = tower::ServiceBuilder::new()
            .map_request(osmand_at_root)
            .service(whole);
        Some(router.route_service("/", root))
    }

    fn run(
        self: Box<Self>,
        shutdown: CancellationToken,
        _deadline: Duration,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            shutdown.cancelled().await;
            self.streams.cancel();
        })
    }
}

/// The PostGIS store `config.store` names, and whether to migrate it.
struct Postgres {
    store: PgStore,
    migrate: bool,
}

/// The store: migrated first when asked to; for the query API, watched
/// (ready while it answers) and counted for the live streams.
struct StoreComponent {
    store: Arc<dyn Store>,
    watch: Option<Watch>,
    /// The store to migrate, if asked to.
    migrate: Option<PgStore>,
}

impl Component for StoreComponent {
    fn name(&self) -> &'static str {
        "store"
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
            if let Some(watch) = &self.watch {
                watch_store(&*self.store, watch, &shutdown).await;
            }
        })
    }
}

/// What watching the store keeps up to date.
struct Watch {
    /// On while the store answers.
    ready: ReadyFlag,
    /// The latest counts, for live streams.
    live: watch::Sender<Option<LiveStats>>,
}

/// Checks the store and asks for its counts every [`CHECK_EVERY`]: an answer keeps
/// `ready` on and feeds the live streams, a failure turns `ready` off.
/// Each change is logged, not each check.
async fn watch_store(store: &dyn Store, watch: &Watch, shutdown: &CancellationToken) {
    let mut interval = tokio::time::interval(CHECK_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut answering = None;
    let mut meter = RateMeter::default();
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let outcome = tokio::time::timeout(CHECK_TIMEOUT, async {
            store.check().await?;
            store.stats().await
        })
        .await;
        if let Ok(Ok(stats)) = outcome {
            watch
                .live
                .send_replace(Some(meter.record(tokio::time::Instant::now(), stats)));
        }
        let now = matches!(outcome, Ok(Ok(_)));
        watch.ready.set(now);
        if answering != Some(now) {
            match outcome {
                Ok(Ok(_)) => tracing::info!(store = store.kind(), "store answering"),
                Ok(Err(err)) => tracing::warn!(error = %err, "store not answering"),
                Err(_) => tracing::warn!(timeout = ?CHECK_TIMEOUT, "store not answering in time"),
            }
            answering = Some(now);
        }
    }
}
