//! The location table's partitions (migration 0009) kept by
//! `PgStore::maintain` under an injected clock: each day ahead has its
//! partition before it starts, rows either side of midnight land in their
//! own days' partitions, a row of a day without one waits in the default
//! partition and moves into the day's once it has one, several processes
//! at once do the work once, and a retention drops whole days (with their
//! keys' claims; the connections replica forgets them too) and nothing a
//! clock ahead of the database's would. The meetings' positions (migration
//! 0013) get their days' partitions in the same rounds, and a retention
//! drops their old days and deletes the meetings that ended before it,
//! folding going on as before.

use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use udaconnect_domain::{
    CompatQuery, Distance, KeyClaim, LocationRecord, NewPerson, Position, Store, StoreError,
    Timestamp,
    meeting::{Meeting, MeetingQuery, MeetingRules, Sighting},
};
use udaconnect_store::{Maintenance, PgStore};

use crate::helpers::{Db, client, migrated, replica_store};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn at(text: &str) -> Timestamp {
    let time = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").expect("a time");
    Timestamp::from_naive(time)
}

/// A migrated database whose history partitions (every time before the
/// day after it was migrated, empty on a fresh database) are gone, as it
/// is once a retention has dropped it: days of any year can then have
/// their own partitions, and the injected clock is in the past of the
/// database's, which a retention never goes beyond.
async fn without_history() -> Db {
    let db = migrated().await;
    db.server.psql(
        "udaconnect",
        "DROP TABLE location_history; DROP TABLE meeting_position_history",
    );
    db
}

/// The partition each of `ids` is stored in, in their order.
async fn partitions_of(url: &str, ids: &[i64]) -> Vec<String> {
    let client = client(url).await;
    let mut partitions = Vec::new();
    for id in ids {
        let row = client
            .query_one(
                "SELECT tableoid::regclass::text FROM location WHERE id = $1",
                &[id],
            )
            .await
            .expect("the row");
        partitions.push(row.get(0));
    }
    partitions
}

