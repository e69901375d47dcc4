//! The one-shot targets: `migrate` brings a database's schema up to date,
//! `generate` fills it with a made-up conference of a given size,
//! `meetings-backfill` folds into the meetings the stored locations they
//! were never computed from.

use std::time::Instant;

use platform::backoff::retry;
use tokio_util::sync::CancellationToken;
use udaconnect_domain::{Store as _, StoreError, conference, meeting::MeetingChanges};
use udaconnect_store::{PgStore, StoreMigrateError};

use crate::cli::{Backfill, GenerateArgs, MigrateArgs, PgArgs, Shape, redacted};

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
    /// The database refused what the backfill asked, for good.
    #[error("{0}")]
    Store(StoreError),
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
    let data = match args.shape {
        Shape::Scatter => conference::scale(&args.scale()),
        Shape::Walk => conference::walking(&args.scale()),
    };
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

/// How often the backfill says how far it has got.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// What a backfill did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BackfillReport {
    /// Locations found not folded in, in this shard's regions.
    pub found: usize,
    /// Of those, folded in now.
    pub applied: usize,
    /// Of those, folded in meanwhile by a meetings process.
    pub already: usize,
    /// Of those, of persons erased since: passed over.
    pub erased: usize,
    /// Locations not folded in of other shards' regions: passed over.
    pub elsewhere: usize,
    /// Meetings started.
    pub started: usize,
    /// Meetings grown.
    pub grown: usize,
}

impl BackfillReport {
    fn add(&mut self, changes: &MeetingChanges) {
        self.applied += changes.applied;
        self.already += changes.already;
        self.erased += changes.erased;
        self.started += changes.started.len();
        self.grown += changes.grown.len();
    }
}

impl std::fmt::Display for BackfillReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "folded in {} of {} locations found not folded in ({} meanwhile, {} of persons erased), \
             {} of other shards passed over; {} meetings started, {} grown",
            self.applied,
            self.found,
            self.already,
            self.erased,
            self.elsewhere,
            self.started,
            self.grown
        )
    }
}

/// A store call retried while the database is away or busy; a refusal
/// for good ends the backfill.
async fn patiently<T, Fut>(
    shutdown: &CancellationToken,
    what: &str,
    call: impl Fn() -> Fut,
) -> Result<T, ToolError>
where
    Fut: Future<Output = Result<T, StoreError>>,
{
    let outcome = retry(shutdown, what, || async {
        match call().await {
            Err(err @ (StoreError::Unavailable(_) | StoreError::TimedOut(_))) => Err(err),
            other => Ok(other),
        }
    })
    .await
    .ok_or(ToolError::Stopped)?;
    outcome.map_err(ToolError::Store)
}

/// Folds into the meetings every stored location of the shard's regions
/// they were not computed from, a window of ids at a time folded in
/// whole, from the first id to the last stored when it started; safe
/// beside running meetings processes (a location is folded in once,
/// whoever comes first).
pub async fn backfill_meetings(
    backfill: &Backfill,
    shutdown: CancellationToken,
) -> Result<BackfillReport, ToolError> {
    let args = &backfill.args;
    let store = open(&args.database_url, &args.pg)?;
    let window = i64::try_from(args.window).unwrap_or(i64::MAX);
    let last = patiently(&shutdown, "cannot reach the database yet", || {
        store.last_location_id()
    })
    .await?;
    tracing::info!(
        last_id = last,
        shard = backfill.shard.index(),
        shards = backfill.shard.count(),
        "meetings-backfill: looking for locations not folded in"
    );
    let started = Instant::now();
    let mut said = Instant::now();
    let mut report = BackfillReport::default();
    let mut after = 0;
    while after < last {
        let through = after.saturating_add(window).min(last);
        let mut mine = patiently(&shutdown, "cannot read the locations yet", || {
            store.unfolded_locations(after, through)
        })
        .await?;
        report.elsewhere += backfill.shard.keep_own(&mut mine);
        report.found += mine.len();
        // A whole window in one fold: every meeting its locations touch
        // is read and written once, not once per smaller fold, and the
        // locations they may meet are read once for the window's span.
        if !mine.is_empty() {
            let changes = patiently(&shutdown, "cannot fold locations in yet", || {
                store.apply_meetings(&backfill.rules, &mine)
            })
            .await?;
            report.add(&changes);
        }
        after = through;
        if said.elapsed() >= PROGRESS_EVERY {
            said = Instant::now();
            tracing::info!(through = after, last_id = last, %report, "meetings-backfill: progress");
        }
    }
    tracing::info!(took = ?started.elapsed(), %report, "meetings-backfill: done");
    println!("{report}");
    Ok(report)
}
