//! HTTP requests counted and logged the same way, whoever serves them.
//!
//! A service answers most requests through its router, and some
//! connections itself ([`crate::takeover`]: event streams written on the raw
//! socket). Operators and tests must see both alike, so both record through
//! one [`HttpMetrics`]:
//!
//! - `<prefix>_http_requests_total{route, status, path}`: responses by the
//!   route that matched (its pattern, such as `/events` or `/items/{id}`;
//!   `unmatched` for a 404 of the router), the status code, and `path`,
//!   which says who served it: `router` or `raw`;
//! - `<prefix>_http_request_duration_seconds{route, path}`: time from the
//!   request head to the response head (for a stream, until it starts);
//! - `<prefix>_http_connections_timed_out_total{timeout}`: connections
//!   closed because a client took too long: `header` (no complete request
//!   head in time), `idle` (nothing between requests on a kept-alive
//!   connection), `write` (a response the client stopped reading).
//!
//! and one log line per request at DEBUG, `request`, with the same fields
//! plus the method, the URI and the latency in milliseconds.
//!
//! [`crate::service::Service`] registers the metrics and wraps every
//! service's router with [`HttpMetrics::instrument`]; a raw handler records
//! its response through the [`RawRequest`] it is handed. Another server on
//! the platform can do the same: [`HttpMetrics::register`], then
//! `instrument` its router.

use std::{fmt, sync::Arc, time::Instant};

use axum::{
    Router,
    extract::{MatchedPath, Request, State},
    http::{Method, StatusCode, Uri},
    middleware::{Next, from_fn_with_state},
    response::Response,
};
use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder},
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::{Registry, Unit},
};

/// Who served a request.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum ServedBy {
    /// hyper and the router.
    Router,
    /// A component, on the raw connection ([`crate::takeover`]).
    Raw,
}

impl ServedBy {
    fn as_str(self) -> &'static str {
        match self {
            ServedBy::Router => "router",
            ServedBy::Raw => "raw",
        }
    }
}

impl EncodeLabelValue for ServedBy {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        fmt::Write::write_str(encoder, self.as_str())
    }
}

/// Which limit closed a connection.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Timeout {
    /// No complete request head within the header timeout.
    Header,
    /// A kept-alive connection idle between requests past the idle timeout.
    Idle,
    /// A response whose client accepted no bytes within the write timeout.
    Write,
}

impl Timeout {
    fn index(self) -> usize {
        match self {
            Timeout::Header => 0,
            Timeout::Idle => 1,
            Timeout::Write => 2,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Timeout::Header => "header",
            Timeout::Idle => "idle",
            Timeout::Write => "write",
        }
    }
}

