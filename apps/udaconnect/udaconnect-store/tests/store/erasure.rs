//! Erasure, in both stores: a person erased goes with every row about them
//! (their locations on every partition, the meetings' record of them, the
//! meetings either side, their keys' claims) and no answer mentions them
//! after; their locations and sightings that come later are told apart
//! and dropped; the erasures are read once each; the replica forgets them;
//! and in PostgreSQL an erasure racing folds and writers leaves nothing of
//! the person behind, whichever commits first.

use std::sync::Arc;

use udaconnect_domain::{
    ClaimOutcome, CompatQuery, ConnectionQuery, Distance, KeyClaim, LocationRange, LocationRecord,
    NewPerson, Person, PersonId, PersonOrder, PersonSearch, Position, Store, Timestamp,
    meeting::{MeetingQuery, MeetingRules, Sighting},
    time::MICROS_PER_DAY,
};
use udaconnect_store::{MemoryStore, PgStore};

use crate::helpers::{client, migrated, replica_store, store};

const MINUTE: i64 = 60_000_000;
const SPOT: Position = Position {
    lat: 45.0,
    lon: 7.0,
};
/// A metre north of [`SPOT`].
const BESIDE: Position = Position {
    lat: 45.000_009,
    lon: 7.0,
};

/// Today's midnight, UTC, moved by `days`: the stored rows land in the
/// partition of the days before the migration, a day's own partition and
/// the default one.
fn day(days: i64) -> Timestamp {
    let today = Timestamp::now().micros() / MICROS_PER_DAY * MICROS_PER_DAY;
    Timestamp::from_micros(today + days * MICROS_PER_DAY)
}

async fn person(store: &dyn Store, name: &str) -> Person {
    store
        .create_person(&NewPerson::new(name, "Erased", "Co").expect("valid"))
        .await
        .expect("a person")
}

/// Ten reports a minute apart from `from` for each of two persons side by
/// side, the first's with idempotency keys named `keys` when given.
fn together(
    ids: &mut std::ops::RangeFrom<i64>,
    (first, second): (PersonId, PersonId),
    from: Timestamp,
    keys: Option<&str>,
) -> Vec<LocationRecord> {
    let mut records = Vec::new();
    for n in 0..10 {
        let time = from.plus_micros(n * MINUTE);
        for (person, position) in [(first, SPOT), (second, BESIDE)] {
            let id = ids.next().expect("ids");
            records.push(LocationRecord {
                id,
                person_id: person,
                position,
                time,
                key: keys
                    .filter(|_| person == first)
                    .map(|keys| format!("{keys}-{id}")),
            });
        }
    }
    records
}

fn sightings(records: &[LocationRecord]) -> Vec<Sighting> {
    records
        .iter()
        .map(|record| Sighting {
            id: record.id,
            person: record.person_id,
            at: record.time,
            position: record.position,
        })
        .collect()
}

fn claims(records: &[LocationRecord]) -> Vec<KeyClaim> {
    records
        .iter()
        .filter_map(|record| {
            Some(KeyClaim {
                key: record.key.clone()?,
                id: record.id,
                person_id: record.person_id,
                position: record.position,
                time: record.time,
            })
        })
        .collect()
}

/// The other persons `id` met, by the store's meetings.
async fn met(store: &dyn Store, id: PersonId) -> Vec<PersonId> {
    let mut others: Vec<PersonId> = store
        .meetings(&MeetingQuery {
            person: id,
            start: day(-10),
            end: day(40),
            after: None,
            limit: 100,
        })
        .await
        .expect("meetings")
        .iter()
        .map(|kept| {
            let (a, b) = kept.meeting.persons;
            if a == id { b } else { a }
        })
        .collect();
    others.sort_unstable();
    others
}

/// The persons whose locations were near `id`'s, by both connection
/// queries (which must agree).
async fn near(store: &dyn Store, id: PersonId) -> Vec<PersonId> {
    let distance = Distance::new("distance", 5.0).expect("valid");
    let mut contacts: Vec<PersonId> = store
        .connections(&ConnectionQuery {
            person_id: id,
            start: day(-10),
            end: day(40),
            distance,
            within: None,
            after: None,
            limit: 100,
        })
        .await
        .expect("contacts")
        .iter()
        .map(|contact| contact.person.id)
        .collect();
    contacts.sort_unstable();
    let mut compat: Vec<PersonId> = store
        .compat_connections(&CompatQuery {
            person_id: id,
            start: day(-10).to_naive().date(),
            end: day(40).to_naive().date(),
            distance,
            limit: 10_000,
        })
        .await
        .expect("connections")
        .iter()
        .map(|row| row.location.person_id)
        .collect();
    compat.sort_unstable();
    compat.dedup();
    assert_eq!(contacts, compat, "{}: both queries", store.kind());
    contacts
}

