use std::collections::HashSet;

use rand::{RngExt, SeedableRng, rngs::StdRng, seq::SliceRandom};

use super::*;

const MINUTE: i64 = 60 * 1_000_000;

fn at(minutes: f64) -> Timestamp {
    // Whole microseconds, as stored.
    Timestamp::from_micros((minutes * MINUTE as f64).round() as i64)
}

fn sighting(id: LocationId, person: PersonId, minutes: f64, north_m: f64) -> Sighting {
    Sighting {
        id,
        person,
        at: at(minutes),
        // About 1.1e-5 degrees of latitude per metre.
        position: Position {
            lat: 51.5 + north_m / 111_250.0,
            lon: -0.12,
        },
    }
}

/// Meetings kept the way a store keeps them: the locations applied, the
/// meetings under ids, each batch folded in.
#[derive(Default)]
struct Book {
    applied: Vec<Sighting>,
    applied_ids: HashSet<LocationId>,
    kept: Vec<Kept>,
    next_id: i64,
    joins: usize,
}

impl Book {
    fn apply(&mut self, rules: &MeetingRules, batch: &[Sighting]) -> usize {
        let mut new: Vec<Sighting> = Vec::new();
        for s in batch {
            if self.applied_ids.insert(s.id) {
                new.push(*s);
            }
        }

        let mut changes = 0;
        for (pair, contacts) in contacts_by_pair(rules, &new, &self.applied) {
            let Some((from, to)) = Sweep::span(rules, &contacts) else {
                continue;
            };
            let kept: Vec<Kept> = self
                .kept
                .iter()
                .filter(|k| {
                    k.meeting.persons == pair && k.meeting.end >= from && k.meeting.start <= to
                })
                .copied()
                .collect();
            let fold = Sweep::fold(rules, &kept, &contacts);
            changes += fold.grown.len() + fold.started.len();
            self.joins += fold.joined.len();
            self.kept.retain(|k| !fold.joined.contains(&k.id));
            for grown in fold.grown {
                let slot = self
                    .kept
                    .iter_mut()
                    .find(|k| k.id == grown.id)
                    .expect("kept");
                *slot = grown;
            }
            for meeting in fold.started {
                self.next_id += 1;
                self.kept.push(Kept {
                    id: self.next_id,
                    meeting,
                });
            }
        }
        self.applied.extend(new);
        changes
    }

    fn meetings(&self) -> Vec<Meeting> {
        let mut meetings: Vec<Meeting> = self.kept.iter().map(|k| k.meeting).collect();
        meetings.sort_by_key(|m| (m.persons, m.start));
        meetings
    }
}

#[test]
fn two_people_standing_together_meet_once() {
    let rules = MeetingRules::default();
    let sightings: Vec<Sighting> = (0..10)
        .flat_map(|i| {
            let minute = f64::from(i) * 0.5;
            [
                sighting(2 * i64::from(i) + 1, 1, minute, 0.0),
                sighting(2 * i64::from(i) + 2, 2, minute + 0.1, 2.0),
            ]
        })
        .collect();
    let meetings = reference(&rules, &sightings);
    assert_eq!(meetings.len(), 1, "{meetings:?}");
    let meeting = meetings[0];
    assert_eq!(meeting.persons, (1, 2));
    assert_eq!(meeting.start, at(0.0));
    assert_eq!(meeting.end, at(4.6));
    assert!((meeting.closest.metres - 2.0).abs() < 0.01);
    // Every pair of the 10 + 10 locations within two minutes.
    let expected = sightings
        .iter()
        .filter(|x| x.person == 1)
        .flat_map(|x| {
            sightings.iter().filter(move |y| {
                y.person == 2 && x.at.micros().abs_diff(y.at.micros()) <= 2 * MINUTE as u64
            })
        })
        .count();
    assert_eq!(meeting.contacts, expected as i64);
}

#[test]
fn a_gap_longer_than_the_rule_splits_a_meeting_and_one_as_long_does_not() {
    let rules = MeetingRules::new(5.0, 0, 2 * MINUTE).expect("rules");
    let together = |id: i64, minutes: f64| {
        [
            sighting(id, 1, minutes, 0.0),
            sighting(id + 100, 2, minutes, 1.0),
        ]
    };
    let exactly: Vec<Sighting> = together(1, 0.0)
        .into_iter()
        .chain(together(2, 2.0))
        .collect();
    assert_eq!(reference(&rules, &exactly).len(), 1);
    let longer: Vec<Sighting> = together(1, 0.0)
        .into_iter()
        .chain(together(2, 2.001))
        .collect();
    assert_eq!(reference(&rules, &longer).len(), 2);
}

