//! The friends an OwnTracks app shows: whom the phone's person met today
//! (UTC), each where the two last met, never where that person is now.
//!
//! In HTTP mode the app reads the answer to each of its posts as an array
//! of its own messages, and files a friend's under `owntracks/http/<tid>`
//! (Android and iOS alike): a `card` (the name) and a `location` with the
//! same `tid` are one friend on its map. Each person met is answered so:
//! the card with their name, and a location at the meeting's closest
//! point, timed at the meeting's end. Nothing else of the other person is
//! read: the answer says where they were together, which both already
//! know, and nothing of where the other went afterwards.
//!
//! The answer is bounded: the day's most recent [`MEETINGS_READ`] meetings
//! are read, and at most [`MAX_FRIENDS`] persons answered, the most
//! recently met first. A `tid` is two letters made of the other person's
//! id, the next free pair when two ids share one, so that no two friends
//! of an answer are mixed up.

use std::collections::{BTreeMap, HashSet};

use futures::future::join_all;
use serde::Serialize;
use udaconnect_domain::{
    Person, PersonId, Store, StoreError, Timestamp,
    meeting::{Kept, MeetingQuery},
};
use utoipa::ToSchema;

/// The most persons one answer names.
pub const MAX_FRIENDS: usize = 50;
/// The most meetings read for one answer (most recent first).
pub const MEETINGS_READ: usize = 200;
/// Two-letter `tid`s there are.
const TIDS: usize = 26 * 26;
/// Microseconds in a second.
const MICROS_PER_SECOND: i64 = 1_000_000;

/// One message of the answer, as the app reads it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(tag = "_type", rename_all = "lowercase")]
pub enum FriendMessage {
    /// Who the friend is.
    Card {
        /// Ties the card to its location: two letters.
        tid: String,
        /// First and last name.
        name: String,
    },
    /// Where the two last met.
    Location {
        /// Ties the location to its card: two letters.
        tid: String,
        /// The meeting's closest point: latitude.
        lat: f64,
        /// ... and longitude.
        lon: f64,
        /// The meeting's end, seconds since 1970-01-01.
        tst: i64,
    },
}

/// The friends of `person` (a card and a location each) for the UTC day of
/// `now`, read from `store`.
pub async fn friends(
    store: &dyn Store,
    person: PersonId,
    now: Timestamp,
) -> Result<Vec<FriendMessage>, StoreError> {
    let (start, end) = day_of(now);
    let meetings = store
        .meetings(&MeetingQuery {
            person,
            start,
            end,
            after: None,
            limit: MEETINGS_READ,
        })
        .await?;
    let met = last_met(person, &meetings);
    let persons = join_all(met.iter().map(|(other, _)| store.person(*other))).await;
    let mut names = BTreeMap::new();
    for found in persons {
        if let Some(other) = found? {
            names.insert(other.id, other);
        }
    }
    Ok(messages(&met, &names))
}

/// The UTC day `now` falls in: from its midnight to the next.
fn day_of(now: Timestamp) -> (Timestamp, Timestamp) {
    let day = now.to_datetime().date_naive();
    let end = day
        .succ_opt()
        .map_or(Timestamp::from_micros(i64::MAX), Timestamp::start_of);
    (Timestamp::start_of(day), end)
}

/// Each other person of `meetings` with the meeting that ended last, the
/// most recent first, at most [`MAX_FRIENDS`] of them.
fn last_met(person: PersonId, meetings: &[Kept]) -> Vec<(PersonId, &Kept)> {
    let mut last: BTreeMap<PersonId, &Kept> = BTreeMap::new();
    for kept in meetings {
        let (a, b) = kept.meeting.persons;
        let other = if a == person { b } else { a };
        let entry = last.entry(other).or_insert(kept);
        if kept.meeting.end > entry.meeting.end {
            *entry = kept;
        }
    }
    let mut met: Vec<(PersonId, &Kept)> = last.into_iter().collect();
    met.sort_by(|(a, x), (b, y)| y.meeting.end.cmp(&x.meeting.end).then(a.cmp(b)));
    met.truncate(MAX_FRIENDS);
    met
}

/// The card and the location of each person of `met` found in `names` (one
/// who no longer exists is left out), in `met`'s order.
fn messages(met: &[(PersonId, &Kept)], names: &BTreeMap<PersonId, Person>) -> Vec<FriendMessage> {
    let mut taken = HashSet::new();
    let mut answer = Vec::with_capacity(met.len() * 2);
    for (other, kept) in met {
        let Some(person) = names.get(other) else {
            continue;
        };
        let Some(tid) = tid(*other, &mut taken) else {
            continue;
        };
        let name = format!("{} {}", person.first_name, person.last_name)
            .trim()
            .to_owned();
        answer.push(FriendMessage::Card {
            tid: tid.clone(),
            name,
        });
        let meeting = &kept.meeting;
        answer.push(FriendMessage::Location {
            tid,
            lat: meeting.closest.place.lat,
            lon: meeting.closest.place.lon,
            tst: meeting.end.micros().div_euclid(MICROS_PER_SECOND),
        });
    }
    answer
}

