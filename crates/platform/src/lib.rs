//! The platform every Beacon service stands on.
//!
//! Nothing here knows about "hello" messages: configuration parsing, logging,
//! shutdown, health and metrics endpoints, and the ordered message bus are the
//! parts a second application (the connections app) reuses as they are.

pub mod backoff;
pub mod bus;
pub mod config;
pub mod health;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod shutdown;
pub mod takeover;
pub mod telemetry;
