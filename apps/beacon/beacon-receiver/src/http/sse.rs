//! `GET /events`: the stream as Server-Sent Events.
//!
//! Each message is `id: <seq>` + `data: <json>`, sent as the frame's shared
//! bytes; a gap is `event: gap` with the missing range. Headers, the
//! reconnect hint, the keep-alive comment every 15 s and the end at shutdown
//! are the platform's ([`platform::sse`]).
//!
//! A connection whose first request is `GET /events` is served on the raw
//! socket ([`takeover`]): an idle SSE client then costs its task and its
//! socket instead of also hyper's two 8 KB buffers, and a delivery is one
//! write of the frame's pre-encoded chunk. The same stream requested later
//! on a kept-alive connection goes through hyper ([`events`]); both send
//! exactly the same bytes, are bounded by the same write timeout, and are
//! counted and logged alike (`path="raw"` or `path="router"`).
//!
//! No router layer applies to the raw path (see
//! [`platform::takeover`]): what `/events` needs beyond the
//! platform's timeouts and request metrics — the resume point's parsing,
//! the client cap — is decided in [`takeover`] itself, which declines
//! whatever it does not handle exactly as [`events`] would (a bad resume
//! point, a full server), leaving it to the router. A concern added to the
//! router later (authentication, rate limits) must be added to
//! [`takeover`] too, or make it decline the requests it applies to.

use std::{convert::Infallible, pin::Pin, sync::Arc};

use axum::{
    body::Body,
    extract::{Query, State},
    http::{HeaderMap, Method, StatusCode, request::Parts},
    response::Response,
};
use bytes::Bytes;
use futures::{Stream, StreamExt, stream};
use platform::{
    conn::TimedIo,
    http::{ApiError, ApiQuery},
    sse::{self, KEEP_ALIVE_COMMENT, PREAMBLE, STREAM_HEADERS, keep_alive},
    takeover::{Claim, Takeover},
};
use prometheus_client::metrics::counter::Counter;
use tokio::{io::AsyncWriteExt, net::TcpStream, time::Interval};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::{
    AppState, busy,
    resume::{ResumeQuery, resume_point},
};
use crate::{
    feed::Feed,
    frame::{Event, Frame, http_chunk},
    metrics::{ClientGuard, Transport},
};

/// The end of a chunked body.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
/// The most bytes of ready events written at once while catching up.
const COALESCE: usize = 64 * 1024;

pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<ResumeQuery>,
) -> Result<Response, ApiError> {
    let after = resume_point(&headers, &query)?;
    let Some(client) = Client::admit(&state, after) else {
        let metrics = &state.receiver.metrics;
        metrics.refused(Transport::Sse);
        return Ok(busy(metrics.client_cap()));
    };
    Ok(sse::with_headers(Body::from_stream(client.into_stream())))
}

