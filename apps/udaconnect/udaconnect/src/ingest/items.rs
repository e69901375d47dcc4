//! A request's items, read one at a time: each checked as it is reached
//! and filed as taken or rejected, and the item past
//! `UDACONNECT_INGEST_MAX_BATCH` refused before it is read. What a request
//! holds is bounded by the item limit, whatever its transport sends: every
//! transport fills a [`Batch`] as it parses, never a list of raw items.

use std::time::Duration;

use udaconnect_domain::{Invalid, Timestamp};

use super::{
    rejections::Rejections,
    validate::{self, Checked, Submitted},
};

/// A request holding more locations than the edge takes at once: refused
/// whole, at the first location past the limit, before reading further.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the request holds more than {max} locations; at most {max} are taken at once (UDACONNECT_INGEST_MAX_BATCH)"
)]
pub struct TooMany {
    /// The limit.
    pub max: usize,
}

/// A request's items, each checked as it is read: the good ones, and why
/// the others are not taken. It holds no more than the edge's item limit,
/// and refuses the item past it.
#[derive(Debug)]
pub struct Batch {
    now: Timestamp,
    max_future: Duration,
    max_items: usize,
    read: usize,
    checked: Vec<(usize, Checked)>,
    rejected: Rejections,
}

impl Batch {
    /// An empty request, its items to be checked against `now`, at most
    /// `max_future` ahead; it holds at most `max_items`.
    pub fn new(now: Timestamp, max_future: Duration, max_items: usize) -> Self {
        Self {
            now,
            max_future,
            max_items,
            read: 0,
            checked: Vec::new(),
            rejected: Rejections::default(),
        }
    }

    /// Reads the next item with `read` (which says why it cannot, when it
    /// cannot) and checks it; refused, unread, past the item limit.
    pub fn push(
        &mut self,
        read: impl FnOnce() -> Result<Submitted, Invalid>,
    ) -> Result<(), TooMany> {
        if self.read >= self.max_items {
            return Err(TooMany {
                max: self.max_items,
            });
        }
        let index = self.read;
        self.read += 1;
        match read().and_then(|item| validate::check(item, self.now, self.max_future)) {
            Ok(item) => self.checked.push((index, item)),
            Err(invalid) => self.rejected.push(index, invalid),
        }
        Ok(())
    }

    /// Whether no item was read.
    pub fn is_empty(&self) -> bool {
        self.read == 0
    }

    /// The items that passed the checks, by index, and the others.
    pub(super) fn into_parts(self) -> (Vec<(usize, Checked)>, Rejections) {
        (self.checked, self.rejected)
    }

    /// The indexes of the items that passed the checks, and the others.
    #[cfg(test)]
    pub(crate) fn results(&self) -> (Vec<usize>, &Rejections) {
        (
            self.checked.iter().map(|(index, _)| *index).collect(),
            &self.rejected,
        )
    }
}

#[cfg(test)]
mod tests {
    use udaconnect_domain::Problem;

    use super::*;
    use crate::ingest::validate::Time;

    #[test]
    fn the_item_past_the_limit_is_refused_unread() {
        let now = Timestamp::from_micros(1_600_000_000_000_000);
        let mut batch = Batch::new(now, Duration::from_secs(60), 2);
        assert!(batch.is_empty());
        batch
            .push(|| {
                Ok(Submitted {
                    person_id: 1,
                    lat: 45.0,
                    lon: 7.0,
                    time: Time::Parsed(now),
                    key: None,
                })
            })
            .expect("room for one");
        batch
            .push(|| {
                Err(Invalid::new(
                    "location",
                    Problem::Malformed,
                    "not an object",
                ))
            })
            .expect("room for two");
        let past = batch.push(|| -> Result<Submitted, Invalid> {
            panic!("an item past the limit is not read")
        });
        assert_eq!(past, Err(TooMany { max: 2 }));
        let (checked, rejected) = batch.into_parts();
        assert_eq!(checked.len(), 1);
        assert_eq!(rejected.count(), 1);
        assert_eq!(rejected.listed()[0].index, 1);
    }
}
