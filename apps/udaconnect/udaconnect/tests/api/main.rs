//! UdaConnect's integration tests: one binary, real parts.
//!
//! `errors` holds every error to one JSON shape; `deadlines` holds the
//! connection queries to their deadline and concurrency cap; `embedded`
//! serves the API in-process on the embedded store with its demo
//! conference; `original` starts a real PostgreSQL with PostGIS
//! (testkit, never the machine's own), creates the original's database
//! from its fixtures, migrates it with the `udaconnect migrate` binary and
//! holds the API to the original's answers; `postgres` covers paging under
//! inserts and a database that goes away and comes back; `docs` holds the
//! OpenAPI document to the routes; `config` checks what an operator sees
//! for bad settings; `manifests` holds the Kubernetes manifests
//! (`deploy/`) to the binary, a real nats-server and a real PostgreSQL,
//! with the manifest readers Beacon's tests use (`kustomize`, `workloads`);
//! `roles` holds each target's PostgreSQL role, made by the manifests'
//! script, to what its target does and nothing more; `grpc_limits` holds
//! the edge's gRPC server to the platform's limits over raw connections;
//! `hostile` holds the ingest edge to hostile input: a request's memory
//! bounded by the item limit (measured on the `udaconnect ingest`
//! binary), rejections named and typed, years outside 1900..=2100
//! refused; `keys` holds idempotency keys to "the id answered is the id
//! stored" across retries, transports and edges; `meetings` holds the
//! meetings the pipeline computes, locations arriving late and out of
//! order and a meetings process killed mid-stream, to the one-pass
//! reference; `access` runs every endpoint as every kind of caller;
//! `logs` greps a full run's logs and metrics for personal data;
//! `browser` and `browser_access` hold the page, in headless
//! Chromium, to what a person sees: the open API's page, and the
//! organiser's and an attendee's views on a closed one; `phones` holds
//! the phones' own apps, OwnTracks and Traccar Client, to what they
//! send, their devices' tokens and the friends OwnTracks shows;
//! `erasure` erases a person while their positions are on
//! every leg of the pipeline and finds nothing of them left, in the
//! database, on the bus or in any answer, on PostgreSQL and in memory;
//! `export` holds a person's export to what the store holds.
#![allow(clippy::unwrap_used)]

mod access;
mod backfill;
mod browser;
mod browser_access;
mod bus;
mod config;
mod deadlines;
mod docs;
mod embedded;
mod erasure;
mod errors;
mod export;
mod grpc_limits;
mod helpers;
mod hostile;
mod ingest;
mod keys;
mod logs;
mod manifests;
mod meetings;
mod original;
mod phones;
mod postgres;
mod roles;
mod shards;
