//! Erasure in PostgreSQL (migration 0016): a person erased by one call of
//! `person_erase`, which removes them and every row about them in one
//! transaction and records the tombstone; and the erasures committed
//! since a reader's snapshot, read as the meetings' changes are (by the
//! transaction that wrote each tombstone).

use tokio_postgres::IsolationLevel;
use udaconnect_domain::{Erased, Erasures, PersonId, StoreError, meeting::FeedCursor};

use super::{
    PgStore,
    rows::{database, get},
    sql,
};

impl PgStore {
    /// See [`udaconnect_domain::Store::erase_person`].
    pub(super) async fn erase(&self, id: PersonId) -> Result<Option<Erased>, StoreError> {
        let rows = self
            .query("erasing a person", sql::ERASE_PERSON, &[&id])
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let count = |index: usize| -> Result<u64, StoreError> {
            let n: i64 = get(row, index, "an erasure")?;
            Ok(u64::try_from(n).unwrap_or_default())
        };
        Ok(Some(Erased {
            locations: count(0)?,
            meeting_positions: count(1)?,
            meetings: count(2)?,
            key_claims: count(3)?,
        }))
    }

    /// See [`udaconnect_domain::Store::erasures`]: the snapshot and the
    /// tombstones read in one repeatable-read transaction, so that the
    /// tombstones are exactly those its snapshot shows.
    pub(super) async fn erased_since(
        &self,
        since: Option<&FeedCursor>,
    ) -> Result<Erasures, StoreError> {
        self.bounded("reading the erasures", async {
            let mut client = self.client().await?;
            let transaction = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(database)?;
            let snapshot: String = get(
                &transaction
                    .query_one(sql::CURRENT_SNAPSHOT, &[])
                    .await
                    .map_err(database)?,
                0,
                "snapshot",
            )?;
            let cursor = FeedCursor::parse(&snapshot).ok_or_else(|| {
                StoreError::Corrupt(format!("the database's snapshot is not one: {snapshot}"))
            })?;
            let persons = match since {
                None => Vec::new(),
                Some(since) => transaction
                    .query(sql::ERASED_SINCE, &[&since.as_str()])
                    .await
                    .map_err(database)?
                    .iter()
                    .map(|row| get(row, 0, "an erased person"))
                    .collect::<Result<_, _>>()?,
            };
            transaction.commit().await.map_err(database)?;
            Ok(Erasures { cursor, persons })
        })
        .await
    }
}
