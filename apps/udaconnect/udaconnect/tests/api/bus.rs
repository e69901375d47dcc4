//! The edge and the writer on a real nats-server and PostgreSQL: a full
//! stream and a lost broker answered "retry later" (and `/readyz` says
//! so), poison set aside on the dead-letter stream, redeliveries stored
//! once, a database that goes away and comes back, rows the database
//! rejects set aside while the rest are stored, and the location table's
//! partitions kept from a writer's start.

use std::time::{Duration, Instant};

use bytes::Bytes;
use platform::bus::{Bus, BusStream, NatsArgs, NatsBus, StreamSettings};
use serde_json::{Value, json};
use testkit::{NatsServer, PostgresServer, eventually};
use udaconnect::{
    bus_wire,
    proto::{
        bus::DeadLetter,
        v1::{LocationBatch, LocationInput, ingest_service_client::IngestServiceClient},
    },
};
use udaconnect_domain::{LocationRecord, Position, Timestamp};

use super::helpers::{PATIENCE, metric, spawn_target};

/// A broker and a migrated database.
struct Stack {
    nats: NatsServer,
    pg: PostgresServer,
    db: String,
}

async fn stack() -> Stack {
    let (nats, pg) = tokio::task::spawn_blocking(|| (NatsServer::start(), PostgresServer::start()))
        .await
        .expect("servers start");
    let db = pg.create_database("ingest");
    Stack { nats, pg, db }
}

impl Stack {
    fn args<'a>(&'a self, nats: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["--nats-url", nats, "--database-url", &self.db];
        args.extend(extra);
        args
    }

    async fn bus(&self) -> Bus {
        let urls = self.nats.url().parse().expect("a URL");
        let args = NatsArgs::default();
        Bus::Nats(
            NatsBus::connect(&urls, &args, "test")
                .await
                .expect("connects"),
        )
    }
}

fn batch(person: i64, count: usize) -> Value {
    let locations: Vec<Value> = (0..count)
        .map(|n| {
            json!({"person_id": person, "lat": 45.0, "lon": 7.0,
                        "time": format!("2021-03-01T10:00:{:02}Z", n % 60)})
        })
        .collect();
    json!({ "locations": locations })
}

/// The one number `query` answers on `db`, if the database answers.
async fn number(db: &str, query: &str) -> Option<i64> {
    let (client, connection) = tokio_postgres::connect(db, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(connection);
    client.query_one(query, &[]).await.ok()?.try_get(0).ok()
}

/// Waits for the whole schema (the target migrates at start; the writer's
/// statements read the tables of the last migrations), then makes a
/// person.
async fn migrated(stack: &Stack) -> i64 {
    let latest = udaconnect_store::MIGRATIONS
        .last()
        .map_or(0, |migration| i64::from(migration.version));
    eventually("the schema", PATIENCE, || async {
        number(
            &stack.db,
            "SELECT max(version)::int8 FROM udaconnect_migrations",
        )
        .await
        .filter(|version| *version == latest)
    })
    .await;
    number(
        &stack.db,
        "INSERT INTO person (first_name, last_name, company_name) VALUES ('Bus', 'Test', 'Co') RETURNING id::int8",
    )
    .await
    .expect("a person")
}

/// Waits until `db` holds `rows` locations.
async fn rows(db: &str, rows: i64) {
    eventually(&format!("{rows} rows"), PATIENCE, || async {
        number(db, "SELECT count(*) FROM location")
            .await
            .filter(|n| *n == rows)
    })
    .await;
}

#[tokio::test]
async fn a_full_stream_is_answered_retry_later_until_a_writer_drains_it() {
    let stack = stack().await;
    let nats = stack.nats.url();
    let edge = spawn_target(
        "ingest",
        &stack.args(
            &nats,
            &[
                "--locations-stream-max-messages",
                "2",
                "--ingest-retry-after",
                "3s",
            ],
        ),
    )
    .await;
    let person = migrated(&stack).await;
    for _ in 0..2 {
        let (status, reply) = edge
            .post("/api/v2/locations:batch", &batch(person, 5))
            .await;
        assert_eq!(status, 200, "{reply}");
    }
    let response = edge
        .http
        .post(format!("{}/api/v2/locations:batch", edge.base))
        .json(&batch(person, 5))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "3");
    let mut grpc = IngestServiceClient::connect(edge.grpc.clone())
        .await
        .expect("connects");
    let refused = grpc
        .ingest_batch(LocationBatch {
            batch_id: 1,
            locations: vec![LocationInput {
                person_id: i32::try_from(person).expect("small"),
                lat: 45.0,
                lon: 7.0,
                time: "2021-03-01T10:00:00Z".into(),
                key: String::new(),
            }],
        })
        .await
        .expect_err("full");
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    assert_eq!(
        refused
            .metadata()
            .get("retry-after")
            .map(|v| v.to_str().ok()),
        Some(Some("3"))
    );
    let (status, ready) = edge.get("/readyz").await;
    assert_eq!(status, 503);
    assert!(
        ready["waiting_for"].to_string().contains("has room"),
        "{ready}"
    );
    assert_eq!(
        metric(
            &edge,
            "udaconnect_ingest_refused_total{transport=\"http\",cause=\"bus_full\"}"
        )
        .await,
        Some(1.0)
    );

    // A writer drains the stream: the edge has room again, and takes more.
    let writer = spawn_target("writer", &stack.args(&nats, &[])).await;
    edge.wait_readyz(200).await;
    let (status, reply) = edge
        .post("/api/v2/locations:batch", &batch(person, 5))
        .await;
    assert_eq!(status, 200, "{reply}");
    rows(&stack.db, 15).await;
    writer.stop().await;
    edge.stop().await;
}