/// Two letters made of `id` (its remainder by 676, in base 26), or the next
/// pair not in `taken`; the pair is added to `taken`. None once all 676 are
/// taken, which an answer of at most [`MAX_FRIENDS`] never reaches.
fn tid(id: PersonId, taken: &mut HashSet<usize>) -> Option<String> {
    let first = usize::try_from(id.rem_euclid(26 * 26)).unwrap_or(0);
    let free = (0..TIDS)
        .map(|step| (first + step) % TIDS)
        .find(|candidate| taken.insert(*candidate))?;
    let letter = |n: usize| char::from(b'A' + u8::try_from(n).unwrap_or(0));
    Some([letter(free / 26), letter(free % 26)].iter().collect())
}

#[cfg(test)]
mod tests {
    use udaconnect_domain::{
        Position,
        meeting::{Closest, Meeting},
    };

    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_micros(seconds * MICROS_PER_SECOND)
    }

    fn kept(id: i64, persons: (PersonId, PersonId), end: i64, lat: f64) -> Kept {
        Kept {
            id,
            meeting: Meeting {
                persons,
                start: at(end - 60),
                end: at(end),
                contacts: 1,
                closest: Closest {
                    metres: 1.0,
                    at: at(end),
                    place: Position { lat, lon: 7.0 },
                    locations: (id * 10, id * 10 + 1),
                },
            },
        }
    }

    fn person(id: PersonId, first: &str, last: &str) -> Person {
        Person {
            id,
            first_name: first.to_owned(),
            last_name: last.to_owned(),
            company_name: "Co".to_owned(),
        }
    }

    #[test]
    fn each_person_met_is_a_card_and_where_they_last_met() {
        // Person 1 met 2 twice (the later meeting counts) and 30 once; 4
        // no longer exists.
        let meetings = [
            kept(1, (1, 2), 1_000, 45.0),
            kept(2, (1, 30), 2_000, 46.0),
            kept(3, (1, 2), 1_500_000_000, 47.0),
            kept(4, (1, 4), 3_000, 48.0),
        ];
        let met = last_met(1, &meetings);
        assert_eq!(
            met.iter()
                .map(|(other, k)| (*other, k.id))
                .collect::<Vec<_>>(),
            [(2, 3), (4, 4), (30, 2)]
        );
        let names = BTreeMap::from([
            (2, person(2, "Grace", "Hopper")),
            (30, person(30, "Ada", "")),
        ]);
        assert_eq!(
            messages(&met, &names),
            [
                FriendMessage::Card {
                    tid: "AC".to_owned(),
                    name: "Grace Hopper".to_owned()
                },
                FriendMessage::Location {
                    tid: "AC".to_owned(),
                    lat: 47.0,
                    lon: 7.0,
                    tst: 1_500_000_000
                },
                FriendMessage::Card {
                    tid: "BE".to_owned(),
                    name: "Ada".to_owned()
                },
                FriendMessage::Location {
                    tid: "BE".to_owned(),
                    lat: 46.0,
                    lon: 7.0,
                    tst: 2_000
                },
            ]
        );
    }

    #[test]
    fn the_app_reads_each_message_with_its_type() {
        let json = serde_json::to_value([
            FriendMessage::Card {
                tid: "AC".to_owned(),
                name: "Grace Hopper".to_owned(),
            },
            FriendMessage::Location {
                tid: "AC".to_owned(),
                lat: 47.5,
                lon: 7.25,
                tst: 1_500_000_000,
            },
        ])
        .expect("JSON");
        assert_eq!(
            json,
            serde_json::json!([
                {"_type": "card", "tid": "AC", "name": "Grace Hopper"},
                {"_type": "location", "tid": "AC", "lat": 47.5, "lon": 7.25, "tst": 1_500_000_000},
            ])
        );
    }

    #[test]
    fn the_answer_holds_the_most_recently_met_up_to_its_limit() {
        let meetings: Vec<Kept> = (0..80)
            .map(|n| kept(n, (1, 100 + n as PersonId), 10_000 + n, 45.0))
            .collect();
        let met = last_met(1, &meetings);
        assert_eq!(met.len(), MAX_FRIENDS);
        assert_eq!(met[0].0, 179);
        assert_eq!(met[MAX_FRIENDS - 1].0, 130);
    }

    #[test]
    fn tids_are_two_letters_of_the_id_and_unique_in_an_answer() {
        let mut taken = HashSet::new();
        assert_eq!(tid(0, &mut taken).as_deref(), Some("AA"));
        assert_eq!(tid(27, &mut taken).as_deref(), Some("BB"));
        // 676 and 0 share AA, 703 and 27 BB: each takes the next pair.
        assert_eq!(tid(676, &mut taken).as_deref(), Some("AB"));
        assert_eq!(tid(703, &mut taken).as_deref(), Some("BC"));
        assert_eq!(tid(675, &mut taken).as_deref(), Some("ZZ"));
        assert_eq!(tid(-1, &mut taken).as_deref(), Some("AC"));
        let mut all = HashSet::new();
        for id in 0..676 {
            assert!(tid(id * 676, &mut all).is_some());
        }
        assert_eq!(tid(5, &mut all), None);
    }

    #[test]
    fn today_is_the_utc_day() {
        let (start, end) = day_of(Timestamp::from_datetime(
            "2021-03-01T23:59:59Z".parse().expect("a time"),
        ));
        assert_eq!(start.to_string(), "2021-03-01T00:00:00Z");
        assert_eq!(end.to_string(), "2021-03-02T00:00:00Z");
    }
}
