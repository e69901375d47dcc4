//! UdaConnect's stores, both keeping [`udaconnect_domain::Store`] alike.
//!
//! [`PgStore`] is PostgreSQL with PostGIS: the original's tables, upgraded
//! in place by [`migrate`] (bigint ids, a generated `geography` point
//! measured exactly as the original measured, indexes for the connection
//! queries), each query one set-based statement, and a `COPY` loader for
//! data at size. [`MemoryStore`] keeps everything in memory, indexed by an
//! R-tree, for running without a database; tests hold the two to the same
//! answers. [`original`] is the original's database, for proving the move
//! from it.

mod memory;
pub mod migrate;
pub mod original;
mod pg;

pub use self::{
    memory::MemoryStore,
    migrate::{MIGRATIONS, MigrateError, Migration, MigrationReport, migrate},
    pg::{Maintenance, PgConfig, PgConfigError, PgStore, SslMode, StoreMigrateError, TlsError},
};
