//! The questions UdaConnect answers, with their exact semantics, which
//! every store implements alike.
//!
//! **Compatibility** ([`CompatQuery`], the original's
//! `GET /api/persons/{id}/connection`): the person's own locations with
//! `start <= t < end` (dates, at midnight UTC); for each of them, every
//! other person's location within `distance` metres of it, measured on the
//! ellipsoid, with `start <= t < end + 1 day`. One row per (own, other)
//! pair: an other location near two own locations appears twice. Nothing
//! relates the two times.
//!
//! **Contacts** ([`ConnectionQuery`], v2): the same pairs (*encounters*),
//! summarised per other person: how many, the first and last time (of the
//! other's locations), and the closest one. With `within`, an encounter
//! also needs the two times at most `within` apart, and the day rule on
//! the other's time no longer applies: they were at the same place at the
//! same time. Sorted by most encounters, then by person id, and paged by a
//! [`ContactCursor`].

use chrono::NaiveDate;

use crate::{
    model::{Invalid, Location, LocationId, Person, PersonId, Position, Problem},
    time::{MICROS_PER_DAY, Timestamp},
};

/// The largest distance a query may ask for, in metres.
pub const MAX_DISTANCE_M: f64 = 10_000.0;
/// The longest `within` accepted.
pub const MAX_WITHIN_MICROS: i64 = 7 * MICROS_PER_DAY;
/// The most results one page may hold.
pub const MAX_PAGE: usize = 1000;

/// A search radius in metres: 0 ..= [`MAX_DISTANCE_M`].
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Distance(f64);

impl Distance {
    /// Checks the range (named `field` in the error).
    pub fn new(field: &'static str, metres: f64) -> Result<Self, Invalid> {
        if !metres.is_finite() || !(0.0..=MAX_DISTANCE_M).contains(&metres) {
            return Err(Invalid::new(
                field,
                Problem::OutOfRange,
                format!("must be a distance in metres from 0 to {MAX_DISTANCE_M}, got {metres}"),
            ));
        }
        Ok(Self(metres))
    }

    /// Metres.
    pub fn metres(self) -> f64 {
        self.0
    }
}

/// How close in time two locations must be to count as one encounter:
/// 1 µs ..= 7 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Within(i64);

impl Within {
    /// Checks the range (named `field` in the error).
    pub fn from_micros(field: &'static str, micros: i64) -> Result<Self, Invalid> {
        if !(1..=MAX_WITHIN_MICROS).contains(&micros) {
            return Err(Invalid::new(
                field,
                Problem::OutOfRange,
                "must be a duration from 1µs to 7 days, such as 10m or 1h",
            ));
        }
        Ok(Self(micros))
    }

    /// Microseconds.
    pub fn micros(self) -> i64 {
        self.0
    }
}

/// The original API's connection query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompatQuery {
    /// Whose connections.
    pub person_id: PersonId,
    /// First day (included).
    pub start: NaiveDate,
    /// Own locations end before this day; others' a day later.
    pub end: NaiveDate,
    /// How near.
    pub distance: Distance,
    /// At most this many rows, the first in the answer's order (the API
    /// asks for one more than it serves, to tell an answer too large).
    pub limit: usize,
}

impl CompatQuery {
    /// `[start, end)` for the person's own locations.
    pub fn own_window(&self) -> (Timestamp, Timestamp) {
        (
            Timestamp::start_of(self.start),
            Timestamp::start_of(self.end),
        )
    }

    /// `[start, end + 1 day)` for the others' locations.
    pub fn others_window(&self) -> (Timestamp, Timestamp) {
        let (start, end) = self.own_window();
        (start, end.plus_micros(MICROS_PER_DAY))
    }
}

/// One row of the original's answer: another person's location near one
/// of the person's own.
#[derive(Debug, Clone, PartialEq)]
pub struct CompatConnection {
    /// The other person, shared by every row of theirs: an answer of a
    /// hundred thousand rows holds each person's names once.
    pub person: std::sync::Arc<Person>,
    /// Their location.
    pub location: Location,
}

