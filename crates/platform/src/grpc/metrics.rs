//! What a gRPC server counts, as [`crate::requests`] does for HTTP: calls
//! by service, method and status code, their durations, the connections
//! open, closed by a limit, and refused at the cap.
//!
//! - `<prefix>_grpc_requests_total{service, method, code}`: calls ended,
//!   by their status code's name (`OK`, `INVALID_ARGUMENT`, ...; a call
//!   the client abandoned is `CANCELLED`). A path no served service
//!   describes is counted as `service="unknown", method="unknown"`, so a
//!   client cannot grow the series;
//! - `<prefix>_grpc_request_duration_seconds{service, method}`: from a
//!   call's headers to its status (a stream's whole life);
//! - `<prefix>_grpc_connections_timed_out_total{timeout}`: connections
//!   closed by a limit: `header` (no call's headers in time), `idle` (no
//!   call open), `keepalive` (a ping unanswered), `write` (the client
//!   stopped reading);
//! - `<prefix>_grpc_connections_refused_total`: connections closed at once
//!   at the connection cap;
//! - `<prefix>_grpc_connections`: connections open now.
//!
//! and one log line per call at DEBUG, `call`, with the service, method,
//! code and latency in milliseconds (never a message's content).

use std::{fmt, sync::Arc, time::Instant};

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};
use tonic::Code;

/// Which limit closed a connection.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum GrpcTimeout {
    /// No call's headers within the header timeout of accept.
    Header,
    /// No call open for the idle timeout.
    Idle,
    /// A keepalive ping unanswered within the keepalive timeout.
    Keepalive,
    /// A write the client accepted no byte of within the write timeout.
    Write,
}

impl GrpcTimeout {
    const ALL: [GrpcTimeout; 4] = [
        GrpcTimeout::Header,
        GrpcTimeout::Idle,
        GrpcTimeout::Keepalive,
        GrpcTimeout::Write,
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn as_str(self) -> &'static str {
        match self {
            GrpcTimeout::Header => "header",
            GrpcTimeout::Idle => "idle",
            GrpcTimeout::Keepalive => "keepalive",
            GrpcTimeout::Write => "write",
        }
    }
}

impl EncodeLabelValue for GrpcTimeout {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    service: String,
    method: String,
    code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    service: String,
    method: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TimeoutLabels {
    timeout: GrpcTimeout,
}

type HistogramFamily = Family<MethodLabels, Histogram, fn() -> Histogram>;

/// The metrics of one gRPC server; cheap to clone.
#[derive(Clone)]
pub struct GrpcMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    calls: Family<CallLabels, Counter>,
    duration: HistogramFamily,
    timed_out: [Counter; 4],
    refused: Counter,
    open: Gauge,
}

impl GrpcMetrics {
    /// Creates the families and registers them in `registry` (whose prefix
    /// names them: `udaconnect_grpc_requests_total`).
    pub fn register(registry: &mut Registry) -> Self {
        let timed_out = Family::<TimeoutLabels, Counter>::default();
        // One series per limit, created now, so each shows from the start.
        let series = GrpcTimeout::ALL
            .map(|timeout| timed_out.get_or_create(&TimeoutLabels { timeout }).clone());
        let inner = Inner {
            calls: Family::default(),
            duration: Family::new_with_constructor(crate::metrics::latency_histogram),
            timed_out: series,
            refused: Counter::default(),
            open: Gauge::default(),
        };
        registry.register(
            "grpc_requests",
            "gRPC calls ended, by service, method and status code (unknown paths as service and method \"unknown\")",
            inner.calls.clone(),
        );
        registry.register_with_unit(
            "grpc_request_duration",
            "Time from a gRPC call's headers to its status, by service and method",
            Unit::Seconds,
            inner.duration.clone(),
        );
        registry.register(
            "grpc_connections_timed_out",
            "gRPC connections closed by a limit: no call's headers in time (header), no call open (idle), a ping unanswered (keepalive), the client not reading (write)",
            timed_out,
        );
        registry.register(
            "grpc_connections_refused",
            "gRPC connections closed at once because the connection cap was reached",
            inner.refused.clone(),
        );
        registry.register(
            "grpc_connections",
            "gRPC connections open",
            inner.open.clone(),
        );
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Metrics registered nowhere, for tests.
    pub fn unregistered() -> Self {
        Self::register(&mut Registry::default())
    }

    /// Records one call that ended with `code`: the metrics and the log line.
    pub(crate) fn call_ended(&self, service: &str, method: &str, code: Code, started: Instant) {
        let elapsed = started.elapsed();
        let code = code_name(code);
        self.inner
            .calls
            .get_or_create(&CallLabels {
                service: service.to_owned(),
                method: method.to_owned(),
                code,
            })
            .inc();
        self.inner
            .duration
            .get_or_create(&MethodLabels {
                service: service.to_owned(),
                method: method.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
        tracing::debug!(
            service,
            method,
            code,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "call"
        );
    }

    /// Counts a connection closed by `timeout`.
    pub fn timed_out(&self, timeout: GrpcTimeout) {
        self.inner.timed_out[timeout.index()].inc();
    }

    /// How many connections `timeout` has closed so far.
    pub fn timed_out_count(&self, timeout: GrpcTimeout) -> u64 {
        self.inner.timed_out[timeout.index()].get()
    }

    /// The counter of connections closed by the write timeout, for
    /// [`crate::conn::TimedIo`].
    pub(crate) fn write_timeouts(&self) -> Counter {
        self.inner.timed_out[GrpcTimeout::Write.index()].clone()
    }

    /// Counts a connection refused at the cap.
    pub(crate) fn refused(&self) {
        self.inner.refused.inc();
    }

    /// How many connections were refused at the cap so far.
    pub fn refused_count(&self) -> u64 {
        self.inner.refused.get()
    }

    /// Counts a connection open until the guard is dropped.
    pub(crate) fn connection_opened(&self) -> OpenConnection {
        self.inner.open.inc();
        OpenConnection(self.inner.open.clone())
    }
}

/// An open connection, counted until dropped.
pub(crate) struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The name of `code` as the gRPC specification writes it.
pub(crate) fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_and_connections_are_counted_by_their_labels() {
        let mut registry = Registry::with_prefix("demo");
        let metrics = GrpcMetrics::register(&mut registry);
        let started = Instant::now();
        metrics.call_ended("demo.v1.Items", "Get", Code::Ok, started);
        metrics.call_ended("demo.v1.Items", "Get", Code::Ok, started);
        metrics.call_ended("demo.v1.Items", "Put", Code::InvalidArgument, started);
        metrics.timed_out(GrpcTimeout::Keepalive);
        metrics.refused();
        let open = metrics.connection_opened();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        for sample in [
            r#"demo_grpc_requests_total{service="demo.v1.Items",method="Get",code="OK"} 2"#,
            r#"demo_grpc_requests_total{service="demo.v1.Items",method="Put",code="INVALID_ARGUMENT"} 1"#,
            r#"demo_grpc_request_duration_seconds_count{service="demo.v1.Items",method="Get"} 2"#,
            r#"demo_grpc_connections_timed_out_total{timeout="keepalive"} 1"#,
            r#"demo_grpc_connections_timed_out_total{timeout="header"} 0"#,
            "demo_grpc_connections_refused_total 1",
            "demo_grpc_connections 1",
        ] {
            assert!(text.contains(sample), "{sample} missing from:\n{text}");
        }
        drop(open);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        assert!(text.contains("demo_grpc_connections 0"), "{text}");
    }
}
