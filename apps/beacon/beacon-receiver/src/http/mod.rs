//! The receiver's HTTP surface: the page, the live streams, the history API.
//!
//! Live streams are capped (`BEACON_MAX_CLIENTS`): beyond the cap,
//! `/events` and `/ws` answer 503 with `Retry-After`, while `/livez`,
//! `/readyz`, `/metrics`, the page and the API always answer, so probes
//! never fail because viewers are many.

mod api;
mod page;
mod resume;
mod sse;
mod ws;

use axum::{
    Json, Router,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use platform::takeover::Takeover;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{Receiver, feed::Feed};

/// What every handler needs.
#[derive(Clone)]
struct AppState {
    receiver: Receiver,
    shutdown: CancellationToken,
}

impl AppState {
    fn feed(&self, after: Option<u64>) -> Feed {
        let receiver = &self.receiver;
        Feed::new(
            receiver.hub.clone(),
            receiver.history.clone(),
            receiver.metrics.clone(),
            after,
        )
    }
}

/// Seconds a client refused at the cap is told to wait (`Retry-After`).
const RETRY_AFTER_SECONDS: u64 = 5;

/// The answer to a stream request beyond the client cap: 503, when to
/// retry, and why, as JSON.
fn busy(cap: usize) -> Response {
    let body = json!({
        "error": format!("this receiver serves its maximum of {cap} clients; retry later"),
        "retry_after": RETRY_AFTER_SECONDS,
    });
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, RETRY_AFTER_SECONDS.to_string())],
        Json(body),
    )
        .into_response()
}

pub(crate) fn router(receiver: Receiver, shutdown: CancellationToken) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/assets/app.js", get(page::script))
        .route("/assets/style.css", get(page::style))
        .route("/events", get(sse::events))
        .route("/ws", get(ws::upgrade))
        .route("/api/messages", get(api::messages))
        .with_state(AppState { receiver, shutdown })
}

/// The connections served without hyper: event streams (see [`sse`]).
pub(crate) fn takeover(receiver: Receiver, shutdown: CancellationToken) -> Takeover {
    sse::takeover(AppState { receiver, shutdown })
}
