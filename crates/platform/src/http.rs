//! HTTP plumbing shared by every target: the operations endpoints, JSON
//! errors, strict query parsing, and serving with a shutdown deadline.
//!
//! The caller binds the listener (so tests can use port 0 and read the real
//! port) and owns the shutdown token, as in `mini-redis`'s `run`.

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    serve::ListenerExt as _,
    extract::{FromRequestParts, Query, State},
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::get,
};
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{config::parse_duration, config::parse_socket_addr, health::Readiness, metrics};

/// Where the HTTP server listens, and how long it may take to stop.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// Address the HTTP server listens on (IP:port; port 0 picks a free one).
    #[arg(long, env = "BEACON_HTTP_ADDR", default_value = "127.0.0.1:8080", value_parser = parse_socket_addr)]
    pub http_addr: SocketAddr,

    /// Time allowed, after SIGTERM, for open connections and the last publish to finish.
    #[arg(long, env = "BEACON_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
}

#[derive(Clone)]
struct Ops {
    readiness: Readiness,
    registry: Arc<Registry>,
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
        })
}

async fn livez() -> Json<serde_json::Value> {
    Json(json!({ "status": "alive" }))
}

async fn readyz(State(ops): State<Ops>) -> Response {
    let waiting_for = ops.readiness.waiting_for();
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

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets open
/// requests finish for at most `deadline` before dropping them.
///
/// Long-lived responses (SSE, WebSocket) must end on the same token, or they
/// hold the server until the deadline.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    deadline: Duration,
) -> io::Result<()> {
    let signal = shutdown.clone();
    // `into_make_service` hands each connection a clone of the router (an
    // `Arc`). Serving the `Router` itself re-applies its state per
    // connection, rebuilding the route table: measured at about 7.5 KB per
    // connection, which a receiver holding tens of thousands of SSE clients
    // pays for each one.
    // Streams write small events: send each at once instead of letting
    // Nagle's algorithm hold it until the previous one is acknowledged
    // (up to the client's 40 ms delayed ACK).
    let listener = listener.tap_io(|stream| {
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, router.into_make_service())
        .with_graceful_shutdown(signal.cancelled_owned());
    match crate::shutdown::with_deadline(server.into_future(), &shutdown, deadline).await {
        Some(result) => result,
        None => {
            tracing::warn!(
                ?deadline,
                "shutdown deadline passed; dropping open connections"
            );
            Ok(())
        }
    }
}
