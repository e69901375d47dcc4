//! The one-shot targets: `migrate` brings a database's schema up to date,
//! `generate` fills it with a made-up conference of a given size.

use std::time::Instant;

use platform::backoff::retry;
use tokio_util::sync::CancellationToken;
use udaconnect_domain::conference;
use udaconnect_store::{PgStore, StoreMigrateError};

use crate::cli::{GenerateArgs, MigrateArgs, PgArgs, redacted};

/// Why a one-shot target failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// `DATABASE_URL` cannot be used.
    #[error("DATABASE_URL (--database-url): {0}")]
    Config(String),
    /// Migrating failed for a reason retrying does not fix.
    #[error("{0}")]
    Migrate(StoreMigrateError),
    /// Loading failed.
    #[error("loading failed: {0}")]
    Load(String),
    /// Stopped by a signal before it was done.
    #[error("stopped before it was done")]
    Stopped,
}

fn open(url: &str, pg: &PgArgs) -> Result<PgStore, ToolError> {
    PgStore::new(&pg.config(url)).map_err(|err| ToolError::Config(err.to_string()))
}

/// Applies the migrations, waiting for the database to come up (a Job
/// started beside it); a schema that cannot be migrated fails at once.
pub async fn migrate(args: &MigrateArgs, shutdown: CancellationToken) -> Result<(), ToolError> {
    let store = open(&args.database_url, &args.pg)?;
    tracing::info!(database = %redacted(&args.database_url), "migrating");
    let outcome = retry(&shutdown, "cannot reach the database yet", || async {
        match store.migrate().await {
            Err(StoreMigrateError::Store(err)) => Err(err),
            other => Ok(other),
        }
    })
    .await
    .ok_or(ToolError::Stopped)?;
    let report = outcome.map_err(ToolError::Migrate)?;
    tracing::info!(%report, "migrated");
    println!("{report}");
    Ok(())
}

/// Makes the conference and loads it with `COPY`.
pub async fn generate(args: &GenerateArgs) -> Result<(), ToolError> {
    let store = open(&args.database_url, &args.pg)?;
    let started = Instant::now();
    let data = conference::scale(&args.scale());
    let made = started.elapsed();
    store
        .bulk_load(&data)
        .await
        .map_err(|err| ToolError::Load(err.to_string()))?;
    let summary = format!(
        "loaded {} persons and {} locations into {} (generated in {:.1} s, loaded in {:.1} s)",
        data.persons.len(),
        data.locations.len(),
        redacted(&args.database_url),
        made.as_secs_f64(),
        (started.elapsed() - made).as_secs_f64()
    );
    tracing::info!("{summary}");
    println!("{summary}");
    Ok(())
}
