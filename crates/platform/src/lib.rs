//! The platform every Beacon service stands on.
//!
//! Nothing here knows about any one application: configuration parsing,
//! logging, shutdown, health and metrics endpoints, HTTP serving (and gRPC
//! serving, with the `grpc` feature), the component seam services are
//! assembled from, and the message bus are shared by every application on
//! the platform, as they are.

pub mod backoff;
pub mod bus;
pub mod config;
pub mod conn;
pub mod errors;
#[cfg(feature = "grpc")]
pub mod grpc;
pub mod health;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod requests;
pub mod service;
pub mod shutdown;
pub mod sse;
pub mod takeover;
pub mod telemetry;
pub mod throttle;
