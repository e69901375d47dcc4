//! HTTP plumbing shared by every target: its settings, the operations
//! endpoints, JSON errors, strict query parsing, and serving until
//! shutdown, every connection within its time limits.
//!
//! The caller binds the listener (so tests can use port 0 and read the real
//! port) and owns the shutdown token, as in `mini-redis`'s `run`.

use std::{
    io,
    marker::PhantomData,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{FromRequestParts, Query, State},
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::get,
};
use clap::{Arg, ArgMatches, Args, Command, FromArgMatches, error::ErrorKind};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use crate::{
    config::{AppNames, parse_duration, parse_socket_addr},
    conn::{self, Lifetime, TimedIo, Timeouts, Tracked},
    health::Readiness,
    metrics,
    requests::HttpMetrics,
    takeover::{Served, Takeover},
};

/// Where the HTTP server listens, how long clients may take, and how long
/// it may take to stop; the env vars are named after the application `A`
/// (`BEACON_HTTP_ADDR`, `BEACON_HEADER_TIMEOUT`, ...).
#[derive(Debug, Clone)]
pub struct HttpArgs<A> {
    /// Address the HTTP server listens on (IP:port; port 0 picks a free one).
    pub http_addr: SocketAddr,
    /// Time allowed, after SIGTERM, for everything to finish.
    pub shutdown_timeout: Duration,
    /// Time a client has to send a complete request head.
    pub header_timeout: Duration,
    /// Time a kept-alive connection may sit idle between requests.
    pub idle_timeout: Duration,
    /// Time a client has to accept any byte of a response it is sent.
    pub write_timeout: Duration,
    /// Bytes of a request target (path and query) read at most.
    pub max_uri: usize,
    /// Bytes of a request's headers read at most.
    pub max_headers: usize,
    app: PhantomData<A>,
}

impl<A> HttpArgs<A> {
    /// How large a request head may be.
    pub fn head_limits(&self) -> crate::errors::HeadLimits {
        crate::errors::HeadLimits {
            uri: self.max_uri,
            headers: self.max_headers,
        }
    }

    /// The limits on how long clients may take.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            header: self.header_timeout,
            idle: self.idle_timeout,
            write: self.write_timeout,
        }
    }
}

