//! Claiming clients' idempotency keys in `ingest_key_claim` (migration
//! 0007). Most requests carry keys nobody holds: one index probe a key
//! ([`sql::ANY_KEY_CLAIMED`]) shows it, and their claims are copied in
//! ([`sql::COPY_KEY_CLAIMS`], a fraction of an insert's cost a row).
//! Otherwise (a retry, or another edge claiming one of the keys in the
//! meantime, which fails the copy as a whole) one statement
//! ([`sql::CLAIM_KEYS`]) records the first claim of each key not held yet
//! and reads the claims held before; only a key another edge claimed at
//! the same moment needs a second read ([`sql::KEY_CLAIMS`]), once that
//! edge's claim has committed. What each claim is answered is decided by
//! [`udaconnect_domain::claim`], as for the embedded store.

use std::{
    collections::{HashMap, HashSet},
    pin::pin,
};

use chrono::NaiveDateTime;
use tokio_postgres::{Row, binary_copy::BinaryCopyInWriter, error::SqlState, types::Type};
use udaconnect_domain::{
    ClaimOutcome, KeyClaim, Position, StoreError, Timestamp,
    claim::{first_of_each_key, outcomes},
};

use super::{
    PgStore,
    rows::{database, get},
    sql,
};

impl PgStore {
    /// See [`udaconnect_domain::Store::claim_keys`].
    pub(super) async fn claim(&self, claims: &[KeyClaim]) -> Result<Vec<ClaimOutcome>, StoreError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let firsts = first_of_each_key(claims);
        let keys: Vec<&str> = firsts.iter().map(|claim| claim.key.as_str()).collect();
        if self.copy_new(&keys, &firsts).await? {
            return Ok(outcomes(claims, &HashMap::new()));
        }
        let ids: Vec<i64> = firsts.iter().map(|claim| claim.id).collect();
        let persons: Vec<i32> = firsts.iter().map(|claim| claim.person_id).collect();
        let lons: Vec<f64> = firsts.iter().map(|claim| claim.position.lon).collect();
        let lats: Vec<f64> = firsts.iter().map(|claim| claim.position.lat).collect();
        let times: Vec<NaiveDateTime> = firsts.iter().map(|claim| claim.time.to_naive()).collect();
        let rows = self
            .query(
                "claiming idempotency keys",
                sql::CLAIM_KEYS,
                &[&keys, &ids, &persons, &lons, &lats, &times],
            )
            .await?;
        let mut claimed = HashSet::new();
        let mut earlier = HashMap::new();
        read_claims(&rows, &mut claimed, &mut earlier)?;
        let raced: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|key| !claimed.contains(*key) && !earlier.contains_key(*key))
            .collect();
        if !raced.is_empty() {
            let rows = self
                .query("reading idempotency keys", sql::KEY_CLAIMS, &[&raced])
                .await?;
            read_claims(&rows, &mut claimed, &mut earlier)?;
            if let Some(key) = raced.iter().find(|key| !earlier.contains_key(**key)) {
                // A claim goes only past the retention or with its
                // person's erasure: this is a database that lost one
                // (restored from a backup mid-request, say), or a person
                // erased this very moment, whom a retry finds unknown.
                return Err(StoreError::Unavailable(format!(
                    "an idempotency key's claim could not be read back ({} characters)",
                    key.chars().count()
                )));
            }
        }
        Ok(outcomes(claims, &earlier))
    }

    /// Copies the claims `firsts` (of `keys`, in key order) in if none of
    /// their keys is claimed: true if they were, false if one was claimed
    /// before or since (the copy then stores nothing).
    async fn copy_new(&self, keys: &[&str], firsts: &[&KeyClaim]) -> Result<bool, StoreError> {
        self.bounded("claiming idempotency keys", async {
            let client = self.client().await?;
            let any = client
                .prepare_cached(sql::ANY_KEY_CLAIMED)
                .await
                .map_err(database)?;
            let claimed: bool = client
                .query_one(&any, &[&keys])
                .await
                .and_then(|row| row.try_get(0))
                .map_err(database)?;
            if claimed {
                return Ok(false);
            }
            match copy_claims(&client, firsts).await {
                Ok(()) => Ok(true),
                Err(err) if err.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(false),
                Err(err) => Err(database(err)),
            }
        })
        .await
    }
}

/// Writes `firsts` with a binary `COPY`, in their order.
async fn copy_claims(
    client: &tokio_postgres::Client,
    firsts: &[&KeyClaim],
) -> Result<(), tokio_postgres::Error> {
    let sink = client.copy_in(sql::COPY_KEY_CLAIMS).await?;
    let mut writer = pin!(BinaryCopyInWriter::new(
        sink,
        &[
            Type::TEXT,
            Type::INT8,
            Type::INT4,
            Type::FLOAT8,
            Type::FLOAT8,
            Type::TIMESTAMP
        ]
    ));
    for claim in firsts {
        writer
            .as_mut()
            .write(&[
                &claim.key,
                &claim.id,
                &claim.person_id,
                &claim.position.lon,
                &claim.position.lat,
                &claim.time.to_naive(),
            ])
            .await?;
    }
    writer.finish().await.map(drop)
}

/// Files each row of [`sql::CLAIM_KEYS`]'s columns: a key claimed now, or
/// the claim held before.
fn read_claims(
    rows: &[Row],
    claimed: &mut HashSet<String>,
    earlier: &mut HashMap<String, KeyClaim>,
) -> Result<(), StoreError> {
    let what = "an idempotency key's claim";
    for row in rows {
        let key: String = get(row, 0, what)?;
        if get(row, 1, what)? {
            claimed.insert(key);
            continue;
        }
        let lon: f64 = get(row, 4, what)?;
        let lat: f64 = get(row, 5, what)?;
        let position = Position::new(lat, lon)
            .map_err(|err| StoreError::Corrupt(format!("{what}: its position: {err}")))?;
        let time: NaiveDateTime = get(row, 6, what)?;
        let claim = KeyClaim {
            id: get(row, 2, what)?,
            person_id: get(row, 3, what)?,
            position,
            time: Timestamp::from_naive(time),
            key: key.clone(),
        };
        earlier.insert(key, claim);
    }
    Ok(())
}