#[tokio::test]
async fn a_lost_broker_is_answered_retry_later_at_once() {
    let mut stack = stack().await;
    let nats = stack.nats.url();
    let edge = spawn_target("ingest", &stack.args(&nats, &[])).await;
    let person = migrated(&stack).await;
    let (status, _) = edge
        .post("/api/v2/locations:batch", &batch(person, 3))
        .await;
    assert_eq!(status, 200);
    stack.nats.kill();
    edge.wait_readyz(503).await;
    let (_, ready) = edge.get("/readyz").await;
    assert!(
        ready["waiting_for"].to_string().contains("bus connected"),
        "{ready}"
    );
    let started = Instant::now();
    let (status, body) = edge
        .post("/api/v2/locations:batch", &batch(person, 3))
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    // Blocking the test's runtime for a moment is harmless here.
    stack.nats.restart();
    edge.wait_readyz(200).await;
    let (status, body) = edge
        .post("/api/v2/locations:batch", &batch(person, 3))
        .await;
    assert_eq!(status, 200, "{body}");
    edge.stop().await;
}

fn record(id: i64, person_id: i32) -> LocationRecord {
    LocationRecord {
        id,
        person_id,
        position: Position::new(45.0, 7.0).expect("valid"),
        time: Timestamp::from_micros(1_614_592_800_000_000),
        key: None,
    }
}

