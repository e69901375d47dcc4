//! gRPC (tonic) services served within limits, as [`crate::http`] serves
//! HTTP: every connection and every call bounded in time, the connections
//! capped, every call counted and logged, and the status codes a client
//! can act on.
//!
//! tonic's own server has none of the platform's limits: a client that
//! connects and sends nothing, or only the HTTP/2 preface, a call whose
//! client never sends its messages, and idle connections all stay open
//! until shutdown. Here, with [`GrpcLimits`]:
//!
//! - **header**: from accept to the first call's headers (a silent TCP
//!   connection, or one that sent only the preface, is closed);
//! - **idle**: a connection with no call open for this long is sent a
//!   GOAWAY (the client reconnects when it next calls); after a GOAWAY
//!   (idle, or shutdown) a connection left without a call open for the
//!   keepalive timeout (the GOAWAY's ping unanswered) is dropped;
//! - **keepalive**: after the keepalive interval without a frame from the
//!   client the server pings it (HTTP/2 PING); a client that does not
//!   answer within the keepalive timeout is dropped, with whatever calls
//!   it had open;
//! - **stream idle**: a call whose client sends nothing for this long,
//!   while the server waits for its next message, ends with
//!   `DEADLINE_EXCEEDED` (see `body.rs`); a message longer than the server's
//!   limit ends its call with `RESOURCE_EXHAUSTED` before it is buffered;
//! - **write**: a client that accepts no byte for this long is dropped, its
//!   socket reset ([`crate::conn::TimedIo`]);
//! - **connections**: beyond the cap a new connection is closed at once;
//!   the HTTP server (health, metrics) is apart and keeps answering.
//!
//! A request that is not valid protobuf is `INVALID_ARGUMENT`
//! ([`ProstCodec`]). Health and reflection come with every server
//! ([`GrpcServices`]); metrics and log lines are [`GrpcMetrics`]'.
//!
//! As for HTTP, the caller binds the listener (so tests use port 0 and read
//! the real port) and owns the shutdown token, as in `mini-redis`'s `run`.

mod args;
mod body;
mod calls;
mod codec;
mod metrics;
mod services;

use std::sync::Arc;

use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, watch},
};
use tokio_util::sync::CancellationToken;

pub use self::{
    args::{GrpcArgs, GrpcLimits},
    codec::{ProstCodec, ProstDecoder},
    metrics::{GrpcMetrics, GrpcTimeout},
    services::{GrpcHealth, GrpcRouter, GrpcServices, ServicesError},
};
use self::{calls::Calls, metrics::OpenConnection};
use crate::{
    conn::{Lifetime, TimedIo, Timeouts},
    requests::Timeout,
};

/// Serves `router` on `listener` within `limits` until `shutdown` is
/// cancelled, then returns once every open connection has finished its
/// calls (each is sent a GOAWAY; one waiting for its first call is closed
/// at once). The caller bounds that wait (see [`crate::service`]):
/// connections still open when it gives up are dropped with the future.
/// Streaming calls must end on the same token, or they hold the server
/// until the caller's deadline.
pub async fn serve(
    listener: TcpListener,
    router: GrpcRouter,
    limits: GrpcLimits,
    metrics: GrpcMetrics,
    shutdown: CancellationToken,
) {
    // Every connection holds a receiver; once all are dropped, `closed()`
    // resolves: every connection has finished.
    let (open_tx, open_rx) = watch::channel(());
    let server = Server {
        router,
        limits,
        metrics,
        http: builder(&limits),
        shutdown,
    };
    server.accept_loop(listener, open_rx).await;
    open_tx.closed().await;
}

/// hyper's HTTP/2 server with the keepalive pings.
fn builder(limits: &GrpcLimits) -> http2::Builder<TokioExecutor> {
    let mut http = http2::Builder::new(TokioExecutor::new());
    http.timer(TokioTimer::new())
        .keep_alive_interval(limits.keepalive_interval)
        .keep_alive_timeout(limits.keepalive_timeout);
    http
}