/// Three persons who met two by two, one of them erased; what each part
/// of the store answers before and after. Returns the three.
async fn erasure_leaves_nothing_of_the_person(store: &dyn Store) -> (Person, Person, Person) {
    let kind = store.kind();
    let (ada, bob, cy) = (
        person(store, "Ada").await,
        person(store, "Bob").await,
        person(store, "Cy").await,
    );
    let from = store.reserve_location_ids(1).await.expect("an id")[0] + 1_000;
    let mut ids = from..;
    let mut records = together(&mut ids, (ada.id, bob.id), day(-2), Some("ada"));
    records.extend(together(&mut ids, (ada.id, cy.id), day(2), None));
    records.extend(together(&mut ids, (bob.id, cy.id), day(30), None));
    let outcomes = store.claim_keys(&claims(&records)).await.expect("claimed");
    assert!(
        outcomes.iter().all(|o| *o == ClaimOutcome::Claimed),
        "{outcomes:?}"
    );
    let report = store.insert_locations(&records).await.expect("stored");
    assert_eq!(report.inserted, records.len(), "{kind}: {report:?}");
    let rules = MeetingRules::default();
    let changes = store
        .apply_meetings(&rules, &sightings(&records))
        .await
        .expect("folded in");
    assert_eq!(changes.started.len(), 3, "{kind}: {changes:?}");
    assert_eq!(met(store, ada.id).await, vec![bob.id, cy.id], "{kind}");
    assert_eq!(near(store, bob.id).await, vec![ada.id, cy.id], "{kind}");
    let before = store.stats().await.expect("counts");
    let watching = store.erasures(None).await.expect("a cursor");
    let written = store
        .meeting_feed(None, None, 1)
        .await
        .expect("the meetings' cursor")
        .cursor;

    let erased = store
        .erase_person(ada.id)
        .await
        .expect("erased")
        .expect("Ada was there");
    assert_eq!(erased.locations, 20, "{kind}: {erased:?}");
    assert_eq!(erased.meeting_positions, 20, "{kind}: {erased:?}");
    assert_eq!(erased.meetings, 2, "{kind}: {erased:?}");
    assert_eq!(erased.key_claims, 10, "{kind}: {erased:?}");

    // No answer mentions Ada.
    assert_eq!(store.person(ada.id).await.expect("read"), None, "{kind}");
    let everyone: Vec<PersonId> = store
        .persons()
        .await
        .expect("persons")
        .iter()
        .map(|p| p.id)
        .collect();
    assert!(!everyone.contains(&ada.id), "{kind}: {everyone:?}");
    let found = store
        .search_persons(&PersonSearch {
            text: Some("ada".into()),
            order: PersonOrder::Id,
            after: None,
            limit: 10,
        })
        .await
        .expect("searched");
    assert!(found.is_empty(), "{kind}: {found:?}");
    let hers = store
        .locations_of(&LocationRange {
            person_id: ada.id,
            start: day(-10),
            end: day(40),
            after: None,
            limit: 100,
        })
        .await
        .expect("read");
    assert!(hers.is_empty(), "{kind}: {hers:?}");
    for record in records.iter().filter(|r| r.person_id == ada.id) {
        assert_eq!(
            store.location(record.id).await.expect("read"),
            None,
            "{kind}"
        );
    }
    assert_eq!(met(store, bob.id).await, vec![cy.id], "{kind}");
    assert_eq!(met(store, cy.id).await, vec![bob.id], "{kind}");
    assert_eq!(near(store, bob.id).await, vec![cy.id], "{kind}");
    assert_eq!(near(store, cy.id).await, vec![bob.id], "{kind}");
    let after = store.stats().await.expect("counts");
    assert_eq!(
        (after.persons, after.locations),
        (before.persons - 1, before.locations - 20),
        "{kind}"
    );
    let feed = store
        .meeting_feed(Some(&written), None, 100)
        .await
        .expect("the meetings written");
    assert!(feed.meetings.is_empty(), "{kind}: {feed:?}");

    // Once only, and only a person.
    assert_eq!(
        store.erase_person(ada.id).await.expect("asked"),
        None,
        "{kind}"
    );
    assert_eq!(
        store.erase_person(999_999).await.expect("asked"),
        None,
        "{kind}"
    );
    let read = store
        .erasures(Some(&watching.cursor))
        .await
        .expect("the erasures");
    assert_eq!(read.persons, vec![ada.id], "{kind}");
    let again = store.erasures(Some(&read.cursor)).await.expect("again");
    assert!(again.persons.is_empty(), "{kind}: {again:?}");

    // Her locations still on their way are dropped, told apart from a
    // location of nobody, and the claims an edge made for them meanwhile
    // forgotten; her sightings not yet folded in are passed over.
    let late = together(
        &mut ids,
        (ada.id, bob.id),
        day(-2).plus_micros(30 * MINUTE),
        Some("late"),
    );
    let claimed = store.claim_keys(&claims(&late)).await.expect("claimed");
    assert!(
        claimed.iter().all(|o| *o == ClaimOutcome::Claimed),
        "{claimed:?}"
    );
    let nobody = LocationRecord {
        id: ids.next().expect("an id"),
        person_id: 999_999,
        ..late[0].clone()
    };
    let batch: Vec<LocationRecord> = late.iter().cloned().chain([nobody.clone()]).collect();
    let report = store.insert_locations(&batch).await.expect("stored");
    let hers: Vec<i64> = late
        .iter()
        .filter(|r| r.person_id == ada.id)
        .map(|r| r.id)
        .collect();
    assert_eq!(report.erased, hers, "{kind}: {report:?}");
    assert_eq!(report.unknown_person, vec![nobody.id], "{kind}: {report:?}");
    assert_eq!(
        (report.inserted, report.duplicates),
        (10, 0),
        "{kind}: {report:?}"
    );
    let first = claims(&late).remove(0);
    let reclaimed = store
        .claim_keys(&[KeyClaim {
            id: first.id + 1_000_000,
            ..first
        }])
        .await
        .expect("claimed");
    assert_eq!(
        reclaimed,
        vec![ClaimOutcome::Claimed],
        "{kind}: the claim was forgotten"
    );
    store
        .insert_locations(&late[..1])
        .await
        .expect("dropped again");
    let changes = store
        .apply_meetings(&rules, &sightings(&late))
        .await
        .expect("folded in");
    assert_eq!(
        (changes.erased, changes.applied),
        (10, 10),
        "{kind}: {changes:?}"
    );
    assert_eq!(met(store, bob.id).await, vec![cy.id], "{kind}");

    // Her id is never given again.
    let next = person(store, "Dee").await;
    assert!(next.id > cy.id, "{kind}: {next:?}");
    (ada, bob, cy)
}