impl<A: AppNames> Args for HttpArgs<A> {
    fn augment_args(command: Command) -> Command {
        command
            .arg(
                Arg::new("http_addr")
                    .long("http-addr")
                    .env(format!("{}_HTTP_ADDR", A::ENV_PREFIX))
                    .default_value(A::HTTP_ADDR)
                    .value_parser(parse_socket_addr)
                    .help("Address the HTTP server listens on (IP:port; port 0 picks a free one)"),
            )
            .arg(
                Arg::new("shutdown_timeout")
                    .long("shutdown-timeout")
                    .env(format!("{}_SHUTDOWN_TIMEOUT", A::ENV_PREFIX))
                    .default_value("10s")
                    .value_parser(parse_duration)
                    .help("Time allowed, after SIGTERM, for open connections and work in flight to finish"),
            )
            .arg(
                Arg::new("header_timeout")
                    .long("header-timeout")
                    .env(format!("{}_HEADER_TIMEOUT", A::ENV_PREFIX))
                    .default_value("10s")
                    .value_parser(parse_duration)
                    .help("Time a client has to send a complete request head; a connection that has not is closed"),
            )
            .arg(
                Arg::new("idle_timeout")
                    .long("idle-timeout")
                    .env(format!("{}_IDLE_TIMEOUT", A::ENV_PREFIX))
                    .default_value("60s")
                    .value_parser(parse_duration)
                    .help("Time a kept-alive connection may sit idle between requests before it is closed"),
            )
            .arg(
                Arg::new("write_timeout")
                    .long("write-timeout")
                    .env(format!("{}_WRITE_TIMEOUT", A::ENV_PREFIX))
                    .default_value("30s")
                    .value_parser(parse_duration)
                    .help("Time a client has to accept any byte of a response (a stream it stopped reading) before it is dropped"),
            )
            .arg(
                Arg::new("max_uri")
                    .long("max-uri")
                    .env(format!("{}_HTTP_MAX_URI", A::ENV_PREFIX))
                    .default_value("8192")
                    .value_parser(parse_head_bytes)
                    .help("Bytes of a request target (path and query) read at most; a longer one is answered 414"),
            )
            .arg(
                Arg::new("max_headers")
                    .long("max-headers")
                    .env(format!("{}_HTTP_MAX_HEADERS", A::ENV_PREFIX))
                    .default_value("32768")
                    .value_parser(parse_head_bytes)
                    .help("Bytes of a request's headers read at most; more are answered 431"),
            )
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

impl<A: AppNames> FromArgMatches for HttpArgs<A> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let missing = |id| {
            clap::Error::raw(
                ErrorKind::MissingRequiredArgument,
                format!("no value for {id}\n"),
            )
        };
        Ok(Self {
            http_addr: *matches
                .get_one::<SocketAddr>("http_addr")
                .ok_or_else(|| missing("http_addr"))?,
            shutdown_timeout: *matches
                .get_one::<Duration>("shutdown_timeout")
                .ok_or_else(|| missing("shutdown_timeout"))?,
            header_timeout: *matches
                .get_one::<Duration>("header_timeout")
                .ok_or_else(|| missing("header_timeout"))?,
            idle_timeout: *matches
                .get_one::<Duration>("idle_timeout")
                .ok_or_else(|| missing("idle_timeout"))?,
            write_timeout: *matches
                .get_one::<Duration>("write_timeout")
                .ok_or_else(|| missing("write_timeout"))?,
            max_uri: *matches
                .get_one::<usize>("max_uri")
                .ok_or_else(|| missing("max_uri"))?,
            max_headers: *matches
                .get_one::<usize>("max_headers")
                .ok_or_else(|| missing("max_headers"))?,
            app: PhantomData,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// A head limit: from 1 KiB to hyper's own (64 KiB of target; about
/// 400 KiB of head in all), beyond which hyper answers first.
fn parse_head_bytes(input: &str) -> Result<usize, String> {
    let bytes: usize = input
        .trim()
        .parse()
        .map_err(|_| "expected a number of bytes, such as 8192".to_owned())?;
    if !(1024..=65_534).contains(&bytes) {
        return Err("must be from 1024 to 65534 bytes".to_owned());
    }
    Ok(bytes)
}

#[derive(Clone)]
struct Ops {
    readiness: Readiness,
    registry: Arc<Registry>,
    /// What the last probe found missing (`None` before the first), to
    /// log only the changes.
    last_waiting: Arc<Mutex<Option<Vec<&'static str>>>>,
}

/// `/livez`, `/readyz` and `/metrics`, which every target serves.
pub fn ops_router(readiness: Readiness, registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Ops {
            readiness,
            registry,
            last_waiting: Arc::default(),
        })
}

async fn livez() -> Json<serde_json::Value> {
    Json(json!({ "status": "alive" }))
}

/// 200 when ready, else 503 naming what is missing. Not being ready is a
/// starting or draining service's normal state, probed every few seconds:
/// only a change is logged (at INFO), never each answer.
async fn readyz(State(ops): State<Ops>) -> Response {
    let waiting_for = ops.readiness.waiting_for();
    {
        let mut last = ops
            .last_waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.as_ref() != Some(&waiting_for) {
            if waiting_for.is_empty() {
                tracing::info!("ready");
            } else {
                tracing::info!(waiting_for = ?waiting_for, "not ready");
            }
            *last = Some(waiting_for.clone());
        }
    }
    if waiting_for.is_empty() {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        let body = json!({ "status": "not ready", "waiting_for": waiting_for });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

async fn metrics_text(State(ops): State<Ops>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::encode(&ops.registry),
    )
        .into_response()
}

/// An error answered as `{"error": "..."}` with its status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A sentence for the client.
    pub message: String,
}

impl ApiError {
    /// A 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// A 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// A 503 Service Unavailable, for a dependency that is down.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// A query string parsed into `T`, or a 400 with a JSON error naming the
/// parameter (axum's own [`Query`] answers plain text).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| {
                let detail = rejection.body_text();
                let detail = detail
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&detail);
                ApiError::bad_request(format!("invalid query: {detail}"))
            })
    }
}

/// A JSON body parsed into `T`, or a 400 with a JSON error saying what is
/// wrong with it (axum's own [`Json`] answers plain text, and 415 or 422).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(
        request: axum::extract::Request,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Json::<T>::from_request(request, state)
            .await
            .map(|Json(value)| ApiJson(value))
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    return ApiError {
                        status: StatusCode::PAYLOAD_TOO_LARGE,
                        message: "the body is larger than this endpoint takes".to_owned(),
                    };
                }
                let detail = rejection.body_text();
                let detail = detail
                    .strip_prefix("Failed to deserialize the JSON body into the target type: ")
                    .unwrap_or(&detail);
                ApiError::bad_request(format!("invalid JSON body: {detail}"))
            })
    }
}

