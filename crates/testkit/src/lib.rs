//! Real parts for Beacon's tests, chaos runs and benchmarks.
//!
//! A `nats-server` on a free port with its own store, that can be killed
//! and restarted on the same store; `beacon` processes whose port is read
//! from their own log; an SSE client; and waiting on a condition with a
//! deadline instead of sleeping.

mod nats;
mod process;
mod sse;
mod wait;

pub use self::{
    nats::{NatsServer, nats_server_binary},
    process::{BeaconProcess, free_port},
    sse::{SseClient, SseEvent},
    wait::eventually,
};
