//! Real parts for the tests, chaos runs and benchmarks of every app.
//!
//! A `nats-server` on a free port with its own store, that can be killed
//! and restarted on the same store; the apps' processes, their port read
//! from their own log; an SSE client; headless Chromium to look at the page
//! as a person would; a throwaway PostgreSQL with PostGIS that can be
//! stopped and started again on the same data; clients that stop reading;
//! waiting on a condition with a deadline instead of sleeping; and what the
//! benchmarks measure a process and record a run with; and `deploy/`'s
//! manifests, rendered, with the workloads they run, for the manifest tests.
//! Whatever it started is stopped when it is dropped, and also when the
//! process is stopped by a signal (`reaper`).

pub mod bench;
mod browser;
pub mod kustomize;
mod nats;
mod net;
mod postgres;
mod process;
mod reaper;
mod sse;
mod wait;
pub mod workloads;

pub use self::{
    browser::{Browser, INSTALL_CHROMIUM, Page, Viewport},
    nats::{NatsServer, nats_server_binary},
    net::{connect_with_receive_buffer, connect_without_reading, was_reset},
    postgres::{PostgresServer, postgres_bindir},
    process::{AppProcess, free_port, output_within},
    sse::{SSE_PATIENCE, SseClient, SseEvent},
    wait::eventually,
};
