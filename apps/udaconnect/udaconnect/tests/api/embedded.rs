//! The API on the embedded store, in-process: what `cargo run` serves.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDateTime;
use serde_json::{Value, json};
use udaconnect_domain::Timestamp;

use testkit::SseClient;

use super::helpers::{PATIENCE, TestApp, eventually_get, metric, spawn_app};

/// The demo conference's first day. Its attendees crowd a dozen booths,
/// so without `within` nearly everyone at a booth that day is a connection:
/// tests keep to a day and a short distance.
const DEMO: &str = "start=2020-06-08&end=2020-06-09";

fn compat_time(text: &str) -> Timestamp {
    let format = if text.contains('.') {
        "%Y-%m-%dT%H:%M:%S%.f"
    } else {
        "%Y-%m-%dT%H:%M:%S"
    };
    Timestamp::from_naive(NaiveDateTime::parse_from_str(text, format).expect("a compat time"))
}

fn v2_time(value: &Value) -> Timestamp {
    serde_json::from_value(value.clone()).expect("an RFC 3339 time")
}

/// Every contact of `person` for `query`, walking the pages.
async fn all_contacts(app: &TestApp, person: i64, query: &str) -> Vec<Value> {
    let mut contacts = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = match &cursor {
            Some(cursor) => format!("&cursor={cursor}"),
            None => String::new(),
        };
        let (status, body) = app
            .get(&format!(
                "/api/v2/persons/{person}/connections?{query}&limit=40{page}"
            ))
            .await;
        assert_eq!(status, 200, "{body}");
        contacts.extend(
            body["contacts"]
                .as_array()
                .expect("contacts")
                .iter()
                .cloned(),
        );
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return contacts,
        }
    }
}

#[tokio::test]
async fn the_demo_conference_answers_on_first_run() {
    let app = spawn_app(&[]).await;
    let (status, persons) = app.get("/api/persons").await;
    assert_eq!(status, 200);
    let persons = persons.as_array().expect("a list");
    assert!(
        persons.len() >= 100,
        "a few hundred attendees, got {}",
        persons.len()
    );
    for field in ["id", "first_name", "last_name", "company_name"] {
        assert!(persons[0].get(field).is_some(), "{field} in {}", persons[0]);
    }
    let contacts = all_contacts(&app, 1, &format!("{DEMO}&distance=1")).await;
    assert!(!contacts.is_empty(), "attendee 1 met someone");
    let encounters: Vec<u64> = contacts
        .iter()
        .map(|contact| contact["encounters"].as_u64().expect("a count"))
        .collect();
    assert!(
        encounters.windows(2).all(|pair| pair[0] >= pair[1]),
        "{encounters:?}"
    );
    let (status, rows) = app
        .get("/api/persons/1/connection?start_date=2020-06-08&end_date=2020-06-09&distance=0.5")
        .await;
    assert_eq!(status, 200);
    assert!(!rows.as_array().expect("rows").is_empty());
    let (status, stats) = app.get("/api/v2/stats").await;
    assert_eq!(status, 200);
    assert_eq!(stats["store"], "embedded");
    assert!(
        stats["locations"].as_u64().expect("a count") > 1000,
        "{stats}"
    );
    app.stop().await;
}

#[tokio::test]
async fn v2_without_within_is_the_deduplicated_compat_answer() {
    let app = spawn_app(&[]).await;
    for person in [1, 7, 42] {
        let (status, rows) = app
            .get(&format!(
                "/api/persons/{person}/connection?start_date=2020-06-08&end_date=2020-06-09&distance=0.5"
            ))
            .await;
        assert_eq!(status, 200);
        let mut expected: BTreeMap<i64, (u64, Timestamp, Timestamp)> = BTreeMap::new();
        for row in rows.as_array().expect("rows") {
            let other = row["person"]["id"].as_i64().expect("an id");
            assert_eq!(row["location"]["person_id"].as_i64(), Some(other));
            let time = compat_time(row["location"]["creation_time"].as_str().expect("a time"));
            let entry = expected.entry(other).or_insert((0, time, time));
            entry.0 += 1;
            entry.1 = entry.1.min(time);
            entry.2 = entry.2.max(time);
        }
        let contacts =
            all_contacts(&app, person, "start=2020-06-08&end=2020-06-09&distance=0.5").await;
        let actual: BTreeMap<i64, (u64, Timestamp, Timestamp)> = contacts
            .iter()
            .map(|contact| {
                (
                    contact["person"]["id"].as_i64().expect("an id"),
                    (
                        contact["encounters"].as_u64().expect("a count"),
                        v2_time(&contact["first_met"]),
                        v2_time(&contact["last_met"]),
                    ),
                )
            })
            .collect();
        assert_eq!(actual.len(), contacts.len(), "each person once");
        assert_eq!(actual, expected, "person {person}");
        assert!(!expected.is_empty(), "person {person} met someone");
    }
    app.stop().await;
}