#[tokio::test]
async fn the_embedded_store_erases_every_row_of_a_person() {
    erasure_leaves_nothing_of_the_person(&MemoryStore::new()).await;
}

/// How many rows of each table name `id`, in `url`'s database.
async fn rows_of(url: &str, id: PersonId) -> [i64; 6] {
    let client = client(url).await;
    let mut counts = [0; 6];
    for (count, query) in counts.iter_mut().zip([
        "SELECT count(*) FROM person WHERE id = $1",
        "SELECT count(*) FROM location WHERE person_id = $1",
        "SELECT count(*) FROM meeting_position WHERE person_id = $1",
        "SELECT count(*) FROM meeting WHERE person_a = $1 OR person_b = $1",
        "SELECT count(*) FROM ingest_key_claim WHERE person_id = $1",
        "SELECT count(*) FROM erased_person WHERE person_id = $1",
    ]) {
        *count = client
            .query_one(query, &[&id])
            .await
            .expect("counted")
            .get(0);
    }
    counts
}

#[tokio::test]
async fn postgis_erases_every_row_of_a_person_on_every_partition_and_the_replica_forgets_them() {
    let db = migrated().await;
    let replica = replica_store(&db.url);
    // Loaded before, it must forget what it holds.
    assert!(near(&replica, 1).await.is_empty());
    let (ada, bob, cy) = erasure_leaves_nothing_of_the_person(&db.store).await;
    assert_eq!(rows_of(&db.url, ada.id).await, [0, 0, 0, 0, 0, 1]);
    let partitions: i64 = client(&db.url)
        .await
        .query_one(
            "SELECT count(DISTINCT tableoid) FROM location WHERE person_id = ANY ($1)",
            &[&vec![bob.id, cy.id]],
        )
        .await
        .expect("counted")
        .get(0);
    assert_eq!(partitions, 3, "the rows were spread over three partitions");
    assert_eq!(near(&replica, bob.id).await, vec![cy.id]);
    assert_eq!(near(&replica, cy.id).await, vec![bob.id]);
    let replicated = replica
        .locations_of(&LocationRange {
            person_id: ada.id,
            start: day(-10),
            end: day(40),
            after: None,
            limit: 10,
        })
        .await
        .expect("read");
    assert!(replicated.is_empty());
}

