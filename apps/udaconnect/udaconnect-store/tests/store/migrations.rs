//! The migrations on a fresh database, twice, concurrently, and on a
//! database created by the original, with its rows.

use testkit::PostgresServer;
use udaconnect_domain::{NewLocation, NewPerson, Position, Store, Timestamp};
use udaconnect_store::{MigrateError, StoreMigrateError};

use crate::helpers::{client, migrated, store};

#[tokio::test]
async fn a_fresh_database_is_migrated_once() {
    let db = migrated().await;
    let again = db.store.migrate().await.expect("migrate again");
    assert!(again.was_current(), "{again:?}");
    assert_eq!(again.already, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(again.to_string(), "schema current (version 6)");
    let client = client(&db.url).await;
    let id_type: String = client
        .query_one(
            "SELECT data_type FROM information_schema.columns \
             WHERE table_name = 'location' AND column_name = 'id'",
            &[],
        )
        .await
        .expect("column type")
        .get(0);
    assert_eq!(id_type, "bigint");
}

#[tokio::test]
async fn processes_migrating_at_once_apply_each_migration_once() {
    let server = PostgresServer::start();
    let url = server.create_database("udaconnect");
    let stores: Vec<_> = (0..4).map(|_| store(&url)).collect();
    let reports = futures::future::join_all(stores.iter().map(|store| store.migrate())).await;
    let mut applied: Vec<i32> = Vec::new();
    for report in reports {
        applied.extend(report.expect("migrate").applied);
    }
    applied.sort_unstable();
    assert_eq!(applied, vec![1, 2, 3, 4, 5, 6]);
}

#[tokio::test]
async fn a_changed_migration_is_refused() {
    let db = migrated().await;
    db.server.psql(
        "udaconnect",
        "UPDATE udaconnect_migrations SET checksum = 'edited' WHERE version = 2",
    );
    match db.store.migrate().await {
        Err(StoreMigrateError::Migrate(MigrateError::Changed { version, .. })) => {
            assert_eq!(version, 2);
        }
        other => panic!("a changed migration was not refused: {other:?}"),
    }
}

/// Every row, as text, in id order.
fn rows(server: &PostgresServer, table: &str) -> String {
    let sql = match table {
        "person" => "SELECT id, first_name, last_name, company_name FROM person ORDER BY id",
        _ => {
            "SELECT id, person_id, encode(ST_AsEWKB(coordinate), 'hex'), creation_time \
              FROM location ORDER BY id"
        }
    };
    server.psql("original", &format!("COPY ({sql}) TO STDOUT"))
}

#[tokio::test]
async fn the_originals_database_is_upgraded_losing_and_renumbering_nothing() {
    let server = PostgresServer::start();
    let Some(url) = server.original_database("original") else {
        return;
    };
    let (persons, locations) = (rows(&server, "person"), rows(&server, "location"));
    assert_eq!(persons.lines().count(), 5);
    assert_eq!(locations.lines().count(), 39);

    let store = store(&url);
    let report = store
        .migrate()
        .await
        .expect("upgrade the original's database");
    assert_eq!(report.applied, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(rows(&server, "person"), persons);
    assert_eq!(rows(&server, "location"), locations);
    assert!(store.migrate().await.expect("again").was_current());

    // The original never advanced its sequences; the first inserts now work.
    let person = store
        .create_person(&NewPerson::new("Ada", "Lovelace", "Analytical").expect("valid"))
        .await
        .expect("the first person");
    assert_eq!(person.id, 10);
    let location = store
        .create_location(&NewLocation {
            person_id: person.id,
            position: Position::new(37.553441, -122.290524).expect("valid"),
            time: Timestamp::now(),
        })
        .await
        .expect("the first location");
    assert_eq!(location.id, 69);
    assert_eq!(
        (location.coordinate.x, location.coordinate.y),
        (-122.290524, 37.553441)
    );

    // A row with swapped axes keeps its raw X/Y; its position is where
    // PostGIS measures it, folded into range.
    let swapped = store.location(42).await.expect("read").expect("row 42");
    assert_eq!(
        (swapped.coordinate.x, swapped.coordinate.y),
        (35.0585136, -106.5719566)
    );
    assert!(
        (swapped.position.lat - -73.4280434).abs() < 1e-9,
        "{swapped:?}"
    );
    assert!(
        (swapped.position.lon - 35.0585136).abs() < 1e-12,
        "{swapped:?}"
    );
    let stats = store.stats().await.expect("stats");
    assert_eq!((stats.persons, stats.locations), (6, 40));
}
