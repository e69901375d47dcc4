//! The schema, as numbered SQL files kept in the repository and applied in
//! order: a fresh database and one created by the original end up alike.
//!
//! Each file runs once, in its own transaction, and is recorded with its
//! checksum; a recorded file whose text has changed since is refused
//! rather than silently diverging. An advisory lock makes several
//! processes migrating at once safe: one applies, the others wait and then
//! find the schema current.

use std::fmt;

use tokio_postgres::Client;

/// One schema change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Applied in increasing order.
    pub version: i32,
    /// What it does, as in its file name.
    pub name: &'static str,
    /// The SQL.
    pub sql: &'static str,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "original_schema",
        sql: include_str!("../migrations/0001_original_schema.sql"),
    },
    Migration {
        version: 2,
        name: "connections",
        sql: include_str!("../migrations/0002_connections.sql"),
    },
    Migration {
        version: 3,
        name: "ingest_keys",
        sql: include_str!("../migrations/0003_ingest_keys.sql"),
    },
    Migration {
        version: 4,
        name: "roles",
        sql: include_str!("../migrations/0004_roles.sql"),
    },
    Migration {
        version: 5,
        name: "cells",
        sql: include_str!("../migrations/0005_cells.sql"),
    },
    Migration {
        version: 6,
        name: "written_by",
        sql: include_str!("../migrations/0006_written_by.sql"),
    },
    Migration {
        version: 7,
        name: "key_claims",
        sql: include_str!("../migrations/0007_key_claims.sql"),
    },
    Migration {
        version: 8,
        name: "meetings",
        sql: include_str!("../migrations/0008_meetings.sql"),
    },
    Migration {
        version: 9,
        name: "location_partitions",
        sql: include_str!("../migrations/0009_location_partitions.sql"),
    },
    Migration {
        version: 10,
        name: "meetings_role",
        sql: include_str!("../migrations/0010_meetings_role.sql"),
    },
    Migration {
        version: 11,
        name: "meeting_changes",
        sql: include_str!("../migrations/0011_meeting_changes.sql"),
    },
    Migration {
        version: 12,
        name: "meeting_events",
        sql: include_str!("../migrations/0012_meeting_events.sql"),
    },
    Migration {
        version: 13,
        name: "meeting_retention",
        sql: include_str!("../migrations/0013_meeting_retention.sql"),
    },
    Migration {
        version: 14,
        name: "credentials",
        sql: include_str!("../migrations/0014_credentials.sql"),
    },
    Migration {
        version: 15,
        name: "ingest_reads_meetings",
        sql: include_str!("../migrations/0015_ingest_reads_meetings.sql"),
    },
    Migration {
        version: 16,
        name: "erasure",
        sql: include_str!("../migrations/0016_erasure.sql"),
    },
    Migration {
        version: 17,
        name: "meetings_backfill",
        sql: include_str!("../migrations/0017_meetings_backfill.sql"),
    },
];

/// Key of the advisory lock held while migrating (any constant unique to
/// this schema).
const LOCK_KEY: i64 = 0x5544_4143_4f4e_4e31;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS udaconnect_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// What [`migrate`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied now, in order.
    pub applied: Vec<i32>,
    /// Versions that were already applied.
    pub already: Vec<i32>,
}

impl MigrationReport {
    /// Whether nothing needed applying.
    pub fn was_current(&self) -> bool {
        self.applied.is_empty()
    }
}

impl fmt::Display for MigrationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.applied.is_empty() {
            return write!(f, "schema current (version {})", latest(&self.already));
        }
        let applied: Vec<String> = self
            .applied
            .iter()
            .map(|version| format!("{version:04}"))
            .collect();
        write!(
            f,
            "applied {}; schema at version {}",
            applied.join(", "),
            latest(&self.applied)
        )
    }
}

fn latest(versions: &[i32]) -> i32 {
    versions.iter().copied().max().unwrap_or(0)
}

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The database refused or could not be reached.
    #[error("migration {step}: {source}")]
    Database {
        /// What was being done.
        step: String,
        /// The database's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// An applied migration's file is not what was applied.
    #[error(
        "migration {version:04}_{name} was applied with checksum {applied}, but its file now has {now}: migration files must not change once applied"
    )]
    Changed {
        /// Its version.
        version: i32,
        /// Its name.
        name: &'static str,
        /// The checksum recorded when it was applied.
        applied: String,
        /// The file's checksum now.
        now: String,
    },
}

fn step(step: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> MigrateError {
    let step = step.into();
    move |source| MigrateError::Database { step, source }
}

/// Applies every migration not yet applied, holding the advisory lock.
///
/// Rewriting a large table, or waiting for another process to finish
/// doing so, takes longer than any request may: the session's statement
/// timeout is lifted meanwhile, then restored to the connection's default.
pub async fn migrate(client: &mut Client) -> Result<MigrationReport, MigrateError> {
    client
        .batch_execute("SET statement_timeout = 0")
        .await
        .map_err(step("lifting the statement timeout"))?;
    let outcome = locked(client).await;
    let reset = client
        .batch_execute("RESET statement_timeout")
        .await
        .map_err(step("restoring the statement timeout"));
    let report = outcome?;
    reset?;
    Ok(report)
}

async fn locked(client: &mut Client) -> Result<MigrationReport, MigrateError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(step("taking the migration lock"))?;
    let outcome = apply(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await
        .map_err(step("releasing the migration lock"));
    let report = outcome?;
    unlocked?;
    Ok(report)
}

async fn apply(client: &mut Client) -> Result<MigrationReport, MigrateError> {
    client
        .batch_execute(CREATE_TABLE)
        .await
        .map_err(step("creating the migrations table"))?;
    let mut report = MigrationReport::default();
    for migration in MIGRATIONS {
        let label = format!("{:04}_{}", migration.version, migration.name);
        let transaction = client
            .transaction()
            .await
            .map_err(step(format!("{label}: beginning")))?;
        let now: String = transaction
            .query_one(
                "SELECT encode(sha256(convert_to($1::text, 'UTF8')), 'hex')",
                &[&migration.sql],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(step(format!("{label}: checksum")))?;
        let applied: Option<String> = transaction
            .query_opt(
                "SELECT checksum FROM udaconnect_migrations WHERE version = $1",
                &[&migration.version],
            )
            .await
            .and_then(|row| row.map(|row| row.try_get(0)).transpose())
            .map_err(step(format!("{label}: reading the record")))?;
        match applied {
            Some(applied) if applied == now => report.already.push(migration.version),
            Some(applied) => {
                return Err(MigrateError::Changed {
                    version: migration.version,
                    name: migration.name,
                    applied,
                    now,
                });
            }
            None => {
                transaction
                    .batch_execute(migration.sql)
                    .await
                    .map_err(step(format!("{label}: applying")))?;
                transaction
                    .execute(
                        "INSERT INTO udaconnect_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                        &[&migration.version, &migration.name, &now],
                    )
                    .await
                    .map_err(step(format!("{label}: recording")))?;
                transaction
                    .commit()
                    .await
                    .map_err(step(format!("{label}: committing")))?;
                report.applied.push(migration.version);
            }
        }
    }
    Ok(report)
}
