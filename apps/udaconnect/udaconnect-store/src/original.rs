//! The original UdaConnect's database, for proving the move from it.
//!
//! A team migrating has a database the original created: its schema, rows
//! inserted with explicit ids (never advancing the `SERIAL` sequences),
//! untyped `GEOMETRY` points in hex EWKB, some with their axes swapped. The
//! tests and the query benchmark need such a database, and the original's
//! connection query replayed on it as its `services.py` runs it:
//!
//! - [`shaped_script`] builds one in the original's shape from a seed, so
//!   every checkout can run the migration and compatibility tests;
//! - [`fixtures_script`] loads the original's own rows when a checkout has
//!   them beside it (they are not part of the project);
//! - [`OriginalQuery`] is the original's query, its SQL text unchanged.

use std::{fmt::Write as _, path::PathBuf};

use chrono::{Days, NaiveDate};
use tokio_postgres::{Client, Error, Row, Statement, types::Type};

use crate::MIGRATIONS;

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

/// The persons of a database in the original's shape: ids with gaps, as
/// the original's own (1, 5, 6, 8, 9) have.
pub const SHAPED_PERSONS: [i32; 6] = [2, 3, 7, 11, 12, 20];

/// The first location id of a database in the original's shape (ids then
/// run up with one gap, as the original's 29–68 do).
pub const SHAPED_FIRST_LOCATION: i64 = 101;

/// How many locations a database in the original's shape holds.
pub const SHAPED_LOCATIONS: usize = 48;

/// Where the locations of a database in the original's shape are, as the
/// original stores them: (X, Y) of the raw geometry. Most are (longitude,
/// latitude) in San Mateo; the last two have the axes swapped, as some of
/// the original's own rows near Albuquerque do (X a latitude, Y a longitude
/// past -90, which PostGIS folds into range when it measures).
const SPOTS: [(f64, f64); 6] = [
    (-122.290524, 37.553441),
    (-122.290530, 37.553444),
    (-122.290883, 37.553363),
    (-122.310000, 37.560000),
    (35.0585136, -106.5719566),
    (35.0585140, -106.5719570),
];

/// The days the locations of a database in the original's shape fall on:
/// inside the original frontend's fixed 2020 window, and one on each side
/// of it.
const DAYS: [&str; 7] = [
    "2020-04-07",
    "2020-05-20",
    "2020-07-07",
    "2020-07-07",
    "2020-08-18",
    "2019-12-31",
    "2021-01-05",
];

/// A database in the original's shape, made from `seed`: PostGIS, the
/// original's schema exactly as it creates it, then [`SHAPED_PERSONS`] and
/// [`SHAPED_LOCATIONS`] locations inserted with explicit ids (the
/// sequences never advanced), hex EWKB points of SRID 0, both axis orders,
/// several persons at the same spots on the same days (so that the
/// original's query finds connections, some of them many times over). One
/// SQL script, for `psql`.
pub fn shaped_script(seed: u64) -> String {
    let mut random = SplitMix(seed);
    let mut sql = String::from("CREATE EXTENSION IF NOT EXISTS postgis;\n");
    sql.push_str(MIGRATIONS[0].sql);
    sql.push('\n');
    for (n, id) in SHAPED_PERSONS.iter().enumerate() {
        let _ = writeln!(
            sql,
            "insert into public.person (id, first_name, last_name, company_name) \
             values ({id}, 'Given{n}', 'Family{n}', 'Company {n}, Ltd.');"
        );
    }
    let mut id = SHAPED_FIRST_LOCATION;
    for n in 0..SHAPED_LOCATIONS {
        // One id missing, as in the original's own rows.
        if n == SHAPED_LOCATIONS / 3 {
            id += 1;
        }
        let person = SHAPED_PERSONS[random.below(SHAPED_PERSONS.len())];
        let (x, y) = SPOTS[random.below(SPOTS.len())];
        let day = DAYS[random.below(DAYS.len())];
        let (hour, minute) = (8 + random.below(10), random.below(60));
        let _ = writeln!(
            sql,
            "insert into public.location (id, person_id, coordinate, creation_time) \
             values ({id}, {person}, '{}', '{day} {hour:02}:{minute:02}:06.000000');",
            hex_ewkb(x, y)
        );
        id += 1;
    }
    sql
}

/// A point as the original stores it: hex EWKB, little-endian, no SRID.
fn hex_ewkb(x: f64, y: f64) -> String {
    let mut hex = String::from("0101000000");
    for byte in x.to_le_bytes().into_iter().chain(y.to_le_bytes()) {
        let _ = write!(hex, "{byte:02X}");
    }
    hex
}

/// Where the original's own database files (`schema.sql`, `person.sql`,
/// `location.sql`) are looked for: `$UDACONNECT_ORIGINAL_ROWS`, else
/// `../shared/udaconnect/` beside the workspace. They are not part of the
/// project (the original's licence allows no copies).
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("UDACONNECT_ORIGINAL_ROWS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../../shared/udaconnect")
        })
}

/// The original's own database, as it creates it (PostGIS, then
/// `schema.sql`, `person.sql`, `location.sql`) as one SQL script, or
/// `None` where [`fixtures_dir`] does not hold them.
pub fn fixtures_script() -> Option<String> {
    let dir = fixtures_dir();
    let mut sql = String::from("CREATE EXTENSION IF NOT EXISTS postgis;\n");
    for file in ["schema.sql", "person.sql", "location.sql"] {
        sql.push_str(&std::fs::read_to_string(dir.join(file)).ok()?);
        sql.push('\n');
    }
    Some(sql)
}

/// A small, fast, seeded generator (SplitMix64): the shaped database is the
/// same for the same seed on every machine, with no dependency for it.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n` > 0; the bias is nil for the tiny `n` here).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_written_as_the_original_writes_them() {
        // Location 29 of the original's own rows.
        assert_eq!(
            hex_ewkb(-122.290524, 37.553441),
            "010100000000ADF9F197925EC0FDA19927D7C64240"
        );
    }

    #[test]
    fn the_shaped_database_is_the_same_for_the_same_seed_and_differs_by_seed() {
        let script = shaped_script(7);
        assert_eq!(script, shaped_script(7));
        assert_ne!(script, shaped_script(8));
        assert_eq!(
            script.matches("into public.location").count(),
            SHAPED_LOCATIONS
        );
        assert_eq!(
            script.matches("into public.person").count(),
            SHAPED_PERSONS.len()
        );
        assert!(!script.contains("setval"), "sequences are never advanced");
    }
}
