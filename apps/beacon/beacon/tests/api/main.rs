//! Beacon's integration tests: one binary, real parts.
//!
//! `memory` runs `beacon all` in-process without a broker; `limits` holds
//! it to its timeouts with clients that misbehave; `pipeline`,
//! `faults` and `lifecycle` run `beacon` processes against a real
//! `nats-server` started on a free port with its own store; `config` checks
//! what an operator sees for bad settings; `browser` opens the page in
//! headless Chromium; `manifests` holds the Kubernetes manifests
//! (`deploy/`) to the binary and to a real `nats-server`.
#![allow(clippy::unwrap_used)]

mod browser;
mod config;
mod faults;
mod helpers;
mod lifecycle;
mod limits;
mod manifests;
mod memory;
mod pipeline;