/// How [`serve`] treats connections: how long clients may take, and where
/// requests and timeouts are counted.
#[derive(Clone)]
pub struct ServeOptions {
    /// The limits on how long clients may take (see [`crate::conn`]).
    pub timeouts: Timeouts,
    /// Where connections closed by a timeout, and requests served raw,
    /// are counted. The router is expected to be instrumented with the
    /// same metrics ([`HttpMetrics::instrument`]).
    pub metrics: HttpMetrics,
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then returns
/// once every open connection has finished its current response. The
/// caller bounds that wait (see [`crate::service`]): connections that are
/// still open when it gives up are dropped with the future.
///
/// Long-lived responses (SSE, WebSocket) must end on the same token, or they
/// hold the server until the caller's deadline.
///
/// Every connection is bounded by `options.timeouts` ([`crate::conn`]).
/// `takeover`, when given, may claim a connection from its first request's
/// head and serve it without hyper; see [`crate::takeover`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    takeover: Option<Takeover>,
    options: ServeOptions,
    shutdown: CancellationToken,
) {
    // Every connection holds a receiver; once all are dropped, `closed()`
    // resolves: every connection has finished.
    let (open_tx, open_rx) = watch::channel(());
    accept_loop(listener, router, takeover, &options, &shutdown, open_rx).await;
    open_tx.closed().await;
}

/// Accepts connections until `shutdown` is cancelled, serving each on its
/// own task; a connection asked to stop finishes its current response.
///
/// hyper is used directly rather than through `axum::serve` to tune what a
/// connection costs, since a receiver holds tens of thousands of them:
/// - each connection gets a clone of the router (an `Arc`); `axum::serve`
///   re-applies the router's state per connection, rebuilding the route
///   table (about 7.5 KB per connection in a heap profile);
/// - `half_close`: while a response streams, hyper otherwise keeps reading
///   the socket to notice an early EOF, and each such read grows the
///   connection's read buffer from 8 to 16 KB. A client that leaves is
///   noticed instead when the next event or keep-alive comment cannot be
///   written (within 15 s);
/// - `TCP_NODELAY`: streams write small events; Nagle's algorithm would hold
///   one back until the previous one is acknowledged (up to the client's
///   40 ms delayed ACK);
/// - what only hyper connections need (the dispatcher, the deadlines'
///   watch) is allocated only for them, not for connections a takeover
///   serves.
async fn accept_loop(
    listener: TcpListener,
    router: Router,
    takeover: Option<Takeover>,
    options: &ServeOptions,
    shutdown: &CancellationToken,
    open: watch::Receiver<()>,
) {
    let mut http = http1::Builder::new();
    // The header and idle timeouts are watched beside hyper (see
    // `crate::conn`), so hyper's own header timer stays off.
    http.half_close(true).header_read_timeout(None);
    loop {
        let stream = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
        };
        // The first request head is due within the header timeout of now.
        let head_due = Instant::now() + options.timeouts.header;
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        let (router, http, takeover) = (router.clone(), http.clone(), takeover.clone());
        let (options, shutdown) = (options.clone(), shutdown.clone());
        let open = open.clone();
        tokio::spawn(async move {
            let stream = match &takeover {
                Some(takeover) => {
                    // Boxed: what deciding needs is freed before serving.
                    let decided = Box::pin(crate::takeover::decide(
                        stream, takeover, head_due, &options, &shutdown,
                    ))
                    .await;
                    match decided {
                        Served::Raw(handler, stream, request) => {
                            handler(stream, request).await;
                            return drop(open);
                        }
                        Served::Hyper(stream) => stream,
                        Served::Closed => return drop(open),
                    }
                }
                None => stream,
            };
            Box::pin(serve_with_hyper(
                stream, router, http, head_due, options, shutdown,
            ))
            .await;
            drop(open);
        });
    }
}

/// Serves a connection with hyper and the router, within its deadlines,
/// until it closes, a deadline passes, or shutdown (then the current
/// response is finished).
async fn serve_with_hyper(
    stream: TcpStream,
    router: Router,
    http: http1::Builder,
    head_due: Instant,
    options: ServeOptions,
    shutdown: CancellationToken,
) {
    let lifetime = Arc::new(Lifetime::new(head_due, options.timeouts));
    let io = conn::tracked(
        TimedIo::new(
            stream,
            options.timeouts.write,
            shutdown.clone(),
            options.metrics.write_timeouts(),
        ),
        Arc::clone(&lifetime),
    );
    let service = Tracked::new(router, Arc::clone(&lifetime));
    let connection = http
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        timeout = lifetime.expired() => {
            tracing::debug!(timeout = ?timeout, "closing a connection that took too long");
            options.metrics.timed_out(timeout);
            return;
        }
        () = shutdown.cancelled() => {
            // A connection waiting for a request head has nothing to
            // finish: closed now, however slowly its client sends.
            if lifetime.waiting_for_request() {
                return;
            }
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(error = %err, "connection ended with an error");
    }
}

/// A failed accept: a client that gave up is nothing; anything else (such
/// as running out of file descriptors) is logged and waited out, as
/// `axum::serve` does, instead of spinning.
pub(crate) async fn accept_failed(err: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
