//! Assembling and running a target: bind, build the parts the target runs,
//! serve, and stop them all within the shutdown deadline.
//!
//! [`Application::build`] binds the listener, so tests (and the log line
//! people click) get the real port before anything runs;
//! [`Application::run_until_stopped`] takes the shutdown token from its
//! caller: a signal handler in `main`, a plain token in tests.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use axum::Router;
use beacon_broadcaster::Broadcaster;
use beacon_platform::{
    bus::{Bus, MemoryBus, NatsBus},
    config::ConfigError,
    health::Readiness,
    http::{ops_router, serve},
    metrics::{Registry, registry},
};
use beacon_receiver::Receiver;
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

use crate::cli::{BusConfig, Config};

/// A target, bound and ready to run.
pub struct Application {
    target: &'static str,
    listener: TcpListener,
    addr: SocketAddr,
    shutdown_timeout: Duration,
    readiness: Readiness,
    registry: Arc<Registry>,
    broadcaster: Option<Broadcaster>,
    receiver: Option<Receiver>,
}

impl Application {
    /// Binds the HTTP listener and builds the parts `config` asks for. The
    /// only error is a listen address that cannot be used.
    pub async fn build(config: Config) -> Result<Self, ConfigError> {
        let listener = TcpListener::bind(config.http.http_addr)
            .await
            .map_err(|err| {
                ConfigError::new(
                    "BEACON_HTTP_ADDR",
                    "--http-addr",
                    format!("cannot listen on {}: {err}", config.http.http_addr),
                )
            })?;
        let addr = listener
            .local_addr()
            .map_err(|err| ConfigError::new("BEACON_HTTP_ADDR", "--http-addr", err.to_string()))?;

        let mut metrics = registry();
        let readiness = Readiness::default();
        let bus = match config.bus {
            BusConfig::Memory { window } => Bus::Memory(MemoryBus::new(window)),
            BusConfig::Nats { urls, nats, stream } => {
                let name = format!("beacon-{}", config.target);
                let bus = NatsBus::connect(&urls, &nats, stream, &name)
                    .await
                    .map_err(|err| ConfigError::new("NATS_URL", "--nats-url", err.to_string()))?;
                Bus::Nats(bus)
            }
        };
        let broadcaster = config.broadcaster.map(|settings| {
            let metrics = beacon_broadcaster::Metrics::register(&mut metrics);
            Broadcaster::new(bus.clone(), settings, metrics, &readiness)
        });
        let receiver = config.receiver.map(|args| {
            let metrics = beacon_receiver::Metrics::register(&mut metrics);
            Receiver::new(bus.clone(), &args, metrics, &readiness)
        });
        Ok(Self {
            target: config.target,
            listener,
            addr,
            shutdown_timeout: config.http.shutdown_timeout,
            readiness,
            registry: Arc::new(metrics),
            broadcaster,
            receiver,
        })
    }

    /// The port the HTTP server listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Where a browser on this machine reaches the server.
    pub fn url(&self) -> String {
        let host = match self.addr {
            SocketAddr::V4(addr) if addr.ip().is_unspecified() => Ipv4Addr::LOCALHOST.to_string(),
            SocketAddr::V4(addr) => addr.ip().to_string(),
            SocketAddr::V6(addr) if addr.ip().is_unspecified() => "[::1]".to_owned(),
            SocketAddr::V6(addr) => format!("[{}]", addr.ip()),
        };
        format!("http://{host}:{}/", self.port())
    }

    /// Runs until `shutdown` is cancelled, then stops accepting, ends open
    /// streams and lets the last publish finish, all within the deadline.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let url = self.url();
        let stopping = shutdown.clone();
        self.readiness
            .add_check("not shutting down", move || !stopping.is_cancelled());

        let mut router: Router = ops_router(self.readiness, self.registry);
        let mut takeover = None;
        let mut tasks = JoinSet::new();
        if let Some(broadcaster) = self.broadcaster {
            let (shutdown, deadline) = (shutdown.clone(), self.shutdown_timeout);
            tasks.spawn(async move {
                broadcaster.run(shutdown, deadline).await;
            });
        }
        match self.receiver {
            Some(receiver) => {
                router = router.merge(receiver.router(shutdown.clone()));
                takeover = Some(receiver.takeover(shutdown.clone()));
                tasks.spawn(receiver.run(shutdown.clone()));
                tracing::info!(%url, target = self.target, "listening: open {url} in a browser");
            }
            None => {
                tracing::info!(%url, target = self.target, "listening (health and metrics only)")
            }
        }
        let router = router.layer(TraceLayer::new_for_http());

        let served = serve(
            self.listener,
            router,
            takeover,
            shutdown.clone(),
            self.shutdown_timeout,
        )
        .await;
        // The server also stops on an I/O error: stop everything else too.
        shutdown.cancel();
        let finished = tokio::time::timeout(self.shutdown_timeout, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            tracing::warn!("shutdown deadline passed; stopping the remaining tasks");
        }
        tracing::info!(target = self.target, "stopped");
        served
    }
}