#[tokio::test]
async fn within_counts_only_true_co_location() {
    let app = spawn_app(&[]).await;
    let mut ids = Vec::new();
    for name in ["Ada", "Bob", "Cy"] {
        let (status, person) = app
            .post(
                "/api/v2/persons",
                &json!({"first_name": name, "last_name": "Test", "company_name": "Within Ltd"}),
            )
            .await;
        assert_eq!(status, 201, "{person}");
        ids.push(person["id"].as_i64().expect("an id"));
    }
    // Far from the demo's booths: only these three are there.
    let place = (45.0, 7.0);
    for (person, time) in [
        (ids[0], "2021-03-01T10:00:00Z"),
        (ids[1], "2021-03-01T10:02:00Z"),
        (ids[2], "2021-03-01T14:00:00Z"),
    ] {
        let (status, body) = app
            .post(
                "/api/v2/locations",
                &json!({"person_id": person, "lat": place.0, "lon": place.1, "time": time}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        eventually_get(&app, &format!("/api/v2/locations/{}", body["id"])).await;
    }
    let met = |within: &'static str| {
        let app = &app;
        let ada = ids[0];
        async move {
            let query = format!("start=2021-03-01&end=2021-03-02&distance=1{within}");
            let contacts = all_contacts(app, ada, &query).await;
            contacts
                .iter()
                .map(|contact| contact["person"]["id"].as_i64().expect("an id"))
                .collect::<BTreeSet<i64>>()
        }
    };
    assert_eq!(met("").await, BTreeSet::from([ids[1], ids[2]]));
    assert_eq!(met("&within=5m").await, BTreeSet::from([ids[1]]));
    assert_eq!(met("&within=4h").await, BTreeSet::from([ids[1], ids[2]]));
    let (_, page) = app
        .get(&format!(
            "/api/v2/persons/{}/connections?start=2021-03-01&end=2021-03-02&distance=1&within=5m",
            ids[0]
        ))
        .await;
    assert_eq!(page["query"]["within_s"], 300.0);
    assert_eq!(page["contacts"][0]["closest"]["distance_m"], 0.0);
    assert_eq!(page["contacts"][0]["closest"]["lat"], 45.0);
    assert_eq!(page["contacts"][0]["first_met"], "2021-03-01T10:02:00Z");
    app.stop().await;
}

#[tokio::test]
async fn the_original_endpoints_keep_its_shapes_and_axes() {
    let app = spawn_app(&[]).await;
    let (status, person) = app
        .post(
            "/api/persons",
            &json!({"first_name": "Pam", "last_name": "Trexler", "company_name": "Hampton"}),
        )
        .await;
    assert_eq!(status, 200, "the original answers 200: {person}");
    let id = person["id"].as_i64().expect("an id");
    let (status, fetched) = app.get(&format!("/api/persons/{id}")).await;
    assert_eq!((status, &fetched), (200, &person));

    let (status, location) = app
        .post(
            "/api/locations",
            &json!({"person_id": id, "latitude": "-122.290883", "longitude": "37.553441",
                    "creation_time": "2020-08-18T10:37:06"}),
        )
        .await;
    assert_eq!(status, 200, "{location}");
    assert_eq!(location["latitude"], "-122.290883");
    assert_eq!(location["longitude"], "37.553441");
    assert_eq!(location["creation_time"], "2020-08-18T10:37:06");
    assert_eq!(location["person_id"], id);
    let location_id = location["id"].as_i64().expect("an id");
    // Answered once on the bus; readable once the writer has stored it.
    let fetched = eventually_get(&app, &format!("/api/locations/{location_id}")).await;
    assert_eq!(fetched, location);
    // The original's latitude is the point's X: the longitude.
    let (status, v2) = app.get(&format!("/api/v2/locations/{location_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        (v2["lat"].as_f64(), v2["lon"].as_f64()),
        (Some(37.553441), Some(-122.290883))
    );
    assert_eq!(v2["time"], "2020-08-18T10:37:06Z");
    app.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_json_error_naming_what_is_wrong() {
    let app = spawn_app(&[]).await;
    let bad_gets = [
        ("/api/persons/abc", "person_id"),
        ("/api/locations/1.5", "location_id"),
        (
            "/api/persons/1/connection?end_date=2020-12-30",
            "start_date",
        ),
        (
            "/api/persons/1/connection?start_date=2020-13-01&end_date=2020-12-30",
            "start_date",
        ),
        (
            "/api/persons/1/connection?start_date=2020-02-01&end_date=2020-01-01",
            "end_date",
        ),
        (
            "/api/persons/1/connection?start_date=2020-01-01&end_date=2020-12-30&distance=-5",
            "distance",
        ),
        (
            "/api/persons/1/connection?start_date=2020-01-01&end_date=2020-12-30&distance=far",
            "distance",
        ),
        (
            "/api/persons/1/connection?start_date=2020-01-01&end_date=2020-12-30&distance=1e12",
            "distance",
        ),
        ("/api/v2/persons/1/connections?start=2020-06-08", "end"),
        (
            "/api/v2/persons/1/connections?start=soon&end=2020-06-09",
            "start",
        ),
        (
            "/api/v2/persons/1/connections?start=2020-06-08&end=2020-06-09&within=forever",
            "within",
        ),
        (
            "/api/v2/persons/1/connections?start=2020-06-08&end=2020-06-09&limit=0",
            "limit",
        ),
        (
            "/api/v2/persons/1/connections?start=2020-06-08&end=2020-06-09&cursor=xyz",
            "cursor",
        ),
        (
            "/api/v2/persons/1/connections?start=2020-06-08&end=2020-06-09&distnace=5",
            "distnace",
        ),
        ("/api/v2/persons?limit=5000", "limit"),
        ("/api/v2/persons/x/locations", "person_id"),
    ];
    for (path, named) in bad_gets {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        let error = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: {body}"));
        assert!(
            error.contains(named),
            "{path}: {error:?} should name {named}"
        );
    }
    let bad_posts = [
        (
            "/api/persons",
            json!({"first_name": "A", "last_name": "B"}),
            "company_name",
        ),
        (
            "/api/persons",
            json!({"first_name": " ", "last_name": "B", "company_name": "C"}),
            "first_name",
        ),
        (
            "/api/persons",
            json!({"first_name": "A", "last_name": "B", "company_name": "C", "age": 3}),
            "age",
        ),
        (
            "/api/locations",
            json!({"person_id": 1, "latitude": "north", "longitude": "1"}),
            "latitude",
        ),
        (
            "/api/locations",
            json!({"person_id": 1, "latitude": "37.5", "longitude": "-122.3"}),
            "longitude",
        ),
        (
            "/api/locations",
            json!({"person_id": 99999, "latitude": "-122.3", "longitude": "37.5"}),
            "person_id",
        ),
        (
            "/api/locations",
            json!({"person_id": 1, "latitude": "-122.3", "longitude": "37.5", "creation_time": "noon"}),
            "creation_time",
        ),
        (
            "/api/v2/locations",
            json!({"person_id": 1, "lat": 91.0, "lon": 0.0}),
            "lat",
        ),
        (
            "/api/v2/locations",
            json!({"person_id": 1, "lat": 0.0, "lon": 181.0}),
            "lon",
        ),
        (
            "/api/v2/persons",
            json!({"first_name": "A", "last_name": "B", "company_name": "x".repeat(201)}),
            "company_name",
        ),
    ];
    for (path, body, named) in bad_posts {
        let (status, answer) = app.post(path, &body).await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        let error = answer["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{answer}"));
        assert!(
            error.contains(named),
            "{path} {body}: {error:?} should name {named}"
        );
    }
    let (status, answer) = app
        .post_raw("/api/persons", "application/json", "{not json")
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].is_string());
    for path in [
        "/api/persons/99999",
        "/api/locations/99999999",
        "/api/persons/99999/connection?start_date=2020-01-01&end_date=2020-12-30",
        "/api/v2/persons/99999",
        "/api/v2/persons/99999/connections?start=2020-06-08&end=2020-06-09",
        "/api/v2/locations/99999999",
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|error| error.contains("not found")),
            "{body}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn queries_are_measured_and_any_origin_may_call() {
    let app = spawn_app(&[]).await;
    let (status, _) = app
        .get(&format!("/api/v2/persons/2/connections?{DEMO}"))
        .await;
    assert_eq!(status, 200);
    let count = metric(
        &app,
        "udaconnect_query_duration_seconds_count{query=\"connections\"}",
    )
    .await;
    assert_eq!(count, Some(1.0));
    let (status, _) = app.get("/api/persons/abc").await;
    assert_eq!(status, 400);
    for sample in [
        "udaconnect_http_requests_total{route=\"/api/v2/persons/{person_id}/connections\",status=\"200\",path=\"router\"}",
        "udaconnect_http_requests_total{route=\"/api/persons/{person_id}\",status=\"400\",path=\"router\"}",
    ] {
        assert_eq!(metric(&app, sample).await, Some(1.0), "{sample}");
    }
    let response = app
        .http
        .get(format!("{}/api/persons", app.base))
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .expect("sent");
    assert_eq!(
        response
            .headers()
            .get("access-control-allow-origin")
            .and_then(|value| value.to_str().ok()),
        Some("*")
    );
    app.stop().await;
}

