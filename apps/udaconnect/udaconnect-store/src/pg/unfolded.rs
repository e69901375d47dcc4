//! The stored locations the meetings were never computed from: those a
//! database migrated from the original held before any meetings process
//! ran, and those `LOCATIONS_STORED` dropped (it keeps a day) while every
//! meetings process was stopped. `udaconnect meetings-backfill` reads them
//! a window of ids at a time, so each read is bounded whatever the size
//! of the table, and folds them in like any others.

use chrono::NaiveDateTime;
use udaconnect_domain::{LocationId, Position, StoreError, Timestamp, meeting::Sighting};

use super::{PgStore, rows::database, sql};

impl PgStore {
    /// The highest location id stored (0 when there is none).
    pub async fn last_location_id(&self) -> Result<LocationId, StoreError> {
        let rows = self
            .query("reading the last location id", sql::LAST_LOCATION_ID, &[])
            .await?;
        rows.first()
            .map_or(Ok(0), |row| row.try_get(0).map_err(database))
    }

    /// The locations with ids in `(after, through]` the meetings were not
    /// computed from yet, in id order.
    pub async fn unfolded_locations(
        &self,
        after: LocationId,
        through: LocationId,
    ) -> Result<Vec<Sighting>, StoreError> {
        let rows = self
            .query(
                "reading the locations not folded in",
                sql::UNFOLDED_LOCATIONS,
                &[&after, &through],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let time: NaiveDateTime = row.try_get(2).map_err(database)?;
                Ok(Sighting {
                    id: row.try_get(0).map_err(database)?,
                    person: row.try_get(1).map_err(database)?,
                    at: Timestamp::from_naive(time),
                    position: Position {
                        lat: row.try_get(3).map_err(database)?,
                        lon: row.try_get(4).map_err(database)?,
                    },
                })
            })
            .collect()
    }
}
