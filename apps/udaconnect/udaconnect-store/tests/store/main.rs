//! The stores' integration tests: one binary, a real PostgreSQL with
//! PostGIS from the testkit (never the machine's own), started per test.
//!
//! `migrations` upgrades fresh databases and the original's; `partitions`
//! keeps the location table's days under an injected clock; `claims`
//! holds both stores to the same answers for the edges' idempotency keys;
//! `compat` replays the original's own SQL against the compatibility
//! query; `differential` holds the PostGIS and embedded stores to the
//! same answers on the same random data; `writes` covers ids, idempotent
//! batches (what is stored already left out of the copy, and writers that
//! never deadlock) and paging under inserts; `outage` takes the database
//! away and brings it back; `plans` checks that the v2 query uses its
//! index; `replica` has the connection queries' replica catch up on
//! commits in any order; `rejected` has the database refuse statements
//! for good; `meetings` holds both stores' meetings to the one-pass
//! reference; `credentials` holds both to the same credentials;
//! `erasure` has both stores erase a person wholly, and PostgreSQL do so
//! while folds and writers race it.

mod claims;
mod compat;
mod credentials;
mod differential;
mod erasure;
mod helpers;
mod meetings;
mod migrations;
mod outage;
mod partitions;
mod plans;
mod rejected;
mod replica;
mod writes;
