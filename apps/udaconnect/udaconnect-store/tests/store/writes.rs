//! Writes: idempotent batches, unknown persons, paging while persons are
//! added, and rows someone broke by hand.

use udaconnect_domain::{
    CompatQuery, Distance, InsertReport, LocationRange, LocationRecord, NewLocation, NewPerson,
    PersonOrder, PersonSearch, Position, Store, StoreError, Timestamp,
};
use udaconnect_store::MemoryStore;

use crate::helpers::{clustered, date, june, migrated, replica_store, store_location};

async fn batches_are_idempotent(store: &dyn Store) {
    let person = store
        .create_person(&NewPerson::new("Grace", "Hopper", "Navy").expect("valid"))
        .await
        .expect("person");
    let ids = store.reserve_location_ids(4).await.expect("ids");
    assert_eq!(ids.len(), 4);
    let record = |id, person_id| LocationRecord {
        id,
        person_id,
        position: Position::new(37.55, -122.29).expect("valid"),
        time: june(),
        key: None,
    };
    let batch = vec![
        record(ids[0], person.id),
        record(ids[1], person.id),
        record(ids[2], 999_999),
        record(ids[3], person.id),
        record(ids[3], person.id),
    ];
    let first = store.insert_locations(&batch).await.expect("first");
    assert_eq!(
        first,
        InsertReport {
            inserted: 3,
            duplicates: 1,
            unknown_person: vec![ids[2]],
            erased: Vec::new(),
        },
        "{}",
        store.kind()
    );
    let second = store.insert_locations(&batch).await.expect("second");
    assert_eq!(
        second,
        InsertReport {
            inserted: 0,
            duplicates: 4,
            unknown_person: vec![ids[2]],
            erased: Vec::new(),
        },
        "{}",
        store.kind()
    );
    let stored = store
        .locations_of(&LocationRange {
            person_id: person.id,
            start: june(),
            end: june().plus_micros(1),
            after: None,
            limit: 100,
        })
        .await
        .expect("stored");
    let stored: Vec<i64> = stored.iter().map(|location| location.id).collect();
    assert_eq!(stored, vec![ids[0], ids[1], ids[3]], "{}", store.kind());
    assert_eq!(store.location(ids[2]).await.expect("read"), None);
    // Ids given out are never given again.
    let more = store.reserve_location_ids(2).await.expect("more ids");
    assert!(more.iter().all(|id| *id > ids[3]), "{more:?} after {ids:?}");
}

#[tokio::test]
async fn batches_are_idempotent_in_both_stores() {
    let db = migrated().await;
    batches_are_idempotent(&db.store).await;
    batches_are_idempotent(&MemoryStore::new()).await;
}

async fn keys_store_a_retry_once(store: &dyn Store) {
    let person = store
        .create_person(&NewPerson::new("Katherine", "Johnson", "NASA").expect("valid"))
        .await
        .expect("person");
    let ids = store.reserve_location_ids(5).await.expect("ids");
    let record = |id, key: Option<&str>| LocationRecord {
        id,
        person_id: person.id,
        position: Position::new(37.55, -122.29).expect("valid"),
        time: june(),
        key: key.map(str::to_owned),
    };
    // The same key under two ids (a retry through another edge), in one
    // batch and across batches; locations without a key are not affected.
    let first = store
        .insert_locations(&[
            record(ids[0], Some("phone-1:1")),
            record(ids[1], Some("phone-1:1")),
            record(ids[2], None),
        ])
        .await
        .expect("first");
    assert_eq!(
        (first.inserted, first.duplicates),
        (2, 1),
        "{}",
        store.kind()
    );
    let retry = store
        .insert_locations(&[record(ids[3], Some("phone-1:1")), record(ids[4], None)])
        .await
        .expect("retry");
    assert_eq!(
        (retry.inserted, retry.duplicates),
        (1, 1),
        "{}",
        store.kind()
    );
    assert!(store.location(ids[0]).await.expect("read").is_some());
    assert_eq!(store.location(ids[1]).await.expect("read"), None);
    assert_eq!(store.location(ids[3]).await.expect("read"), None);
    assert!(store.location(ids[4]).await.expect("read").is_some());
}

#[tokio::test]
async fn idempotency_keys_store_a_retry_once_in_both_stores() {
    let db = migrated().await;
    keys_store_a_retry_once(&db.store).await;
    keys_store_a_retry_once(&MemoryStore::new()).await;
}