#[test]
fn same_person_far_apart_or_far_in_time_are_not_contacts() {
    let rules = MeetingRules::default();
    let a = sighting(1, 1, 0.0, 0.0);
    assert!(
        rules.contact(&a, &sighting(2, 1, 0.0, 0.0)).is_none(),
        "same person"
    );
    assert!(
        rules.contact(&a, &sighting(3, 2, 0.0, 6.0)).is_none(),
        "6 m apart"
    );
    assert!(
        rules.contact(&a, &sighting(4, 2, 2.01, 0.0)).is_none(),
        "over 2 min apart"
    );
    let contact = rules
        .contact(&a, &sighting(5, 2, 2.0, 4.9))
        .expect("4.9 m, 2 min");
    assert_eq!((contact.start, contact.end), (at(0.0), at(2.0)));
    assert_eq!(contact.closest.locations, (1, 5));
}

#[test]
fn a_contact_between_two_meetings_joins_them_under_the_older_id() {
    let rules = MeetingRules::new(5.0, 0, MINUTE).expect("rules");
    let mut book = Book::default();
    book.apply(
        &rules,
        &[sighting(1, 1, 0.0, 0.0), sighting(2, 2, 0.0, 1.0)],
    );
    book.apply(
        &rules,
        &[sighting(3, 1, 1.8, 0.0), sighting(4, 2, 1.8, 1.0)],
    );
    assert_eq!(book.meetings().len(), 2);
    let first = book.kept.iter().map(|k| k.id).min().expect("kept");
    book.apply(
        &rules,
        &[sighting(5, 1, 0.9, 0.0), sighting(6, 2, 0.9, 1.0)],
    );
    assert_eq!(book.meetings().len(), 1);
    assert_eq!(book.kept[0].id, first);
    assert_eq!(book.kept[0].meeting.contacts, 3);
    assert_eq!(book.meetings(), reference(&rules, &book.applied));
}

#[test]
fn rules_refuse_what_they_cannot_keep() {
    assert!(MeetingRules::new(101.0, 0, 0).is_err());
    assert!(MeetingRules::new(f64::NAN, 0, 0).is_err());
    assert!(MeetingRules::new(5.0, -1, 0).is_err());
    assert!(MeetingRules::new(5.0, 0, 8 * 24 * 60 * MINUTE).is_err());
}

/// A crowd milling about a few spots for two hours, phones reporting
/// at random.
fn crowd(rng: &mut StdRng, persons: i32, per_person: usize) -> Vec<Sighting> {
    let mut id = 0;
    let mut sightings = Vec::new();
    for person in 1..=persons {
        for _ in 0..per_person {
            id += 1;
            let spot = f64::from(rng.random_range(0..3_u8)) * 20.0;
            sightings.push(sighting(
                id,
                person,
                rng.random_range(0.0..120.0),
                spot + rng.random_range(-4.0..4.0),
            ));
        }
    }
    sightings
}

/// The heart of it: whatever order locations arrive in, in whatever
/// batches, some of them twice, folding gives the reference's meetings.
#[test]
fn folding_in_any_order_gives_the_reference_meetings() {
    let (mut met, mut joins) = (0, 0);
    for seed in 0..40 {
        let mut rng = StdRng::seed_from_u64(seed);
        let rules = MeetingRules::new(
            5.0,
            rng.random_range(MINUTE / 2..3 * MINUTE),
            rng.random_range(0..5 * MINUTE),
        )
        .expect("rules");
        let (persons, per_person) = (rng.random_range(2..7), rng.random_range(5..60));
        let sightings = crowd(&mut rng, persons, per_person);
        let expected = reference(&rules, &sightings);
        let mut arrivals = sightings.clone();
        arrivals.shuffle(&mut rng);
        // Some come again, as after a consumer restarts.
        let again: Vec<Sighting> = arrivals
            .iter()
            .filter(|_| rng.random_bool(0.2))
            .copied()
            .collect();
        arrivals.extend(again);
        let mut book = Book::default();
        let mut rest = arrivals.as_slice();
        while !rest.is_empty() {
            let size = rng.random_range(1..=rest.len().min(25));
            let (batch, tail) = rest.split_at(size);
            book.apply(&rules, batch);
            rest = tail;
        }
        assert_eq!(book.meetings(), expected, "seed {seed}");
        met += expected.len();
        joins += book.joins;
    }
    // The data exercises what it is meant to: many meetings, and
    // contacts arriving late enough to join two meetings into one.
    assert!(met > 200, "{met} meetings");
    assert!(joins > 10, "{joins} joins");
}

