//! The API on PostgreSQL: migrated at start, paging under inserts, and a
//! database that goes away and comes back, the connections (answered from
//! the API's replica) up to date with every stored location throughout.

use std::time::{Duration, Instant};

use serde_json::json;
use testkit::PostgresServer;

use super::helpers::{PATIENCE, TestApp, eventually_get, metric, spawn_app};

/// Adds a person with one location at the same place and time as every
/// other attendee's (through the bus and the writer), and waits until it
/// is stored; the person's id.
async fn attendee(app: &TestApp, name: &str) -> i64 {
    let (status, person) = app
        .post(
            "/api/persons",
            &json!({"first_name": name, "last_name": "Attendee", "company_name": "Co"}),
        )
        .await;
    assert_eq!(status, 200, "{person}");
    let id = person["id"].as_i64().expect("an id");
    let (status, location) = app
        .post(
            "/api/locations",
            &json!({"person_id": id, "latitude": "-122.290883", "longitude": "37.553441",
                    "creation_time": "2020-06-01T10:00:00"}),
        )
        .await;
    assert_eq!(status, 200, "{location}");
    let location_id = location["id"].as_i64().expect("an id");
    eventually_get(app, &format!("/api/locations/{location_id}")).await;
    id
}

/// The status of v2's answer for whom `id` met on 2020-06-01, and their ids.
async fn met(app: &TestApp, id: i64) -> (u16, Vec<i64>) {
    let (status, body) = app
        .get(&format!(
            "/api/v2/persons/{id}/connections?start=2020-06-01&end=2020-06-02"
        ))
        .await;
    let ids = body["contacts"]
        .as_array()
        .map(|contacts| {
            contacts
                .iter()
                .filter_map(|contact| contact["person"]["id"].as_i64())
                .collect()
        })
        .unwrap_or_default();
    (status, ids)
}

#[tokio::test]
async fn a_fresh_database_is_migrated_at_start_and_serves_both_apis() {
    let server = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .expect("the server starts");
    let url = server.create_database("fresh");
    let app = spawn_app(&["--database-url", &url]).await;
    let (status, persons) = app.get("/api/persons").await;
    assert_eq!((status, persons), (200, json!([])));
    let mut ids = Vec::new();
    for n in 0..25 {
        let (status, person) = app
            .post(
                "/api/v2/persons",
                &json!({"first_name": format!("P{n}"), "last_name": "Page", "company_name": "Co"}),
            )
            .await;
        assert_eq!(status, 201, "{person}");
        ids.push(person["id"].as_i64().expect("an id"));
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut added = None;
    loop {
        let page = cursor
            .as_deref()
            .map(|c| format!("&cursor={c}"))
            .unwrap_or_default();
        let (status, body) = app.get(&format!("/api/v2/persons?limit=10{page}")).await;
        assert_eq!(status, 200, "{body}");
        seen.extend(
            body["persons"]
                .as_array()
                .expect("persons")
                .iter()
                .map(|p| p["id"].as_i64().expect("an id")),
        );
        if added.is_none() {
            let (_, person) = app
                .post(
                    "/api/persons",
                    &json!({"first_name": "Late", "last_name": "Page", "company_name": "Co"}),
                )
                .await;
            added = person["id"].as_i64();
            ids.extend(added);
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every person once, in order, the late one last");
    let (status, stats) = app.get("/api/v2/stats").await;
    assert_eq!(status, 200);
    assert_eq!(stats["store"], "postgis");
    assert_eq!(stats["persons"], 26);
    app.stop().await;
}

#[tokio::test]
async fn a_database_that_goes_away_fails_fast_and_is_back_without_a_restart() {
    let mut server = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .expect("the server starts");
    let url = server.create_database("outage");
    let app = spawn_app(&["--database-url", &url]).await;
    let (status, _) = app.get("/api/persons").await;
    assert_eq!(status, 200);
    // A location readable is a location the connections count, at once.
    let (ada, bob) = (attendee(&app, "Ada").await, attendee(&app, "Bob").await);
    assert_eq!(met(&app, ada).await, (200, vec![bob]));
    assert_eq!(
        metric(&app, "udaconnect_replica_locations").await,
        Some(2.0)
    );

    let mut server = tokio::task::spawn_blocking(move || {
        server.stop();
        server
    })
    .await
    .expect("stopped");
    app.wait_readyz(503).await;
    let asked = Instant::now();
    let (status, body) = app.get("/api/persons").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|error| error.contains("unavailable")),
        "{body}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "failed fast: {:?}",
        asked.elapsed()
    );
    assert_eq!(met(&app, ada).await.0, 503);

    let server = tokio::task::spawn_blocking(move || {
        server.start_again();
        server
    })
    .await
    .expect("started");
    app.wait_readyz(200).await;
    let (status, _) = app.get("/api/persons").await;
    assert_eq!(status, 200, "the same process answers again");
    let cy = attendee(&app, "Cy").await;
    assert_eq!(met(&app, ada).await, (200, vec![bob, cy]));
    assert_eq!(
        metric(&app, "udaconnect_replica_locations").await,
        Some(3.0)
    );
    assert!(
        metric(&app, "udaconnect_replica_caught_up_rows_total")
            .await
            .is_some_and(|rows| rows >= 2.0),
        "Cy and Cy's location, at least, were caught up after the load"
    );
    assert!(asked.elapsed() < PATIENCE * 2);
    drop(server);
    app.stop().await;
}
