//! Bounded time for every connection: a client that does not send its
//! request, sits idle between requests, or stops reading a response is
//! dropped, however the connection is served.
//!
//! A server holds one open file per connection and has a fixed number of
//! them. Without limits, a client that connects and sends nothing, or opens
//! a stream and never reads it, holds its file until shutdown; a few
//! thousand of them exhaust the server. Three [`Timeouts`] bound them, with
//! the semantics of Go's `net/http` (`ReadHeaderTimeout`, `IdleTimeout`,
//! and a write deadline that moves with progress):
//!
//! - **header**: from accept to the end of the first request head, and from
//!   the first byte of any later request to the end of its head;
//! - **idle**: between the end of a response and the first byte of the next
//!   request on a kept-alive connection;
//! - **write**: how long a write may wait for the client to accept a single
//!   byte. A stream a client reads slowly lives; one it stopped reading is
//!   dropped, and the client's reconnect resumes where it left off.
//!
//! A connection dropped because a write waited too long (or was still
//! waiting at shutdown) is reset, not closed in order. Its socket is full
//! with bytes the client is not taking: an orderly close queues the FIN
//! behind them, so a client that never reads again never sees it, and the
//! kernel keeps the orphaned socket and its send queue (up to the 4 MB its
//! buffer grows to under a busy stream) while it probes the client's zero
//! window, for as long as the client answers the probes. A reset tells the
//! client at once and frees the queue, as nginx's
//! `reset_timedout_connection` does.
//!
//! The header and idle deadlines are a connection's [`Lifetime`], watched
//! beside hyper by the task serving it: hyper's own `header_read_timeout`
//! restarts when a kept-alive connection goes idle, so it cannot tell a slow
//! request head from an idle keep-alive connection. The write deadline is
//! [`TimedIo`], the connection's socket as hyper, upgrades (WebSocket) and
//! raw handlers ([`crate::takeover`]) all write it. Each connection a
//! timeout closes is counted
//! ([`HttpMetrics::timed_out`](crate::requests::HttpMetrics::timed_out)).
//!
//! gRPC connections (HTTP/2, [`crate::grpc`] with the `grpc` feature) use
//! the same two: a [`Lifetime`] counts the streams open at once, and the
//! connection is idle once the last is answered.

use std::{
    convert::Infallible,
    future::Future,
    io,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    http::{Request, Response},
};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::service::TowerToHyperService;
use prometheus_client::metrics::counter::Counter;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::Notify,
    time::{Instant, Sleep},
};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::requests::Timeout;

/// How long a client may take; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// For a complete request head.
    pub header: Duration,
    /// Between requests on a kept-alive connection.
    pub idle: Duration,
    /// For a client to accept any byte of a response.
    pub write: Duration,
}

impl Default for Timeouts {
    /// 10 s for a request head, 60 s idle, 30 s for a write.
    fn default() -> Self {
        Self {
            header: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            write: Duration::from_secs(30),
        }
    }
}

/// What a connection is doing, for its deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request head until `until`; `timeout` says which limit
    /// that is (header or idle).
    Head { until: Instant, timeout: Timeout },
    /// This many requests are being answered (one at a time over HTTP/1,
    /// any number of streams over HTTP/2): no deadline but the write
    /// timeout.
    Busy(usize),
}

/// What a connection is doing, and how long it may stay idle.
#[derive(Debug, Clone, Copy)]
struct State {
    phase: Phase,
    idle: Duration,
}

/// The header and idle deadlines of one connection served by hyper: the
/// connection is idle once every request it started has been answered.
pub(crate) struct Lifetime {
    state: Mutex<State>,
    changed: Notify,
    header: Duration,
}

impl Lifetime {
    /// A connection accepted with its first request head due by `until`.
    pub(crate) fn new(until: Instant, timeouts: Timeouts) -> Self {
        Self {
            state: Mutex::new(State {
                phase: Phase::Head {
                    until,
                    timeout: Timeout::Header,
                },
                idle: timeouts.idle,
            }),
            changed: Notify::new(),
            header: timeouts.header,
        }
    }

