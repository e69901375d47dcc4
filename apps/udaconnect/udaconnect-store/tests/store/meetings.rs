//! Meetings folded in by the PostGIS store equal the one-pass reference,
//! whatever the order and batches the locations come in, redelivered, and
//! folded by several processes at once (serializable transactions); the
//! embedded store gives the same; a person's meetings are paged most
//! recent first.

use std::sync::Arc;

use rand::{RngExt, SeedableRng, rngs::StdRng, seq::SliceRandom};
use udaconnect_domain::{
    Position, Store,
    meeting::{Kept, Meeting, MeetingCursor, MeetingQuery, MeetingRules, Sighting, reference},
};
use udaconnect_store::MemoryStore;

use crate::helpers::{june, migrated, store};

const MINUTE: i64 = 60_000_000;

/// Persons milling about three spots for two hours, reporting at random,
/// far apart spots at the edges of grid cells.
fn crowd(seed: u64, persons: i32, per_person: usize) -> Vec<Sighting> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut sightings = Vec::new();
    let mut id = 0;
    for person in 1..=persons {
        for _ in 0..per_person {
            id += 1;
            let spot = f64::from(rng.random_range(0..3_u8)) * 0.0003;
            sightings.push(Sighting {
                id,
                person,
                at: june().plus_micros(rng.random_range(0..120 * MINUTE)),
                position: Position {
                    lat: 37.5534 + spot + rng.random_range(-0.00004..0.00004),
                    lon: -122.2908 + rng.random_range(-0.00005..0.00005),
                },
            });
        }
    }
    sightings
}

/// `sightings` shuffled, a fifth of them twice, cut into batches.
fn arrivals(seed: u64, sightings: &[Sighting]) -> Vec<Vec<Sighting>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut all = sightings.to_vec();
    all.shuffle(&mut rng);
    let again: Vec<Sighting> = all
        .iter()
        .filter(|_| rng.random_bool(0.2))
        .copied()
        .collect();
    all.extend(again);
    let mut batches = Vec::new();
    let mut rest = all.as_slice();
    while !rest.is_empty() {
        let size = rng.random_range(1..=rest.len().min(40));
        let (batch, tail) = rest.split_at(size);
        batches.push(batch.to_vec());
        rest = tail;
    }
    batches
}

/// Every meeting of `store`, as the reference sorts them.
async fn all_meetings(store: &dyn Store, persons: i32) -> Vec<Meeting> {
    let mut meetings = Vec::new();
    for person in 1..=persons {
        let page = store
            .meetings(&MeetingQuery {
                person,
                start: june().plus_micros(-24 * 60 * MINUTE),
                end: june().plus_micros(24 * 60 * MINUTE),
                after: None,
                limit: 1000,
            })
            .await
            .expect("meetings");
        meetings.extend(
            page.into_iter()
                .map(|k| k.meeting)
                .filter(|m| m.persons.0 == person),
        );
    }
    meetings.sort_by_key(|m| (m.persons, m.start));
    meetings
}

#[tokio::test]
async fn postgis_meetings_equal_the_reference_in_any_order_and_with_two_folders_at_once() {
    let db = migrated().await;
    let pg = Arc::new(store(&db.url));
    let memory = MemoryStore::new();
    let rules = MeetingRules::new(5.0, 2 * MINUTE, 3 * MINUTE).expect("rules");
    let persons = 6;
    let sightings = crowd(11, persons, 120);
    let expected = reference(&rules, &sightings);
    assert!(expected.len() > 20, "the crowd meets: {}", expected.len());

    // Two folders at once, each with its own share of the batches.
    let batches = arrivals(12, &sightings);
    let (mut left, mut right) = (Vec::new(), Vec::new());
    for (i, batch) in batches.into_iter().enumerate() {
        if i % 2 == 0 {
            left.push(batch)
        } else {
            right.push(batch)
        }
    }
    let fold = |batches: Vec<Vec<Sighting>>| {
        let pg = Arc::clone(&pg);
        tokio::spawn(async move {
            let mut applied = 0;
            for batch in batches {
                applied += pg
                    .apply_meetings(&rules, &batch)
                    .await
                    .expect("fold")
                    .applied;
            }
            applied
        })
    };
    let (a, b) = (fold(left), fold(right));
    let applied = a.await.expect("left") + b.await.expect("right");
    assert_eq!(applied, sightings.len(), "each location folded in once");
    assert_eq!(all_meetings(&*pg, persons).await, expected);

    for batch in arrivals(13, &sightings) {
        memory.apply_meetings(&rules, &batch).await.expect("fold");
    }
    assert_eq!(all_meetings(&memory, persons).await, expected);
}

