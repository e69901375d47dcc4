//! The contract every store keeps: PostGIS in production, the embedded
//! in-memory store for `cargo run` without a database.
//!
//! Both implement the semantics of [`crate::query`] exactly, and tests hold
//! them to the same answers on the same data. The API, the writer and the
//! ingest edge use a store only through this trait.

use async_trait::async_trait;

use crate::{
    claim::{ClaimOutcome, KeyClaim},
    credential::{Credential, CredentialId, Digest, NewCredential},
    erasure::{Erased, Erasures},
    meeting::{
        FeedCursor, Kept, MeetingChanges, MeetingFeed, MeetingQuery, MeetingRules, Sighting,
    },
    model::{Location, LocationId, LocationRecord, NewPerson, Person, PersonId},
    query::{CompatConnection, CompatQuery, ConnectionQuery, Contact, LocationRange, PersonSearch},
};

/// Why a store could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached, is busy or failed in passing
    /// (SQLSTATE classes 08, 40, 53, 57, 58, or no SQLSTATE at all);
    /// retrying later may work.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A location names a person the store does not have.
    #[error("person {0} does not exist")]
    UnknownPerson(PersonId),
    /// A stored row that does not make a valid record.
    #[error("a stored row is invalid: {0}")]
    Corrupt(String),
    /// A query ran past its deadline and was stopped: a narrower question
    /// (fewer days, a shorter distance) may be answered in time.
    #[error("the query took longer than {0:?} and was stopped")]
    TimedOut(std::time::Duration),
    /// The database refused the statement for a reason that trying again
    /// will not change (a constraint, a privilege, the schema, a value):
    /// PostgreSQL's SQLSTATE `code` and its message.
    #[error("the database rejected the statement (SQLSTATE {code}): {message}")]
    Rejected {
        /// The SQLSTATE, five characters; its first two are the class.
        code: String,
        /// The server's message (never the row it was about).
        message: String,
    },
}

impl StoreError {
    /// Whether a rejection is the rows' own doing, so that a batch stored
    /// in parts may be stored but for some of them: a value the database
    /// cannot take (SQLSTATE class 22), a constraint the rows break (23),
    /// or a trigger's exception (P0). A rejection of the statement itself
    /// (a privilege, a column missing) is every row's alike.
    pub fn blames_the_rows(&self) -> bool {
        match self {
            StoreError::Rejected { code, .. } => ["22", "23", "P0"]
                .iter()
                .any(|class| code.starts_with(class)),
            _ => false,
        }
    }
}

/// What storing a batch of records did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsertReport {
    /// Records stored now.
    pub inserted: usize,
    /// Records whose id, or idempotency key, was already stored (a
    /// redelivery, a client's retry): left as they are.
    pub duplicates: usize,
    /// Records naming a person that does not exist and never did: not
    /// stored.
    pub unknown_person: Vec<LocationId>,
    /// Records of a person erased (see [`crate::erasure`]): not stored,
    /// and the claims of their idempotency keys forgotten.
    pub erased: Vec<LocationId>,
}

/// Counts for a live header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Persons stored.
    pub persons: u64,
    /// Locations stored.
    pub locations: u64,
}