/// What every connection of one server shares.
#[derive(Clone)]
struct Server {
    router: GrpcRouter,
    limits: GrpcLimits,
    metrics: GrpcMetrics,
    http: http2::Builder<TokioExecutor>,
    shutdown: CancellationToken,
}

impl Server {
    /// Accepts connections until shutdown, serving each under the cap on
    /// its own task; one beyond the cap is closed at once.
    async fn accept_loop(&self, listener: TcpListener, open: watch::Receiver<()>) {
        let permits = Arc::new(Semaphore::new(self.limits.max_connections));
        loop {
            let stream = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        crate::http::accept_failed(err).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                self.metrics.refused();
                tracing::debug!(
                    max_connections = self.limits.max_connections,
                    "closing a gRPC connection beyond the connection cap"
                );
                drop(stream);
                continue;
            };
            // The first call's headers are due within the header timeout.
            let call_due = tokio::time::Instant::now() + self.limits.header_timeout;
            // Calls and replies are small: Nagle's algorithm would hold one
            // back until the previous one is acknowledged.
            if let Err(err) = stream.set_nodelay(true) {
                tracing::debug!(error = %err, "cannot set TCP_NODELAY");
            }
            let connection = Connection {
                server: self.clone(),
                _permit: permit,
                _open: open.clone(),
                _counted: self.metrics.connection_opened(),
            };
            tokio::spawn(connection.serve(stream, call_due));
        }
    }
}

/// One connection, holding its place under the cap until it ends.
struct Connection {
    server: Server,
    _permit: OwnedSemaphorePermit,
    _open: watch::Receiver<()>,
    _counted: OpenConnection,
}

impl Connection {
    /// Serves the connection until it closes, a limit closes it, or
    /// shutdown (then its open calls finish).
    async fn serve(self, stream: TcpStream, call_due: tokio::time::Instant) {
        let Server {
            router,
            limits,
            metrics,
            http,
            shutdown,
        } = &self.server;
        let timeouts = Timeouts {
            header: limits.header_timeout,
            idle: limits.idle_timeout,
            write: limits.write_timeout,
        };
        let lifetime = Arc::new(Lifetime::new(call_due, timeouts));
        let io = TimedIo::new(
            stream,
            limits.write_timeout,
            shutdown.clone(),
            metrics.write_timeouts(),
        );
        let calls = Calls::new(
            router.clone(),
            Arc::clone(&lifetime),
            metrics.clone(),
            limits.stream_idle_timeout,
        );
        let connection = http.serve_connection(TokioIo::new(io), calls);
        tokio::pin!(connection);
        // Whether a GOAWAY was sent (idle, or shutdown): the client may
        // finish its calls but start none.
        let mut going_away = false;
        let result = loop {
            tokio::select! {
                result = connection.as_mut() => break result,
                timeout = lifetime.expired() => match timeout {
                    Timeout::Idle if !going_away => {
                        tracing::debug!("closing a gRPC connection with no call open (GOAWAY)");
                        metrics.timed_out(GrpcTimeout::Idle);
                        connection.as_mut().graceful_shutdown();
                        going_away = true;
                        lifetime.going_away(limits.keepalive_timeout);
                    }
                    Timeout::Idle => {
                        tracing::debug!("dropping a gRPC connection idle after its GOAWAY");
                        return;
                    }
                    _ => {
                        tracing::debug!("closing a gRPC connection that sent no call within the header timeout");
                        metrics.timed_out(GrpcTimeout::Header);
                        return;
                    }
                },
                () = shutdown.cancelled(), if !going_away => {
                    // One that never called has nothing to finish.
                    if lifetime.waiting_for_head() {
                        return;
                    }
                    connection.as_mut().graceful_shutdown();
                    going_away = true;
                    lifetime.going_away(limits.keepalive_timeout);
                }
            }
        };
        match result {
            Ok(()) => {}
            Err(err) if err.is_timeout() => {
                tracing::debug!("closing a gRPC connection that did not answer a keepalive ping");
                metrics.timed_out(GrpcTimeout::Keepalive);
            }
            Err(err) => tracing::debug!(error = %err, "gRPC connection ended with an error"),
        }
    }
}