#[tokio::test]
async fn a_persons_meetings_are_paged_most_recent_first_in_both_stores() {
    let db = migrated().await;
    let pg = store(&db.url);
    let memory = MemoryStore::new();
    let rules = MeetingRules::new(5.0, MINUTE, MINUTE).expect("rules");
    let sightings = crowd(21, 4, 150);
    for store in [&pg as &dyn Store, &memory] {
        for batch in sightings.chunks(50) {
            store.apply_meetings(&rules, batch).await.expect("fold");
        }
    }
    let expected: Vec<Meeting> = {
        let mut mine: Vec<Meeting> = reference(&rules, &sightings)
            .into_iter()
            .filter(|m| m.persons.0 == 2 || m.persons.1 == 2)
            .filter(|m| {
                m.end >= june().plus_micros(30 * MINUTE)
                    && m.start < june().plus_micros(90 * MINUTE)
            })
            .collect();
        mine.sort_by_key(|m| std::cmp::Reverse(m.start));
        mine
    };
    assert!(expected.len() > 5, "{}", expected.len());
    for store in [&pg as &dyn Store, &memory] {
        let mut pages: Vec<Kept> = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .meetings(&MeetingQuery {
                    person: 2,
                    start: june().plus_micros(30 * MINUTE),
                    end: june().plus_micros(90 * MINUTE),
                    after,
                    limit: 3,
                })
                .await
                .expect("page");
            assert!(page.len() <= 3);
            let Some(last) = page.last() else { break };
            after = Some(MeetingCursor {
                start: last.meeting.start,
                id: last.id,
            });
            pages.extend(page);
        }
        let got: Vec<Meeting> = pages.iter().map(|k| k.meeting).collect();
        assert_eq!(got.len(), expected.len(), "{}", store.kind());
        assert!(
            got.windows(2).all(|w| w[0].start >= w[1].start),
            "{}",
            store.kind()
        );
        let mut sorted = got.clone();
        sorted.sort_by_key(|m| (m.persons, m.start));
        let mut want = expected.clone();
        want.sort_by_key(|m| (m.persons, m.start));
        assert_eq!(sorted, want, "{}", store.kind());
    }
}

#[tokio::test]
async fn the_feed_gives_each_meeting_written_since_a_cursor_in_both_stores() {
    let db = migrated().await;
    let pg = store(&db.url);
    let memory = MemoryStore::new();
    let rules = MeetingRules::new(5.0, MINUTE, MINUTE).expect("rules");
    let sightings = crowd(31, 4, 100);
    let (first, second) = sightings.split_at(200);
    for store in [&pg as &dyn Store, &memory] {
        let kind = store.kind();
        let start = store.meeting_feed(None, None, 10).await.expect("now");
        assert!(start.meetings.is_empty() && start.complete, "{kind}");
        let changes = store.apply_meetings(&rules, first).await.expect("fold");
        let feed = store
            .meeting_feed(Some(&start.cursor), None, 10_000)
            .await
            .expect("feed");
        let mut written: Vec<i64> = changes
            .started
            .iter()
            .chain(&changes.grown)
            .map(|k| k.id)
            .collect();
        written.sort_unstable();
        let mut fed: Vec<i64> = feed.meetings.iter().map(|k| k.id).collect();
        fed.sort_unstable();
        assert!(!written.is_empty(), "{kind}");
        assert_eq!(fed, written, "{kind}");
        assert!(feed.complete, "{kind}");
        // Nothing since; then only what the next batch wrote, and one
        // person's only when asked so.
        let none = store
            .meeting_feed(Some(&feed.cursor), None, 10_000)
            .await
            .expect("feed");
        assert!(none.meetings.is_empty(), "{kind}");
        let changes = store.apply_meetings(&rules, second).await.expect("fold");
        let mine = store
            .meeting_feed(Some(&feed.cursor), Some(3), 10_000)
            .await
            .expect("feed");
        let mut expected: Vec<i64> = changes
            .started
            .iter()
            .chain(&changes.grown)
            .filter(|k| k.meeting.persons.0 == 3 || k.meeting.persons.1 == 3)
            .filter(|k| !changes.joined.contains(&k.id))
            .map(|k| k.id)
            .collect();
        expected.sort_unstable();
        expected.dedup();
        let mut got: Vec<i64> = mine.meetings.iter().map(|k| k.id).collect();
        got.sort_unstable();
        assert_eq!(got, expected, "{kind}");
        // A limit below what was written says the read is incomplete.
        let cut = store
            .meeting_feed(Some(&start.cursor), None, 1)
            .await
            .expect("feed");
        assert_eq!((cut.meetings.len(), cut.complete), (1, false), "{kind}");
    }
}

/// A transaction that wrote a meeting before a reader's snapshot and
/// commits after it is read by the next read, not skipped.
#[tokio::test]
async fn a_meeting_committed_after_a_later_one_is_still_fed() {
    let db = migrated().await;
    let pg = store(&db.url);
    let mut slow = crate::helpers::client(&db.url).await;
    let slow = slow.transaction().await.expect("a transaction");
    slow.execute(
        "INSERT INTO meeting (person_a, person_b, start_time, end_time, contacts, closest_m, \
         closest_at, closest_lat, closest_lon, closest_location_a, closest_location_b) \
         VALUES (1, 2, '2020-06-01 10:00', '2020-06-01 10:05', 1, 1.0, '2020-06-01 10:05', 0, 0, 1, 2)",
        &[],
    )
    .await
    .expect("a meeting, not committed yet");
    let before = pg.meeting_feed(None, None, 10).await.expect("now");
    let rules = MeetingRules::default();
    pg.apply_meetings(&rules, &crowd(41, 3, 60))
        .await
        .expect("fold");
    let after = pg
        .meeting_feed(Some(&before.cursor), None, 10_000)
        .await
        .expect("feed");
    assert!(
        after
            .meetings
            .iter()
            .all(|k| k.meeting.persons != (1, 2) || k.meeting.start != june())
    );
    slow.commit().await.expect("commits");
    let late = pg
        .meeting_feed(Some(&after.cursor), None, 10_000)
        .await
        .expect("feed");
    assert_eq!(late.meetings.len(), 1, "{late:?}");
    assert_eq!(late.meetings[0].meeting.persons, (1, 2));
}