/// The day partitions of 2021 (the migration made those of the week
/// after it ran), in order.
async fn days(url: &str) -> Vec<String> {
    client(url)
        .await
        .query(
            "SELECT partition::text FROM location_partitions() \
             WHERE lower_bound < '2022-01-01' ORDER BY lower_bound",
            &[],
        )
        .await
        .expect("the partitions")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Stores one location at each of `times` for a new person: the person's
/// id and the locations'.
async fn store_at(store: &PgStore, times: &[Timestamp], key: Option<&str>) -> (i32, Vec<i64>) {
    let person = store
        .create_person(&NewPerson::new("Grace", "Hopper", "Navy").expect("valid"))
        .await
        .expect("a person");
    let ids = store.reserve_location_ids(times.len()).await.expect("ids");
    let records: Vec<LocationRecord> = ids
        .iter()
        .zip(times)
        .map(|(id, time)| LocationRecord {
            id: *id,
            person_id: person.id,
            position: Position::new(37.5534, -122.2905).expect("valid"),
            time: *time,
            key: key.map(|key| format!("{key}:{id}")),
        })
        .collect();
    let report = store.insert_locations(&records).await.expect("stored");
    assert_eq!(report.inserted, records.len(), "{report:?}");
    (person.id, ids)
}

async fn maintain(
    store: &PgStore,
    now: &str,
    ahead: u16,
    retention: Option<Duration>,
) -> Maintenance {
    store
        .maintain(at(now), ahead, retention)
        .await
        .expect("maintained")
}

#[tokio::test]
async fn rows_either_side_of_midnight_land_in_their_own_days_partitions() {
    let db = without_history().await;
    let done = maintain(&db.store, "2021-03-01 23:59:59", 2, None).await;
    assert_eq!((done.busy, done.created), (false, 3), "{done:?}");
    assert_eq!(
        days(&db.url).await,
        [
            "location_p20210301",
            "location_p20210302",
            "location_p20210303"
        ]
    );

    let (_, ids) = store_at(
        &db.store,
        &[
            at("2021-03-01 23:59:59"),
            at("2021-03-02 00:00:00"),
            at("2021-03-02 23:59:59.999999"),
            at("2021-03-03 00:00:00"),
            at("2021-03-03 23:59:59"),
            at("2021-03-04 00:00:00"),
        ],
        None,
    )
    .await;
    assert_eq!(
        partitions_of(&db.url, &ids).await,
        [
            "location_p20210301",
            "location_p20210302",
            "location_p20210302",
            "location_p20210303",
            "location_p20210303",
            "location_default",
        ]
    );
    let client = client(&db.url).await;
    let written_by = "SELECT written_by::text FROM location WHERE id = $1";
    let before: String = client
        .query_one(written_by, &[&ids[5]])
        .await
        .expect("the row")
        .get(0);

    // A second later it is the next day: the day after next gets its
    // partition, and the row that waited in the default one moves in,
    // as it was.
    let done = maintain(&db.store, "2021-03-02 00:00:00", 2, None).await;
    assert_eq!(done.created, 1, "{done:?}");
    assert_eq!(
        partitions_of(&db.url, &ids[5..]).await,
        ["location_p20210304"]
    );
    let after: String = client
        .query_one(written_by, &[&ids[5]])
        .await
        .expect("the row")
        .get(0);
    assert_eq!(after, before);
    let moved = db
        .store
        .location(ids[5])
        .await
        .expect("read")
        .expect("the row");
    assert_eq!(moved.time, at("2021-03-04 00:00:00"));

    // Again at the same time: nothing to do.
    let done = maintain(&db.store, "2021-03-02 00:00:00", 2, None).await;
    assert_eq!(done, Maintenance::default());
}

#[tokio::test]
async fn processes_maintaining_at_once_create_each_partition_once() {
    let db = without_history().await;
    let stores: Vec<PgStore> = (0..4).map(|_| crate::helpers::store(&db.url)).collect();
    let rounds = futures::future::join_all(
        stores
            .iter()
            .map(|store| store.maintain(at("2021-06-01 12:00:00"), 5, None)),
    )
    .await;
    let mut created = 0;
    for round in rounds {
        created += round.expect("maintained").created;
    }
    assert_eq!(created, 6);
    assert_eq!(days(&db.url).await.len(), 6);
}

#[tokio::test]
async fn a_retention_drops_whole_days_and_their_claims() {
    let db = without_history().await;
    maintain(&db.store, "2021-03-01 00:00:00", 9, None).await;
    let times: Vec<Timestamp> = (1..=10)
        .map(|day| at(&format!("2021-03-{day:02} 12:00:00")))
        .chain([at("2021-02-01 12:00:00")])
        .collect();
    let (_, ids) = store_at(&db.store, &times, Some("phone")).await;
    let claims: Vec<KeyClaim> = ids
        .iter()
        .zip(&times)
        .map(|(id, time)| KeyClaim {
            key: format!("phone:{id}"),
            id: *id,
            person_id: 1,
            position: Position::new(37.5534, -122.2905).expect("valid"),
            time: *time,
        })
        .collect();
    db.store.claim_keys(&claims).await.expect("claimed");
    assert_eq!(
        partitions_of(&db.url, &ids[10..]).await,
        ["location_default"]
    );

    // Five days before 2021-03-08 06:00 is within 2021-03-03: the days
    // before it go, that day stays whole.
    let done = maintain(&db.store, "2021-03-08 06:00:00", 2, Some(5 * DAY)).await;
    assert_eq!(
        (done.dropped, done.default_deleted, done.claims_pruned),
        (2, 1, 3),
        "{done:?}"
    );
    assert_eq!(
        days(&db.url).await.first().map(String::as_str),
        Some("location_p20210303")
    );
    for (n, id) in ids.iter().enumerate() {
        let kept = db.store.location(*id).await.expect("read").is_some();
        assert_eq!(kept, (2..10).contains(&n), "location {n}");
    }
    let client = client(&db.url).await;
    let oldest_claim: NaiveDateTime = client
        .query_one("SELECT min(creation_time) FROM ingest_key_claim", &[])
        .await
        .expect("claims")
        .get(0);
    assert_eq!(
        oldest_claim,
        NaiveDate::from_ymd_opt(2021, 3, 3)
            .and_then(|day| day.and_hms_opt(12, 0, 0))
            .expect("a time")
    );

    // A clock ahead of the database's expires nothing early: a century's
    // retention in the year 2999 keeps 2021.
    let done = maintain(&db.store, "2999-01-01 00:00:00", 1, Some(36_500 * DAY)).await;
    assert_eq!((done.dropped, done.claims_pruned), (0, 0), "{done:?}");
    assert_eq!(
        db.store.location(ids[2]).await.expect("read").map(|l| l.id),
        Some(ids[2])
    );

    // A retention under a day is refused by the database too.
    match db
        .store
        .maintain(at("2021-03-08 06:00:00"), 1, Some(DAY / 2))
        .await
    {
        Err(StoreError::Rejected { .. }) => {}
        other => panic!("a retention under a day was not refused: {other:?}"),
    }
}

/// The others' locations `person` met from 2021-03-01 to 2021-03-03, each
/// once, in order.
async fn met(store: &PgStore, person: i32) -> Vec<i64> {
    let day = |d| NaiveDate::from_ymd_opt(2021, 3, d).expect("a date");
    store
        .compat_connections(&CompatQuery {
            person_id: person,
            start: day(1),
            end: day(3),
            distance: Distance::new("distance", 5.0).expect("valid"),
            limit: usize::MAX,
        })
        .await
        .expect("connections")
        .iter()
        .map(|row| row.location.id)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[tokio::test]
async fn the_replica_forgets_the_days_a_retention_drops() {
    let db = without_history().await;
    maintain(&db.store, "2021-03-01 00:00:00", 3, None).await;
    let times = [at("2021-03-01 10:00:00"), at("2021-03-02 10:00:00")];
    let (ada, _) = store_at(&db.store, &times, None).await;
    let (_, bob) = store_at(&db.store, &times, None).await;
    let replica = replica_store(&db.url);
    assert_eq!(met(&replica, ada).await, bob);

    let done = maintain(&db.store, "2021-03-04 12:00:00", 0, Some(2 * DAY)).await;
    assert_eq!(done.dropped, 1, "{done:?}");
    assert_eq!(met(&replica, ada).await, bob[1..]);
    assert_eq!(met(&db.store, ada).await, bob[1..]);
}

/// The day partitions of `meeting_position` in 2021, in order.
async fn position_days(url: &str) -> Vec<String> {
    client(url)
        .await
        .query(
            "SELECT partition::text FROM meeting_position_partitions() \
             WHERE lower_bound < '2022-01-01' ORDER BY lower_bound",
            &[],
        )
        .await
        .expect("the partitions")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// The partition each folded-in location of `ids` is stored in, in their
/// order (none for one no longer there).
async fn position_partitions_of(url: &str, ids: &[i64]) -> Vec<Option<String>> {
    let client = client(url).await;
    let mut partitions = Vec::new();
    for id in ids {
        let row = client
            .query_opt(
                "SELECT tableoid::regclass::text FROM meeting_position WHERE location_id = $1",
                &[id],
            )
            .await
            .expect("the row");
        partitions.push(row.map(|row| row.get(0)));
    }
    partitions
}

/// Persons 1 and 2 side by side at `time` (one location each, ids `id`
/// and `id + 1`).
fn together(id: i64, time: &str) -> [Sighting; 2] {
    let place = |person: i32, id: i64| Sighting {
        id,
        person,
        at: at(time),
        position: Position::new(37.5534, -122.2905 + f64::from(person) * 0.00001).expect("valid"),
    };
    [place(1, id), place(2, id + 1)]
}

/// Every meeting of persons 1 and 2 in 2021, by start.
async fn meetings_of_the_pair(store: &PgStore) -> Vec<Meeting> {
    let mut meetings: Vec<Meeting> = store
        .meetings(&MeetingQuery {
            person: 1,
            start: at("2021-01-01 00:00:00"),
            end: at("2022-01-01 00:00:00"),
            after: None,
            limit: 100,
        })
        .await
        .expect("meetings")
        .into_iter()
        .map(|kept| kept.meeting)
        .collect();
    meetings.sort_by_key(|meeting| meeting.start);
    meetings
}

#[tokio::test]
async fn meeting_positions_have_their_days_ahead_and_a_retention_drops_old_meetings() {
    let db = without_history().await;
    let rules = MeetingRules::new(5.0, 60_000_000, 180_000_000).expect("rules");
    let done = maintain(&db.store, "2021-03-01 00:00:00", 9, None).await;
    assert_eq!((done.created, done.positions_created), (10, 10), "{done:?}");
    let expected: Vec<String> = (1..=10)
        .map(|day| format!("meeting_position_p202103{day:02}"))
        .collect();
    assert_eq!(position_days(&db.url).await, expected);

    // Persons 1 and 2 meet on the 1st, the 5th and the 8th of March; a
    // location of February (a day without a partition) waits in the
    // default one.
    let mut sightings: Vec<Sighting> = [
        (1, "2021-03-01 12:00:00"),
        (3, "2021-03-05 12:00:00"),
        (5, "2021-03-08 12:00:00"),
    ]
    .into_iter()
    .flat_map(|(id, time)| together(id, time))
    .collect();
    sightings.push(Sighting {
        id: 7,
        person: 3,
        at: at("2021-02-01 12:00:00"),
        position: Position::new(45.0, 7.0).expect("valid"),
    });
    let changes = db
        .store
        .apply_meetings(&rules, &sightings)
        .await
        .expect("folded");
    assert_eq!(
        (changes.applied, changes.started.len()),
        (7, 3),
        "{changes:?}"
    );
    assert_eq!(
        position_partitions_of(&db.url, &[1, 3, 5, 7]).await,
        [
            Some("meeting_position_p20210301".to_owned()),
            Some("meeting_position_p20210305".to_owned()),
            Some("meeting_position_p20210308".to_owned()),
            Some("meeting_position_default".to_owned()),
        ]
    );

    // Five days before 2021-03-08 06:00 is within 2021-03-03: the days
    // before it go whole, with the meeting that ended on the 1st; the
    // others stay.
    let done = maintain(&db.store, "2021-03-08 06:00:00", 2, Some(5 * DAY)).await;
    assert_eq!(
        (
            done.positions_dropped,
            done.positions_default_deleted,
            done.meetings_pruned
        ),
        (2, 1, 1),
        "{done:?}"
    );
    assert_eq!(
        position_days(&db.url).await.first().map(String::as_str),
        Some("meeting_position_p20210303")
    );
    assert_eq!(
        position_partitions_of(&db.url, &[1, 2, 3, 7]).await,
        [
            None,
            None,
            Some("meeting_position_p20210305".to_owned()),
            None
        ]
    );
    let before = meetings_of_the_pair(&db.store).await;
    assert_eq!(
        before.iter().map(|m| m.start).collect::<Vec<_>>(),
        [at("2021-03-05 12:00:00"), at("2021-03-08 12:00:00")]
    );

    // Folding goes on: a location folded in before is still skipped, and
    // new ones grow the kept meeting of their day exactly.
    let again = db
        .store
        .apply_meetings(&rules, &sightings[2..4])
        .await
        .expect("folded");
    assert_eq!((again.applied, again.already), (0, 2), "{again:?}");
    let later = together(8, "2021-03-05 12:01:00");
    let grown = db
        .store
        .apply_meetings(&rules, &later)
        .await
        .expect("folded");
    assert_eq!(
        (grown.applied, grown.grown.len(), grown.started.len()),
        (2, 1, 0),
        "{grown:?}"
    );
    let kept = meetings_of_the_pair(&db.store).await;
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(
        (kept[0].start, kept[0].end),
        (at("2021-03-05 12:00:00"), at("2021-03-05 12:01:00"))
    );
    assert_eq!(kept[1], before[1]);

    // A clock ahead of the database's expires nothing early.
    let done = maintain(&db.store, "2999-01-01 00:00:00", 1, Some(36_500 * DAY)).await;
    assert_eq!(
        (done.positions_dropped, done.meetings_pruned),
        (0, 0),
        "{done:?}"
    );
    assert_eq!(meetings_of_the_pair(&db.store).await.len(), 2);
}