impl EncodeLabelValue for Timeout {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
    path: ServedBy,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    path: ServedBy,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TimeoutLabels {
    timeout: Timeout,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// Request and connection metrics of one HTTP server; cheap to clone.
#[derive(Clone)]
pub struct HttpMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily,
    timed_out: [Counter; 3],
}

/// The route label of a request the router matched no route for.
pub const UNMATCHED: &str = "unmatched";

impl HttpMetrics {
    /// Creates the families and registers them in `registry` (whose prefix
    /// names them: `beacon_http_requests_total`).
    pub fn register(registry: &mut Registry) -> Self {
        let timed_out = Family::<TimeoutLabels, Counter>::default();
        // One series per timeout, created now, so each shows from the start.
        let series = |timeout| timed_out.get_or_create(&TimeoutLabels { timeout }).clone();
        let inner = Inner {
            requests: Family::default(),
            duration: Family::new_with_constructor(crate::metrics::latency_histogram),
            timed_out: [
                series(Timeout::Header),
                series(Timeout::Idle),
                series(Timeout::Write),
            ],
        };
        registry.register(
            "http_requests",
            "HTTP responses by matched route, status and who served them (path: router or raw)",
            inner.requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's head to its response's head, by route and who served it",
            Unit::Seconds,
            inner.duration.clone(),
        );
        registry.register(
            "http_connections_timed_out",
            "Connections closed because the client took too long: no request head (header), idle between requests (idle), not reading a response (write)",
            timed_out,
        );
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Metrics registered nowhere, for tests and for servers that do not
    /// export them.
    pub fn unregistered() -> Self {
        Self::register(&mut Registry::default())
    }

    /// `router` with every route (and the fallback) counted and logged.
    pub fn instrument(&self, router: Router) -> Router {
        router.layer(from_fn_with_state(self.clone(), through_router))
    }

    /// Records one response: the metrics and the log line.
    pub fn record(
        &self,
        served: ServedBy,
        method: &Method,
        uri: &Uri,
        route: &str,
        status: StatusCode,
        started: Instant,
    ) {
        let elapsed = started.elapsed();
        self.inner
            .requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                status: status.as_u16(),
                path: served,
            })
            .inc();
        self.inner
            .duration
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                path: served,
            })
            .observe(elapsed.as_secs_f64());
        // The path, never the query: a query may carry a token or a
        // position, which no log line keeps.
        tracing::debug!(
            %method,
            uri_path = uri.path(),
            route,
            status = status.as_u16(),
            path = served.as_str(),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    }

    /// Counts a connection closed by `timeout`.
    pub fn timed_out(&self, timeout: Timeout) {
        self.inner.timed_out[timeout.index()].inc();
    }

    /// The counter of connections closed by the write timeout, for
    /// [`crate::conn::TimedIo`].
    pub fn write_timeouts(&self) -> Counter {
        self.inner.timed_out[Timeout::Write.index()].clone()
    }

    /// How many connections `timeout` has closed so far.
    pub fn timed_out_count(&self, timeout: Timeout) -> u64 {
        self.inner.timed_out[timeout.index()].get()
    }
}

async fn through_router(
    State(metrics): State<HttpMetrics>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let uri = request.uri().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED.to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    metrics.record(
        ServedBy::Router,
        &method,
        &uri,
        &route,
        response.status(),
        started,
    );
    response
}

/// A request a component serves on the raw connection: what it records
/// once it answers, as the router records its own.
pub struct RawRequest {
    metrics: HttpMetrics,
    method: Method,
    uri: Uri,
    route: &'static str,
    started: Instant,
}

impl RawRequest {
    /// A request for `route` (its pattern), whose head was read at `started`.
    pub fn new(
        metrics: HttpMetrics,
        method: Method,
        uri: Uri,
        route: &'static str,
        started: Instant,
    ) -> Self {
        Self {
            metrics,
            method,
            uri,
            route,
            started,
        }
    }

    /// Records the response, as its head is about to be written.
    pub fn respond(self, status: StatusCode) {
        self.metrics.record(
            ServedBy::Raw,
            &self.method,
            &self.uri,
            self.route,
            status,
            self.started,
        );
    }
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, routing::get};
    use tower::ServiceExt as _;

    use super::*;

    fn text(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).expect("encodes");
        text
    }

    #[tokio::test]
    async fn the_router_and_the_raw_path_count_alike() {
        let mut registry = Registry::with_prefix("demo");
        let metrics = HttpMetrics::register(&mut registry);
        let router = metrics.instrument(Router::new().route("/items/{id}", get(|| async { "hi" })));
        for uri in ["/items/1", "/items/2", "/nope"] {
            let request = Request::builder()
                .uri(uri)
                .body(Body::empty())
                .expect("a request");
            router.clone().oneshot(request).await.expect("answered");
        }
        RawRequest::new(
            metrics.clone(),
            Method::GET,
            Uri::from_static("/events"),
            "/events",
            Instant::now(),
        )
        .respond(StatusCode::OK);
        metrics.timed_out(Timeout::Write);

        let text = text(&registry);
        for sample in [
            r#"demo_http_requests_total{route="/items/{id}",status="200",path="router"} 2"#,
            r#"demo_http_requests_total{route="unmatched",status="404",path="router"} 1"#,
            r#"demo_http_requests_total{route="/events",status="200",path="raw"} 1"#,
            r#"demo_http_request_duration_seconds_count{route="/events",path="raw"} 1"#,
            r#"demo_http_connections_timed_out_total{timeout="write"} 1"#,
            r#"demo_http_connections_timed_out_total{timeout="header"} 0"#,
        ] {
            assert!(text.contains(sample), "{sample} missing from:\n{text}");
        }
    }
}
