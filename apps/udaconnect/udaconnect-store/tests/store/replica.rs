//! The connection queries' replica catches up on exactly what was
//! committed before each query: rows written after it loaded, a person
//! created since, and a transaction that began before another but
//! committed after it.

use udaconnect_domain::{
    CompatConnection, CompatQuery, Distance, LocationId, LocationRecord, NewLocation, NewPerson,
    Person, Position, Store, Timestamp, conference::Dataset,
};
use udaconnect_store::PgStore;

use crate::helpers::{client, date, june, migrated, replica_store, store_location};

const HERE: Position = Position {
    lat: 37.553_41,
    lon: -122.290_88,
};

fn person(id: i32) -> Person {
    Person {
        id,
        first_name: format!("First{id}"),
        last_name: format!("Last{id}"),
        company_name: "Company".to_owned(),
    }
}

fn at(id: LocationId, person_id: i32, minutes: i64) -> LocationRecord {
    LocationRecord {
        id,
        person_id,
        position: HERE,
        time: june().plus_micros(minutes * 60_000_000),
        key: None,
    }
}

/// The others' locations near person 1's in June's first days.
async fn near_person_1(store: &PgStore) -> Vec<CompatConnection> {
    store
        .compat_connections(&CompatQuery {
            person_id: 1,
            start: date(2020, 6, 1),
            end: date(2020, 6, 2),
            distance: Distance::new("distance", 5.0).expect("valid"),
            limit: usize::MAX,
        })
        .await
        .expect("connections")
}

async fn ids_near_person_1(store: &PgStore) -> Vec<LocationId> {
    near_person_1(store)
        .await
        .iter()
        .map(|row| row.location.id)
        .collect()
}

#[tokio::test]
async fn the_replica_sees_every_commit_before_the_query_in_any_order() {
    let db = migrated().await;
    db.store
        .bulk_load(&Dataset {
            persons: vec![person(1), person(2)],
            locations: vec![at(1, 1, 0), at(2, 2, 1)],
        })
        .await
        .expect("load");
    let replica = replica_store(&db.url);
    assert_eq!(ids_near_person_1(&replica).await, [2]);

    // A transaction that takes its id first and commits last.
    let mut slow = client(&db.url).await;
    let slow = slow.transaction().await.expect("begin");
    slow.execute(
        "INSERT INTO location (id, person_id, coordinate, creation_time) \
         VALUES (10, 2, ST_SetSRID(ST_MakePoint($1, $2), 4326), '2020-06-01 00:03:00')",
        &[&HERE.lon, &HERE.lat],
    )
    .await
    .expect("insert, not committed yet");

    // Meanwhile a new person, and a location of theirs, committed.
    let newcomer = db
        .store
        .create_person(&NewPerson::new("New", "Comer", "Company").expect("valid"))
        .await
        .expect("person");
    let theirs = store_location(
        &db.store,
        NewLocation {
            person_id: newcomer.id,
            position: HERE,
            time: Timestamp::from_micros(june().micros() + 120_000_000),
        },
    )
    .await;
    assert_eq!(ids_near_person_1(&replica).await, [2, theirs.id]);
    assert_eq!(ids_near_person_1(&db.store).await, [2, theirs.id]);

    slow.commit().await.expect("commit");
    let mut expected = vec![2, 10, theirs.id];
    expected.sort_unstable();
    assert_eq!(ids_near_person_1(&replica).await, expected);
    assert_eq!(ids_near_person_1(&db.store).await, expected);

    // The newcomer, created after the replica loaded, is named in full.
    let rows = near_person_1(&replica).await;
    let row = rows
        .iter()
        .find(|row| row.location.id == theirs.id)
        .expect("the newcomer's row");
    assert_eq!(*row.person, newcomer);
}
