//! The original UdaConnect's connection query, replayed as its
//! `services.py` runs it: the person's own locations in the date range,
//! then, for each of them, one query of its exact SQL text. The migration
//! test holds the new endpoint to its answers; the connections benchmark
//! times it against the new queries on the same database.

use chrono::{Days, NaiveDate};
use tokio_postgres::{Client, Error, Row, Statement, types::Type};

/// The original's query for one of the person's own locations, its text
/// as `services.py` sends it (with positional parameters).
const ORIGINAL_SQL: &str = "
        SELECT  person_id, id, ST_X(coordinate), ST_Y(coordinate), creation_time
        FROM    location
        WHERE   ST_DWithin(coordinate::geography,ST_SetSRID(ST_MakePoint($1,$2),4326)::geography, $3)
        AND     person_id != $4
        AND     TO_DATE($5, 'YYYY-MM-DD') <= creation_time
        AND     TO_DATE($6, 'YYYY-MM-DD') > creation_time;
        ";

/// The person's own locations in `[start, end)`, as the original reads
/// them before querying.
const OWN_LOCATIONS: &str = "
        SELECT ST_X(coordinate), ST_Y(coordinate) FROM location
        WHERE person_id = $1::int4 AND creation_time < $3::date AND creation_time >= $2::date";

/// The original's query, prepared on one connection.
pub struct OriginalQuery {
    own: Statement,
    near: Statement,
}

impl OriginalQuery {
    /// Prepares both statements on `client`.
    pub async fn prepare(client: &Client) -> Result<Self, Error> {
        let own = client.prepare(OWN_LOCATIONS).await?;
        let near = client
            .prepare_typed(
                ORIGINAL_SQL,
                &[
                    Type::FLOAT8,
                    Type::FLOAT8,
                    Type::FLOAT8,
                    Type::INT4,
                    Type::TEXT,
                    Type::TEXT,
                ],
            )
            .await?;
        Ok(Self { own, near })
    }

    /// The person's own locations in `[start, end)`, as (X, Y) of their
    /// `coordinate`: the original runs its query once for each.
    pub async fn own_locations(
        &self,
        client: &Client,
        person: i32,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<Vec<(f64, f64)>, Error> {
        client
            .query(&self.own, &[&person, &start, &end])
            .await?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    /// The original's query for one own location at `(x, y)`: the other
    /// persons' locations within `meters` from `start` to a day after
    /// `end` (as in `services.py`), as rows of (person_id, id, ST_X, ST_Y,
    /// creation_time).
    pub async fn near(
        &self,
        client: &Client,
        (x, y): (f64, f64),
        person: i32,
        start: NaiveDate,
        end: NaiveDate,
        meters: f64,
    ) -> Result<Vec<Row>, Error> {
        let others_end = end.checked_add_days(Days::new(1)).unwrap_or(end);
        let (start, end) = (
            start.format("%Y-%m-%d").to_string(),
            others_end.format("%Y-%m-%d").to_string(),
        );
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
            [&x, &y, &meters, &person, &start, &end];
        client.query(&self.near, &params).await
    }

    /// What the original answers for `person` from `start` to `end`
    /// within `meters`: [`Self::near`] for each of
    /// [`Self::own_locations`], one row per (own, other) pair, in the
    /// order it runs them.
    pub async fn connections(
        &self,
        client: &Client,
        person: i32,
        start: NaiveDate,
        end: NaiveDate,
        meters: f64,
    ) -> Result<Vec<Row>, Error> {
        let mut rows = Vec::new();
        for own in self.own_locations(client, person, start, end).await? {
            rows.extend(self.near(client, own, person, start, end, meters).await?);
        }
        Ok(rows)
    }
}