/// The v2 connection query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectionQuery {
    /// Whose connections.
    pub person_id: PersonId,
    /// Own locations from this instant (included)...
    pub start: Timestamp,
    /// ... to this one (excluded).
    pub end: Timestamp,
    /// How near.
    pub distance: Distance,
    /// How close in time, if at all.
    pub within: Option<Within>,
    /// Start after this contact (the last of the previous page).
    pub after: Option<ContactCursor>,
    /// At most this many contacts (1 ..= [`MAX_PAGE`]).
    pub limit: usize,
}

impl ConnectionQuery {
    /// `[start, end)` for the person's own locations.
    pub fn own_window(&self) -> (Timestamp, Timestamp) {
        (self.start, self.end)
    }

    /// The times (both ends included) an other location may have to be an
    /// encounter with an own location at `own`.
    pub fn others_span(&self, own: Timestamp) -> (Timestamp, Timestamp) {
        match self.within {
            Some(within) => (
                own.plus_micros(-within.micros()),
                own.plus_micros(within.micros()),
            ),
            None => (
                self.start,
                self.end.plus_micros(MICROS_PER_DAY).plus_micros(-1),
            ),
        }
    }
}

/// Another person, and when and where they were near the person asked
/// about.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    /// Who.
    pub person: Person,
    /// How many (own, other) location pairs were close.
    pub encounters: u64,
    /// The earliest of the other's locations in those pairs.
    pub first_met: Timestamp,
    /// The latest of them.
    pub last_met: Timestamp,
    /// The closest pair.
    pub closest: Closest,
}

/// The closest encounter with a contact: the smallest distance; among
/// equals, the earliest other location; among those, the lowest id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Closest {
    /// Metres, rounded to the millimetre.
    pub distance_m: f64,
    /// The other's location id.
    pub location_id: LocationId,
    /// Where the other was.
    pub position: Position,
    /// When.
    pub time: Timestamp,
}

/// Where a page of contacts ends: the last contact's sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContactCursor {
    /// Its encounters.
    pub encounters: u64,
    /// Its person id.
    pub person_id: PersonId,
}

impl ContactCursor {
    /// The cursor after `contact`.
    pub fn after(contact: &Contact) -> Self {
        Self {
            encounters: contact.encounters,
            person_id: contact.person.id,
        }
    }

    /// Whether `contact` sorts after this cursor (most encounters first,
    /// then lowest person id).
    pub fn precedes(&self, contact: &Contact) -> bool {
        contact.encounters < self.encounters
            || (contact.encounters == self.encounters && contact.person.id > self.person_id)
    }
}

/// Rounds metres to the millimetre, as contacts report them.
pub fn round_to_mm(metres: f64) -> f64 {
    (metres * 1000.0).round() / 1000.0
}

/// A page of persons: in `order`, optionally only those whose first name,
/// last name or company contains `text` (case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonSearch {
    /// The text to look for; `None` for everyone.
    pub text: Option<String>,
    /// Which way the ids run.
    pub order: PersonOrder,
    /// Past this id, in `order`: greater ids by id, smaller ones newest
    /// first.
    pub after: Option<PersonId>,
    /// At most this many (1 ..= [`MAX_PAGE`]).
    pub limit: usize,
}

/// The order of a page of persons.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PersonOrder {
    /// By id, the first created first.
    #[default]
    Id,
    /// By id descending: the last created first.
    Newest,
}

/// A page of one person's locations, by time then id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocationRange {
    /// Whose.
    pub person_id: PersonId,
    /// From (included).
    pub start: Timestamp,
    /// To (excluded).
    pub end: Timestamp,
    /// After this location (the last of the previous page).
    pub after: Option<LocationCursor>,
    /// At most this many (1 ..= [`MAX_PAGE`]).
    pub limit: usize,
}

impl LocationRange {
    /// The start of the range and the cursor as one bound: a location on
    /// this page has its (time, id) above it. Location ids are positive,
    /// so `(start, LocationId::MIN)` is "at or after the start".
    pub fn above(&self) -> (Timestamp, LocationId) {
        let start = (self.start, LocationId::MIN);
        match self.after {
            Some(cursor) if (cursor.time, cursor.id) > start => (cursor.time, cursor.id),
            _ => start,
        }
    }
}