/// Records of `person` at ids `ids`, each with a key of its own.
fn keyed(person_id: i32, ids: &[i64]) -> Vec<LocationRecord> {
    ids.iter()
        .map(|id| LocationRecord {
            id: *id,
            person_id,
            position: Position::new(37.55, -122.29).expect("valid"),
            time: june().plus_micros(*id),
            key: Some(format!("phone:{id}")),
        })
        .collect()
}

#[tokio::test]
async fn rows_stored_already_are_left_out_of_the_copy() {
    let db = migrated().await;
    let person = db
        .store
        .create_person(&NewPerson::new("Mary", "Jackson", "NASA").expect("valid"))
        .await
        .expect("person");
    let ids = db.store.reserve_location_ids(3).await.expect("ids");
    let batch = keyed(person.id, &ids[..2]);
    let first = db.store.insert_locations(&batch).await.expect("first");
    assert_eq!((first.inserted, first.duplicates), (2, 0));
    // A redelivery, and a retry published again beside a new location.
    let mut again = keyed(person.id, &ids);
    again.insert(0, batch[1].clone());
    let second = db.store.insert_locations(&again).await.expect("again");
    assert_eq!((second.inserted, second.duplicates), (1, 3), "{second:?}");
    assert!(db.store.location(ids[2]).await.expect("read").is_some());
    // Nothing was copied that was there: the server logged no failure.
    let log = db.server.log();
    assert!(!log.contains("duplicate key"), "{log}");
}

#[tokio::test]
async fn writers_storing_the_same_rows_at_once_never_deadlock() {
    let db = migrated().await;
    let person = db
        .store
        .create_person(&NewPerson::new("Dorothy", "Vaughan", "NASA").expect("valid"))
        .await
        .expect("person");
    for round in 0..10 {
        let ids = db.store.reserve_location_ids(400).await.expect("ids");
        let batch = keyed(person.id, &ids);
        let mut reversed = batch.clone();
        reversed.reverse();
        // Two writers given the same message (a redelivery while the first
        // is still at it), with its rows in another order.
        let (one, two) = tokio::join!(
            db.store.insert_locations(&batch),
            db.store.insert_locations(&reversed)
        );
        let (one, two) = (one.expect("stored"), two.expect("stored, no deadlock"));
        assert_eq!(one.inserted + two.inserted, 400, "round {round}");
    }
}

async fn person_ids_come_in_order_after_a_point(store: &dyn Store) {
    let mut created = Vec::new();
    for name in ["A", "B", "C"] {
        let person = store
            .create_person(&NewPerson::new(name, "Id", "Co").expect("valid"))
            .await
            .expect("person");
        created.push(person.id);
    }
    assert_eq!(store.person_ids_after(0).await.expect("all"), created);
    assert_eq!(
        store.person_ids_after(created[0]).await.expect("after"),
        created[1..]
    );
    assert!(
        store
            .person_ids_after(created[2])
            .await
            .expect("none")
            .is_empty()
    );
}

#[tokio::test]
async fn person_ids_after_a_point_in_both_stores() {
    let db = migrated().await;
    person_ids_come_in_order_after_a_point(&db.store).await;
    person_ids_come_in_order_after_a_point(&MemoryStore::new()).await;
}

async fn search_pages_see_everyone_once(store: &dyn Store) {
    let mut seen = Vec::new();
    let mut search = PersonSearch {
        text: None,
        order: PersonOrder::Id,
        after: None,
        limit: 3,
    };
    loop {
        let page = store.search_persons(&search).await.expect("page");
        seen.extend(page.iter().map(|person| person.id));
        let Some(last) = page.last() else { break };
        if page.len() < search.limit {
            break;
        }
        search.after = Some(last.id);
        store
            .create_person(&NewPerson::new("Late", "Comer", "Elsewhere").expect("valid"))
            .await
            .expect("insert between pages");
    }
    // Everyone there before, once, in order; and those added behind the
    // cursor, since they sort last.
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert_eq!(seen[..10], (1..=10).collect::<Vec<i32>>()[..], "{seen:?}");
    assert!(seen.len() > 10, "{seen:?}");
}