#[tokio::test]
async fn poison_is_set_aside_redeliveries_are_stored_once_and_an_outage_is_waited_out() {
    let mut stack = stack().await;
    let nats = stack.nats.url();
    let writer = spawn_target("writer", &stack.args(&nats, &["--writer-linger", "10ms"])).await;
    let person = i32::try_from(migrated(&stack).await).expect("small");
    let bus = stack.bus().await;
    let subject = "udaconnect.locations";
    let good: Vec<LocationRecord> = (1_000_001..=1_000_010)
        .map(|id| record(id, person))
        .collect();
    let orphan = vec![record(2_000_001, 424_242), record(2_000_002, person)];
    bus.publish(subject, "good", bus_wire::encode(&good))
        .await
        .expect("stored");
    // The same locations again under another message id: a redelivery.
    bus.publish(subject, "good-again", bus_wire::encode(&good))
        .await
        .expect("stored");
    bus.publish(subject, "junk", Bytes::from_static(b"\x08\xff\xff\xff"))
        .await
        .expect("stored");
    bus.publish(subject, "orphan", bus_wire::encode(&orphan))
        .await
        .expect("stored");
    rows(&stack.db, 11).await;
    let dead = bus.stream(StreamSettings::log(
        "LOCATIONS_DEAD",
        "udaconnect.locations.dead",
        100,
    ));
    let letters = eventually("two dead letters", PATIENCE, || async {
        let letters = dead.fetch(1, 10).await.ok()?;
        (letters.len() == 2).then_some(letters)
    })
    .await;
    let mut reasons: Vec<String> = letters
        .iter()
        .map(|letter| {
            bus_wire::read_dead_letter(&letter.payload)
                .expect("a dead letter")
                .reason
        })
        .collect();
    reasons.sort();
    assert_eq!(reasons, vec!["undecodable", "unknown_person"]);
    let orphan_letter = letters
        .iter()
        .map(|letter| bus_wire::read_dead_letter(&letter.payload).expect("a dead letter"))
        .find(|letter| letter.reason == "unknown_person")
        .expect("the orphan");
    assert_eq!(
        bus_wire::decode(&orphan_letter.payload),
        Ok(vec![orphan[0].clone()])
    );
    assert_eq!(
        metric(
            &writer,
            "udaconnect_writer_rows_total{outcome=\"duplicate\"}"
        )
        .await,
        Some(10.0)
    );
    assert_eq!(
        metric(
            &writer,
            "udaconnect_writer_dead_letters_total{reason=\"undecodable\"}"
        )
        .await,
        Some(1.0)
    );

    // The database goes away: the writer holds its batch, retrying, and
    // stores it once the database is back.
    stack.pg.stop();
    let later: Vec<LocationRecord> = (3_000_001..=3_000_005)
        .map(|id| record(id, person))
        .collect();
    bus.publish(subject, "later", bus_wire::encode(&later))
        .await
        .expect("stored");
    eventually("the writer to retry", PATIENCE, || async {
        metric(&writer, "udaconnect_writer_store_retries_total")
            .await
            .filter(|n| *n > 0.0)
    })
    .await;
    stack.pg.start_again();
    rows(&stack.db, 16).await;
    eventually("no lag", PATIENCE, || async {
        metric(&writer, "udaconnect_writer_pending_messages")
            .await
            .filter(|n| *n == 0.0)
    })
    .await;
    writer.stop().await;
}

