//! Loading a made-up data set fast: `COPY ... FROM STDIN BINARY`, a few
//! seconds for a million locations, for benchmarks and tests at size.

use std::pin::pin;

use tokio_postgres::{binary_copy::BinaryCopyInWriter, types::Type};
use udaconnect_domain::{StoreError, conference::Dataset};

use super::{
    PgStore,
    rows::{database, get},
    sql,
    wkb::{Wkb, geometry_type},
};

/// The location table's indexes other than its primary key, as names
/// (quoted as needed) and `CREATE INDEX` statements. The table is
/// partitioned (migration 0009): its indexes are defined `ON ONLY` the
/// table itself, and made again on every partition.
const SECONDARY_INDEXES: &str = "SELECT indexrelid::regclass::text, \
     replace(pg_get_indexdef(indexrelid), ' ON ONLY ', ' ON ') \
     FROM pg_index WHERE indrelid = 'location'::regclass AND NOT indisprimary";

/// Cells of this many degrees (about 55 m north–south) order the rows.
const CELL_DEG: f64 = 0.0005;

/// The locations in the order they are written: by cell of a grid, row by
/// row, then by time. A lookup near a point then reads a few heap pages
/// instead of one per row (what `CLUSTER` on the GiST would do, for free);
/// the ids and times are what they are, only the rows' places change.
fn spatial_order(data: &Dataset) -> Vec<&udaconnect_domain::LocationRecord> {
    let cell = |degrees: f64| (degrees / CELL_DEG).floor() as i64;
    let mut locations: Vec<_> = data.locations.iter().collect();
    locations.sort_by_key(|location| {
        (
            cell(location.position.lat),
            cell(location.position.lon),
            location.time,
        )
    });
    locations
}

impl PgStore {
    /// Adds `data` (persons and locations with their ids) in one
    /// transaction, then moves the id sequences past it and vacuums (the
    /// planner's statistics, the visibility map). Ids already stored make
    /// it fail. Into an empty table the secondary indexes are built after
    /// the rows.
    pub async fn bulk_load(&self, data: &Dataset) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(database)?;
        // A million rows take longer than any request may. The commit is
        // flushed before it returns, whatever the server's setting, for the
        // VACUUM below.
        transaction
            .batch_execute("SET LOCAL statement_timeout = 0; SET LOCAL synchronous_commit = on")
            .await
            .map_err(database)?;
        let oid: u32 = get(
            &transaction
                .query_one("SELECT 'geometry'::regtype::oid", &[])
                .await
                .map_err(database)?,
            0,
            "the geometry type",
        )?;
        let geometry = geometry_type(oid);

        let sink = transaction
            .copy_in("COPY person (id, first_name, last_name, company_name) FROM STDIN BINARY")
            .await
            .map_err(database)?;
        let mut writer = pin!(BinaryCopyInWriter::new(
            sink,
            &[Type::INT4, Type::VARCHAR, Type::VARCHAR, Type::VARCHAR]
        ));
        for person in &data.persons {
            writer
                .as_mut()
                .write(&[
                    &person.id,
                    &person.first_name,
                    &person.last_name,
                    &person.company_name,
                ])
                .await
                .map_err(database)?;
        }
        writer.finish().await.map_err(database)?;

        // Into an empty table, building the secondary indexes once at the
        // end is about twice as fast as keeping them up row by row; their
        // definitions are read from the database, so they come back exactly.
        let empty: bool = get(
            &transaction
                .query_one("SELECT NOT EXISTS (SELECT 1 FROM location)", &[])
                .await
                .map_err(database)?,
            0,
            "emptiness",
        )?;
        let mut indexes = Vec::new();
        if empty {
            for row in transaction
                .query(SECONDARY_INDEXES, &[])
                .await
                .map_err(database)?
            {
                let name: String = get(&row, 0, "index")?;
                let definition: String = get(&row, 1, "index")?;
                transaction
                    .batch_execute(&format!("DROP INDEX {name}"))
                    .await
                    .map_err(database)?;
                indexes.push(definition);
            }
        }

        let sink = transaction
            .copy_in("COPY location (id, person_id, coordinate, creation_time) FROM STDIN BINARY")
            .await
            .map_err(database)?;
        let mut writer = pin!(BinaryCopyInWriter::new(
            sink,
            &[Type::INT8, Type::INT4, geometry, Type::TIMESTAMP]
        ));
        for location in spatial_order(data) {
            writer
                .as_mut()
                .write(&[
                    &location.id,
                    &location.person_id,
                    &Wkb::from(location.position.coordinate()),
                    &location.time.to_naive(),
                ])
                .await
                .map_err(database)?;
        }
        writer.finish().await.map_err(database)?;

        if !indexes.is_empty() {
            transaction
                .batch_execute("SET LOCAL maintenance_work_mem = '1GB'")
                .await
                .map_err(database)?;
        }
        for definition in &indexes {
            transaction
                .batch_execute(definition)
                .await
                .map_err(database)?;
        }
        transaction
            .batch_execute(sql::ADVANCE_SEQUENCES)
            .await
            .map_err(database)?;
        transaction.commit().await.map_err(database)?;
        // VACUUM, not only ANALYZE: it marks the pages all-visible, as
        // autovacuum would a little later, so that the connection queries
        // read the grid's index alone from the first query on. It can only
        // once every commit near the rows' own is on disk (the commit log
        // keeps one flush position per few dozen transactions), hence
        // synchronous commits until it is done, whatever the server's
        // setting. VACUUM runs outside any transaction: one statement per
        // call, and the pooled connection's settings put back whatever
        // happened.
        let mut vacuumed = Ok(());
        for statement in [
            "SET statement_timeout = 0; SET synchronous_commit = on",
            "VACUUM (ANALYZE) location",
            "VACUUM (ANALYZE) person",
        ] {
            vacuumed = client.batch_execute(statement).await;
            if vacuumed.is_err() {
                break;
            }
        }
        let reset = client
            .batch_execute("RESET synchronous_commit; RESET statement_timeout")
            .await;
        vacuumed.and(reset).map_err(database)
    }
}
