//! A request's idempotency keys, claimed before anything of it is
//! published (`Store::claim_keys`): a key's first claim keeps the id the
//! edge gave its location, a retry of the same location takes that first
//! id, and a key sent before with another location is a conflict, named
//! with the id of the location it stands for. Items without a key keep
//! their ids.

use std::{borrow::Cow, collections::HashSet, time::Duration};

use udaconnect_domain::{
    ClaimOutcome, Invalid, KeyClaim, LocationId, LocationRecord, Problem, Store, StoreError,
};

/// A request's records once their keys are claimed.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The records to answer as taken, in request order, each with the id
    /// its key stands for.
    pub accepted: Vec<LocationRecord>,
    /// The items whose key stands for another location: their index in
    /// the request, and that location's id.
    pub conflicts: Vec<(usize, LocationId)>,
}

impl Claimed {
    /// The records to publish: the accepted ones, each id once (a key
    /// sent twice in one request is answered twice with one id).
    pub fn to_publish(&self) -> Cow<'_, [LocationRecord]> {
        let mut seen = HashSet::with_capacity(self.accepted.len());
        if self.accepted.iter().all(|record| seen.insert(record.id)) {
            return Cow::Borrowed(&self.accepted);
        }
        seen.clear();
        Cow::Owned(
            self.accepted
                .iter()
                .filter(|record| seen.insert(record.id))
                .cloned()
                .collect(),
        )
    }
}

/// Claims the keys of `records` (each with its index in the request) in
/// `store`, within `timeout`.
pub async fn claim(
    store: &dyn Store,
    records: Vec<(usize, LocationRecord)>,
    timeout: Duration,
) -> Result<Claimed, StoreError> {
    let claims: Vec<KeyClaim> = records
        .iter()
        .filter_map(|(_, record)| KeyClaim::of(record))
        .collect();
    let mut claimed = Claimed {
        accepted: Vec::with_capacity(records.len()),
        conflicts: Vec::new(),
    };
    if claims.is_empty() {
        claimed
            .accepted
            .extend(records.into_iter().map(|(_, record)| record));
        return Ok(claimed);
    }
    let outcomes = tokio::time::timeout(timeout, store.claim_keys(&claims))
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "claiming idempotency keys took longer than {timeout:?}"
            )))
        })?;
    if outcomes.len() != claims.len() {
        return Err(StoreError::Corrupt(format!(
            "{} outcomes for {} claims",
            outcomes.len(),
            claims.len()
        )));
    }
    let mut outcomes = outcomes.into_iter();
    for (index, mut record) in records {
        let outcome = if record.key.is_some() {
            outcomes.next()
        } else {
            None
        };
        match outcome {
            None | Some(ClaimOutcome::Claimed) => claimed.accepted.push(record),
            Some(ClaimOutcome::Same(id)) => {
                record.id = id;
                claimed.accepted.push(record);
            }
            Some(ClaimOutcome::Conflict(id)) => claimed.conflicts.push((index, id)),
        }
    }
    Ok(claimed)
}

/// Why an item whose key stands for the location `stored_id` is rejected.
pub fn conflict(stored_id: LocationId) -> Invalid {
    Invalid::new(
        "key",
        Problem::Conflict,
        format!(
            "was sent before with another location, stored as location {stored_id}; a key stands for one location"
        ),
    )
}

#[cfg(test)]
mod tests {
    use udaconnect_domain::{Position, Timestamp};
    use udaconnect_store::MemoryStore;

    use super::*;

    fn record(id: LocationId, key: Option<&str>, lat: f64) -> LocationRecord {
        LocationRecord {
            id,
            person_id: 1,
            position: Position { lat, lon: 7.0 },
            time: Timestamp::from_micros(1_600_000_000_000_000),
            key: key.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn a_retry_takes_its_keys_first_id_and_another_location_is_a_conflict() {
        let store = MemoryStore::new();
        let timeout = Duration::from_secs(5);
        let first = claim(
            &store,
            vec![
                (0, record(10, Some("a"), 45.0)),
                (1, record(11, None, 45.0)),
            ],
            timeout,
        )
        .await
        .expect("claimed");
        assert_eq!(first.conflicts, []);
        assert_eq!(first.to_publish(), first.accepted);

        let retry = claim(
            &store,
            vec![
                (0, record(20, Some("a"), 45.0)),
                (1, record(21, Some("a"), 46.0)),
                (2, record(22, Some("b"), 45.0)),
                (3, record(23, Some("b"), 45.0)),
                (4, record(24, None, 45.0)),
            ],
            timeout,
        )
        .await
        .expect("claimed");
        let ids: Vec<LocationId> = retry.accepted.iter().map(|record| record.id).collect();
        assert_eq!(ids, [10, 22, 22, 24]);
        assert_eq!(retry.conflicts, [(1, 10)]);
        let published: Vec<LocationId> = retry.to_publish().iter().map(|r| r.id).collect();
        assert_eq!(published, [10, 22, 24]);
        assert_eq!(conflict(10).problem, Problem::Conflict);
        assert!(conflict(10).to_string().contains("location 10"));
    }
}
