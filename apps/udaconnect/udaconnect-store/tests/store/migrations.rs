//! The migrations on a fresh database, twice, concurrently, on a
//! database in the original's shape, with its rows, and on one with
//! meetings' rows; the edge's role given what it reads.

use testkit::PostgresServer;
use udaconnect_domain::{
    NewLocation, NewPerson, Position, Store, Timestamp, meeting::MeetingQuery,
};
use udaconnect_store::{
    MIGRATIONS, MigrateError, StoreMigrateError,
    original::{SHAPED_LOCATIONS, SHAPED_PERSONS, shaped_script},
};

use crate::helpers::{client, migrated, store, store_location};

#[tokio::test]
async fn a_fresh_database_is_migrated_once() {
    let db = migrated().await;
    let again = db.store.migrate().await.expect("migrate again");
    assert!(again.was_current(), "{again:?}");
    assert_eq!(
        again.already,
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]
    );
    assert_eq!(again.to_string(), "schema current (version 17)");
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
    assert_eq!(
        applied,
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]
    );
}

#[tokio::test]
async fn the_edges_role_reads_the_meetings_and_writes_none() {
    // The role the manifests make for the edge, there before migrating.
    let server = PostgresServer::start();
    let url = server.create_database("udaconnect");
    server.psql("udaconnect", "CREATE ROLE udaconnect_ingest LOGIN");
    store(&url).migrate().await.expect("migrate");
    let edge = store(&url.replacen("postgres@", "udaconnect_ingest@", 1));
    let query = MeetingQuery {
        person: 1,
        start: Timestamp::from_micros(1_600_000_000_000_000),
        end: Timestamp::from_micros(1_700_000_000_000_000),
        after: None,
        limit: 10,
    };
    assert_eq!(edge.meetings(&query).await, Ok(Vec::new()));
    let denied = server.psql(
        "udaconnect",
        "COPY (SELECT has_table_privilege('udaconnect_ingest', 'meeting', 'INSERT, UPDATE, DELETE')) TO STDOUT",
    );
    assert_eq!(denied, "f\n");
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

/// The largest id of `table`'s rows (their first column).
fn last_id(rows: &str) -> i64 {
    rows.lines()
        .filter_map(|line| line.split('\t').next()?.parse().ok())
        .max()
        .expect("rows with ids")
}

#[tokio::test]
async fn a_database_in_the_originals_shape_is_upgraded_losing_and_renumbering_nothing() {
    let server = PostgresServer::start();
    let url = server.create_database("original");
    server.psql("original", &shaped_script(2));
    let (persons, locations) = (rows(&server, "person"), rows(&server, "location"));
    assert_eq!(persons.lines().count(), SHAPED_PERSONS.len());
    assert_eq!(locations.lines().count(), SHAPED_LOCATIONS);

    let store = store(&url);
    let report = store
        .migrate()
        .await
        .expect("upgrade the original's database");
    assert_eq!(
        report.applied,
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]
    );
    assert_eq!(rows(&server, "person"), persons);
    assert_eq!(rows(&server, "location"), locations);

    // The table is partitioned by day, its rows all in the partition that
    // was the table; the sequence belongs to the partitioned table.
    let layout = server.psql(
        "original",
        "COPY (SELECT c.relkind::text, \
                (SELECT string_agg(DISTINCT tableoid::regclass::text, ',') FROM location), \
                pg_get_serial_sequence('location', 'id') \
         FROM pg_class c WHERE c.oid = 'location'::regclass) TO STDOUT",
    );
    assert_eq!(
        layout.trim(),
        "p\tlocation_history\tpublic.location_id_seq",
        "{layout}"
    );
    assert!(store.migrate().await.expect("again").was_current());

    // The original never advanced its sequences; the first inserts now
    // work, and get the ids after the last ones it had.
    let person = store
        .create_person(&NewPerson::new("Ada", "Lovelace", "Analytical").expect("valid"))
        .await
        .expect("the first person");
    assert_eq!(i64::from(person.id), last_id(&persons) + 1);
    let location = store_location(
        &store,
        NewLocation {
            person_id: person.id,
            position: Position::new(37.553441, -122.290524).expect("valid"),
            time: Timestamp::now(),
        },
    )
    .await;
    assert_eq!(location.id, last_id(&locations) + 1);
    assert_eq!(
        (location.coordinate.x, location.coordinate.y),
        (-122.290524, 37.553441)
    );

    // A row with swapped axes keeps its raw X/Y; its position is where
    // PostGIS measures it, its latitude folded into range.
    let client = client(&url).await;
    let swapped: Vec<i64> = client
        .query(
            "SELECT id FROM location WHERE ST_Y(coordinate) < -90 ORDER BY id",
            &[],
        )
        .await
        .expect("swapped rows")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(!swapped.is_empty(), "the data has rows with swapped axes");
    for id in swapped {
        let row = store.location(id).await.expect("read").expect("the row");
        let (x, y) = (row.coordinate.x, row.coordinate.y);
        assert!((row.position.lat - (-180.0 - y)).abs() < 1e-9, "{row:?}");
        assert!((row.position.lon - x).abs() < 1e-12, "{row:?}");
    }
    let stats = store.stats().await.expect("stats");
    assert_eq!(
        (stats.persons, stats.locations),
        (SHAPED_PERSONS.len() as u64 + 1, SHAPED_LOCATIONS as u64 + 1)
    );
}

