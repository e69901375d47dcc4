//! The partitioned tables' upkeep (migrations 0009 and 0013): for
//! `location` and `meeting_position`, a partition for each day ahead, and,
//! with a retention, the days past it dropped whole; the idempotency keys'
//! claims and the meetings that ended before those days deleted, in
//! bounded batches. The work is done by the database's functions, as the
//! schema's owner; this runs them.

use std::time::Duration;

use udaconnect_domain::{StoreError, Timestamp};

use super::{PgStore, rows::get, sql};

/// Claims pruned per statement: each is a short transaction of its own.
const PRUNE_CLAIMS_BATCH: i32 = 10_000;
/// Meetings pruned per statement, likewise.
const PRUNE_MEETINGS_BATCH: i32 = 10_000;

/// What one round of upkeep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Maintenance {
    /// Another process was doing it meanwhile: this round left it (or,
    /// for `meeting_position`, the rest of it) to that one.
    pub busy: bool,
    /// Day partitions of `location` created.
    pub created: u32,
    /// Partitions of `location` dropped for the retention.
    pub dropped: u32,
    /// Rows past the retention deleted from `location`'s default partition.
    pub default_deleted: u64,
    /// Idempotency keys' claims past the retention deleted.
    pub claims_pruned: u64,
    /// Day partitions of `meeting_position` created.
    pub positions_created: u32,
    /// Partitions of `meeting_position` dropped for the retention.
    pub positions_dropped: u32,
    /// Rows past the retention deleted from `meeting_position`'s default
    /// partition.
    pub positions_default_deleted: u64,
    /// Meetings that ended before the retention's cutoff deleted.
    pub meetings_pruned: u64,
}

/// What one table's partitions' upkeep did.
struct Partitions {
    created: u32,
    dropped: u32,
    default_deleted: u64,
}

impl PgStore {
    /// Makes sure the days from `at`'s to `days_ahead` days later (UTC)
    /// have their partitions, in `location` and in `meeting_position`;
    /// with a `retention` (at least a day), drops the partitions that end
    /// by the start of the day `retention` before `at`, and deletes the
    /// claims, the default partitions' rows and the meetings (by their
    /// end) before that day. `at` later than the database's clock counts
    /// as its clock for the retention. Safe to run from several processes
    /// at once: one does the work, the others report
    /// [`Maintenance::busy`].
    pub async fn maintain(
        &self,
        at: Timestamp,
        days_ahead: u16,
        retention: Option<Duration>,
    ) -> Result<Maintenance, StoreError> {
        let at = at.to_naive();
        let days_ahead = i32::from(days_ahead);
        let retention: Option<i64> =
            retention.map(|retention| i64::try_from(retention.as_micros()).unwrap_or(i64::MAX));
        let Some(locations) = self
            .partitions(
                "maintaining the location partitions",
                sql::MAINTAIN_LOCATIONS,
                &at,
                days_ahead,
                retention,
            )
            .await?
        else {
            return Ok(Maintenance {
                busy: true,
                ..Maintenance::default()
            });
        };
        let mut done = Maintenance {
            busy: false,
            created: locations.created,
            dropped: locations.dropped,
            default_deleted: locations.default_deleted,
            ..Maintenance::default()
        };
        let Some(positions) = self
            .partitions(
                "maintaining the meeting positions' partitions",
                sql::MAINTAIN_MEETING_POSITIONS,
                &at,
                days_ahead,
                retention,
            )
            .await?
        else {
            done.busy = true;
            return Ok(done);
        };
        done.positions_created = positions.created;
        done.positions_dropped = positions.dropped;
        done.positions_default_deleted = positions.default_deleted;
        if let Some(retention) = retention {
            done.claims_pruned = self
                .prune(
                    "pruning idempotency keys' claims",
                    sql::PRUNE_KEY_CLAIMS,
                    &at,
                    retention,
                    PRUNE_CLAIMS_BATCH,
                )
                .await?;
            done.meetings_pruned = self
                .prune(
                    "pruning past meetings",
                    sql::PRUNE_MEETINGS,
                    &at,
                    retention,
                    PRUNE_MEETINGS_BATCH,
                )
                .await?;
        }
        Ok(done)
    }

    /// One table's partitions' upkeep by `statement`
    /// ([`sql::MAINTAIN_LOCATIONS`]' arguments and columns): `None` when
    /// another process is doing it.
    async fn partitions(
        &self,
        what: &'static str,
        statement: &str,
        at: &chrono::NaiveDateTime,
        days_ahead: i32,
        retention: Option<i64>,
    ) -> Result<Option<Partitions>, StoreError> {
        let rows = self
            .query(what, statement, &[at, &days_ahead, &retention])
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let created: i32 = get(row, 0, what)?;
        let dropped: i32 = get(row, 1, what)?;
        let default_deleted: i64 = get(row, 2, what)?;
        Ok(Some(Partitions {
            created: u32::try_from(created).unwrap_or_default(),
            dropped: u32::try_from(dropped).unwrap_or_default(),
            default_deleted: u64::try_from(default_deleted).unwrap_or_default(),
        }))
    }

    /// Runs `statement` ([`sql::PRUNE_KEY_CLAIMS`]' arguments) until it
    /// deletes fewer than `batch` rows: how many it deleted.
    async fn prune(
        &self,
        what: &'static str,
        statement: &str,
        at: &chrono::NaiveDateTime,
        retention: i64,
        batch: i32,
    ) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let rows = self
                .query(what, statement, &[at, &retention, &batch])
                .await?;
            let pruned: i64 = match rows.first() {
                Some(row) => get(row, 0, what)?,
                None => 0,
            };
            total += u64::try_from(pruned).unwrap_or_default();
            if pruned < i64::from(batch) {
                return Ok(total);
            }
        }
    }
}
