//! Storing the writer's batches at the speed of `COPY`.
//!
//! A batch is almost always new: its locations were given ids at the edge
//! and are stored once, so a binary `COPY` takes them at the database's
//! bulk speed, without the planning, the `unnest` and the speculative
//! insertion `INSERT ... ON CONFLICT` costs per row. What is known not to
//! be new is left out first: the rows of persons who do not exist, the
//! repeats within the batch, and the ids and idempotency keys stored
//! already (a redelivery after a crash between commit and
//! acknowledgement, a client's retry the edge published again), read in
//! the same statement as the persons, from the partitions of the batch's
//! times only. Only a row stored by another writer
//! in the meantime, or a person erased in the meantime, makes the copy
//! fail; it is then rolled back to its savepoint and the rows stored by
//! [`sql::INSERT_LOCATIONS`], which skips what is there and what names no
//! one. Either way the batch is one transaction, and the report is the
//! same.
//!
//! The rows of a person erased (migration 0016's tombstones) are reported
//! apart from those of a person who never existed, and the claims of the
//! erased persons' keys are forgotten in the same transaction: an edge
//! that had not learned of the erasure yet claimed them.
//!
//! Rows are written in the order of their ids, by the copy and by the
//! insert alike: two writers storing overlapping batches (a redelivery
//! while the first delivery is still being written) then wait on each
//! other's rows in the same order, never in a circle. Each idempotency
//! key is claimed with one id at the edge, so that is the keys' order too.

use std::{collections::HashSet, pin::pin};

use tokio_postgres::{Transaction, binary_copy::BinaryCopyInWriter, error::SqlState, types::Type};
use udaconnect_domain::{InsertReport, LocationId, LocationRecord, PersonId, StoreError};

use super::{
    PgStore,
    rows::{database, get},
    sql,
    wkb::{Wkb, geometry_type},
};

impl PgStore {
    /// Stores `batch` (not empty) in one transaction; see the module
    /// documentation.
    pub(super) async fn store_batch(
        &self,
        batch: &[LocationRecord],
    ) -> Result<InsertReport, StoreError> {
        let times = batch.iter().map(|record| record.time);
        let (Some(earliest), Some(latest)) = (times.clone().min(), times.max()) else {
            return Ok(InsertReport::default());
        };
        let mut client = self.client().await?;
        let mut transaction = client.transaction().await.map_err(database)?;
        let mut persons: Vec<PersonId> = batch.iter().map(|record| record.person_id).collect();
        persons.sort_unstable();
        persons.dedup();
        let ids: Vec<LocationId> = batch.iter().map(|record| record.id).collect();
        let keys: Vec<&str> = batch
            .iter()
            .filter_map(|record| record.key.as_deref())
            .collect();
        let preamble = transaction
            .query_one(
                sql::BATCH_PREAMBLE,
                &[
                    &persons,
                    &ids,
                    &keys,
                    &earliest.to_naive(),
                    &latest.to_naive(),
                ],
            )
            .await
            .map_err(database)?;
        let oid: u32 = get(&preamble, 0, "the geometry type")?;
        let unknown: Vec<PersonId> = get(&preamble, 1, "unknown persons")?;
        let erased_persons: Vec<PersonId> = get(&preamble, 2, "erased persons")?;
        let stored_ids: Vec<LocationId> = get(&preamble, 3, "stored ids")?;
        let stored_keys: Vec<String> = get(&preamble, 4, "stored keys")?;
        let geometry = geometry_type(oid);

        // What `INSERT ... ON CONFLICT` would keep of a batch that names
        // an id or a key twice, or one stored already: the first new one.
        let mut ids: HashSet<LocationId> = stored_ids.into_iter().collect();
        let mut keys: HashSet<&str> = stored_keys.iter().map(String::as_str).collect();
        let mut rows: Vec<&LocationRecord> = batch
            .iter()
            .filter(|record| !unknown.contains(&record.person_id))
            .filter(|record| {
                let new_id = ids.insert(record.id);
                let new_key = record.key.as_deref().is_none_or(|key| keys.insert(key));
                new_id && new_key
            })
            .collect();
        rows.sort_by_key(|record| record.id);

        let (inserted, gone) = if rows.is_empty() {
            (0, Gone::default())
        } else {
            let copy = transaction.savepoint("copy").await.map_err(database)?;
            match copy_rows(&copy, &rows, geometry).await {
                Ok(()) => {
                    copy.commit().await.map_err(database)?;
                    (rows.len(), Gone::default())
                }
                Err(err) if is_already_stored_or_unknown(&err) => {
                    copy.rollback().await.map_err(database)?;
                    insert_rows(&transaction, &rows).await?
                }
                // Dropped, the savepoint and the transaction roll back.
                Err(err) => return Err(database(err)),
            }
        };
        let (erased, unknown_person): (Vec<&LocationRecord>, Vec<&LocationRecord>) = batch
            .iter()
            .filter(|record| unknown.contains(&record.person_id) || gone.all.contains(&record.id))
            .partition(|record| {
                erased_persons.contains(&record.person_id) || gone.erased.contains(&record.id)
            });
        if !erased.is_empty() {
            let mut persons: Vec<PersonId> = erased.iter().map(|record| record.person_id).collect();
            persons.sort_unstable();
            persons.dedup();
            transaction
                .execute(sql::FORGET_KEY_CLAIMS, &[&persons])
                .await
                .map_err(database)?;
        }
        transaction.commit().await.map_err(database)?;
        let ids = |records: Vec<&LocationRecord>| records.iter().map(|record| record.id).collect();
        let (erased, unknown_person): (Vec<LocationId>, Vec<LocationId>) =
            (ids(erased), ids(unknown_person));
        Ok(InsertReport {
            inserted,
            duplicates: batch
                .len()
                .saturating_sub(inserted + unknown_person.len() + erased.len()),
            unknown_person,
            erased,
        })
    }
}