#[tokio::test]
async fn rows_stamped_after_the_migrations_day_move_into_the_partitioned_table_as_they_are() {
    let server = PostgresServer::start();
    let url = server.create_database("original");
    server.psql("original", &shaped_script(5));
    // A clock three days ahead, and a row written by hand for 2099.
    server.psql(
        "original",
        "insert into location (id, person_id, coordinate, creation_time) values \
         (900, 2, ST_MakePoint(7, 45), \
          date_trunc('day', now() AT TIME ZONE 'UTC') + interval '3 days 10 hours'), \
         (901, 3, ST_MakePoint(7, 45), '2099-01-01 10:00')",
    );
    let locations = rows(&server, "location");
    store(&url).migrate().await.expect("migrated");
    assert_eq!(rows(&server, "location"), locations);
    let placed = server.psql(
        "original",
        "COPY (SELECT id, tableoid::regclass::text = 'location_p' || to_char(creation_time, 'YYYYMMDD') \
               OR (id = 901 AND tableoid = 'location_default'::regclass) \
               OR (id < 900 AND tableoid = 'location_history'::regclass) \
               FROM location WHERE id IN (101, 900, 901) ORDER BY id) TO STDOUT",
    );
    assert_eq!(placed, "101\tt\n900\tt\n901\tt\n");
}

#[tokio::test]
async fn the_meetings_positions_are_partitioned_in_place_keeping_every_row() {
    let server = PostgresServer::start();
    let url = server.create_database("meetings");
    // A database at version 12, as `udaconnect migrate` leaves it, with
    // folded-in locations of the past, of a clock three days ahead and of
    // 2099.
    let earlier = client(&url).await;
    earlier
        .batch_execute(
            "CREATE TABLE udaconnect_migrations (
                 version integer PRIMARY KEY,
                 name text NOT NULL,
                 checksum text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .expect("the migrations' record");
    for migration in MIGRATIONS
        .iter()
        .filter(|migration| migration.version <= 12)
    {
        earlier
            .batch_execute(migration.sql)
            .await
            .expect("an earlier migration");
        earlier
            .execute(
                "INSERT INTO udaconnect_migrations (version, name, checksum) \
                 VALUES ($1, $2, encode(sha256(convert_to($3::text, 'UTF8')), 'hex'))",
                &[&migration.version, &migration.name, &migration.sql],
            )
            .await
            .expect("recorded");
    }
    earlier
        .batch_execute(
            "INSERT INTO meeting_position (location_id, person_id, creation_time, lat, lon, cell) \
             VALUES (101, 1, '2021-03-01 10:00', 45, 7, 11), \
                    (900, 2, date_trunc('day', now() AT TIME ZONE 'UTC') + interval '3 days 10 hours', \
                     45, 7, 11), \
                    (901, 3, '2099-01-01 10:00', 45, 7, 11)",
        )
        .await
        .expect("folded-in locations");
    let all = "COPY (SELECT location_id, person_id, creation_time, lat, lon, cell \
               FROM meeting_position ORDER BY location_id) TO STDOUT";
    let positions = server.psql("meetings", all);

    let report = store(&url).migrate().await.expect("migrated");
    assert_eq!(report.applied, vec![13, 14, 15, 16, 17]);
    assert_eq!(server.psql("meetings", all), positions);
    let placed = server.psql(
        "meetings",
        "COPY (SELECT location_id, \
                      tableoid::regclass::text = 'meeting_position_p' || to_char(creation_time, 'YYYYMMDD') \
                      OR (location_id = 901 AND tableoid = 'meeting_position_default'::regclass) \
                      OR (location_id = 101 AND tableoid = 'meeting_position_history'::regclass) \
               FROM meeting_position ORDER BY location_id) TO STDOUT",
    );
    assert_eq!(placed, "101\tt\n900\tt\n901\tt\n");
    let key = server.psql(
        "meetings",
        "COPY (SELECT pg_get_constraintdef(oid) FROM pg_constraint \
               WHERE conrelid = 'meeting_position'::regclass AND contype = 'p') TO STDOUT",
    );
    assert_eq!(key.trim(), "PRIMARY KEY (location_id, creation_time)");
}