    fn phase(&self) -> Phase {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .phase
    }

    /// Changes the state under the lock; wakes [`Self::expired`] if
    /// `change` says it changed anything.
    fn update(&self, change: impl FnOnce(&mut State) -> bool) {
        let changed = change(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner));
        if changed {
            self.changed.notify_one();
        }
    }

    /// Bytes arrived: on an idle connection they begin a request head, due
    /// within the header timeout.
    fn bytes_arrived(&self) {
        let header = self.header;
        self.update(|state| match state.phase {
            Phase::Head {
                until,
                timeout: Timeout::Idle,
            } => {
                state.phase = Phase::Head {
                    until: until.min(Instant::now() + header),
                    timeout: Timeout::Header,
                };
                true
            }
            _ => false,
        });
    }

    /// A request head was read.
    pub(crate) fn request_started(&self) {
        self.update(|state| {
            state.phase = match state.phase {
                Phase::Busy(open) => Phase::Busy(open + 1),
                Phase::Head { .. } => Phase::Busy(1),
            };
            true
        });
    }

    /// A response was written (or abandoned): with no other request open,
    /// the connection is idle.
    pub(crate) fn response_finished(&self) {
        self.update(|state| {
            state.phase = match state.phase {
                Phase::Busy(open) if open > 1 => Phase::Busy(open - 1),
                _ => Phase::Head {
                    until: Instant::now() + state.idle,
                    timeout: Timeout::Idle,
                },
            };
            true
        });
    }

    /// Whether the connection waits for a request head (none is in
    /// progress).
    pub(crate) fn waiting_for_request(&self) -> bool {
        matches!(self.phase(), Phase::Head { .. })
    }

    /// Whether the connection waits for its first request head (or, over
    /// HTTP/1, for the rest of a head that began).
    #[cfg(feature = "grpc")]
    pub(crate) fn waiting_for_head(&self) -> bool {
        matches!(
            self.phase(),
            Phase::Head {
                timeout: Timeout::Header,
                ..
            }
        )
    }

    /// The connection was asked to go away: from now on it may be idle
    /// only `grace` (time for the client to take note and close); if it is
    /// idle now, that starts now.
    #[cfg(feature = "grpc")]
    pub(crate) fn going_away(&self, grace: Duration) {
        self.update(|state| {
            state.idle = grace;
            if let Phase::Head {
                timeout: Timeout::Idle,
                ..
            } = state.phase
            {
                state.phase = Phase::Head {
                    until: Instant::now() + grace,
                    timeout: Timeout::Idle,
                };
            }
            true
        });
    }

    /// Resolves when the connection has waited for a request head past its
    /// deadline, with the limit that passed.
    pub(crate) async fn expired(&self) -> Timeout {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.phase() {
                Phase::Busy(_) => changed.await,
                Phase::Head { until, timeout } => {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {
                            if self.phase() == (Phase::Head { until, timeout }) {
                                return timeout;
                            }
                        }
                        () = changed => {}
                    }
                }
            }
        }
    }
}

/// A connection that can end with a reset instead of an orderly close.
pub trait ResetOnClose {
    /// From now on, closing the connection resets it (a TCP RST) and
    /// discards whatever is still queued for the client.
    fn reset_on_close(&self) -> io::Result<()>;
}

impl ResetOnClose for TcpStream {
    fn reset_on_close(&self) -> io::Result<()> {
        // `SO_LINGER` of zero: `close` sends a reset and frees the send
        // queue at once, without blocking.
        self.set_zero_linger()
    }
}

/// A connection's socket with a write deadline: a write (or flush) the
/// client accepts no byte of within the write timeout fails with
/// [`io::ErrorKind::TimedOut`], once counted; one that waits when shutdown
/// begins fails at once, so no client holds shutdown. Either way the socket
/// is reset when closed (see the module documentation). Reads and writes
/// otherwise pass straight through; the deadline's timer exists only while
/// a write waits, so an idle connection costs nothing more.
pub struct TimedIo<T> {
    io: T,
    write_timeout: Duration,
    shutdown: CancellationToken,
    waiting: Option<Waiting>,
    failed: Option<io::ErrorKind>,
    write_timeouts: Counter,
    lifetime: Option<Arc<Lifetime>>,
}