#[test]
fn the_cells_near_a_position_hold_every_position_within_the_distance() {
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..2000 {
        let center = Position {
            lat: rng.random_range(-85.0..85.0),
            lon: rng.random_range(-179.9..179.9),
        };
        let metres = rng.random_range(0.0..MAX_MEETING_DISTANCE_M);
        let cells = cells_near(center, metres);
        // A point at that distance in a random direction.
        let bearing: f64 = rng.random_range(0.0..std::f64::consts::TAU);
        let lat = center.lat + metres * bearing.cos() / 111_000.0;
        let lon = center.lon + metres * bearing.sin() / (111_500.0 * center.lat.to_radians().cos());
        let other = Position { lat, lon };
        if geodesic::distance(center, other) <= metres {
            assert!(
                cells.contains(&cell_of(other)),
                "{center:?} {other:?} {metres}"
            );
        }
        assert!(cells.contains(&cell_of(center)));
    }
}

#[test]
fn cursors_are_read_back_only_as_a_store_writes_them() {
    for good in ["0:5:", "10:20:", "10:20:10,15,19", "739:739:"] {
        assert!(FeedCursor::parse(good).is_some(), "{good}");
    }
    for bad in [
        "",
        "5",
        "5:4:",
        "1:2:3:4",
        "a:b:",
        "10:20:9",
        "10:20:20",
        "10:20:15,15",
        "10:20:16,15",
        " 1:2:",
        "1:2:,",
        "-1:2:",
        "99999999999999999999999:1:",
    ] {
        assert!(FeedCursor::parse(bad).is_none(), "{bad}");
    }
    let many = (0..1001)
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",");
    assert!(FeedCursor::parse(&format!("0:2000:{many}")).is_none());
    assert_eq!(FeedCursor::counted(7).count(), 7);
    assert_eq!(FeedCursor::parse("0:7:").map(|c| c.count()), Some(7));
}

/// Two persons side by side for an hour, reporting every 10 s: thousands
/// of contacts, chained as they accumulate, give the reference's meeting,
/// in one batch and in many.
#[test]
fn many_contacts_of_one_pair_chain_as_the_reference_does() {
    let rules = MeetingRules::default();
    let sightings: Vec<Sighting> = (0..360)
        .flat_map(|i| {
            let minute = f64::from(i) / 6.0;
            [
                sighting(2 * i64::from(i) + 1, 1, minute, 0.0),
                sighting(2 * i64::from(i) + 2, 2, minute + 0.05, 1.5),
            ]
        })
        .collect();
    let expected = reference(&rules, &sightings);
    assert_eq!(expected.len(), 1);
    assert!(
        expected[0].contacts > 5 * PAIR_COMPACT_AT as i64,
        "{}",
        expected[0].contacts
    );
    let mut whole = Book::default();
    whole.apply(&rules, &sightings);
    assert_eq!(whole.meetings(), expected);
    let mut parts = Book::default();
    for batch in sightings.chunks(37) {
        parts.apply(&rules, batch);
    }
    assert_eq!(parts.meetings(), expected);
}

/// A page's one bound keeps exactly the meetings that start before the
/// range's end and come after the cursor, wherever the cursor is.
#[test]
fn a_pages_bound_is_its_end_and_its_cursor_together() {
    let end = at(60.0);
    let cursors = [
        None,
        Some(MeetingCursor {
            start: at(30.0),
            id: 7,
        }),
        Some(MeetingCursor { start: end, id: 7 }),
        Some(MeetingCursor {
            start: at(90.0),
            id: 1,
        }),
    ];
    for after in cursors {
        let query = MeetingQuery {
            person: 1,
            start: at(0.0),
            end,
            after,
            limit: 10,
        };
        let below = query.below();
        for minutes in [29.0, 30.0, 31.0, 59.0, 60.0, 61.0] {
            for id in [1, 6, 7, 8, i64::MAX] {
                let start = at(minutes);
                let kept = Kept {
                    id,
                    meeting: Meeting {
                        persons: (1, 2),
                        start,
                        end: start,
                        contacts: 1,
                        closest: Closest {
                            metres: 0.0,
                            at: start,
                            place: Position { lat: 0.0, lon: 0.0 },
                            locations: (1, 2),
                        },
                    },
                };
                assert_eq!(
                    (start, id) < below,
                    start < end && query.is_after_cursor(&kept),
                    "{after:?}, a meeting from minute {minutes} with id {id}"
                );
            }
        }
    }
}
