//! The receiver's HTTP surface: the page, the live streams, the history API.

mod api;
mod page;
mod resume;
mod sse;
mod ws;

use axum::{Router, routing::get};
use beacon_platform::takeover::Takeover;
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