/// Sightings of `persons` at one spot, a minute apart from `minute`, ids
/// from `first`.
fn crowd(persons: &[PersonId], first: i64, minute: i64, count: i64) -> Vec<Sighting> {
    let mut sightings = Vec::new();
    for n in 0..count {
        for (i, person) in persons.iter().enumerate() {
            sightings.push(Sighting {
                id: first + n * persons.len() as i64 + i as i64,
                person: *person,
                at: day(-1).plus_micros((minute + n) * MINUTE),
                position: if i % 2 == 0 { SPOT } else { BESIDE },
            });
        }
    }
    sightings
}

/// A writer's records of `sightings`, with keys.
fn records(sightings: &[Sighting]) -> Vec<LocationRecord> {
    sightings
        .iter()
        .map(|s| LocationRecord {
            id: s.id,
            person_id: s.person,
            position: s.position,
            time: s.at,
            key: Some(format!("race-{}", s.id)),
        })
        .collect()
}

/// Batches a fold and a writer each make in a round: the first ones
/// before the erasure, the next ones while it runs, the last one after.
const BATCHES: i64 = 6;

#[tokio::test]
async fn an_erasure_racing_folds_and_writers_leaves_nothing_of_the_person() {
    let db = migrated().await;
    let pg: Arc<PgStore> = Arc::new(store(&db.url));
    let rules = MeetingRules::default();
    let witness = person(&*pg, "Witness").await;
    for round in 0..12_i64 {
        let gone = person(&*pg, &format!("Gone{round}")).await;
        let base = 1_000_000 * (round + 1);
        // Folded in before: a meeting to remove.
        pg.apply_meetings(&rules, &crowd(&[gone.id, witness.id], base, 0, 3))
            .await
            .expect("folded in");
        // A fold and a writer, each going on with its batches while the
        // erasure runs (from a batch that changes with the round), the
        // last batch once it has committed.
        let racing = round % (BATCHES - 2);
        let (erasing, erased_now) = tokio::sync::watch::channel(false);
        let (fold_ready, fold_racing) = tokio::sync::oneshot::channel();
        let (write_ready, write_racing) = tokio::sync::oneshot::channel();
        let folds = {
            let (pg, mut erased_now) = (Arc::clone(&pg), erased_now.clone());
            tokio::spawn(async move {
                let mut ready = Some(fold_ready);
                let mut last = None;
                for batch in 0..BATCHES {
                    if batch == racing + 1 {
                        ready.take().map(|ready| ready.send(()));
                    }
                    if batch == BATCHES - 1 {
                        erased_now
                            .wait_for(|done| *done)
                            .await
                            .expect("the erasure");
                    }
                    let sightings = crowd(
                        &[witness.id, gone.id],
                        base + 1_000 * (batch + 1),
                        3 + batch * 2,
                        2,
                    );
                    last = Some(
                        pg.apply_meetings(&rules, &sightings)
                            .await
                            .expect("folded in"),
                    );
                }
                last
            })
        };
        let writes = {
            let (pg, mut erased_now) = (Arc::clone(&pg), erased_now);
            tokio::spawn(async move {
                let mut ready = Some(write_ready);
                let mut last = None;
                for batch in 0..BATCHES {
                    if batch == racing + 1 {
                        ready.take().map(|ready| ready.send(()));
                    }
                    if batch == BATCHES - 1 {
                        erased_now
                            .wait_for(|done| *done)
                            .await
                            .expect("the erasure");
                    }
                    let batch =
                        records(&crowd(&[gone.id], base + 500_000 + 100 * batch, batch, 20));
                    let report = pg.insert_locations(&batch).await.expect("stored");
                    assert_eq!(
                        report.inserted + report.erased.len(),
                        batch.len(),
                        "{report:?}"
                    );
                    last = Some(report);
                }
                last
            })
        };
        fold_racing.await.expect("the fold goes on");
        write_racing.await.expect("the writer goes on");
        let erased = pg.erase_person(gone.id).await.expect("erased");
        assert!(erased.is_some(), "round {round}");
        erasing.send_replace(true);
        let last_fold = folds.await.expect("the folds").expect("a fold");
        let last_write = writes.await.expect("the writes").expect("a batch");
        assert_eq!(
            (last_fold.applied, last_fold.erased),
            (2, 2),
            "{last_fold:?}"
        );
        assert_eq!(
            (last_write.inserted, last_write.erased.len()),
            (0, 20),
            "{last_write:?}"
        );
        assert_eq!(
            rows_of(&db.url, gone.id).await,
            [0, 0, 0, 0, 0, 1],
            "round {round}: nothing of the person is left"
        );
    }
}
