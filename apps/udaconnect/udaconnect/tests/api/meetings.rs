//! The meetings pipeline end to end on a real nats-server and PostgreSQL:
//! locations sent to an edge in shuffled batches (late ones among them),
//! stored by a writer, announced on the stored-locations stream and folded
//! in by a meetings process that is killed mid-stream and replaced by
//! another; the meetings stored then equal the one-pass reference over
//! the stored rows, and the API pages them.

use chrono::NaiveDateTime;
use rand::{RngExt, SeedableRng, rngs::StdRng, seq::SliceRandom};
use serde_json::{Value, json};
use testkit::{NatsServer, PostgresServer, eventually};
use udaconnect_domain::{
    Position, Timestamp,
    meeting::{Closest, Meeting, MeetingRules, Sighting, reference},
};

use super::helpers::{PATIENCE, spawn_target};

const MINUTE: i64 = 60_000_000;

pub(super) async fn client(db: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(db, tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    client
}

pub(super) async fn count(db: &str, query: &str) -> i64 {
    client(db)
        .await
        .query_one(query, &[])
        .await
        .expect("counts")
        .get(0)
}

fn micros(time: NaiveDateTime) -> Timestamp {
    Timestamp::from_naive(time)
}

/// Adds persons `P1` to `P<count>`, ids 1 to `count` on a fresh database.
pub(super) async fn add_persons(admin: &tokio_postgres::Client, count: i32) {
    for n in 1..=count {
        admin
            .execute(
                "INSERT INTO person (first_name, last_name, company_name) VALUES ($1, 'Walker', 'Co')",
                &[&format!("P{n}")],
            )
            .await
            .expect("a person");
    }
}

/// Asserts that the meetings stored equal the one-pass reference over the
/// locations stored, and returns them.
pub(super) async fn assert_stored_equal_reference(
    admin: &tokio_postgres::Client,
    rules: &MeetingRules,
) -> Vec<Meeting> {
    let rows = admin
        .query(
            "SELECT id, person_id, creation_time, lat, lon FROM location",
            &[],
        )
        .await
        .expect("locations");
    let sightings: Vec<Sighting> = rows
        .iter()
        .map(|row| Sighting {
            id: row.get(0),
            person: row.get(1),
            at: micros(row.get(2)),
            position: Position {
                lat: row.get(3),
                lon: row.get(4),
            },
        })
        .collect();
    let expected = reference(rules, &sightings);
    let stored: Vec<Meeting> = admin
        .query(
            "SELECT person_a, person_b, start_time, end_time, contacts, closest_m, closest_at, \
             closest_lat, closest_lon, closest_location_a, closest_location_b \
             FROM meeting ORDER BY person_a, person_b, start_time",
            &[],
        )
        .await
        .expect("meetings")
        .iter()
        .map(|row| Meeting {
            persons: (row.get(0), row.get(1)),
            start: micros(row.get(2)),
            end: micros(row.get(3)),
            contacts: row.get(4),
            closest: Closest {
                metres: row.get(5),
                at: micros(row.get(6)),
                place: Position {
                    lat: row.get(7),
                    lon: row.get(8),
                },
                locations: (row.get(9), row.get(10)),
            },
        })
        .collect();
    assert_eq!(stored, expected, "no meeting lost, doubled or cut in two");
    expected
}

#[tokio::test]
async fn meetings_computed_as_locations_stream_in_equal_the_reference_after_a_kill() {
    let (nats, pg) = tokio::task::spawn_blocking(|| (NatsServer::start(), PostgresServer::start()))
        .await
        .expect("servers start");
    let db = pg.create_database("meetings");
    let url = nats.url();
    let common = ["--nats-url", url.as_str(), "--database-url", db.as_str()];
    let with = |extra: &[&'static str]| -> Vec<&str> {
        common
            .iter()
            .copied()
            .chain(extra.iter().copied())
            .collect()
    };
    let edge = spawn_target("ingest", &with(&[])).await;
    let writer = spawn_target("writer", &with(&[])).await;
    let meetings_args = with(&[
        "--meetings-ack-wait",
        "2s",
        "--meetings-fetch",
        "4",
        "--meetings-within",
        "2m",
        "--meetings-gap",
        "3m",
    ]);
    let first = spawn_target("meetings", &meetings_args).await;

    let persons = 5;
    let admin = client(&db).await;
    add_persons(&admin, persons).await;
    // A crowd around two spots for two hours; sent shuffled, so that many
    // arrive after later ones (a phone's backlog).
    let mut rng = StdRng::seed_from_u64(5);
    let base = chrono::NaiveDate::from_ymd_opt(2021, 3, 1)
        .and_then(|day| day.and_hms_opt(10, 0, 0))
        .expect("a time");
    let mut locations: Vec<Value> = Vec::new();
    for person in 1..=persons {
        for _ in 0..80 {
            let spot = f64::from(rng.random_range(0..2_u8)) * 0.0005;
            let time = base + chrono::Duration::microseconds(rng.random_range(0..120 * MINUTE));
            locations.push(json!({
                "person_id": person,
                "lat": 45.0 + spot + rng.random_range(-0.00003..0.00003),
                "lon": 7.0 + rng.random_range(-0.00004..0.00004),
                "time": format!("{}Z", time.format("%Y-%m-%dT%H:%M:%S%.6f")),
            }));
        }
    }
    locations.shuffle(&mut rng);
    let sent = locations.len() as i64;
    let (early, late) = locations.split_at(locations.len() / 2);
    for chunk in early.chunks(20) {
        let (status, reply) = edge
            .post("/api/v2/locations:batch", &json!({ "locations": chunk }))
            .await;
        assert_eq!(status, 200, "{reply}");
    }
    // Killed once it has folded some in, with more on their way.
    eventually("some locations folded in", PATIENCE, || async {
        (count(&db, "SELECT count(*) FROM meeting_position").await > 0).then_some(())
    })
    .await;
    first.kill().await;
    for chunk in late.chunks(20) {
        let (status, reply) = edge
            .post("/api/v2/locations:batch", &json!({ "locations": chunk }))
            .await;
        assert_eq!(status, 200, "{reply}");
    }
    let second = spawn_target("meetings", &meetings_args).await;
    eventually("every location folded in", PATIENCE, || async {
        (count(&db, "SELECT count(*) FROM meeting_position").await == sent).then_some(())
    })
    .await;
    assert_eq!(count(&db, "SELECT count(*) FROM location").await, sent);

    // The reference, over the rows as stored.
    let rules = MeetingRules::new(5.0, 2 * MINUTE, 3 * MINUTE).expect("rules");
    let expected = assert_stored_equal_reference(&admin, &rules).await;
    assert!(expected.len() > 10, "the crowd meets: {}", expected.len());

    // Every meeting was published on the events' stream, its last event
    // as it is stored (events come at least once, in write order).
    let bus = platform::bus::Bus::Nats(
        platform::bus::NatsBus::connect(
            &url.parse().expect("a URL"),
            &platform::bus::NatsArgs::default(),
            "test",
        )
        .await
        .expect("connects"),
    );
    let events = bus.stream(platform::bus::StreamSettings::log(
        "MEETINGS",
        "udaconnect.meetings",
        1_000_000,
    ));
    let stored_ids: std::collections::BTreeMap<i64, (NaiveDateTime, i64)> = admin
        .query("SELECT id, end_time, contacts FROM meeting", &[])
        .await
        .expect("meetings")
        .iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2))))
        .collect();
    eventually(
        "the last events equal the stored meetings",
        PATIENCE,
        || async {
            let mut last = std::collections::BTreeMap::new();
            for envelope in events.fetch(1, 100_000).await.ok()? {
                let event: Value = serde_json::from_slice(envelope.payload.as_ref()).ok()?;
                let id = event["id"].as_i64()?;
                let end = chrono::DateTime::parse_from_rfc3339(event["end"].as_str()?)
                    .ok()?
                    .naive_utc();
                last.insert(id, (end, event["contacts"].as_i64()?));
            }
            let matches = stored_ids
                .iter()
                .all(|(id, stored)| last.get(id) == Some(stored));
            matches.then_some(())
        },
    )
    .await;

    // The API pages person 1's meetings, most recent first.
    let api = spawn_target("api", &["--database-url", db.as_str()]).await;
    let mut seen = Vec::new();
    let mut path = "/api/v2/persons/1/meetings?limit=2".to_owned();
    loop {
        let (status, page) = api.get(&path).await;
        assert_eq!(status, 200, "{page}");
        for meeting in page["meetings"].as_array().expect("meetings") {
            assert_ne!(meeting["with"]["id"], 1, "{meeting}");
            seen.push(meeting["start"].as_str().expect("start").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v2/persons/1/meetings?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let mine = expected
        .iter()
        .filter(|m| m.persons.0 == 1 || m.persons.1 == 1)
        .count();
    assert_eq!(seen.len(), mine);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "most recent first");
    let (status, _) = api.get("/api/v2/persons/999/meetings").await;
    assert_eq!(status, 404);

    for app in [api, second, writer, edge] {
        app.stop().await;
    }
}

#[tokio::test]
async fn the_embedded_demo_has_meetings_from_its_conference() {
    let app = super::helpers::spawn_app(&["--demo-meetings", "true"]).await;
    let page = eventually("the demo's meetings", PATIENCE, || async {
        let (status, page) = app.get("/api/v2/persons/1/meetings?limit=5").await;
        (status == 200 && page["meetings"].as_array().is_some_and(|m| !m.is_empty()))
            .then_some(page)
    })
    .await;
    let first = &page["meetings"][0];
    assert!(
        first["duration_s"].as_f64().is_some_and(|d| d >= 0.0),
        "{first}"
    );
    assert!(
        first["contacts"].as_i64().is_some_and(|c| c >= 1),
        "{first}"
    );
    assert!(
        first["closest"]["distance_m"]
            .as_f64()
            .is_some_and(|d| d <= 5.0),
        "{first}"
    );
    app.stop().await;
}

/// Posts, for persons `a` and `b`, a location each 20 seconds apart from
/// `from` (minutes after 2022-05-02 09:00) for `count` reports, side by
/// side.
pub(super) async fn walk_together(
    app: &super::helpers::TestApp,
    a: i64,
    b: i64,
    from: i64,
    count: i64,
) {
    let (status, reply) = app
        .post("/api/v2/locations:batch", &side_by_side(a, b, from, count))
        .await;
    assert_eq!(status, 200, "{reply}");
}

/// The batch [`walk_together`] posts.
pub(super) fn side_by_side(a: i64, b: i64, from: i64, count: i64) -> Value {
    let base = chrono::NaiveDate::from_ymd_opt(2022, 5, 2)
        .and_then(|day| day.and_hms_opt(9, 0, 0))
        .expect("a time");
    let mut locations = Vec::new();
    for n in 0..count {
        let time = base + chrono::Duration::seconds(from * 60 + n * 20);
        let time = format!("{}Z", time.format("%Y-%m-%dT%H:%M:%S"));
        locations.push(json!({"person_id": a, "lat": 48.0, "lon": 11.0, "time": time}));
        locations.push(json!({"person_id": b, "lat": 48.00001, "lon": 11.0, "time": time}));
    }
    json!({ "locations": locations })
}

/// A person named `name` Live, through the API; their id.
pub(super) async fn person(app: &super::helpers::TestApp, name: &str) -> i64 {
    let (status, person) = app
        .post(
            "/api/v2/persons",
            &json!({"first_name": name, "last_name": "Live", "company_name": "Co"}),
        )
        .await;
    assert_eq!(status, 201, "{person}");
    person["id"].as_i64().expect("an id")
}

/// The next `meeting` event, skipping others.
async fn next_meeting(stream: &mut testkit::SseClient) -> (Value, Option<String>) {
    loop {
        let event = stream.next_event().await.expect("the stream goes on");
        if event.event.as_deref() == Some("meeting") {
            let meeting: Value = serde_json::from_str(&event.data).expect("JSON");
            return (meeting, event.id);
        }
    }
}

#[tokio::test]
async fn a_persons_meetings_stream_live_and_resume_from_the_last_event() {
    let app = super::helpers::spawn_app(&[]).await;
    let (ada, grace, alan) = (
        person(&app, "Ada").await,
        person(&app, "Grace").await,
        person(&app, "Alan").await,
    );
    let url = |id: i64| format!("{}/api/v2/persons/{id}/meetings/live", app.base);
    let mut stream = testkit::SseClient::connect(&url(ada), None)
        .await
        .expect("a stream")
        .with_patience(PATIENCE);
    // A meeting starts.
    walk_together(&app, ada, grace, 0, 4).await;
    let (meeting, id) = next_meeting(&mut stream).await;
    assert_eq!(meeting["with"]["id"], grace, "{meeting}");
    assert_eq!(meeting["start"], "2022-05-02T09:00:00Z", "{meeting}");
    let first_id = meeting["id"].clone();
    let cursor = id.expect("the last event of a read carries its cursor");
    drop(stream);

    // While the page is away, it grows, and another one starts.
    walk_together(&app, ada, grace, 1, 3).await;
    walk_together(&app, ada, alan, 30, 2).await;
    // Someone else's meeting is not Ada's business.
    walk_together(&app, grace, alan, 60, 2).await;
    let mut resumed = testkit::SseClient::resume(&url(ada), Some(&cursor))
        .await
        .expect("a stream")
        .with_patience(PATIENCE);
    let mut seen = std::collections::BTreeMap::new();
    while !(seen
        .get(&first_id.to_string())
        .is_some_and(|m: &Value| m["end"] == "2022-05-02T09:01:40Z")
        && seen.values().any(|m| m["with"]["id"] == alan))
    {
        let (meeting, _) = next_meeting(&mut resumed).await;
        assert!(
            meeting["with"]["id"] == grace || meeting["with"]["id"] == alan,
            "{meeting}"
        );
        seen.insert(meeting["id"].to_string(), meeting);
    }

    let bad = testkit::SseClient::resume(&url(ada), Some("not a cursor")).await;
    assert!(bad.is_err_and(|err| err.starts_with("400")));
    let unknown = testkit::SseClient::connect(&url(99_999), None).await;
    assert!(unknown.is_err_and(|err| err.starts_with("404")));
    app.stop().await;
}
