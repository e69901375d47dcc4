//! Idempotency keys, claimed before a location is published, so that the
//! id an edge answers is the id stored, for a client's retries too.
//!
//! A client may send a location with a key of its own. The first time a
//! key reaches any edge, the edge claims it in the store with the id it
//! gives the location and the location itself ([`KeyClaim`]); the store
//! keeps the first claim of a key for good. A later claim of the key is
//! answered with the id of that first one: [`ClaimOutcome::Same`] when it
//! carries the same location (a retry: answered with that id, and
//! published again under it), [`ClaimOutcome::Conflict`] when it carries
//! another (the key already stands for a location; rejected).
//!
//! "The same location" is compared as stored: the person, the position
//! (the same `f64`s: a decimal sent over HTTP parses to the double a gRPC
//! client sends for it) and the time to the microsecond ([`Timestamp`]).
//!
//! The stores differ only in where they keep the claims; which claim of a
//! call wins, and what each is answered, is decided here for both.

use std::collections::HashMap;

use crate::{
    model::{LocationId, LocationRecord, PersonId, Position},
    time::Timestamp,
};

/// An edge's claim of a client's idempotency key for one location.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyClaim {
    /// The client's key.
    pub key: String,
    /// The id the edge gives the location if the claim is the key's first.
    pub id: LocationId,
    /// Whose.
    pub person_id: PersonId,
    /// Where.
    pub position: Position,
    /// When.
    pub time: Timestamp,
}

impl KeyClaim {
    /// The claim of `record`'s key, if it has one.
    pub fn of(record: &LocationRecord) -> Option<Self> {
        record.key.as_ref().map(|key| Self {
            key: key.clone(),
            id: record.id,
            person_id: record.person_id,
            position: record.position,
            time: record.time,
        })
    }

    /// Whether `other` carries the same location as this claim (whatever
    /// their ids): the same person, position and time, as stored.
    pub fn same_location(&self, other: &KeyClaim) -> bool {
        self.person_id == other.person_id
            && self.position == other.position
            && self.time == other.time
    }
}

/// What became of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The key's first claim: it stands for this location, under the
    /// claim's id, from now on.
    Claimed,
    /// The key was claimed before for the same location, under this id.
    Same(LocationId),
    /// The key was claimed before for another location, under this id.
    Conflict(LocationId),
}

/// The first claim of each key in `claims`, ordered by key: what a store
/// records (a store that takes them in this order takes its locks on keys
/// in the same order in every call, so two calls never wait on each
/// other in a circle).
pub fn first_of_each_key(claims: &[KeyClaim]) -> Vec<&KeyClaim> {
    let mut firsts: HashMap<&str, &KeyClaim> = HashMap::with_capacity(claims.len());
    for claim in claims {
        firsts.entry(claim.key.as_str()).or_insert(claim);
    }
    let mut firsts: Vec<&KeyClaim> = firsts.into_values().collect();
    firsts.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    firsts
}

/// Each of `claims`' outcome, in order, once a store has recorded the
/// first claim of each key that it did not hold yet: `earlier` holds, by
/// key, the claims the store held before (the keys of `claims` not in it
/// were claimed by their first claim here). Every claim of a key is held
/// to the one that owns it: the claim held before, or else the first of
/// the call.
pub fn outcomes(claims: &[KeyClaim], earlier: &HashMap<String, KeyClaim>) -> Vec<ClaimOutcome> {
    let mut owners: HashMap<&str, &KeyClaim> = HashMap::with_capacity(claims.len());
    claims
        .iter()
        .map(|claim| {
            let owner = owners
                .entry(claim.key.as_str())
                .or_insert_with(|| earlier.get(&claim.key).unwrap_or(claim));
            if std::ptr::eq(*owner, claim) {
                ClaimOutcome::Claimed
            } else if owner.same_location(claim) {
                ClaimOutcome::Same(owner.id)
            } else {
                ClaimOutcome::Conflict(owner.id)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(key: &str, id: LocationId, lat: f64) -> KeyClaim {
        KeyClaim {
            key: key.to_owned(),
            id,
            person_id: 1,
            position: Position { lat, lon: 7.0 },
            time: Timestamp::from_micros(1_600_000_000_000_000),
        }
    }

    #[test]
    fn the_first_claim_of_a_key_owns_it_and_the_others_are_held_to_it() {
        let claims = [
            claim("b", 1, 45.0),
            claim("a", 2, 45.0),
            claim("b", 3, 45.0),
            claim("b", 4, 46.0),
            claim("c", 5, 45.0),
            claim("c", 6, 45.0),
        ];
        let firsts: Vec<LocationId> = first_of_each_key(&claims).iter().map(|c| c.id).collect();
        assert_eq!(firsts, [2, 1, 5]);
        // "c" was claimed before, by another location.
        let earlier = HashMap::from([("c".to_owned(), claim("c", 9, 44.0))]);
        assert_eq!(
            outcomes(&claims, &earlier),
            [
                ClaimOutcome::Claimed,
                ClaimOutcome::Claimed,
                ClaimOutcome::Same(1),
                ClaimOutcome::Conflict(1),
                ClaimOutcome::Conflict(9),
                ClaimOutcome::Conflict(9),
            ]
        );
    }

    #[test]
    fn a_location_is_the_same_to_the_microsecond_and_to_the_bit() {
        let first = claim("k", 1, 45.0);
        let mut later = claim("k", 2, 45.0);
        assert!(first.same_location(&later), "ids do not count");
        later.time = later.time.plus_micros(1);
        assert!(!first.same_location(&later));
        let mut moved = claim("k", 2, 45.0);
        moved.position.lat = f64::from_bits(45.0_f64.to_bits() + 1);
        assert!(!first.same_location(&moved));
        let mut other = claim("k", 2, 45.0);
        other.person_id = 2;
        assert!(!first.same_location(&other));
    }
}
