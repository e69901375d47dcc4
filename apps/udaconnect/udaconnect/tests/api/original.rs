//! Migrating from the original: its database upgraded in place by
//! `udaconnect migrate`, then answering exactly what the original answers.
//!
//! Every checkout runs these on a database in the original's shape (its
//! schema, explicit ids, both axis orders; see
//! `udaconnect_store::original`). Where the original's own rows are beside
//! the workspace (`../shared/udaconnect/`, or `$UDACONNECT_ORIGINAL_ROWS`
//! when building), the same tests run on them too, with the facts checked
//! by hand on those rows; elsewhere those are ignored, and counted as
//! skipped.

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::{Value, json};
use testkit::PostgresServer;
use tokio_postgres::NoTls;
use udaconnect::api::compat_wire::python_repr;
use udaconnect_store::original::{self, OriginalQuery, SHAPED_PERSONS, shaped_script};

use super::helpers::{eventually_get, run, spawn_app};

/// The five persons of the original's own data.
const PERSONS: [i32; 5] = [1, 5, 6, 8, 9];

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a date")
}

/// A server with database `original` created by `script`.
async fn server_with(script: String) -> (PostgresServer, String) {
    tokio::task::spawn_blocking(move || {
        let server = PostgresServer::start();
        let url = server.create_database("original");
        server.psql("original", &script);
        (server, url)
    })
    .await
    .expect("the server starts")
}

/// The original's own database; only called where `original_rows` is set.
fn own_rows() -> String {
    original::fixtures_script().unwrap_or_else(|| {
        panic!(
            "the original's rows are not in {}",
            original::fixtures_dir().display()
        )
    })
}

async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connects");
    tokio::spawn(connection);
    client
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect("counted").get(0)
}

async fn ids(db: &tokio_postgres::Client, table: &str) -> Vec<i64> {
    db.query(&format!("SELECT id::bigint FROM {table} ORDER BY id"), &[])
        .await
        .expect("ids")
        .iter()
        .map(|row| row.get::<_, i64>(0))
        .collect()
}

#[tokio::test]
async fn migrate_upgrades_a_database_in_the_originals_shape_in_place() {
    let (_server, url) = server_with(shaped_script(3)).await;
    let (persons, _) = migrate_in_place(&url).await;
    assert_eq!(persons, SHAPED_PERSONS.map(i64::from).to_vec());
}

#[tokio::test]
#[cfg_attr(
    not(original_rows),
    ignore = "needs the original's rows in ../shared/udaconnect (or UDACONNECT_ORIGINAL_ROWS when building)"
)]
async fn migrate_upgrades_the_originals_own_database_in_place() {
    let (_server, url) = server_with(own_rows()).await;
    let (persons, locations) = migrate_in_place(&url).await;
    assert_eq!(persons, PERSONS.map(i64::from).to_vec());
    assert_eq!(locations.len(), 39);
}

/// Migrates the database at `url` twice and checks that no row is lost or
/// renumbered; returns the person and location ids.
async fn migrate_in_place(url: &str) -> (Vec<i64>, Vec<i64>) {
    let db = client(url).await;
    let (persons, locations) = (ids(&db, "person").await, ids(&db, "location").await);
    assert!(!persons.is_empty() && !locations.is_empty());

    let (code, stdout, stderr) = run(&["migrate"], &[("DATABASE_URL", url)]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("applied"), "{stdout}");
    let (code, stdout, stderr) = run(&["migrate"], &[("DATABASE_URL", url)]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("current"),
        "a second run changes nothing: {stdout}"
    );

    assert_eq!(
        ids(&db, "person").await,
        persons,
        "no person lost or renumbered"
    );
    assert_eq!(
        ids(&db, "location").await,
        locations,
        "no location lost or renumbered"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM location WHERE point IS NULL").await,
        0,
        "every location has its typed point"
    );
    (persons, locations)
}

#[tokio::test]
async fn the_compatibility_endpoint_answers_what_the_original_answers() {
    let (_server, url) = server_with(shaped_script(4)).await;
    answers_what_the_original_answers(&url, &SHAPED_PERSONS).await;
}

#[tokio::test]
#[cfg_attr(
    not(original_rows),
    ignore = "needs the original's rows in ../shared/udaconnect (or UDACONNECT_ORIGINAL_ROWS when building)"
)]
async fn the_compatibility_endpoint_answers_what_the_original_answers_on_its_own_rows() {
    let (_server, url) = server_with(own_rows()).await;
    answers_what_the_original_answers(&url, &PERSONS).await;
}