/// Claims connections whose first request is a valid `GET /events`.
/// Anything else, including a bad resume point, is left to the router, which
/// answers it as usual.
pub(super) fn takeover(state: AppState) -> Takeover {
    Arc::new(move |parts: &Parts| {
        if parts.method != Method::GET || parts.uri.path() != "/events" {
            return None;
        }
        let Query(query) = Query::<ResumeQuery>::try_from_uri(&parts.uri).ok()?;
        let after = resume_point(&parts.headers, &query).ok()?;
        // At the cap, the router answers (and counts) the refusal.
        let client = Client::admit(&state, after)?;
        Some(Claim::new(
            "/events",
            Box::new(move |stream, request| {
                // Recorded here rather than in the stream's future, which
                // then need not hold the request for the stream's life.
                request.respond(StatusCode::OK);
                Box::pin(client.write_to(stream))
            }),
        ))
    })
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

/// What a client is sent next.
enum Output {
    /// A message: its bytes are already encoded in the frame.
    Frame(Arc<Frame>),
    /// A gap or a keep-alive comment.
    Other(Bytes),
}

impl Output {
    /// As one HTTP chunk, for the raw connection.
    fn chunk(&self) -> Bytes {
        match self {
            Output::Frame(frame) => frame.sse_chunk.clone(),
            Output::Other(bytes) => http_chunk(bytes),
        }
    }
}

impl Client {
    /// A client admitted under the cap; `None` if the receiver is full.
    fn admit(state: &AppState, after: Option<u64>) -> Option<Self> {
        let metrics = &state.receiver.metrics;
        let connected = metrics.admit(Transport::Sse)?;
        Some(Self {
            feed: state.feed(after),
            shutdown: Box::pin(state.shutdown.child_token().cancelled_owned()),
            keep_alive: keep_alive(),
            delivered: metrics.delivered(Transport::Sse).clone(),
            _connected: connected,
        })
    }

    /// The next event; `None` once the server shuts down. Cancel-safe.
    async fn next(&mut self) -> Option<Output> {
        tokio::select! {
            biased;
            _ = &mut self.shutdown => None,
            event = self.feed.next() => Some(self.output(event?)),
            _ = self.keep_alive.tick() => Some(Output::Other(Bytes::from_static(KEEP_ALIVE_COMMENT))),
        }
    }

    /// The next event if one is ready now (a catch-up backlog).
    fn next_ready(&mut self) -> Option<Output> {
        let event = self.feed.next_ready()?;
        Some(self.output(event))
    }

    fn output(&mut self, event: Event) -> Output {
        match event {
            Event::Message(frame) => {
                self.delivered.inc();
                Output::Frame(frame)
            }
            Event::Notice(notice) => Output::Other(notice.sse()),
        }
    }

    /// The body of a response served through hyper.
    fn into_stream(self) -> impl Stream<Item = Result<Bytes, Infallible>> {
        let preamble = stream::once(async { Ok(Bytes::from_static(PREAMBLE)) });
        let events = stream::unfold(self, |mut client| async move {
            let bytes = match client.next().await? {
                Output::Frame(frame) => frame.sse(),
                Output::Other(bytes) => bytes,
            };
            Some((Ok(bytes), client))
        });
        preamble.chain(events)
    }

    /// Writes the whole response on a raw connection, until the server shuts
    /// down (then the body is ended properly if the socket takes it at
    /// once), the client leaves, or a write fails: the client accepted
    /// nothing within the write timeout (it stopped reading; its reconnect
    /// resumes from its last event), or the connection broke. Shutdown also
    /// ends a write that waits for the client.
    async fn write_to(mut self, mut stream: TimedIo<TcpStream>) {
        let mut head = String::from("HTTP/1.1 200 OK\r\n");
        for (name, value) in STREAM_HEADERS {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!(
            "transfer-encoding: chunked\r\ndate: {}\r\n\r\n",
            httpdate::fmt_http_date(std::time::SystemTime::now())
        ));
        let mut head = head.into_bytes();
        head.extend_from_slice(&http_chunk(PREAMBLE));
        if !self.write(&mut stream, &head).await {
            return;
        }
        drop(head);
        loop {
            let output = tokio::select! {
                biased;
                output = self.next() => output,
                () = peer_closed(stream.get_ref()) => return,
            };
            let Some(output) = output else {
                // Best effort: a client that is not reading gets no say in
                // how long shutdown takes.
                let _ = stream.get_ref().try_write(LAST_CHUNK);
                return;
            };
            // Catching up, many events are ready at once: one write for
            // up to COALESCE bytes of them, not one each.
            let written = match (self.next_ready(), &output) {
                (None, Output::Frame(frame)) => self.write(&mut stream, &frame.sse_chunk).await,
                (None, Output::Other(bytes)) => self.write(&mut stream, &http_chunk(bytes)).await,
                (Some(second), _) => {
                    let mut batch = Vec::with_capacity(COALESCE);
                    batch.extend_from_slice(&output.chunk());
                    batch.extend_from_slice(&second.chunk());
                    while batch.len() < COALESCE {
                        let Some(more) = self.next_ready() else { break };
                        batch.extend_from_slice(&more.chunk());
                    }
                    self.write(&mut stream, &batch).await
                }
            };
            if !written {
                return;
            }
        }
    }

    /// Writes `bytes`; `false` if the write failed or timed out, or the
    /// server shut down while it waited for the client.
    async fn write(&mut self, stream: &mut TimedIo<TcpStream>, bytes: &[u8]) -> bool {
        tokio::select! {
            biased;
            written = stream.write_all(bytes) => written.is_ok(),
            _ = &mut self.shutdown => false,
        }
    }
}

/// Resolves when the client closes the connection or it breaks. A client
/// has nothing more to send on an event stream; anything it does send is
/// read and dropped.
async fn peer_closed(stream: &TcpStream) {
    let mut discard = [0u8; 64];
    loop {
        if stream.readable().await.is_err() {
            return;
        }
        match stream.try_read(&mut discard) {
            Ok(0) => return,
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}
