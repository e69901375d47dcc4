//! The location table's upkeep (migration 0009): a partition for each day
//! ahead, and, with a retention, the days past it dropped whole and the
//! idempotency keys' claims of those days pruned. The work is done by the
//! database's functions, as the schema's owner; this runs them.

use std::time::Duration;

use udaconnect_domain::{StoreError, Timestamp};

use super::{PgStore, rows::get, sql};

/// Claims pruned per statement: each is a short transaction of its own.
const PRUNE_CLAIMS_BATCH: i32 = 10_000;

/// What one round of upkeep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Maintenance {
    /// Another process was doing it meanwhile: this round did nothing.
    pub busy: bool,
    /// Day partitions created.
    pub created: u32,
    /// Partitions dropped for the retention.
    pub dropped: u32,
    /// Rows past the retention deleted from the default partition.
    pub default_deleted: u64,
    /// Idempotency keys' claims past the retention deleted.
    pub claims_pruned: u64,
}

impl PgStore {
    /// Makes sure the days from `at`'s to `days_ahead` days later (UTC)
    /// have their partitions; with a `retention` (at least a day), drops
    /// the partitions that end by the start of the day `retention` before
    /// `at`, and deletes the claims and default-partition rows before that
    /// day. `at` later than the database's clock counts as its clock for
    /// the retention. Safe to run from several processes at once: one does
    /// the work, the others report [`Maintenance::busy`].
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
        let rows = self
            .query(
                "maintaining the location partitions",
                sql::MAINTAIN_LOCATIONS,
                &[&at, &days_ahead, &retention],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(Maintenance {
                busy: true,
                ..Maintenance::default()
            });
        };
        let what = "the partitions' upkeep";
        let created: i32 = get(row, 0, what)?;
        let dropped: i32 = get(row, 1, what)?;
        let default_deleted: i64 = get(row, 2, what)?;
        let mut done = Maintenance {
            busy: false,
            created: u32::try_from(created).unwrap_or_default(),
            dropped: u32::try_from(dropped).unwrap_or_default(),
            default_deleted: u64::try_from(default_deleted).unwrap_or_default(),
            claims_pruned: 0,
        };
        if let Some(retention) = retention {
            loop {
                let rows = self
                    .query(
                        "pruning idempotency keys' claims",
                        sql::PRUNE_KEY_CLAIMS,
                        &[&at, &retention, &PRUNE_CLAIMS_BATCH],
                    )
                    .await?;
                let pruned: i64 = match rows.first() {
                    Some(row) => get(row, 0, "claims pruned")?,
                    None => 0,
                };
                done.claims_pruned += u64::try_from(pruned).unwrap_or_default();
                if pruned < i64::from(PRUNE_CLAIMS_BATCH) {
                    break;
                }
            }
        }
        Ok(done)
    }
}