/// What a write that cannot proceed waits for besides the client.
struct Waiting {
    deadline: Pin<Box<Sleep>>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<T> TimedIo<T> {
    /// `io` whose writes may each wait at most `write_timeout` for the
    /// client, and not at all once `shutdown` is cancelled; a timeout is
    /// counted in `write_timeouts` (such as
    /// [`HttpMetrics::write_timeouts`](crate::requests::HttpMetrics::write_timeouts)).
    pub fn new(
        io: T,
        write_timeout: Duration,
        shutdown: CancellationToken,
        write_timeouts: Counter,
    ) -> Self {
        Self {
            io,
            write_timeout,
            shutdown,
            waiting: None,
            failed: None,
            write_timeouts,
            lifetime: None,
        }
    }

    fn with_lifetime(mut self, lifetime: Arc<Lifetime>) -> Self {
        self.lifetime = Some(lifetime);
        self
    }

    /// The socket itself (for non-blocking reads and writes that need no
    /// deadline).
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> Duration {
        self.write_timeout
    }

    fn error(kind: io::ErrorKind) -> io::Error {
        let reason = match kind {
            io::ErrorKind::TimedOut => "the client accepted no bytes within the write timeout",
            _ => "the server is shutting down",
        };
        io::Error::new(kind, reason)
    }
}

impl<T: ResetOnClose> TimedIo<T> {
    /// After a write that could not proceed: pending until the client takes
    /// bytes, or the deadline or shutdown comes first (then the error, and
    /// the socket is to be reset when closed).
    fn wait_for_client<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let (timeout, shutdown) = (self.write_timeout, &self.shutdown);
        let waiting = self.waiting.get_or_insert_with(|| Waiting {
            deadline: Box::pin(tokio::time::sleep(timeout)),
            shutdown: Box::pin(shutdown.clone().cancelled_owned()),
        });
        let kind = if waiting.shutdown.as_mut().poll(cx).is_ready() {
            io::ErrorKind::ConnectionAborted
        } else if waiting.deadline.as_mut().poll(cx).is_ready() {
            self.write_timeouts.inc();
            io::ErrorKind::TimedOut
        } else {
            return Poll::Pending;
        };
        self.waiting = None;
        self.failed = Some(kind);
        if let Err(err) = self.io.reset_on_close() {
            tracing::debug!(error = %err, "cannot make an abandoned connection reset on close");
        }
        Poll::Ready(Err(Self::error(kind)))
    }

    fn written<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Ready(result) => {
                self.waiting = None;
                Poll::Ready(result)
            }
            Poll::Pending => self.wait_for_client(cx),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(lifetime)) = (&polled, &this.lifetime)
            && buf.filled().len() > before
        {
            lifetime.bytes_arrived();
        }
        polled
    }
}

