//! Why items of a request were not taken, kept within a bound whatever the
//! request: the first [`MAX_LISTED`] by position, each with its field and
//! problem, and a count of them all. A batch of ten thousand bad items
//! costs an answer of a hundred, and the edge's memory no more.

use std::collections::HashMap;

use udaconnect_domain::{Invalid, LocationId, Problem};

/// The most rejections an answer lists; the others are only counted.
pub const MAX_LISTED: usize = 100;

/// One item not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Its position in the request, from 0.
    pub index: usize,
    /// Why, the field named as the v2 API and the gRPC batches name it.
    pub invalid: Invalid,
    /// For an idempotency key that stands for another location already
    /// ([`Problem::Conflict`]): that location's id.
    pub stored_id: Option<LocationId>,
}

/// The items of one request not taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejections {
    /// The first [`MAX_LISTED`], by index.
    listed: Vec<Rejection>,
    /// All of them.
    count: usize,
    /// All of them by field and problem, for the metrics: as many entries
    /// at most as a location has fields times the kinds of problem.
    tally: HashMap<(&'static str, Problem), u64>,
}

impl Rejections {
    /// Files item `index` as not taken for `invalid`; listed if it is
    /// among the first [`MAX_LISTED`] by index, counted in any case.
    pub fn push(&mut self, index: usize, invalid: Invalid) {
        self.file(index, invalid, None);
    }

    /// Files item `index` as not taken because its idempotency key stands
    /// for the location `stored_id` already (`invalid` says so).
    pub fn conflict(&mut self, index: usize, stored_id: LocationId, invalid: Invalid) {
        self.file(index, invalid, Some(stored_id));
    }

    fn file(&mut self, index: usize, invalid: Invalid, stored_id: Option<LocationId>) {
        self.count += 1;
        *self
            .tally
            .entry((invalid.field, invalid.problem))
            .or_default() += 1;
        let at = self
            .listed
            .partition_point(|rejection| rejection.index < index);
        if at < MAX_LISTED {
            self.listed.insert(
                at,
                Rejection {
                    index,
                    invalid,
                    stored_id,
                },
            );
            self.listed.truncate(MAX_LISTED);
        }
    }

    /// The first [`MAX_LISTED`] rejections, by index.
    pub fn listed(&self) -> &[Rejection] {
        &self.listed
    }

    /// How many items were rejected, listed or not.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Whether every item was taken.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// How many were rejected for each field and problem.
    pub fn tally(&self) -> impl Iterator<Item = (&'static str, Problem, u64)> + '_ {
        self.tally
            .iter()
            .map(|((field, problem), count)| (*field, *problem, *count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(field: &'static str) -> Invalid {
        Invalid::new(field, Problem::Malformed, "bad")
    }

    #[test]
    fn the_first_hundred_by_index_are_listed_and_all_counted() {
        let mut rejections = Rejections::default();
        for index in (0..500).filter(|index| index % 2 == 1) {
            rejections.push(index, invalid("lat"));
        }
        // Found later (a person looked up after the fields were read), yet
        // earlier in the request.
        rejections.push(0, invalid("person_id"));
        rejections.push(998, invalid("person_id"));
        assert_eq!(rejections.count(), 252);
        let listed: Vec<usize> = rejections.listed().iter().map(|r| r.index).collect();
        assert_eq!(listed.len(), MAX_LISTED);
        assert_eq!(listed[..3], [0, 1, 3]);
        assert_eq!(listed.last(), Some(&197));
        let mut tally: Vec<_> = rejections.tally().collect();
        tally.sort_unstable_by_key(|(field, _, _)| *field);
        assert_eq!(
            tally,
            [
                ("lat", Problem::Malformed, 250),
                ("person_id", Problem::Malformed, 2)
            ]
        );
    }
}