/// Runs `sql` on `db`.
async fn execute(db: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(db, tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    client.batch_execute(sql).await.expect("executed");
}

/// The first `count` dead letters, once there are that many.
async fn dead_letters(dead: &BusStream, count: usize) -> Vec<DeadLetter> {
    eventually(&format!("{count} dead letters"), PATIENCE, || async {
        let letters = dead.fetch(1, 10).await.ok()?;
        (letters.len() == count).then(|| {
            letters
                .iter()
                .map(|letter| bus_wire::read_dead_letter(&letter.payload).expect("a letter"))
                .collect()
        })
    })
    .await
}

/// Waits until every message of `locations` is acknowledged (a work
/// queue keeps only those): nothing is left to retry.
async fn drained(locations: &BusStream) {
    eventually("LOCATIONS drained", PATIENCE, || async {
        locations.messages().await.ok().filter(|n| *n == 0)
    })
    .await;
}

fn at(id: i64, person_id: i32, lat: f64) -> LocationRecord {
    LocationRecord {
        position: Position::new(lat, 7.0).expect("valid"),
        ..record(id, person_id)
    }
}

#[tokio::test]
async fn rows_the_database_rejects_are_set_aside_and_the_rest_stored_without_a_retry() {
    let stack = stack().await;
    let nats = stack.nats.url();
    let writer = spawn_target("writer", &stack.args(&nats, &["--writer-linger", "200ms"])).await;
    let person = i32::try_from(migrated(&stack).await).expect("small");
    let bus = stack.bus().await;
    let subject = "udaconnect.locations";
    let locations = bus.stream(StreamSettings::log("LOCATIONS", subject, 100));
    let dead = bus.stream(StreamSettings::log(
        "LOCATIONS_DEAD",
        "udaconnect.locations.dead",
        100,
    ));
    // An operator's constraint on new rows: nothing north of 50°.
    execute(
        &stack.db,
        "ALTER TABLE location ADD CONSTRAINT no_north CHECK (ST_Y(coordinate) < 50) NOT VALID",
    )
    .await;
    let mixed = vec![
        at(4_000_001, person, 45.0),
        at(4_000_002, person, 55.0),
        at(4_000_003, person, 46.0),
        at(4_000_004, person, 60.0),
    ];
    let fine = vec![at(4_000_011, person, 45.0), at(4_000_012, person, 49.9)];
    let north = vec![at(4_000_021, person, 51.0)];
    for (id, records) in [("mixed", &mixed), ("fine", &fine), ("north", &north)] {
        bus.publish(subject, id, bus_wire::encode(records))
            .await
            .expect("stored");
    }
    let mut letters_now = dead_letters(&dead, 2).await;
    rows(&stack.db, 4).await;
    drained(&locations).await;
    letters_now.sort_by_key(|letter| letter.source_seq);
    for (letter, refused) in letters_now
        .iter()
        .zip([vec![mixed[1].clone(), mixed[3].clone()], north.clone()])
    {
        assert_eq!(letter.reason, "database_rejected");
        assert!(
            letter.detail.contains("SQLSTATE 23514") && letter.detail.contains("no_north"),
            "{}",
            letter.detail
        );
        assert_eq!(bus_wire::decode(&letter.payload), Ok(refused));
    }
    assert_eq!(
        metric(
            &writer,
            "udaconnect_writer_dead_letters_total{reason=\"database_rejected\"}"
        )
        .await,
        Some(2.0)
    );
    assert_eq!(
        metric(&writer, "udaconnect_writer_store_retries_total").await,
        Some(0.0),
        "a rejection is not retried"
    );

    // A column renamed from under the writer rejects the statement itself,
    // whatever the rows: the message is set aside whole, at once, and the
    // writer goes on once the column is back.
    execute(
        &stack.db,
        "ALTER TABLE location RENAME COLUMN ingest_key TO ingest_key_renamed",
    )
    .await;
    let renamed = vec![at(4_000_031, person, 45.0), at(4_000_032, person, 45.0)];
    bus.publish(subject, "renamed", bus_wire::encode(&renamed))
        .await
        .expect("stored");
    let letters_now = dead_letters(&dead, 3).await;
    drained(&locations).await;
    let letter = letters_now
        .iter()
        .find(|letter| letter.detail.contains("SQLSTATE 42703"))
        .unwrap_or_else(|| panic!("the renamed column's letter: {letters_now:?}"));
    assert_eq!(bus_wire::decode(&letter.payload), Ok(renamed));
    execute(
        &stack.db,
        "ALTER TABLE location RENAME COLUMN ingest_key_renamed TO ingest_key",
    )
    .await;
    let later = vec![at(4_000_041, person, 45.0)];
    bus.publish(subject, "later", bus_wire::encode(&later))
        .await
        .expect("stored");
    rows(&stack.db, 5).await;
    drained(&locations).await;
    writer.stop().await;
}

/// A writer keeps the partitioned tables' days from its start: it
/// migrates, then creates the days ahead it is told to (the migrations
/// made a week), once, for the locations and the meetings' positions.
#[tokio::test]
async fn a_writer_creates_the_days_ahead_at_start() {
    let stack = stack().await;
    let nats = stack.nats.url();
    let writer = spawn_target("writer", &stack.args(&nats, &["--partitions-ahead", "12"])).await;
    let ahead = "SELECT count(*) FROM location_partitions() \
                 WHERE lower_bound = date_trunc('day', now() AT TIME ZONE 'UTC') + interval '12 days'";
    eventually("the twelfth day's partition", PATIENCE, || async {
        number(&stack.db, ahead).await.filter(|n| *n == 1)
    })
    .await;
    eventually("a round done", PATIENCE, || async {
        metric(
            &writer,
            "udaconnect_writer_maintenance_rounds_total{outcome=\"done\"}",
        )
        .await
        .filter(|rounds| *rounds >= 1.0)
    })
    .await;
    // Days 8 to 12 (and the day after the migrations' week, had a day
    // begun in between), of the locations and of the meetings' positions.
    for table in ["location", "meeting_position"] {
        let created = metric(
            &writer,
            &format!("udaconnect_writer_partitions_created_total{{table=\"{table}\"}}"),
        )
        .await;
        assert!(
            matches!(created, Some(n) if (5.0..=6.0).contains(&n)),
            "{table}: {created:?}"
        );
    }
    writer.stop().await;
}
