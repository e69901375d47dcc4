//! Claiming clients' idempotency keys in `ingest_key_claim` (migration
//! 0007): one statement per request ([`sql::CLAIM_KEYS`]) records the first
//! claim of each key not held yet and reads the claims held before; only
//! a key another edge claimed at the same moment needs a second read
//! ([`sql::KEY_CLAIMS`]), once that edge's claim has committed. What each
//! claim is answered is decided by [`udaconnect_domain::claim`], as for
//! the embedded store.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use tokio_postgres::Row;
use udaconnect_domain::{
    ClaimOutcome, KeyClaim, Position, StoreError, Timestamp,
    claim::{first_of_each_key, outcomes},
};

use super::{PgStore, rows::get, sql};

impl PgStore {
    /// See [`udaconnect_domain::Store::claim_keys`].
    pub(super) async fn claim(&self, claims: &[KeyClaim]) -> Result<Vec<ClaimOutcome>, StoreError> {
        let firsts = first_of_each_key(claims);
        let keys: Vec<&str> = firsts.iter().map(|claim| claim.key.as_str()).collect();
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
