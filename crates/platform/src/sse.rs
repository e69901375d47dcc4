//! Server-Sent Events as every service on the platform sends them: the
//! same headers, the same reconnect hint first, a comment every 15 s on an
//! idle stream, and an end as soon as the server shuts down, so graceful
//! shutdown never waits on a browser.
//!
//! A stream served through the router is bounded like any response by the
//! connection's write timeout ([`crate::conn`]); [`response`] adds the rest.
//! Services that write streams on the raw connection ([`crate::takeover`])
//! use the same [`STREAM_HEADERS`], [`PREAMBLE`] and [`keep_alive`].

use std::{convert::Infallible, time::Duration};

use axum::{
    body::Body,
    http::{HeaderName, HeaderValue},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures::{Stream, StreamExt, stream};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// How often an idle stream sends a comment, so that proxies keep it open
/// and a client that left is noticed.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Sent first: an `EventSource` reconnects one second after losing the stream.
pub const PREAMBLE: &[u8] = b"retry: 1000\n\n";
/// The comment sent on an idle stream.
pub const KEEP_ALIVE_COMMENT: &[u8] = b": keep-alive\n\n";
/// The headers of a stream, however it is served. `x-accel-buffering: no`
/// tells nginx-style proxies (an ingress) not to buffer it.
pub const STREAM_HEADERS: [(&str, &str); 3] = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
];

/// The keep-alive timer of one stream: first tick one period from now.
pub fn keep_alive() -> Interval {
    let mut interval = tokio::time::interval_at(Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

/// One event: `event:` if named, `id:` if given, and `data:` (one line
/// per line of `data`).
pub fn event(name: Option<&str>, id: Option<&str>, data: &str) -> Bytes {
    let mut text = String::with_capacity(data.len() + 32);
    if let Some(id) = id {
        text.push_str("id: ");
        text.push_str(id);
        text.push('\n');
    }
    if let Some(name) = name {
        text.push_str("event: ");
        text.push_str(name);
        text.push('\n');
    }
    for line in data.split('\n') {
        text.push_str("data: ");
        text.push_str(line);
        text.push('\n');
    }
    text.push('\n');
    Bytes::from(text)
}

/// `body` with the stream headers.
pub fn with_headers(body: Body) -> Response {
    let mut response = body.into_response();
    for (name, value) in STREAM_HEADERS {
        response.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

/// A response streaming `events` (each already encoded, see [`event`]):
/// the preamble first, a keep-alive comment whenever 15 s pass without an
/// event, and the end when `events` ends or `shutdown` is cancelled.
pub fn response<S>(events: S, shutdown: &CancellationToken) -> Response
where
    S: Stream<Item = Bytes> + Send + 'static,
{
    let shutdown = shutdown.child_token();
    let preamble = stream::once(async { Ok(Bytes::from_static(PREAMBLE)) });
    let state = (
        Box::pin(events),
        keep_alive(),
        Box::pin(shutdown.cancelled_owned()),
    );
    let body = stream::unfold(
        state,
        |(mut events, mut keep_alive, mut stopped)| async move {
            let next = tokio::select! {
                biased;
                () = &mut stopped => None,
                event = events.next() => event,
                _ = keep_alive.tick() => Some(Bytes::from_static(KEEP_ALIVE_COMMENT)),
            }?;
            keep_alive.reset();
            Some((Ok::<_, Infallible>(next), (events, keep_alive, stopped)))
        },
    );
    with_headers(Body::from_stream(preamble.chain(body)))
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[test]
    fn events_name_their_parts_and_split_lines() {
        assert_eq!(
            event(Some("stats"), Some("7"), "{\"a\":1}"),
            Bytes::from_static(b"id: 7\nevent: stats\ndata: {\"a\":1}\n\n")
        );
        assert_eq!(
            event(None, None, "a\nb"),
            Bytes::from_static(b"data: a\ndata: b\n\n")
        );
    }

    async fn body_of(response: Response) -> Vec<Bytes> {
        let mut body = response.into_body().into_data_stream();
        let mut chunks = Vec::new();
        while let Some(chunk) = body.next().await {
            chunks.push(chunk.expect("a chunk"));
        }
        chunks
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_is_kept_alive_and_ends_on_shutdown() {
        let shutdown = CancellationToken::new();
        let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(4);
        let events = stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|event| (event, receiver))
        });
        let response = response(events, &shutdown);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            sender.send(event(None, None, "one")).await.expect("sent");
            tokio::time::sleep(KEEP_ALIVE * 2 + Duration::from_secs(1)).await;
            stopper.cancel();
            // Held until after the cancel: the stream ends on shutdown, not
            // because its events did.
            drop(sender);
        });
        let chunks = body_of(response).await;
        assert_eq!(
            chunks,
            vec![
                Bytes::from_static(PREAMBLE),
                Bytes::from_static(b"data: one\n\n"),
                Bytes::from_static(KEEP_ALIVE_COMMENT),
                Bytes::from_static(KEEP_ALIVE_COMMENT),
            ]
        );
    }

    #[tokio::test]
    async fn a_stream_ends_with_its_events() {
        let events = stream::iter([event(None, None, "a"), event(None, None, "b")]);
        let chunks = body_of(response(events, &CancellationToken::new())).await;
        assert_eq!(chunks.len(), 3);
    }
}