/// Replays the original's query for each of `persons` on the database at
/// `url`, migrates it, and checks that the compatibility endpoint answers
/// the same rows, as many times each; then that the first writes work,
/// with the ids after the original's, and that an original row reads back
/// as the original showed it.
async fn answers_what_the_original_answers(url: &str, persons: &[i32]) {
    let db = client(url).await;
    // The original's answers, replayed before migrating: its own SQL, one
    // query per own location, on its own schema.
    let original = OriginalQuery::prepare(&db)
        .await
        .expect("the original's query prepares");
    let names: BTreeMap<i32, Value> = db
        .query("SELECT id, first_name, last_name, company_name FROM person", &[])
        .await
        .expect("persons")
        .iter()
        .map(|row| {
            let id: i32 = row.get(0);
            let person = json!({"id": id, "first_name": row.get::<_, String>(1),
                                "last_name": row.get::<_, String>(2), "company_name": row.get::<_, String>(3)});
            (id, person)
        })
        .collect();
    let mut expected: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for &person in persons {
        let mut rows = Vec::new();
        for row in original
            .connections(&db, person, day("2020-01-01"), day("2020-12-30"), 5.0)
            .await
            .expect("the original's query")
        {
            let other: i32 = row.get(0);
            let id: i32 = row.get(1);
            let time: NaiveDateTime = row.get(4);
            let row = json!({
                "location": {
                    "id": id,
                    "person_id": other,
                    "longitude": python_repr(row.get(3)),
                    "latitude": python_repr(row.get(2)),
                    "creation_time": time.format("%Y-%m-%dT%H:%M:%S").to_string(),
                },
                "person": names[&other],
            });
            rows.push(row.to_string());
        }
        rows.sort();
        expected.insert(person, rows);
    }
    assert!(
        expected.values().any(|rows| rows.len() > 1),
        "the original's data has connections: {expected:?}"
    );

    let (code, _, stderr) = run(&["migrate"], &[("DATABASE_URL", url)]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let app = spawn_app(&["--database-url", url, "--migrate", "false"]).await;
    for &person in persons {
        let (status, body) = app
            .get(&format!(
                "/api/persons/{person}/connection?start_date=2020-01-01&end_date=2020-12-30&distance=5"
            ))
            .await;
        assert_eq!(status, 200, "{body}");
        let mut rows: Vec<String> = body
            .as_array()
            .expect("rows")
            .iter()
            .map(Value::to_string)
            .collect();
        rows.sort();
        assert_eq!(
            rows, expected[&person],
            "person {person}: same rows, same multiplicities"
        );
    }

    // What the original could not do: the first writes succeed, and get
    // ids past the ones it had.
    let (last_person, last_location) = (
        ids(&db, "person").await.last().copied().expect("persons"),
        ids(&db, "location")
            .await
            .last()
            .copied()
            .expect("locations"),
    );
    let (status, created) = app
        .post(
            "/api/persons",
            &json!({"first_name": "New", "last_name": "Comer", "company_name": "After the move"}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["id"], last_person + 1);
    let (status, location) = app
        .post(
            "/api/locations",
            &json!({"person_id": last_person + 1, "latitude": "-122.290883", "longitude": "37.553441",
                    "creation_time": "2020-08-18T10:37:06"}),
        )
        .await;
    assert_eq!(status, 200, "{location}");
    assert_eq!(location["id"], last_location + 1);
    let fetched = eventually_get(&app, &format!("/api/locations/{}", last_location + 1)).await;
    assert_eq!(fetched, location);

    // An original row reads back as the original shows it: its raw X as
    // "latitude", its raw Y as "longitude".
    let first = db
        .query_one(
            "SELECT id, person_id, ST_X(coordinate), ST_Y(coordinate), creation_time \
             FROM location ORDER BY id LIMIT 1",
            &[],
        )
        .await
        .expect("the first row");
    let (id, time): (i64, NaiveDateTime) = (first.get(0), first.get(4));
    let (status, original) = app.get(&format!("/api/locations/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        original,
        json!({"id": id, "person_id": first.get::<_, i32>(1),
               "longitude": python_repr(first.get(3)), "latitude": python_repr(first.get(2)),
               "creation_time": time.format("%Y-%m-%dT%H:%M:%S").to_string()})
    );
    let (status, body) = app
        .get(&format!(
            "/api/persons/{}/connection?start_date=2020-01-01&end_date=2020-12-30",
            last_person + 2
        ))
        .await;
    assert_eq!(status, 404, "{body}");
    app.stop().await;
}

#[tokio::test]
#[cfg_attr(
    not(original_rows),
    ignore = "needs the original's rows in ../shared/udaconnect (or UDACONNECT_ORIGINAL_ROWS when building)"
)]
async fn the_originals_own_rows_give_the_answers_checked_by_hand() {
    use udaconnect_domain::{CompatQuery, Distance, Store};
    use udaconnect_store::{PgConfig, PgStore};

    let (_server, url) = server_with(own_rows()).await;
    let store = PgStore::new(&PgConfig::new(&url)).expect("a store");
    store
        .migrate()
        .await
        .expect("upgrade the original's database");
    let rows = store
        .compat_connections(&CompatQuery {
            person_id: 1,
            start: day("2020-01-01"),
            end: day("2020-12-30"),
            distance: Distance::new("distance", 5.0).expect("valid"),
            limit: usize::MAX,
        })
        .await
        .expect("compat connections");
    // Person 1's six locations of 2020-07-07 (36–41) are at the point of
    // 30, 34, 57, 65, 66, 67 and 68, which so appear six times each; 31 is
    // within a metre of 29, 32 and 33.
    let ids: Vec<i64> = rows.iter().map(|row| row.location.id).collect();
    for (id, times) in [
        (30, 6),
        (34, 6),
        (57, 6),
        (65, 6),
        (66, 6),
        (67, 6),
        (68, 6),
        (31, 3),
    ] {
        let found = ids.iter().filter(|other| **other == id).count();
        assert_eq!(found, times, "location {id} in {ids:?}");
    }
    assert_eq!(ids.len(), 45);

    // Row 42 has its axes swapped: it keeps its raw X/Y, and its position
    // is where PostGIS measures it, folded into range.
    let swapped = store.location(42).await.expect("read").expect("row 42");
    assert_eq!(
        (swapped.coordinate.x, swapped.coordinate.y),
        (35.0585136, -106.5719566)
    );
    assert!(
        (swapped.position.lat - -73.4280434).abs() < 1e-9,
        "{swapped:?}"
    );
    let stats = store.stats().await.expect("stats");
    assert_eq!((stats.persons, stats.locations), (5, 39));
}
