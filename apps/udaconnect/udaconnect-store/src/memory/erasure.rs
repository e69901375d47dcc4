//! The embedded store's tombstones: the persons erased, in the order they
//! were, so that a location of theirs still on its way is told apart
//! from one of a person who never existed, a sighting of theirs is passed
//! over by the meetings, and readers of the erasures (an edge, the live
//! streams) learn of each once. It holds ids only, a few bytes a person.

use std::collections::HashSet;

use udaconnect_domain::{Erasures, PersonId, meeting::FeedCursor};

/// The persons erased.
#[derive(Default)]
pub struct Tombstones {
    /// In the order erased: the n-th erasure is at index n − 1.
    order: Vec<PersonId>,
    erased: HashSet<PersonId>,
}

impl Tombstones {
    /// Remembers `id` as erased.
    pub fn record(&mut self, id: PersonId) {
        if self.erased.insert(id) {
            self.order.push(id);
        }
    }

    /// Whether `id` was erased.
    pub fn holds(&self, id: PersonId) -> bool {
        self.erased.contains(&id)
    }

    /// The persons erased since `since` (as counted by
    /// [`FeedCursor::counted`]); without it, none, and the cursor of now.
    pub fn since(&self, since: Option<&FeedCursor>) -> Erasures {
        let now = self.order.len();
        let cursor = FeedCursor::counted(u64::try_from(now).unwrap_or(u64::MAX));
        let persons = match since {
            None => Vec::new(),
            Some(since) => {
                let seen = usize::try_from(since.count())
                    .unwrap_or(usize::MAX)
                    .min(now);
                self.order[seen..].to_vec()
            }
        };
        Erasures { cursor, persons }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_erasure_is_read_once_after_the_cursor_it_follows() {
        let mut tombstones = Tombstones::default();
        let start = tombstones.since(None);
        assert!(start.persons.is_empty());
        tombstones.record(7);
        tombstones.record(3);
        tombstones.record(7);
        assert!(tombstones.holds(3) && !tombstones.holds(4));
        let first = tombstones.since(Some(&start.cursor));
        assert_eq!(first.persons, vec![7, 3]);
        tombstones.record(9);
        let second = tombstones.since(Some(&first.cursor));
        assert_eq!(second.persons, vec![9]);
        assert!(tombstones.since(Some(&second.cursor)).persons.is_empty());
        // A cursor from further on (another store's) reads nothing.
        assert!(
            tombstones
                .since(Some(&FeedCursor::counted(99)))
                .persons
                .is_empty()
        );
    }
}