impl<T: AsyncWrite + ResetOnClose + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(kind) = this.failed {
            return Poll::Ready(Err(Self::error(kind)));
        }
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.written(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(kind) = this.failed {
            return Poll::Ready(Err(Self::error(kind)));
        }
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.written(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(kind) = this.failed {
            return Poll::Ready(Err(Self::error(kind)));
        }
        let polled = Pin::new(&mut this.io).poll_flush(cx);
        this.written(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// `io` for hyper: its reads tell `lifetime` when a request begins.
pub(crate) fn tracked<T>(io: TimedIo<T>, lifetime: Arc<Lifetime>) -> TimedIo<T> {
    io.with_lifetime(lifetime)
}

/// The router for one connection, telling its [`Lifetime`] when each
/// request starts and its response ends.
pub(crate) struct Tracked {
    router: TowerToHyperService<Router>,
    lifetime: Arc<Lifetime>,
}

impl Tracked {
    pub(crate) fn new(router: Router, lifetime: Arc<Lifetime>) -> Self {
        Self {
            router: TowerToHyperService::new(router),
            lifetime,
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for Tracked {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.lifetime.request_started();
        // Dropped with the response body once it is written, or with this
        // future if the connection goes first.
        let finished = Finished(Arc::clone(&self.lifetime));
        let response = hyper::service::Service::call(&self.router, request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| {
                Body::new(Finishing {
                    body,
                    _finished: finished,
                })
            }))
        })
    }
}

/// Marks the response finished when dropped.
struct Finished(Arc<Lifetime>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.response_finished();
    }
}

/// A response body that marks the response finished when hyper is done
/// with it.
struct Finishing {
    body: Body,
    /// Held for its `Drop`.
    _finished: Finished,
}

impl http_body::Body for Finishing {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt, DuplexStream},
        net::TcpListener,
    };

    use super::*;
    use crate::requests::HttpMetrics;

    /// An in-memory pipe has nothing to reset.
    impl ResetOnClose for DuplexStream {
        fn reset_on_close(&self) -> io::Result<()> {
            Ok(())
        }
    }

    fn timeouts() -> Timeouts {
        Timeouts {
            header: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            write: Duration::from_secs(30),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_expires_after_the_header_timeout() {
        let started = Instant::now();
        let lifetime = Lifetime::new(started + Duration::from_secs(10), timeouts());
        assert_eq!(lifetime.expired().await, Timeout::Header);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_alive_connection_idles_then_has_the_header_timeout() {
        let started = Instant::now();
        let lifetime = Arc::new(Lifetime::new(started + Duration::from_secs(10), timeouts()));
        lifetime.request_started();
        let watch = tokio::spawn({
            let lifetime = Arc::clone(&lifetime);
            async move { lifetime.expired().await }
        });
        // A long response: no deadline meanwhile.
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert!(!watch.is_finished());
        lifetime.response_finished();
        // Idle for 50 s, then a request head begins: 10 s more for it.
        tokio::time::sleep(Duration::from_secs(50)).await;
        assert!(!watch.is_finished());
        lifetime.bytes_arrived();
        assert_eq!(watch.await.expect("watch"), Timeout::Header);
        assert_eq!(started.elapsed(), Duration::from_secs(360));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_expires_after_the_idle_timeout() {
        let started = Instant::now();
        let lifetime = Lifetime::new(started + Duration::from_secs(10), timeouts());
        lifetime.request_started();
        lifetime.response_finished();
        assert_eq!(lifetime.expired().await, Timeout::Idle);
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_idles_only_once_every_open_request_is_answered() {
        let started = Instant::now();
        let lifetime = Arc::new(Lifetime::new(started + Duration::from_secs(10), timeouts()));
        // Two HTTP/2 streams at once.
        lifetime.request_started();
        lifetime.request_started();
        let watch = tokio::spawn({
            let lifetime = Arc::clone(&lifetime);
            async move { lifetime.expired().await }
        });
        tokio::time::sleep(Duration::from_secs(100)).await;
        lifetime.response_finished();
        // One is still open: no deadline, however long it lasts.
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert!(!watch.is_finished());
        lifetime.response_finished();
        assert_eq!(watch.await.expect("watch"), Timeout::Idle);
        assert_eq!(started.elapsed(), Duration::from_secs(260));
    }

    #[cfg(feature = "grpc")]
    #[tokio::test(start_paused = true)]
    async fn a_connection_told_to_go_away_may_idle_only_its_grace() {
        let started = Instant::now();
        let lifetime = Lifetime::new(started + Duration::from_secs(10), timeouts());
        lifetime.request_started();
        lifetime.response_finished();
        // Idle for 30 s of its 60, then told to go away: 5 s more.
        tokio::time::sleep(Duration::from_secs(30)).await;
        lifetime.going_away(Duration::from_secs(5));
        assert_eq!(lifetime.expired().await, Timeout::Idle);
        assert_eq!(started.elapsed(), Duration::from_secs(35));
        // A request that came meanwhile is answered however long it takes;
        // then the grace again, not the idle timeout.
        lifetime.request_started();
        tokio::time::sleep(Duration::from_secs(100)).await;
        lifetime.response_finished();
        assert_eq!(lifetime.expired().await, Timeout::Idle);
        assert_eq!(started.elapsed(), Duration::from_secs(140));
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_the_client_does_not_take_fails_after_the_write_timeout() {
        let metrics = HttpMetrics::unregistered();
        let (client, server) = tokio::io::duplex(16);
        let shutdown = CancellationToken::new();
        let mut server = TimedIo::new(
            server,
            Duration::from_secs(30),
            shutdown.clone(),
            metrics.write_timeouts(),
        );
        let started = Instant::now();
        // The client reads slowly: every write makes progress within the
        // timeout, so nothing fails however long it takes.
        let reader = tokio::spawn(async move {
            let mut client = client;
            let mut chunk = [0u8; 16];
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                client.read_exact(&mut chunk).await.expect("read");
            }
            client
        });
        server.write_all(&[1u8; 64]).await.expect("slow but steady");
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        // Then it stops reading.
        let _client = reader.await.expect("reader");
        let stuck = Instant::now();
        server.write_all(&[2u8; 16]).await.expect("fits the buffer");
        let err = server.write_all(&[3u8; 16]).await.expect_err("times out");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(stuck.elapsed(), Duration::from_secs(30));
        assert_eq!(metrics.timed_out_count(Timeout::Write), 1);
        assert!(server.write_all(b"x").await.is_err(), "stays failed");
        assert_eq!(metrics.timed_out_count(Timeout::Write), 1, "counted once");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_a_write_that_waits_for_the_client() {
        let metrics = HttpMetrics::unregistered();
        let (_client, server) = tokio::io::duplex(16);
        let shutdown = CancellationToken::new();
        let mut server = TimedIo::new(
            server,
            Duration::from_secs(30),
            shutdown.clone(),
            metrics.write_timeouts(),
        );
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            stopper.cancel();
        });
        let started = Instant::now();
        let err = server.write_all(&[0u8; 64]).await.expect_err("ended");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        assert_eq!(metrics.timed_out_count(Timeout::Write), 0, "not a timeout");
    }

    /// A server socket and the client socket connected to it, the client
    /// with a small receive buffer.
    async fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bound");
        let addr = listener.local_addr().expect("an address");
        let (client, accepted) = tokio::join!(
            testkit::connect_with_receive_buffer(addr, 4096),
            listener.accept()
        );
        let (server, _) = accepted.expect("accepted");
        (server, client.expect("connected"))
    }

    #[tokio::test]
    async fn a_connection_dropped_for_a_stuck_write_is_reset() {
        let metrics = HttpMetrics::unregistered();
        let (server, client) = tcp_pair().await;
        let mut server = TimedIo::new(
            server,
            Duration::from_millis(100),
            CancellationToken::new(),
            metrics.write_timeouts(),
        );
        // The client never reads: writes go into the socket until it is
        // full, then one waits past the deadline.
        let chunk = [0u8; 64 * 1024];
        let err = loop {
            if let Err(err) = server.write_all(&chunk).await {
                break err;
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(server);
        // The client learns without reading: an orderly close would wait
        // behind everything queued for it.
        testkit::eventually("the client reset", Duration::from_secs(10), || {
            let reset = testkit::was_reset(&client).expect("no other error");
            async move { reset.then_some(()) }
        })
        .await;
        assert_eq!(metrics.timed_out_count(Timeout::Write), 1);
    }

    #[tokio::test]
    async fn a_connection_that_ends_normally_is_closed_in_order() {
        let (server, mut client) = tcp_pair().await;
        let mut server = TimedIo::new(
            server,
            Duration::from_millis(100),
            CancellationToken::new(),
            HttpMetrics::unregistered().write_timeouts(),
        );
        server.write_all(b"all of it").await.expect("written");
        drop(server);
        let mut read = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut read))
            .await
            .expect("the end in time")
            .expect("no reset");
        assert_eq!(read, b"all of it");
    }
}
