//! Erasure: an attendee's data is theirs.
//!
//! A person erased goes with every row about them, in one transaction:
//! their locations, the meetings' record of those locations, every meeting
//! they were either side of, and the claims of their locations'
//! idempotency keys. The store remembers the id (a tombstone), and person
//! ids are never given out again, so the id alone names them for good:
//! their locations still on their way through the bus are dropped instead
//! of stored, their sightings not yet folded into the meetings are passed
//! over, and every process that holds persons in memory (an edge's known
//! persons, the connections replica, the live streams) reads the erasures
//! since it last looked ([`Erasures`]) and forgets them.

use crate::{meeting::FeedCursor, model::PersonId};

/// What erasing a person removed, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    /// Their locations.
    pub locations: u64,
    /// Their locations as the meetings had folded them in.
    pub meeting_positions: u64,
    /// The meetings they were either side of.
    pub meetings: u64,
    /// The claims of their locations' idempotency keys.
    pub key_claims: u64,
}

/// The persons erased since a reader's cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasures {
    /// Where the next read starts.
    pub cursor: FeedCursor,
    /// Who, each once, in no particular order.
    pub persons: Vec<PersonId>,
}
