//! A person's export, on PostgreSQL: a few thousand locations (more than
//! a page of the store's) and their meetings, as one JSON document equal
//! to what the database holds and the meetings endpoint shows, streamed
//! as an attachment; the track as GeoJSON, one point per location in time
//! order, `[lon, lat]`.

use chrono::{DateTime, NaiveDateTime};
use serde_json::{Value, json};
use testkit::{PostgresServer, eventually};

use super::{
    helpers::{PATIENCE, TestApp, spawn_app},
    meetings::person,
};

/// Her locations: one every 20 s from 2022-05-02 09:00.
const HERS: i64 = 2_500;

/// The stored locations of `person`, by time then id: id, lat, lon, time.
async fn stored(db: &str, person: i64) -> Vec<(i64, f64, f64, NaiveDateTime)> {
    let (client, connection) = tokio_postgres::connect(db, tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    client
        .query(
            "SELECT id, lat, lon, creation_time FROM location WHERE person_id = $1 \
             ORDER BY creation_time, id",
            &[&i32::try_from(person).expect("an int4 id")],
        )
        .await
        .expect("her locations")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}

/// The one number `query` answers on `db`.
async fn count(db: &str, query: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(db, tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    client.query_one(query, &[]).await.expect("a count").get(0)
}

/// `GET path`: the response, whose status must be 200.
async fn download(app: &TestApp, path: &str) -> reqwest::Response {
    let response = app
        .http
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 200, "GET {path}");
    response
}

fn time(text: &Value) -> NaiveDateTime {
    DateTime::parse_from_rfc3339(text.as_str().expect("a time"))
        .expect("RFC 3339")
        .naive_utc()
}

#[tokio::test]
async fn an_export_holds_what_the_store_holds_and_the_track_is_geojson() {
    let pg = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .expect("PostgreSQL starts");
    let db = pg.create_database("export");
    let app = spawn_app(&["--database-url", &db]).await;
    let (ada, bob) = (person(&app, "Ada").await, person(&app, "Bob").await);
    let base = chrono::NaiveDate::from_ymd_opt(2022, 5, 2)
        .and_then(|day| day.and_hms_opt(9, 0, 0))
        .expect("a time");
    let mut locations = Vec::new();
    for n in 0..HERS {
        let at = format!(
            "{}Z",
            (base + chrono::Duration::seconds(n * 20)).format("%Y-%m-%dT%H:%M:%S")
        );
        // Her latitude and longitude apart from each other throughout.
        let (lat, lon) = (48.0 + n as f64 * 1e-6, 11.0 - n as f64 * 1e-6);
        locations.push(json!({"person_id": ada, "lat": lat, "lon": lon, "time": at}));
        if n < 30 {
            locations.push(json!({"person_id": bob, "lat": lat, "lon": lon, "time": at}));
        }
    }
    for chunk in locations.chunks(1_000) {
        let (status, reply) = app
            .post("/api/v2/locations:batch", &json!({ "locations": chunk }))
            .await;
        assert_eq!(status, 200, "{reply}");
    }
    let hers = eventually("her locations stored", PATIENCE, || async {
        let hers = stored(&db, ada).await;
        (hers.len() == HERS as usize).then_some(hers)
    })
    .await;
    eventually(
        "every location folded into the meetings",
        PATIENCE,
        || async {
            let folded = count(&db, "SELECT count(*) FROM meeting_position").await;
            (folded == HERS + 30).then_some(())
        },
    )
    .await;
    let (_, page) = app
        .get(&format!("/api/v2/persons/{ada}/meetings?limit=1000"))
        .await;
    let meetings = page["meetings"].as_array().expect("meetings").clone();
    assert_eq!(meetings.len(), 1, "{page}");

    // The whole document, an attachment, streamed.
    let response = download(&app, &format!("/api/v2/persons/{ada}/export")).await;
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        headers["content-disposition"],
        format!("attachment; filename=\"udaconnect-person-{ada}.json\"").as_str()
    );
    assert!(!headers.contains_key("content-length"), "{headers:?}");
    let export: Value = response.json().await.expect("one JSON document");
    let (_, her) = app.get(&format!("/api/v2/persons/{ada}")).await;
    assert_eq!(export["person"], her);
    let exported = export["locations"].as_array().expect("locations");
    assert_eq!(exported.len(), hers.len());
    for (location, (id, lat, lon, at)) in exported.iter().zip(&hers) {
        assert_eq!(location["id"], *id, "{location}");
        assert_eq!(location["person_id"], ada, "{location}");
        assert_eq!(
            (location["lat"].as_f64(), location["lon"].as_f64()),
            (Some(*lat), Some(*lon)),
            "{location}"
        );
        assert_eq!(time(&location["time"]), *at, "{location}");
    }
    assert_eq!(export["meetings"].as_array(), Some(&meetings));
    assert_eq!(export["meetings"][0]["with"]["id"], bob);

    // The track: one point per location, in time order, [lon, lat].
    let response = download(
        &app,
        &format!("/api/v2/persons/{ada}/export?format=geojson"),
    )
    .await;
    assert_eq!(response.headers()["content-type"], "application/geo+json");
    assert_eq!(
        response.headers()["content-disposition"],
        format!("attachment; filename=\"udaconnect-person-{ada}.geojson\"").as_str()
    );
    let track: Value = response.json().await.expect("GeoJSON");
    assert_eq!(track["type"], "FeatureCollection");
    let features = track["features"].as_array().expect("features");
    assert_eq!(features.len(), hers.len());
    for (feature, (id, lat, lon, at)) in features.iter().zip(&hers) {
        assert_eq!(feature["type"], "Feature", "{feature}");
        assert_eq!(feature["geometry"]["type"], "Point", "{feature}");
        assert_eq!(
            feature["geometry"]["coordinates"],
            json!([lon, lat]),
            "{feature}"
        );
        assert_eq!(feature["properties"]["id"], *id, "{feature}");
        assert_eq!(time(&feature["properties"]["time"]), *at, "{feature}");
    }

    // Nobody's, or in a format there is none of.
    let (status, body) = app.get("/api/v2/persons/999999/export").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = app
        .get(&format!("/api/v2/persons/{ada}/export?format=kml"))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("format")),
        "{body}"
    );
    app.stop().await;
}
