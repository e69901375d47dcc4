//! Erasure end to end. On a real nats-server and PostgreSQL: three
//! persons walk together, their positions streaming in through an edge,
//! and one of them is erased while positions of theirs are on every leg
//! of the way (on LOCATIONS, stored but not folded in yet, still being
//! sent); once the pipeline has drained, no table, no dead letter and no
//! answer of the API (the connections replica's included, and the other
//! persons' live streams) holds anything of them, and the other two's
//! meeting is whole. And the embedded `all` target forgets an erased
//! person from memory alike.

use std::{
    collections::BTreeSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use chrono::NaiveDateTime;
use platform::bus::{Bus, BusStream, NatsArgs, NatsBus, StreamSettings};
use serde_json::{Value, json};
use testkit::{NatsServer, PostgresServer, SseClient, eventually};
use udaconnect::bus_wire;
use udaconnect_domain::{
    Position, Timestamp,
    meeting::{MeetingRules, Sighting, reference},
};

use super::{
    helpers::{PATIENCE, TestApp, metric, spawn_app, spawn_target},
    meetings::{person, walk_together},
};

/// The one number `query` answers on `db` with `params`.
async fn number(
    db: &str,
    query: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> i64 {
    let (client, connection) = tokio_postgres::connect(db, tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    client
        .query_one(query, params)
        .await
        .expect("a number")
        .get(0)
}

/// What the positions sent have met with so far.
#[derive(Default)]
struct Sent {
    /// Ticks posted.
    ticks: i64,
    /// The ids the edge gave the erased person's positions.
    theirs: Vec<i64>,
    /// Their positions the edge refused as of nobody.
    refused: usize,
}

/// Posts, every 50 ms until `stop`, one position each of `persons` (the
/// first with an idempotency key) side by side, 20 s of their time apart,
/// from 2022-05-02 09:00.
fn stream_positions(
    edge: Arc<TestApp>,
    persons: [i64; 3],
    sent: Arc<Mutex<Sent>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let base = chrono::NaiveDate::from_ymd_opt(2022, 5, 2)
            .and_then(|day| day.and_hms_opt(9, 0, 0))
            .expect("a time");
        let mut tick = 0_i64;
        while !stop.load(Ordering::Relaxed) {
            let time = base + chrono::Duration::seconds(tick * 20);
            let time = format!("{}Z", time.format("%Y-%m-%dT%H:%M:%S"));
            let locations: Vec<Value> = persons
                .iter()
                .enumerate()
                .map(|(n, id)| {
                    let mut item = json!({"person_id": id, "lat": 48.0 + n as f64 * 0.00001,
                                          "lon": 11.0, "time": time});
                    if n == 0 {
                        item["key"] = json!(format!("erased-{tick}"));
                    }
                    item
                })
                .collect();
            let (status, reply) = edge
                .post(
                    "/api/v2/locations:batch",
                    &json!({ "locations": locations }),
                )
                .await;
            assert!(status == 200 || status == 207, "{status}: {reply}");
            {
                let mut sent = sent.lock().unwrap();
                sent.ticks = tick + 1;
                let rejected = reply["rejected"].as_array().cloned().unwrap_or_default();
                if rejected.is_empty() {
                    sent.theirs.push(reply["ids"][0].as_i64().expect("an id"));
                }
                for item in rejected {
                    assert_eq!(
                        (item["index"].as_i64(), item["problem"].as_str()),
                        (Some(0), Some("unknown")),
                        "{item}"
                    );
                    sent.refused += 1;
                }
            }
            tick += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

fn stream(bus: &Bus, name: &str, subject: &str) -> BusStream {
    bus.stream(StreamSettings::log(name, subject, 1_000_000))
}

/// The text of `GET path` on `app`, which must answer `status`.
async fn text(app: &TestApp, path: &str, status: u16) -> String {
    let response = app
        .http
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), status, "GET {path}");
    response.text().await.expect("a body")
}

/// The other persons of `person`'s meetings, by the API.
async fn met(app: &TestApp, person: i64) -> BTreeSet<i64> {
    let (status, page) = app.get(&format!("/api/v2/persons/{person}/meetings")).await;
    assert_eq!(status, 200, "{page}");
    page["meetings"]
        .as_array()
        .expect("meetings")
        .iter()
        .map(|m| m["with"]["id"].as_i64().expect("an id"))
        .collect()
}

/// The next `meeting` event's data and id.
async fn next_meeting(stream: &mut SseClient) -> Option<(Value, Option<String>)> {
    loop {
        let event = stream.next_event().await?;
        if event.event.as_deref() == Some("meeting") {
            return Some((serde_json::from_str(&event.data).expect("JSON"), event.id));
        }
    }
}

#[tokio::test]
async fn an_erased_person_leaves_nothing_behind_though_their_positions_were_in_flight() {
    let (nats, pg) = tokio::task::spawn_blocking(|| (NatsServer::start(), PostgresServer::start()))
        .await
        .expect("servers start");
    let db = pg.create_database("erasure");
    let url = nats.url();
    let with = |extra: &[&'static str]| -> Vec<String> {
        ["--nats-url", url.as_str(), "--database-url", db.as_str()]
            .iter()
            .chain(extra)
            .map(|arg| (*arg).to_owned())
            .collect()
    };
    let spawn = |target: &'static str, args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        spawn_target(target, &args).await
    };
    let writer_args = with(&["--writer-ack-wait", "2s"]);
    let meetings_args = with(&["--meetings-ack-wait", "2s"]);
    let edge = Arc::new(spawn("ingest", with(&[])).await);
    let writer = spawn("writer", writer_args.clone()).await;
    let folder = spawn("meetings", meetings_args.clone()).await;
    // Answering connections from its replica, loaded before the erasure.
    let api = spawn(
        "api",
        vec![
            "--database-url".into(),
            db.clone(),
            "--replica".into(),
            "true".into(),
        ],
    )
    .await;
    let (zelda, bob, cy) = (
        person(&api, "Zelda").await,
        person(&api, "Bob").await,
        person(&api, "Cy").await,
    );

    let live = |id: i64| format!("{}/api/v2/persons/{id}/meetings/live", api.base);
    let mut hers = SseClient::connect(&live(zelda), None)
        .await
        .expect("her stream")
        .with_patience(PATIENCE);
    let mut bobs = SseClient::connect(&live(bob), None)
        .await
        .expect("Bob's stream")
        .with_patience(PATIENCE);
    let sent = Arc::new(Mutex::new(Sent::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let streaming = stream_positions(
        Arc::clone(&edge),
        [zelda, bob, cy],
        Arc::clone(&sent),
        Arc::clone(&stop),
    );

    // Everyone meets everyone; Bob's stream says so, and where it stands.
    eventually("the three pairs' meetings", PATIENCE, || async {
        let pairs = number(
            &db,
            "SELECT count(DISTINCT (person_a, person_b)) FROM meeting",
            &[],
        )
        .await;
        (pairs == 3).then_some(())
    })
    .await;
    let cursor = loop {
        let (_, id) = next_meeting(&mut bobs).await.expect("Bob's stream goes on");
        if let Some(id) = id {
            break id;
        }
    };
    drop(bobs);

    // Stored, not folded in: the meetings target stops, the positions go on.
    folder.stop().await;
    let folded = number(&db, "SELECT count(*) FROM meeting_position", &[]).await;
    eventually("hers stored, not folded in", PATIENCE, || async {
        let stored = number(
            &db,
            "SELECT count(*) FROM location WHERE person_id = $1",
            &[&i32::try_from(zelda).unwrap()],
        )
        .await;
        let folded_hers = number(
            &db,
            "SELECT count(*) FROM meeting_position WHERE person_id = $1",
            &[&i32::try_from(zelda).unwrap()],
        )
        .await;
        (stored >= folded_hers + 10).then_some(())
    })
    .await;
    assert!(folded > 0);
    // On the bus, not stored: the writer stops, the positions go on.
    writer.stop().await;
    let bus = Bus::Nats(
        NatsBus::connect(&url.parse().expect("a URL"), &NatsArgs::default(), "test")
            .await
            .expect("connects"),
    );
    let locations = stream(&bus, "LOCATIONS", "udaconnect.locations");
    let accepted = sent.lock().unwrap().theirs.len();
    eventually("hers on the bus", PATIENCE, || async {
        let waiting = locations.messages().await.ok()?;
        (waiting >= 10 && sent.lock().unwrap().theirs.len() >= accepted + 10).then_some(())
    })
    .await;

    // Erased, with positions of hers on every leg of the way, and more
    // coming until the edge learns of it.
    let erase = || async {
        api.http
            .delete(format!("{}/api/v2/persons/{zelda}", api.base))
            .send()
            .await
            .expect("an answer")
            .status()
            .as_u16()
    };
    assert_eq!(erase().await, 204);
    assert_eq!(erase().await, 404);
    let refused_at = eventually("the edge refuses her", PATIENCE, || async {
        let sent = sent.lock().unwrap();
        (sent.refused > 0).then_some(sent.ticks)
    })
    .await;
    // Her own stream ends.
    while next_meeting(&mut hers).await.is_some() {}

    let writer = spawn("writer", writer_args).await;
    let folder = spawn("meetings", meetings_args).await;
    // A few more of Bob's and Cy's after the edge refused hers, then
    // quiet.
    eventually("more positions after", PATIENCE, || async {
        (sent.lock().unwrap().ticks >= refused_at + 10).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    streaming.await.expect("the positions sent");
    eventually("the pipeline drained", PATIENCE, || async {
        let waiting = locations.messages().await.ok()?;
        let stored = number(&db, "SELECT count(*) FROM location", &[]).await;
        let folded = number(&db, "SELECT count(*) FROM meeting_position", &[]).await;
        let pending = metric(&folder, "udaconnect_meetings_pending_messages").await?;
        (waiting == 0 && stored == folded && pending == 0.0).then_some(())
    })
    .await;
    // Hers were on both legs, and dropped on each.
    let dropped = metric(&writer, "udaconnect_writer_rows_total{outcome=\"erased\"}").await;
    assert!(dropped.is_some_and(|n| n > 0.0), "{dropped:?}");
    let passed_over = metric(
        &folder,
        "udaconnect_meetings_locations_total{outcome=\"erased\"}",
    )
    .await;
    assert!(passed_over.is_some_and(|n| n > 0.0), "{passed_over:?}");

    // No table holds anything of hers but the tombstone.
    let id = i32::try_from(zelda).unwrap();
    for query in [
        "SELECT count(*) FROM person WHERE id = $1",
        "SELECT count(*) FROM location WHERE person_id = $1",
        "SELECT count(*) FROM meeting_position WHERE person_id = $1",
        "SELECT count(*) FROM meeting WHERE person_a = $1 OR person_b = $1",
        "SELECT count(*) FROM ingest_key_claim WHERE person_id = $1",
    ] {
        assert_eq!(number(&db, query, &[&id]).await, 0, "{query}");
    }
    assert_eq!(
        number(
            &db,
            "SELECT count(*) FROM erased_person WHERE person_id = $1",
            &[&id]
        )
        .await,
        1
    );
    // Nothing was set aside, hers least of all.
    let dead = stream(&bus, "LOCATIONS_DEAD", "udaconnect.locations.dead")
        .fetch(1, 10_000)
        .await
        .expect("the dead letters");
    for letter in &dead {
        let letter = bus_wire::read_dead_letter(&letter.payload).expect("a dead letter");
        let records = bus_wire::decode(&letter.payload).unwrap_or_default();
        assert!(
            records.iter().all(|r| i64::from(r.person_id) != zelda),
            "{letter:?}"
        );
    }
    assert!(dead.is_empty(), "{} dead letters", dead.len());

    // Bob's and Cy's meeting is whole: the one-pass reference over their
    // stored locations.
    let (client, connection) = tokio_postgres::connect(&db, tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    let pair = (i32::try_from(bob).unwrap(), i32::try_from(cy).unwrap());
    let sightings: Vec<Sighting> = client
        .query(
            "SELECT id, person_id, creation_time, lat, lon FROM location WHERE person_id = ANY ($1)",
            &[&vec![pair.0, pair.1]],
        )
        .await
        .expect("their locations")
        .iter()
        .map(|row| Sighting {
            id: row.get(0),
            person: row.get(1),
            at: Timestamp::from_naive(row.get::<_, NaiveDateTime>(2)),
            position: Position {
                lat: row.get(3),
                lon: row.get(4),
            },
        })
        .collect();
    let expected = reference(&MeetingRules::default(), &sightings);
    let stored: Vec<(i64, NaiveDateTime, NaiveDateTime)> = client
        .query(
            "SELECT contacts, start_time, end_time FROM meeting WHERE person_a = $1 AND person_b = $2",
            &[&pair.0, &pair.1],
        )
        .await
        .expect("their meetings")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert_eq!(expected.len(), 1, "{expected:?}");
    assert_eq!(
        stored,
        expected
            .iter()
            .map(|m| (m.contacts, m.start.to_naive(), m.end.to_naive()))
            .collect::<Vec<_>>()
    );

    // No answer of the API mentions her: not by name, not by id.
    let theirs = sent.lock().unwrap().theirs.clone();
    let stored_locations = number(&db, "SELECT count(*) FROM location", &[]).await;
    let mut answers = Vec::new();
    for path in [
        "/api/persons".to_owned(),
        "/api/v2/persons".to_owned(),
        "/api/v2/persons?q=zelda".to_owned(),
        format!("/api/v2/persons/{bob}/meetings"),
        format!("/api/v2/persons/{cy}/meetings"),
        format!("/api/v2/persons/{bob}/connections?start=2022-05-01&end=2022-05-04"),
        format!("/api/v2/persons/{cy}/connections?start=2022-05-01&end=2022-05-04&within=1m"),
        format!("/api/persons/{bob}/connection?start_date=2022-05-01&end_date=2022-05-04"),
        format!("/api/v2/persons/{bob}/export"),
        "/api/v2/stats".to_owned(),
    ] {
        answers.push((path.clone(), text(&api, &path, 200).await));
    }
    for path in [
        format!("/api/v2/persons/{zelda}"),
        format!("/api/persons/{zelda}"),
        format!("/api/v2/persons/{zelda}/locations"),
        format!("/api/v2/persons/{zelda}/meetings"),
        format!("/api/v2/persons/{zelda}/connections?start=2022-05-01&end=2022-05-04"),
        format!("/api/persons/{zelda}/connection?start_date=2022-05-01&end_date=2022-05-04"),
        format!("/api/v2/persons/{zelda}/export"),
        format!("/api/v2/locations/{}", theirs[0]),
        format!("/api/locations/{}", theirs[theirs.len() - 1]),
    ] {
        text(&api, &path, 404).await;
    }
    for (path, answer) in &answers {
        assert!(!answer.contains("Zelda"), "{path}: {answer}");
        let value: Value = serde_json::from_str(answer).expect("JSON");
        let mut ids = Vec::new();
        collect_person_ids(&value, &mut ids);
        assert!(!ids.contains(&zelda), "{path}: {answer}");
    }
    let (_, everyone) = api.get("/api/persons").await;
    let (_, page) = api.get("/api/v2/persons").await;
    for persons in [&everyone, &page["persons"]] {
        let ids: BTreeSet<i64> = persons
            .as_array()
            .expect("persons")
            .iter()
            .map(|p| p["id"].as_i64().expect("an id"))
            .collect();
        assert_eq!(ids, BTreeSet::from([bob, cy]), "{persons}");
    }
    let (_, stats) = api.get("/api/v2/stats").await;
    assert_eq!(
        (stats["persons"].as_i64(), stats["locations"].as_i64()),
        (Some(2), Some(stored_locations))
    );
    assert_eq!(met(&api, bob).await, BTreeSet::from([cy]));
    let (_, contacts) = api
        .get(&format!(
            "/api/v2/persons/{bob}/connections?start=2022-05-01&end=2022-05-04"
        ))
        .await;
    assert_eq!(
        contacts["contacts"].as_array().map(Vec::len),
        Some(1),
        "{contacts}"
    );

    // Bob's live stream, resumed from before the erasure: his meetings as
    // they are now, then as they grow, never hers.
    let mut resumed = SseClient::resume(&live(bob), Some(&cursor))
        .await
        .expect("Bob's stream")
        .with_patience(PATIENCE);
    walk_together(&edge, bob, cy, 24 * 60, 3).await;
    loop {
        let (meeting, _) = next_meeting(&mut resumed)
            .await
            .expect("the stream goes on");
        assert_eq!(meeting["with"]["id"], cy, "{meeting}");
        assert!(!meeting.to_string().contains("Zelda"), "{meeting}");
        if meeting["end"].as_str() >= Some("2022-05-03") {
            break;
        }
    }
    let gone = SseClient::connect(&live(zelda), None).await;
    assert!(gone.is_err_and(|err| err.starts_with("404")));

    api.stop().await;
    folder.stop().await;
    writer.stop().await;
    if let Ok(edge) = Arc::try_unwrap(edge) {
        edge.stop().await;
    }
}

/// Every `id` of a person in `value`: persons' own, `person_id`s, and the
/// `with` of meetings.
fn collect_person_ids(value: &Value, ids: &mut Vec<i64>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("person_id", Value::Number(n)) => ids.extend(n.as_i64()),
                    ("person" | "with", Value::Object(person)) => {
                        ids.extend(person.get("id").and_then(Value::as_i64));
                    }
                    _ => {}
                }
                collect_person_ids(inner, ids);
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_person_ids(item, ids);
            }
        }
        _ => {}
    }
}

/// How many locations of `person` the API has.
async fn located(app: &TestApp, person: i64) -> usize {
    let (status, page) = app
        .get(&format!("/api/v2/persons/{person}/locations"))
        .await;
    assert_eq!(status, 200, "{page}");
    page["locations"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn the_embedded_all_target_forgets_an_erased_person_from_memory() {
    let app = spawn_app(&[]).await;
    let (zelda, bob, cy) = (
        person(&app, "Zelda").await,
        person(&app, "Bob").await,
        person(&app, "Cy").await,
    );
    walk_together(&app, zelda, bob, 0, 4).await;
    walk_together(&app, zelda, cy, 10, 4).await;
    walk_together(&app, bob, cy, 20, 4).await;
    eventually("the three pairs met", PATIENCE, || async {
        let everyone = [zelda, bob, cy];
        for person in everyone {
            if located(&app, person).await != 8 {
                return None;
            }
            let others: BTreeSet<i64> = everyone.into_iter().filter(|p| *p != person).collect();
            if met(&app, person).await != others {
                return None;
            }
        }
        Some(())
    })
    .await;
    let (_, hers) = app.get(&format!("/api/v2/persons/{zelda}/locations")).await;
    let her_location = hers["locations"][0]["id"].as_i64().expect("a location");
    let (_, before) = app.get("/api/v2/stats").await;
    let mut her_stream = SseClient::connect(
        &format!("{}/api/v2/persons/{zelda}/meetings/live", app.base),
        None,
    )
    .await
    .expect("her stream")
    .with_patience(PATIENCE);

    let erase = || async {
        app.http
            .delete(format!("{}/api/v2/persons/{zelda}", app.base))
            .send()
            .await
            .expect("an answer")
            .status()
            .as_u16()
    };
    assert_eq!(erase().await, 204);
    assert_eq!(erase().await, 404);
    while next_meeting(&mut her_stream).await.is_some() {}

    for path in [
        format!("/api/v2/persons/{zelda}"),
        format!("/api/persons/{zelda}"),
        format!("/api/v2/persons/{zelda}/locations"),
        format!("/api/v2/persons/{zelda}/meetings"),
        format!("/api/v2/persons/{zelda}/export"),
        format!("/api/v2/locations/{her_location}"),
        format!("/api/locations/{her_location}"),
    ] {
        text(&app, &path, 404).await;
    }
    assert_eq!(met(&app, bob).await, BTreeSet::from([cy]));
    assert_eq!(met(&app, cy).await, BTreeSet::from([bob]));
    for path in [
        format!("/api/v2/persons/{bob}/connections?start=2022-05-02&end=2022-05-03"),
        format!("/api/persons/{bob}/connection?start_date=2022-05-02&end_date=2022-05-03"),
        format!("/api/v2/persons/{bob}/export"),
        format!("/api/v2/persons/{cy}/meetings"),
        "/api/v2/persons?q=zelda".to_owned(),
        "/api/persons".to_owned(),
    ] {
        let answer = text(&app, &path, 200).await;
        assert!(!answer.contains("Zelda"), "{path}: {answer}");
        let mut ids = Vec::new();
        collect_person_ids(&serde_json::from_str(&answer).expect("JSON"), &mut ids);
        assert!(!ids.contains(&zelda), "{path}: {answer}");
    }
    let (_, contacts) = app
        .get(&format!(
            "/api/v2/persons/{bob}/connections?start=2022-05-02&end=2022-05-03"
        ))
        .await;
    assert_eq!(contacts["contacts"][0]["person"]["id"], cy, "{contacts}");
    let (_, after) = app.get("/api/v2/stats").await;
    assert_eq!(
        after["persons"].as_i64(),
        before["persons"].as_i64().map(|n| n - 1)
    );
    assert_eq!(
        after["locations"].as_i64(),
        before["locations"].as_i64().map(|n| n - 8)
    );

    // The edge refuses her, within its refresh of the persons.
    eventually("the edge refuses her", PATIENCE, || async {
        let (status, reply) = app
            .post(
                "/api/v2/locations:batch",
                &json!({"locations": [{"person_id": zelda, "lat": 48.0, "lon": 11.0,
                                       "time": "2022-05-02T12:00:00Z"}]}),
            )
            .await;
        (status == 400 && reply["rejected"][0]["problem"] == "unknown").then_some(())
    })
    .await;
    app.stop().await;
}
