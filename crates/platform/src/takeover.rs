//! Connections a service serves itself, without hyper, chosen from the
//! first request's head.
//!
//! hyper keeps an 8 KB read buffer and an 8 KB write buffer for the life of
//! every connection, and its dispatcher runs for every chunk written. For a
//! request/response that is nothing; for tens of thousands of idle
//! Server-Sent Events streams it is most of the memory and much of the CPU
//! the server spends on them. A [`Takeover`] looks at the head of the first
//! request on a connection (peeked, not consumed) and may claim the
//! connection, writing the response on the socket itself. Anything it does
//! not claim, including anything it cannot parse, is served by hyper as if
//! nothing had looked.
//!
//! # What a raw connection gets, and what it does not
//!
//! The server gives a claimed connection what it gives every connection:
//! the header timeout (the head must arrive in time, or the connection is
//! closed before anyone sees it), the write timeout (the handler writes
//! through [`TimedIo`]), the shutdown token, and the request metrics and
//! log line, recorded when the handler calls [`RawRequest::respond`], with
//! `path="raw"`.
//!
//! It does **not** go through the router, so no router layer applies to
//! it: not [`crate::requests`]' instrumentation (the handler records
//! instead), and not any layer an application adds to its router. A new
//! cross-cutting concern (authentication, rate limits, CORS, compression,
//! request ids) must therefore either be implemented for raw connections
//! too, in the takeover's decision (which sees the whole request head and
//! may decline, leaving the request to the router and its layers), or the
//! takeover must decline every request the concern applies to. Declining is
//! always safe: the router serves the same response, only at hyper's cost.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version, request::Parts};
use futures::future::BoxFuture;
use tokio::{io::AsyncReadExt, net::TcpStream, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    conn::TimedIo,
    http::ServeOptions,
    requests::{RawRequest, Timeout},
};

/// What serves a claimed connection: it gets the socket, positioned after
/// the request head and bounded by the write timeout, and the request to
/// record its response with.
pub type RawHandler =
    Box<dyn FnOnce(TimedIo<TcpStream>, RawRequest) -> BoxFuture<'static, ()> + Send>;

/// A takeover's decision to serve a request itself: the route it counts as
/// (its pattern, as the router would name it) and the handler.
pub struct Claim {
    route: &'static str,
    handler: RawHandler,
}

impl Claim {
    /// Serves the request with `handler`, counted under `route`.
    pub fn new(route: &'static str, handler: RawHandler) -> Self {
        Self { route, handler }
    }
}

/// Decides from a request head whether to serve the connection itself.
pub type Takeover = Arc<dyn Fn(&Parts) -> Option<Claim> + Send + Sync>;

/// Longest request head looked at; a longer one goes to hyper.
const MAX_HEAD: usize = 4096;
/// Most headers looked at; more go to hyper.
const MAX_HEADERS: usize = 32;

/// Waits until the client has sent something; `false` if it closed first.
/// (`readable()` alone is not enough: it may wake without data.)
async fn request_arrived(stream: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1))
}

/// Who serves a connection, once its first request has been looked at.
// Returned once per connection and taken apart at once, never stored.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Served {
    /// The takeover's handler, which is handed the timed socket and the
    /// request to record.
    Raw(RawHandler, TimedIo<TcpStream>, RawRequest),
    /// hyper and the router: the stream as it came.
    Hyper(TcpStream),
    /// Nobody: the client left, or sent nothing in time.
    Closed,
}

/// Decides who serves `stream`: `takeover`'s handler if it claims the
/// first request, hyper otherwise. A connection that sends nothing before
/// `head_due` (counted as a header timeout) or before shutdown is closed,
/// as hyper closes an idle one. Everything looked at here is freed before
/// the connection is served.
pub(crate) async fn decide(
    stream: TcpStream,
    takeover: &Takeover,
    head_due: Instant,
    options: &ServeOptions,
    shutdown: &CancellationToken,
) -> Served {
    tokio::select! {
        arrived = tokio::time::timeout_at(head_due, request_arrived(&stream)) => match arrived {
            Ok(true) => {}
            Ok(false) => return Served::Closed,
            Err(_) => {
                tracing::debug!("closing a connection that sent nothing within the header timeout");
                options.metrics.timed_out(Timeout::Header);
                return Served::Closed;
            }
        },
        () = shutdown.cancelled() => return Served::Closed,
    }
    claim(stream, takeover, options, shutdown).await
}

/// Looks at the first request's head (peeked) and lets `takeover` claim
/// it. Call it once the request has started arriving: the buffer the head
/// is peeked into is not allocated while an idle (pre-)connection waits.
async fn claim(
    stream: TcpStream,
    takeover: &Takeover,
    options: &ServeOptions,
    shutdown: &CancellationToken,
) -> Served {
    let mut head = vec![0; MAX_HEAD];
    let Ok(peeked) = stream.peek(&mut head).await else {
        return Served::Hyper(stream);
    };
    let Some((parts, len)) = parse_head(&head[..peeked]) else {
        return Served::Hyper(stream);
    };
    let Some(Claim { route, handler }) = takeover(&parts) else {
        return Served::Hyper(stream);
    };
    let started = std::time::Instant::now();
    let mut stream = stream;
    // The head was peeked; now take it off the socket (it is all there).
    if stream.read_exact(&mut head[..len]).await.is_err() {
        return Served::Closed;
    }
    let request = RawRequest::new(
        options.metrics.clone(),
        parts.method,
        parts.uri,
        route,
        started,
    );
    let stream = TimedIo::new(
        stream,
        options.timeouts.write,
        shutdown.clone(),
        options.metrics.write_timeouts(),
    );
    Served::Raw(handler, stream, request)
}

/// A complete HTTP/1.1 request head without a body: its parts and length.
fn parse_head(bytes: &[u8]) -> Option<(Parts, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = request.parse(bytes).ok()? else {
        return None;
    };
    if request.version != Some(1) {
        return None;
    }
    let method = Method::from_bytes(request.method?.as_bytes()).ok()?;
    let uri: Uri = request.path?.parse().ok()?;
    let mut map = HeaderMap::with_capacity(request.headers.len());
    for header in request.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes()).ok()?;
        // A request with a body or asking for an upgrade is hyper's to serve.
        if name == axum::http::header::CONTENT_LENGTH
            || name == axum::http::header::TRANSFER_ENCODING
            || name == axum::http::header::UPGRADE
        {
            return None;
        }
        map.append(name, HeaderValue::from_bytes(header.value).ok()?);
    }
    let (mut parts, ()) = axum::http::Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    parts.headers = map;
    Some((parts, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_complete_get() {
        let head = b"GET /events?after=3 HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 7\r\n\r\nrest";
        let (parts, len) = parse_head(head).expect("parsed");
        assert_eq!(len, head.len() - 4);
        assert_eq!(parts.method, Method::GET);
        assert_eq!(parts.uri.path(), "/events");
        assert_eq!(parts.uri.query(), Some("after=3"));
        assert_eq!(parts.headers["last-event-id"], "7");
    }

    #[test]
    fn leaves_anything_unusual_to_hyper() {
        for head in [
            &b"GET /events HTTP/1.1\r\nHost: x\r\n"[..],
            b"GET /events HTTP/1.0\r\n\r\n",
            b"POST /events HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
            b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            b"\x16\x03\x01 not http",
        ] {
            assert!(
                parse_head(head).is_none(),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }
}
