//! One connection's calls, each one counted and logged once it has its
//! status, its request body within the stream-idle and size limits, and
//! the connection told when it starts and ends (it is idle once none is
//! open).

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::http::{HeaderMap, Request, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::service::TowerToHyperService;
use tonic::{Code, Status, body::Body, service::Routes};

use super::{body::LimitedBody, metrics::GrpcMetrics, services::GrpcRouter};
use crate::conn::Lifetime;

/// The services, as one connection calls them.
pub(crate) struct Calls {
    routes: TowerToHyperService<Routes>,
    router: GrpcRouter,
    lifetime: Arc<Lifetime>,
    metrics: GrpcMetrics,
    stream_idle: Duration,
}

impl Calls {
    pub(crate) fn new(
        router: GrpcRouter,
        lifetime: Arc<Lifetime>,
        metrics: GrpcMetrics,
        stream_idle: Duration,
    ) -> Self {
        Self {
            routes: TowerToHyperService::new(router.routes.clone()),
            router,
            lifetime,
            metrics,
            stream_idle,
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for Calls {
    type Response = Response<Observed>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Observed>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.lifetime.request_started();
        let (service, method) = self.router.labels(request.uri().path());
        // Dropped with the response body once it is written, or with this
        // future if the call goes first: either way it is recorded once.
        let mut call = Call {
            metrics: self.metrics.clone(),
            service,
            method,
            started: Instant::now(),
            lifetime: Arc::clone(&self.lifetime),
            if_dropped: Code::Cancelled,
            ended: false,
        };
        let (stream_idle, max_message) = (self.stream_idle, self.router.max_message);
        let request = request.map(|body| LimitedBody::new(body, stream_idle, max_message));
        let response = hyper::service::Service::call(&self.routes, request);
        Box::pin(async move {
            let response = response.await?;
            // A call that fails before any message is answered with its
            // status in the headers and nothing after.
            let in_head = status_code(response.headers());
            if let Some(code) = in_head {
                call.if_dropped = code;
            }
            Ok(response.map(|body| Observed {
                body,
                call: Some(call),
                in_head,
            }))
        })
    }
}

/// The status code a header map carries, if any.
fn status_code(headers: &HeaderMap) -> Option<Code> {
    headers
        .get(Status::GRPC_STATUS)
        .map(|code| Code::from_bytes(code.as_bytes()))
}

/// A call until its status is known.
struct Call {
    metrics: GrpcMetrics,
    service: String,
    method: String,
    started: Instant,
    lifetime: Arc<Lifetime>,
    /// What the call ended with if it is dropped before its status is seen:
    /// the status in the response's head, else `CANCELLED` (the client or
    /// the connection went away).
    if_dropped: Code,
    ended: bool,
}

impl Call {
    fn end(mut self, code: Code) {
        self.record(code);
    }

    fn record(&mut self, code: Code) {
        if !self.ended {
            self.ended = true;
            self.metrics
                .call_ended(&self.service, &self.method, code, self.started);
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.record(self.if_dropped);
        self.lifetime.response_finished();
    }
}

/// A response body that records its call's status as it passes.
pub(crate) struct Observed {
    body: Body,
    call: Option<Call>,
    in_head: Option<Code>,
}

impl Observed {
    fn end(&mut self, code: Code) {
        if let Some(call) = self.call.take() {
            call.end(code);
        }
    }
}

impl http_body::Body for Observed {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    this.end(status_code(trailers).unwrap_or(Code::Unknown));
                }
            }
            Poll::Ready(Some(Err(status))) => this.end(status.code()),
            Poll::Ready(None) => this.end(this.in_head.unwrap_or(Code::Unknown)),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
