//! `GET /ws?after=<seq>`: the stream over WebSocket, with the same JSON as
//! the SSE `data:` lines and the same resume semantics.
//!
//! Browsers cannot set headers on a WebSocket, so the resume point is the
//! query only. The server pings every 15 s; whatever the client sends is
//! read (to see pongs and close frames) and otherwise ignored. A client that
//! accepts no bytes within the write timeout is dropped, as on SSE.

use std::time::Duration;

use axum::{
    extract::{
        State, WebSocketUpgrade,
        ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code},
    },
    http::HeaderMap,
    response::Response,
};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use platform::http::{ApiError, ApiQuery};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::{
    AppState, busy,
    resume::{ResumeQuery, resume_point},
};
use crate::{
    feed::Feed,
    frame::Event,
    metrics::{ClientGuard, Transport},
};

const PING_EVERY: Duration = Duration::from_secs(15);
/// How long the close frame may take at shutdown.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Clients only send control frames; anything large is refused.
const MAX_INCOMING: usize = 4 * 1024;

pub async fn upgrade(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ResumeQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let after = resume_point(&HeaderMap::new(), &query)?;
    let metrics = &state.receiver.metrics;
    let Some(connected) = metrics.admit(Transport::Ws) else {
        metrics.refused(Transport::Ws);
        return Ok(busy(metrics.client_cap()));
    };
    let feed = state.feed(after);
    Ok(upgrade
        .read_buffer_size(MAX_INCOMING)
        .max_message_size(MAX_INCOMING)
        .on_upgrade(move |socket| serve(socket, feed, state, connected)))
}

async fn serve(socket: WebSocket, mut feed: Feed, state: AppState, _connected: ClientGuard) {
    let metrics = &state.receiver.metrics;
    let delivered = metrics.delivered(Transport::Ws);
    let shutdown: CancellationToken = state.shutdown.child_token();
    let (mut sink, mut incoming) = socket.split();
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let outgoing = tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                let close = CloseFrame {
                    code: close_code::AWAY,
                    reason: Utf8Bytes::from_static("server shutting down"),
                };
                // A client that is not reading gets no say in how long
                // shutdown takes.
                let _ = tokio::time::timeout(CLOSE_WAIT, sink.send(Message::Close(Some(close)))).await;
                return;
            }
            event = feed.next() => match event {
                Some(Event::Message(frame)) => {
                    delivered.inc();
                    Message::Text(frame.json.clone())
                }
                Some(Event::Notice(notice)) => Message::Text(notice.json().into()),
                None => return,
            },
            received = incoming.next() => match received {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => continue,
            },
            _ = ping.tick() => Message::Ping(Bytes::new()),
        };
        // A send fails once the client has accepted nothing within the
        // write timeout (its socket is bounded by it); shutdown ends a send
        // that waits for the client too.
        let sent = tokio::select! {
            biased;
            sent = sink.send(outgoing) => sent.is_ok(),
            _ = shutdown.cancelled() => false,
        };
        if !sent {
            return;
        }
    }
}
