//! `GET /events`: the stream as Server-Sent Events.
//!
//! Each message is `id: <seq>` + `data: <json>`, sent as the frame's shared
//! bytes; a gap is `event: gap` with the missing range. A comment every 15 s
//! keeps idle connections open through proxies, and the stream ends when the
//! server shuts down, so graceful shutdown never waits on a browser.

use std::{convert::Infallible, pin::Pin, time::Duration};

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use beacon_platform::http::{ApiError, ApiQuery};
use bytes::Bytes;
use futures::{Stream, StreamExt, stream};
use prometheus_client::metrics::counter::Counter;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::{
    AppState,
    resume::{ResumeQuery, resume_point},
};
use crate::{
    feed::Feed,
    frame::Event,
    metrics::{ClientGuard, Transport},
};

/// How often an idle stream sends a comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Sent first: an `EventSource` reconnects one second after losing the stream.
const PREAMBLE: &[u8] = b"retry: 1000\n\n";
const KEEP_ALIVE_COMMENT: &[u8] = b": keep-alive\n\n";

pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<ResumeQuery>,
) -> Result<Response, ApiError> {
    let after = resume_point(&headers, &query)?;
    let metrics = &state.receiver.metrics;
    let client = Client {
        feed: state.feed(after),
        shutdown: Box::pin(state.shutdown.child_token().cancelled_owned()),
        keep_alive: keep_alive(),
        delivered: metrics.delivered(Transport::Sse).clone(),
        _connected: metrics.client_connected(Transport::Sse),
    };
    let headers = [
        (header::CONTENT_TYPE, "text/event-stream"),
        (header::CACHE_CONTROL, "no-cache"),
        // Tells nginx-style proxies (the ingress) not to buffer the stream.
        (header::HeaderName::from_static("x-accel-buffering"), "no"),
    ];
    Ok((headers, Body::from_stream(client.into_stream())).into_response())
}

fn keep_alive() -> Interval {
    let mut interval = tokio::time::interval_at(Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

/// One connected browser.
struct Client {
    feed: Feed,
    /// A child token's future, held across events: polling it costs nothing
    /// shared with other clients.
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    keep_alive: Interval,
    delivered: Counter,
    _connected: ClientGuard,
}

impl Client {
    fn into_stream(self) -> impl Stream<Item = Result<Bytes, Infallible>> {
        let preamble = stream::once(async { Ok(Bytes::from_static(PREAMBLE)) });
        let events = stream::unfold(self, |mut client| async move {
            let bytes = tokio::select! {
                biased;
                _ = &mut client.shutdown => return None,
                event = client.feed.next() => match event? {
                    Event::Message(frame) => {
                        client.delivered.inc();
                        frame.sse.clone()
                    }
                    Event::Gap(gap) => gap.sse(),
                },
                _ = client.keep_alive.tick() => Bytes::from_static(KEEP_ALIVE_COMMENT),
            };
            Some((Ok(bytes), client))
        });
        preamble.chain(events)
    }
}