/// The next `stats` event of a live stream.
async fn next_stats(live: &mut SseClient) -> Value {
    loop {
        let event = tokio::time::timeout(PATIENCE, live.next_event())
            .await
            .expect("an event in time")
            .expect("the stream stays open");
        if event.event.as_deref() == Some("stats") {
            return serde_json::from_str(&event.data).expect("JSON stats");
        }
    }
}

#[tokio::test]
async fn the_live_stream_counts_what_is_stored_as_it_grows() {
    let app = spawn_app(&[]).await;
    let mut live = SseClient::connect(&format!("{}/api/v2/live", app.base), None)
        .await
        .expect("the live stream opens");
    let first = next_stats(&mut live).await;
    let (_, stats) = app.get("/api/v2/stats").await;
    assert_eq!(first["locations"], stats["locations"]);
    assert_eq!(first["persons"], stats["persons"]);
    for minute in 0..3 {
        let (status, body) = app
            .post(
                "/api/v2/locations",
                &json!({"person_id": 1, "lat": 10.0, "lon": 10.0,
                        "time": format!("2021-01-01T10:0{minute}:00Z")}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let before = first["locations"].as_u64().expect("a count");
    loop {
        let stats = next_stats(&mut live).await;
        if stats["locations"].as_u64() == Some(before + 3) {
            assert!(stats["rate"].as_f64().expect("a rate") > 0.0, "{stats}");
            break;
        }
    }
    app.stop().await;
}

/// A GET as the original's React frontend sends it from its own origin:
/// status, the CORS header, the cut header, and the JSON body.
async fn frontend_get(app: &TestApp, path: &str) -> (u16, Option<String>, Option<String>, Value) {
    let response = app
        .http
        .get(format!("{}{path}", app.base))
        .header("origin", "http://localhost:3000")
        .header("accept", "*/*")
        .send()
        .await
        .expect("request sent");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let (cors, cut) = (
        header("access-control-allow-origin"),
        header("x-truncated-at-rows"),
    );
    let status = response.status().as_u16();
    let body = response.json().await.expect("a JSON body");
    (status, cors, cut, body)
}

/// What the original's frontend does on `cargo run`'s demo: it lists the
/// persons, then, for the one clicked, asks its fixed question (2020, 5 m)
/// and keeps the first row of each other person. The demo's answer to that
/// question is millions of rows; it comes cut at the row limit, still an
/// array the frontend can show, and says so.
#[tokio::test]
async fn the_originals_frontend_shows_persons_and_connections_on_the_demo() {
    let app = spawn_app(&[]).await;
    let (status, cors, _, persons) = frontend_get(&app, "/api/persons").await;
    assert_eq!(status, 200);
    assert_eq!(cors.as_deref(), Some("*"));
    let persons = persons.as_array().expect("persons, an array");
    assert!(persons.len() >= 100, "{}", persons.len());
    for person in persons {
        for key in ["id", "first_name", "last_name", "company_name"] {
            assert!(!person[key].is_null(), "{person}");
        }
    }
    let clicked = persons[0]["id"].as_i64().expect("an id");
    let (status, cors, cut, rows) = frontend_get(
        &app,
        &format!(
            "/api/persons/{clicked}/connection?start_date=2020-01-01&end_date=2020-12-30&distance=5"
        ),
    )
    .await;
    assert_eq!(status, 200, "{rows}");
    assert_eq!(cors.as_deref(), Some("*"));
    assert_eq!(cut.as_deref(), Some("100000"), "the default row limit");
    let rows = rows.as_array().expect("connections, an array");
    assert_eq!(rows.len(), 100_000);
    // As the frontend shows them: the first row of each other person, with
    // a name, where and when (a time `new Date()` reads).
    let mut shown = BTreeSet::new();
    for row in rows {
        let person = &row["person"];
        let other = person["id"].as_i64().expect("the person's id");
        assert_ne!(other, clicked);
        if shown.insert(other) {
            assert!(person["first_name"].is_string() && person["last_name"].is_string());
            let location = &row["location"];
            for key in ["latitude", "longitude"] {
                let value = location[key].as_str().expect("a number as text");
                assert!(value.parse::<f64>().is_ok(), "{location}");
            }
            compat_time(location["creation_time"].as_str().expect("a time"));
        }
    }
    assert!(
        shown.len() >= 10,
        "the frontend shows {} persons",
        shown.len()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_cut_answer_is_the_start_of_the_whole_answer() {
    let question = "/api/persons/1/connection?start_date=2020-06-08&end_date=2020-06-09&distance=1";
    let whole = spawn_app(&["--compat-max-rows", "10000000"]).await;
    let (status, _, cut, all) = frontend_get(&whole, question).await;
    whole.stop().await;
    assert_eq!((status, cut), (200, None));
    let all = all.as_array().expect("rows").clone();
    assert!(all.len() > 100, "{}", all.len());

    let limit = all.len() / 3;
    let app = spawn_app(&["--compat-max-rows", &limit.to_string()]).await;
    let (status, _, cut, first) = frontend_get(&app, question).await;
    assert_eq!(status, 200);
    assert_eq!(cut, Some(limit.to_string()));
    assert_eq!(first.as_array().expect("rows")[..], all[..limit]);
    let cuts = metric(&app, "udaconnect_compat_answers_cut_total").await;
    assert_eq!(cuts, Some(1.0));
    let (status, _, cut, rows) = frontend_get(
        &app,
        "/api/persons/1/connection?start_date=2020-06-08&end_date=2020-06-08&distance=1",
    )
    .await;
    assert_eq!(
        (status, cut, rows),
        (200, None, json!([])),
        "an empty range"
    );
    app.stop().await;
}

#[tokio::test]
async fn persons_page_newest_first_so_the_last_added_comes_first() {
    let app = spawn_app(&[]).await;
    let (status, added) = app
        .post(
            "/api/v2/persons",
            &json!({"first_name": "Nia", "last_name": "Newcomer", "company_name": "Latecomers"}),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    let id = added["id"].as_i64().expect("an id");
    let (_, stats) = app.get("/api/v2/stats").await;
    let everyone = stats["persons"].as_u64().expect("a count");
    // Every page, newest first: everyone once, the one just added first.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = app
            .get(&format!("/api/v2/persons?order=newest&limit=7{cursor}"))
            .await;
        assert_eq!(status, 200, "{page}");
        let persons = page["persons"].as_array().expect("persons");
        seen.extend(
            persons
                .iter()
                .map(|person| person["id"].as_i64().expect("an id")),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen.first(), Some(&id));
    assert_eq!(seen.last(), Some(&1));
    assert!(seen.windows(2).all(|pair| pair[0] > pair[1]), "{seen:?}");
    assert_eq!(u64::try_from(seen.len()).ok(), Some(everyone));
    // A search, newest first.
    let (_, found) = app.get("/api/v2/persons?order=newest&q=NEWCOMER").await;
    assert_eq!(found["persons"], json!([added]));
    // A cursor pages in the order it was made for; the order and the text
    // are checked.
    let (_, first) = app.get("/api/v2/persons?order=newest&limit=1").await;
    let newest_cursor = first["next_cursor"].as_str().expect("a cursor");
    for (path, named) in [
        (format!("/api/v2/persons?cursor={newest_cursor}"), "cursor"),
        ("/api/v2/persons?order=oldest".to_owned(), "order"),
        (format!("/api/v2/persons?q={}", "x".repeat(201)), "q"),
    ] {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|error| error.contains(named)),
            "{path}: {body} should name {named}"
        );
    }
    let (status, _) = app
        .get(&format!("/api/v2/persons?q={}", "x".repeat(200)))
        .await;
    assert_eq!(status, 200, "200 characters are searched");
    app.stop().await;
}

/// The locations stored, as the live stream says once a second, until
/// `done` holds of them; panics after [`PATIENCE`] with the last count.
async fn locations_until(live: &mut SseClient, what: &str, done: impl Fn(u64) -> bool) -> u64 {
    let give_up = tokio::time::Instant::now() + PATIENCE;
    loop {
        let stats = next_stats(live).await;
        let locations = stats["locations"].as_u64().expect("a count");
        if done(locations) {
            return locations;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "{what}: after {PATIENCE:?} the live stream says {stats}"
        );
    }
}

/// The locations the next three counts (three seconds) say, all the same.
async fn locations_still(live: &mut SseClient) -> u64 {
    let first = next_stats(live).await;
    for _ in 0..3 {
        let next = next_stats(live).await;
        assert_eq!(next["locations"], first["locations"], "{first} then {next}");
    }
    first["locations"].as_u64().expect("a count")
}

const FED: &str = "udaconnect_ingest_accepted_total{transport=\"demo\"}";

#[tokio::test]
async fn the_demo_feed_walks_the_conference_now() {
    let app = spawn_app(&["--demo-feed", "20"]).await;
    let mut live = SseClient::connect(&format!("{}/api/v2/live", app.base), None)
        .await
        .expect("the live stream opens");
    let before = next_stats(&mut live).await["locations"]
        .as_u64()
        .expect("a count");
    locations_until(&mut live, "the feed's locations stored", |now| {
        now >= before + 40
    })
    .await;
    // Taken by the edge, and stored with the time they were sent: the
    // first attendee walked within the last minute.
    assert!(metric(&app, FED).await.is_some_and(|fed| fed >= 40.0));
    let since = (chrono::Utc::now() - chrono::Duration::minutes(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (status, recent) = app
        .get(&format!("/api/v2/persons/1/locations?start={since}"))
        .await;
    assert_eq!(status, 200, "{recent}");
    assert!(
        !recent["locations"]
            .as_array()
            .expect("locations")
            .is_empty(),
        "{recent}"
    );
    // The rate shown is the feed's, give or take the start.
    let rate = next_stats(&mut live).await["rate"]
        .as_f64()
        .expect("a rate");
    assert!((10.0..=25.0).contains(&rate), "{rate} for a feed of 20/s");
    // And it ends with the app, within the shutdown deadline.
    app.stop().await;
}

#[tokio::test]
async fn the_demo_feed_stops_at_its_limit_and_0_turns_it_off() {
    // Without the feed, the demo (the same seed, the same conference) stays
    // as it was made.
    let still = spawn_app(&["--demo-feed", "0"]).await;
    let mut live = SseClient::connect(&format!("{}/api/v2/live", still.base), None)
        .await
        .expect("the live stream opens");
    let demo = locations_still(&mut live).await;
    assert_eq!(metric(&still, FED).await, None);
    still.stop().await;

    let fed = spawn_app(&["--demo-feed", "50", "--demo-feed-limit", "30"]).await;
    let mut live = SseClient::connect(&format!("{}/api/v2/live", fed.base), None)
        .await
        .expect("the live stream opens");
    let reached =
        locations_until(&mut live, "the feed's 30 locations", |now| now >= demo + 30).await;
    assert_eq!(reached, demo + 30);
    assert_eq!(locations_still(&mut live).await, demo + 30);
    assert_eq!(metric(&fed, FED).await, Some(30.0));
    fed.stop().await;
}