/// Where a page of locations ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocationCursor {
    /// The last location's time.
    pub time: Timestamp,
    /// Its id.
    pub id: LocationId,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("a date")
    }

    /// A page's one bound keeps exactly the locations at or after the
    /// range's start that come after the cursor, wherever the cursor is.
    #[test]
    fn a_pages_bound_is_its_start_and_its_cursor_together() {
        let minute = |m: i64| Timestamp::from_micros(m * 60_000_000);
        let start = minute(60);
        let cursors = [
            None,
            Some(LocationCursor {
                time: minute(30),
                id: 7,
            }),
            Some(LocationCursor { time: start, id: 7 }),
            Some(LocationCursor {
                time: minute(90),
                id: 7,
            }),
        ];
        for after in cursors {
            let range = LocationRange {
                person_id: 1,
                start,
                end: minute(600),
                after,
                limit: 10,
            };
            let above = range.above();
            for time in [29, 30, 31, 59, 60, 61, 89, 90, 91].map(minute) {
                for id in [1, 6, 7, 8, LocationId::MAX] {
                    let kept = time >= start
                        && after.is_none_or(|cursor| (time, id) > (cursor.time, cursor.id));
                    assert_eq!((time, id) > above, kept, "{after:?}, {time:?} {id}");
                }
            }
        }
    }

    #[test]
    fn the_compat_windows_follow_the_original() {
        let query = CompatQuery {
            person_id: 1,
            start: date(2020, 1, 1),
            end: date(2020, 12, 30),
            distance: Distance::new("distance", 5.0).expect("valid"),
            limit: 10,
        };
        let (own_start, own_end) = query.own_window();
        let (others_start, others_end) = query.others_window();
        assert_eq!(own_start.to_string(), "2020-01-01T00:00:00Z");
        assert_eq!(own_end.to_string(), "2020-12-30T00:00:00Z");
        assert_eq!(others_start, own_start);
        assert_eq!(others_end.to_string(), "2020-12-31T00:00:00Z");
    }

    #[test]
    fn distances_and_windows_are_bounded() {
        assert!(Distance::new("distance", -1.0).is_err());
        assert!(Distance::new("distance", f64::INFINITY).is_err());
        assert!(Distance::new("distance", MAX_DISTANCE_M + 1.0).is_err());
        assert!(Distance::new("distance", 0.0).is_ok());
        assert!(Within::from_micros("within", 0).is_err());
        assert!(Within::from_micros("within", MAX_WITHIN_MICROS + 1).is_err());
    }

    #[test]
    fn within_replaces_the_day_rule() {
        let start = Timestamp::start_of(date(2020, 6, 1));
        let mut query = ConnectionQuery {
            person_id: 1,
            start,
            end: start.plus_micros(MICROS_PER_DAY),
            distance: Distance::new("distance", 5.0).expect("valid"),
            within: None,
            after: None,
            limit: 10,
        };
        let own = start.plus_micros(3_600_000_000);
        assert_eq!(
            query.others_span(own),
            (start, start.plus_micros(2 * MICROS_PER_DAY - 1))
        );
        query.within = Some(Within::from_micros("within", 600_000_000).expect("valid"));
        assert_eq!(
            query.others_span(own),
            (own.plus_micros(-600_000_000), own.plus_micros(600_000_000))
        );
    }

    #[test]
    fn cursors_follow_the_sort_order() {
        let contact = |encounters, id| Contact {
            person: Person {
                id,
                first_name: "a".into(),
                last_name: "b".into(),
                company_name: "c".into(),
            },
            encounters,
            first_met: Timestamp::from_micros(0),
            last_met: Timestamp::from_micros(0),
            closest: Closest {
                distance_m: 1.0,
                location_id: 1,
                position: Position { lat: 0.0, lon: 0.0 },
                time: Timestamp::from_micros(0),
            },
        };
        let cursor = ContactCursor::after(&contact(5, 10));
        assert!(cursor.precedes(&contact(4, 1)));
        assert!(cursor.precedes(&contact(5, 11)));
        assert!(!cursor.precedes(&contact(5, 10)));
        assert!(!cursor.precedes(&contact(6, 99)));
        assert_eq!(round_to_mm(1.23456), 1.235);
    }
}
