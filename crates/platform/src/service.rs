//! A service: the parts a target runs, behind one HTTP server, started and
//! stopped together within one shutdown deadline.
//!
//! Each application composes its targets from [`Component`]s (a
//! broadcaster, a receiver, an API, a writer...). A component registers its
//! metrics and readiness checks while it is built, may mount routes and
//! serve connections itself, and runs a task until shutdown. A
//! [`ServiceBuilder`] binds the listener first (so the caller knows the port
//! before anything runs) and collects the components; [`Service::run_until_stopped`]
//! serves `/livez`, `/readyz`, `/metrics` and every component's routes
//! until its token is cancelled, then gives the HTTP connections and the
//! components one deadline, in total, to finish. Every connection is bounded
//! by the timeouts of [`HttpArgs`] ([`crate::conn`]) and every request
//! counted and logged ([`crate::requests`]), whether the router or a
//! component's takeover serves it.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use axum::Router;
pub use futures::future::BoxFuture;
use prometheus_client::registry::Registry;
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{
    config::{AppNames, ConfigError},
    conn::Timeouts,
    health::Readiness,
    http::{HttpArgs, ServeOptions, ops_router, serve},
    metrics,
    requests::HttpMetrics,
    shutdown::with_deadline,
    takeover::Takeover,
};

/// One part of a service.
pub trait Component: Send + 'static {
    /// Its name, for logs.
    fn name(&self) -> &'static str;

    /// Whether its routes include a page for people (the listening log line
    /// then says to open it).
    fn serves_page(&self) -> bool {
        false
    }

    /// Routes to merge into the service's router. Long-lived responses end
    /// when `shutdown` is cancelled.
    fn router(&self, shutdown: &CancellationToken) -> Option<Router> {
        let _ = shutdown;
        None
    }

    /// Connections it serves itself, chosen from their first request's head
    /// (see [`crate::takeover`]).
    fn takeover(&self, shutdown: &CancellationToken) -> Option<Takeover> {
        let _ = shutdown;
        None
    }

    /// Its task: runs until `shutdown` is cancelled, then finishes what it
    /// must within `deadline` (it is cut off after that).
    fn run(
        self: Box<Self>,
        shutdown: CancellationToken,
        deadline: Duration,
    ) -> BoxFuture<'static, ()>;
}

/// A service being assembled: bound, collecting components.
pub struct ServiceBuilder {
    target: &'static str,
    listener: TcpListener,
    addr: SocketAddr,
    shutdown_timeout: Duration,
    timeouts: Timeouts,
    head_limits: crate::errors::HeadLimits,
    registry: Registry,
    http_metrics: HttpMetrics,
    readiness: Readiness,
    components: Vec<Box<dyn Component>>,
}

impl ServiceBuilder {
    /// Binds the HTTP listener for `target`, whose metric names start with
    /// `metrics_prefix`. The only error is a listen address that cannot be
    /// used, named by its setting.
    pub async fn bind<A: AppNames>(
        target: &'static str,
        http: &HttpArgs<A>,
        metrics_prefix: &str,
    ) -> Result<Self, ConfigError> {
        let var = format!("{}_HTTP_ADDR", A::ENV_PREFIX);
        let listener = TcpListener::bind(http.http_addr).await.map_err(|err| {
            ConfigError::new(
                &var,
                "--http-addr",
                format!("cannot listen on {}: {err}", http.http_addr),
            )
        })?;
        let addr = listener
            .local_addr()
            .map_err(|err| ConfigError::new(&var, "--http-addr", err.to_string()))?;
        let mut registry = metrics::registry(metrics_prefix);
        let http_metrics = HttpMetrics::register(&mut registry);
        Ok(Self {
            target,
            listener,
            addr,
            shutdown_timeout: http.shutdown_timeout,
            timeouts: http.timeouts(),
            head_limits: http.head_limits(),
            registry,
            http_metrics,
            readiness: Readiness::default(),
            components: Vec::new(),
        })
    }

    /// Where components register their metrics.
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Where components register their readiness checks.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// Adds a component.
    pub fn add(&mut self, component: impl Component) {
        self.components.push(Box::new(component));
    }

    /// The finished service.
    pub fn build(self) -> Service {
        Service { parts: self }
    }
}

/// A service, bound and ready to run.
pub struct Service {
    parts: ServiceBuilder,
}

impl Service {
    /// The port the HTTP server listens on.
    pub fn port(&self) -> u16 {
        self.parts.addr.port()
    }

    /// Where a browser on this machine reaches the server.
    pub fn url(&self) -> String {
        let host = match self.parts.addr {
            SocketAddr::V4(addr) if addr.ip().is_unspecified() => Ipv4Addr::LOCALHOST.to_string(),
            SocketAddr::V4(addr) => addr.ip().to_string(),
            SocketAddr::V6(addr) if addr.ip().is_unspecified() => "[::1]".to_owned(),
            SocketAddr::V6(addr) => format!("[{}]", addr.ip()),
        };
        format!("http://{host}:{}/", self.port())
    }

    /// Runs until `shutdown` is cancelled, then stops accepting, lets open
    /// connections and every component finish, all within the one shutdown
    /// deadline.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let url = self.url();
        let ServiceBuilder {
            target,
            listener,
            shutdown_timeout,
            timeouts,
            head_limits,
            registry,
            http_metrics,
            readiness,
            components,
            ..
        } = self.parts;
        let stopping = shutdown.clone();
        readiness.add_check("not shutting down", move || !stopping.is_cancelled());

        let mut router = ops_router(readiness, Arc::new(registry));
        let mut takeovers = Vec::new();
        let serves_page = components.iter().any(|component| component.serves_page());
        let mut tasks = JoinSet::new();
        for component in components {
            if let Some(routes) = component.router(&shutdown) {
                router = router.merge(routes);
            }
            takeovers.extend(component.takeover(&shutdown));
            tracing::debug!(component = component.name(), "starting");
            tasks.spawn(component.run(shutdown.clone(), shutdown_timeout));
        }
        // One error shape for every answer, and the head limits.
        let router = crate::errors::json_errors(router, head_limits);
        // Every route is counted and logged; connections served raw record
        // the same through the serve options' metrics.
        let router = http_metrics.instrument(router);
        let options = ServeOptions {
            timeouts,
            metrics: http_metrics,
        };
        if serves_page {
            tracing::info!(%url, target, "listening: open {url} in a browser");
        } else {
            tracing::info!(%url, target, "listening (health and metrics only)");
        }

        let everything = async {
            let server = serve(
                listener,
                router,
                first_claim(takeovers),
                options,
                shutdown.clone(),
            );
            let components = async { while tasks.join_next().await.is_some() {} };
            futures::future::join(server, components).await;
        };
        if with_deadline(everything, &shutdown, shutdown_timeout)
            .await
            .is_none()
        {
            tracing::warn!(
                deadline = ?shutdown_timeout,
                "shutdown deadline passed; dropping open connections and unfinished work"
            );
        }
        tracing::info!(target, "stopped");
        Ok(())
    }
}

/// One takeover asking each component's in turn; the first to claim wins.
fn first_claim(takeovers: Vec<Takeover>) -> Option<Takeover> {
    match takeovers.len() {
        0 => None,
        1 => takeovers.into_iter().next(),
        _ => Some(Arc::new(move |parts| {
            takeovers.iter().find_map(|takeover| takeover(parts))
        })),
    }
}