/// The rows [`sql::INSERT_LOCATIONS`] left out for want of their person.
#[derive(Default)]
struct Gone {
    /// Every one of them.
    all: Vec<LocationId>,
    /// Those of them whose person was erased.
    erased: Vec<LocationId>,
}

/// Writes `rows` with a binary `COPY`.
async fn copy_rows(
    transaction: &Transaction<'_>,
    rows: &[&LocationRecord],
    geometry: Type,
) -> Result<(), tokio_postgres::Error> {
    let sink = transaction.copy_in(sql::COPY_LOCATIONS).await?;
    let mut writer = pin!(BinaryCopyInWriter::new(
        sink,
        &[
            Type::INT8,
            Type::INT4,
            geometry,
            Type::TIMESTAMP,
            Type::TEXT
        ]
    ));
    for record in rows {
        writer
            .as_mut()
            .write(&[
                &record.id,
                &record.person_id,
                &Wkb::from(record.position.coordinate()),
                &record.time.to_naive(),
                &record.key.as_deref(),
            ])
            .await?;
    }
    writer.finish().await.map(drop)
}

/// A copy that failed on an id or key already stored, or on a person
/// erased since the batch was checked: the statement that skips those
/// stores the batch instead.
fn is_already_stored_or_unknown(err: &tokio_postgres::Error) -> bool {
    matches!(
        err.code(),
        Some(&SqlState::UNIQUE_VIOLATION | &SqlState::FOREIGN_KEY_VIOLATION)
    )
}

/// `rows` through [`sql::INSERT_LOCATIONS`], in their order: how many were
/// stored, and those whose person was erased since the preamble.
async fn insert_rows(
    transaction: &deadpool_postgres::Transaction<'_>,
    rows: &[&LocationRecord],
) -> Result<(usize, Gone), StoreError> {
    let ids: Vec<LocationId> = rows.iter().map(|record| record.id).collect();
    let persons: Vec<PersonId> = rows.iter().map(|record| record.person_id).collect();
    let lons: Vec<f64> = rows.iter().map(|record| record.position.lon).collect();
    let lats: Vec<f64> = rows.iter().map(|record| record.position.lat).collect();
    let times: Vec<_> = rows.iter().map(|record| record.time.to_naive()).collect();
    let keys: Vec<Option<&str>> = rows.iter().map(|record| record.key.as_deref()).collect();
    let statement = transaction
        .prepare_cached(sql::INSERT_LOCATIONS)
        .await
        .map_err(database)?;
    let row = transaction
        .query_one(&statement, &[&ids, &persons, &lons, &lats, &times, &keys])
        .await
        .map_err(database)?;
    let inserted: i64 = get(&row, 0, "insert report")?;
    let gone = Gone {
        all: get(&row, 1, "insert report")?,
        erased: get(&row, 2, "insert report")?,
    };
    Ok((usize::try_from(inserted).unwrap_or_default(), gone))
}
