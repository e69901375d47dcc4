//! Migrating from the original: its database, created from its own files,
//! upgraded in place by `udaconnect migrate`, then answering exactly what
//! the original answers.

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::{Value, json};
use testkit::{OriginalQuery, PostgresServer};
use tokio_postgres::NoTls;
use udaconnect::api::compat_wire::python_repr;

use super::helpers::{eventually_get, run, spawn_app};

/// The five persons of the original's data.
const PERSONS: [i32; 5] = [1, 5, 6, 8, 9];

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a date")
}

async fn server_with_original() -> Option<(PostgresServer, String)> {
    let server = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .expect("the server starts");
    let url = server.original_database("original")?;
    Some((server, url))
}

async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connects");
    tokio::spawn(connection);
    client
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect("counted").get(0)
}

#[tokio::test]
async fn migrate_upgrades_the_originals_database_in_place() {
    let Some((_server, url)) = server_with_original().await else {
        return;
    };
    let db = client(&url).await;
    let ids = |table: &'static str| {
        let db = &db;
        async move {
            let rows = db
                .query(&format!("SELECT id::bigint FROM {table} ORDER BY id"), &[])
                .await
                .expect("ids");
            rows.iter()
                .map(|row| row.get::<_, i64>(0))
                .collect::<Vec<_>>()
        }
    };
    let (persons, locations) = (ids("person").await, ids("location").await);
    assert_eq!(persons, vec![1, 5, 6, 8, 9]);
    assert_eq!(locations.len(), 39);

    let (code, stdout, stderr) = run(&["migrate"], &[("DATABASE_URL", &url)]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("applied"), "{stdout}");
    let (code, stdout, stderr) = run(&["migrate"], &[("DATABASE_URL", &url)]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("current"),
        "a second run changes nothing: {stdout}"
    );

    assert_eq!(ids("person").await, persons, "no person lost or renumbered");
    assert_eq!(
        ids("location").await,
        locations,
        "no location lost or renumbered"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM location WHERE point IS NULL").await,
        0,
        "every location has its typed point"
    );
}

#[tokio::test]
async fn the_compatibility_endpoint_answers_what_the_original_answers() {
    let Some((_server, url)) = server_with_original().await else {
        return;
    };
    let db = client(&url).await;
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
    for person in PERSONS {
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

    let (code, _, stderr) = run(&["migrate"], &[("DATABASE_URL", &url)]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let app = spawn_app(&["--database-url", &url, "--migrate", "false"]).await;
    for person in PERSONS {
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
    let (status, created) = app
        .post(
            "/api/persons",
            &json!({"first_name": "New", "last_name": "Comer", "company_name": "After the move"}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["id"], 10);
    let (status, location) = app
        .post(
            "/api/locations",
            &json!({"person_id": 10, "latitude": "-122.290883", "longitude": "37.553441",
                    "creation_time": "2020-08-18T10:37:06"}),
        )
        .await;
    assert_eq!(status, 200, "{location}");
    assert_eq!(location["id"], 69);
    let fetched = eventually_get(&app, "/api/locations/69").await;
    assert_eq!(fetched, location);
    let (status, original) = app.get("/api/locations/29").await;
    assert_eq!(status, 200);
    assert_eq!(
        original,
        json!({"id": 29, "person_id": 1, "longitude": "37.553441", "latitude": "-122.290524",
               "creation_time": "2020-08-18T10:37:06"})
    );
    let (status, body) = app
        .get("/api/persons/2/connection?start_date=2020-01-01&end_date=2020-12-30")
        .await;
    assert_eq!(status, 404, "{body}");
    app.stop().await;
}