/// Newest first, those added while paging sort before the cursor: each
/// page goes on where the last ended, and everyone there at the start is
/// seen once, the last created first.
async fn newest_first_pages_see_everyone_once(store: &dyn Store) {
    let first = store
        .search_persons(&PersonSearch {
            text: None,
            order: PersonOrder::Newest,
            after: None,
            limit: 1,
        })
        .await
        .expect("the newest");
    let newest = first.first().expect("someone").id;
    let mut seen = Vec::new();
    let mut search = PersonSearch {
        text: None,
        order: PersonOrder::Newest,
        after: None,
        limit: 3,
    };
    loop {
        let page = store.search_persons(&search).await.expect("page");
        seen.extend(page.iter().map(|person| person.id));
        let Some(last) = page.last() else { break };
        search.after = Some(last.id);
        store
            .create_person(&NewPerson::new("Late", "Comer", "Elsewhere").expect("valid"))
            .await
            .expect("insert between pages");
    }
    assert_eq!(seen, (1..=newest).rev().collect::<Vec<i32>>());
}

#[tokio::test]
async fn search_pages_see_everyone_once_while_persons_are_added() {
    let data = clustered(4, 10, 50);
    let db = migrated().await;
    db.store.bulk_load(&data).await.expect("load");
    search_pages_see_everyone_once(&db.store).await;
    search_pages_see_everyone_once(&MemoryStore::from_dataset(&data)).await;
    let db = migrated().await;
    db.store.bulk_load(&data).await.expect("load");
    newest_first_pages_see_everyone_once(&db.store).await;
    newest_first_pages_see_everyone_once(&MemoryStore::from_dataset(&data)).await;
}

#[tokio::test]
async fn a_row_broken_by_hand_is_reported_not_panicked_on() {
    let db = migrated().await;
    let person = db
        .store
        .create_person(&NewPerson::new("Alan", "Turing", "Bletchley").expect("valid"))
        .await
        .expect("person");
    let id = db.store.reserve_location_ids(1).await.expect("an id")[0];
    db.server.psql(
        "udaconnect",
        &format!(
            "INSERT INTO location (id, person_id, coordinate, creation_time) \
             VALUES ({id}, {}, ST_MakePoint('NaN', 37.5), '2020-06-01 12:00')",
            person.id
        ),
    );
    match db.store.location(id).await {
        Err(StoreError::Corrupt(message)) => {
            assert!(message.contains(&format!("location {id}")), "{message}");
        }
        other => panic!("a NaN coordinate was not reported: {other:?}"),
    }
    let range = LocationRange {
        person_id: person.id,
        start: june(),
        end: june().plus_micros(86_400_000_000),
        after: None,
        limit: 10,
    };
    assert!(matches!(
        db.store.locations_of(&range).await,
        Err(StoreError::Corrupt(_))
    ));
    // New rows beside it are stored and read as usual.
    let fine = store_location(
        &db.store,
        NewLocation {
            person_id: person.id,
            position: Position::new(37.5, -122.2).expect("valid"),
            time: Timestamp::now(),
        },
    )
    .await;
    assert!(fine.id > id);
    assert_eq!(db.store.location(fine.id).await.expect("read"), Some(fine));

    // The connection queries pass over it, in SQL and from the replica
    // (which loads beside it) alike.
    let here = Position::new(37.5, -122.2).expect("valid");
    let noon = june().plus_micros(12 * 3_600_000_000);
    let other = db
        .store
        .create_person(&NewPerson::new("Grace", "Hopper", "Navy").expect("valid"))
        .await
        .expect("person");
    for person_id in [person.id, other.id] {
        store_location(
            &db.store,
            NewLocation {
                person_id,
                position: here,
                time: noon,
            },
        )
        .await;
    }
    let replica = replica_store(&db.url);
    replica.check().await.expect("the replica loads");
    let query = CompatQuery {
        person_id: person.id,
        start: date(2020, 6, 1),
        end: date(2020, 6, 2),
        distance: Distance::new("distance", 5.0).expect("valid"),
        limit: usize::MAX,
    };
    let rows = db.store.compat_connections(&query).await.expect("in SQL");
    assert_eq!(
        rows.iter().map(|row| row.person.id).collect::<Vec<_>>(),
        [other.id]
    );
    assert_eq!(
        replica.compat_connections(&query).await.expect("replica"),
        rows
    );
}