/// A store of persons and locations.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `"postgis"` or `"embedded"`, for logs.
    fn kind(&self) -> &'static str;

    /// Succeeds only if the store answers now (readiness).
    async fn check(&self) -> Result<(), StoreError>;

    /// Every person, by id (the original's `GET /api/persons`).
    async fn persons(&self) -> Result<Vec<Person>, StoreError>;

    /// A page of persons, by id.
    async fn search_persons(&self, search: &PersonSearch) -> Result<Vec<Person>, StoreError>;

    /// One person.
    async fn person(&self, id: PersonId) -> Result<Option<Person>, StoreError>;

    /// The persons of `ids` that exist, by id: one read for many (the
    /// other persons of a page of meetings).
    async fn persons_by_id(
        &self,
        ids: &[PersonId],
    ) -> Result<std::collections::HashMap<PersonId, Person>, StoreError>;

    /// The ids of every person with an id above `after`, ascending: an
    /// edge loads them all once (`after` = 0) and then polls for new ones.
    async fn person_ids_after(&self, after: PersonId) -> Result<Vec<PersonId>, StoreError>;

    /// Stores a person under a new id, never one in use.
    async fn create_person(&self, person: &NewPerson) -> Result<Person, StoreError>;

    /// One location.
    async fn location(&self, id: LocationId) -> Result<Option<Location>, StoreError>;

    /// Stores records whose ids were assigned upstream, all or nothing
    /// apart from what the report lists: an id or an idempotency key
    /// already stored (or earlier in the batch) is a duplicate (never
    /// stored twice), a record of an unknown person is skipped, and so is
    /// a record of a person erased, told apart from the unknown ones.
    async fn insert_locations(&self, batch: &[LocationRecord]) -> Result<InsertReport, StoreError>;

    /// `count` fresh location ids, never returned before, for an edge to
    /// assign.
    async fn reserve_location_ids(&self, count: usize) -> Result<Vec<LocationId>, StoreError>;

    /// Claims each of `claims`' keys for its location, durably, before the
    /// edge publishes it; each claim's outcome, in order (see
    /// [`crate::claim`]). A key claimed before, by any edge, or by a claim
    /// earlier in `claims`, keeps its first claim: a later one is
    /// [`ClaimOutcome::Same`] or [`ClaimOutcome::Conflict`] with its id.
    /// Keys stored with locations before claims existed count as claimed.
    async fn claim_keys(&self, claims: &[KeyClaim]) -> Result<Vec<ClaimOutcome>, StoreError>;

    /// A page of one person's locations, by time then id.
    async fn locations_of(&self, range: &LocationRange) -> Result<Vec<Location>, StoreError>;

    /// The original's connection rows, ordered by own location (time, then
    /// id), then other location id; at most `query.limit` of them.
    async fn compat_connections(
        &self,
        query: &CompatQuery,
    ) -> Result<Vec<CompatConnection>, StoreError>;

    /// A page of contacts (see [`crate::query`]).
    async fn connections(&self, query: &ConnectionQuery) -> Result<Vec<Contact>, StoreError>;

    /// How many persons and locations are stored.
    async fn stats(&self) -> Result<Stats, StoreError>;

    /// Folds stored locations into the meetings `rules` define (see
    /// [`crate::meeting`]), atomically: each location is applied once
    /// however often it comes, and against every location applied before
    /// it, by any process. A location of a person who no longer exists
    /// (erased since it was stored) is passed over, and no meeting is
    /// written with them, whenever the erasure commits.
    async fn apply_meetings(
        &self,
        rules: &MeetingRules,
        sightings: &[Sighting],
    ) -> Result<MeetingChanges, StoreError>;

    /// A page of one person's meetings, most recent first.
    async fn meetings(&self, query: &MeetingQuery) -> Result<Vec<Kept>, StoreError>;

    /// The meetings (of `person`, or everyone's) written since `since`, at
    /// most `limit`; without `since`, none, and the cursor of now.
    async fn meeting_feed(
        &self,
        since: Option<&FeedCursor>,
        person: Option<PersonId>,
        limit: usize,
    ) -> Result<MeetingFeed, StoreError>;

    /// Where `publisher` has published the meetings' events up to, if it
    /// has recorded it.
    async fn event_cursor(&self, publisher: &str) -> Result<Option<FeedCursor>, StoreError>;

    /// Records where `publisher` has published the meetings' events up to.
    async fn save_event_cursor(
        &self,
        publisher: &str,
        cursor: &FeedCursor,
    ) -> Result<(), StoreError>;

    /// Stores a credential under a new id ([`StoreError::UnknownPerson`]
    /// if its person does not exist).
    async fn create_credential(&self, credential: &NewCredential)
    -> Result<Credential, StoreError>;

    /// The credential whose token has `digest`, revoked or not.
    async fn credential_by_digest(&self, digest: &Digest)
    -> Result<Option<Credential>, StoreError>;

    /// One credential.
    async fn credential(&self, id: CredentialId) -> Result<Option<Credential>, StoreError>;

    /// Every credential of `person`, by id.
    async fn credentials_of(&self, person: PersonId) -> Result<Vec<Credential>, StoreError>;

    /// Revokes a credential (a second time changes nothing); the
    /// credential as it now is, if it exists.
    async fn revoke_credential(&self, id: CredentialId) -> Result<Option<Credential>, StoreError>;
    /// Erases person `id` (see [`crate::erasure`]): removes them and every
    /// row about them in one transaction, and remembers the id as erased.
    /// What was removed, or `None` if there is no such person (there never
    /// was, or they were erased already).
    async fn erase_person(&self, id: PersonId) -> Result<Option<Erased>, StoreError>;

    /// The persons erased since `since`; without `since`, none, and the
    /// cursor of now.
    async fn erasures(&self, since: Option<&FeedCursor>) -> Result<Erasures, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(code: &str) -> StoreError {
        StoreError::Rejected {
            code: code.to_owned(),
            message: "refused".to_owned(),
        }
    }

    #[test]
    fn only_data_constraint_and_trigger_rejections_blame_the_rows() {
        for code in ["22003", "23514", "23502", "P0001"] {
            assert!(rejected(code).blames_the_rows(), "{code}");
        }
        for code in ["42501", "42703", "42P01", "28P01", "XX000"] {
            assert!(!rejected(code).blames_the_rows(), "{code}");
        }
        assert!(!StoreError::Unavailable("22 minutes".into()).blames_the_rows());
        assert_eq!(
            rejected("23514").to_string(),
            "the database rejected the statement (SQLSTATE 23514): refused"
        );
    }
}
