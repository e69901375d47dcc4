//! Idempotency keys end to end: the id answered is the id stored, for a
//! retry over either transport and through either edge, even sent to two
//! edges at once, and a key sent with another location is a conflict
//! naming the stored one, which keeps its first location; on the embedded
//! store, and on PostgreSQL with two edges on one bus.

use serde_json::{Value, json};
use testkit::{NatsServer, PostgresServer};
use udaconnect::proto::v1::{
    BatchReply, LocationBatch, LocationInput, ingest_service_client::IngestServiceClient,
};

use super::helpers::{TestApp, eventually_get, metric, spawn_app, spawn_target};

/// A latitude as a client may write it: serde_json's default parser reads
/// it one bit off the double nearest it, which Rust's own parser (and so a
/// gRPC client) gives.
const DECIMAL: &str = "54.772360933540028";

fn nearest() -> f64 {
    DECIMAL.parse().expect("a number")
}

/// One keyed item as JSON text, its latitude written as `lat`.
fn keyed(person: i64, key: &str, lat: &str, time: &str) -> String {
    format!(
        r#"{{"person_id": {person}, "lat": {lat}, "lon": -122.29, "time": "{time}", "key": "{key}"}}"#
    )
}

/// POSTs `items` as one batch to `edge`.
async fn post(edge: &TestApp, items: &[String]) -> (u16, Value) {
    let body = format!(r#"{{"locations": [{}]}}"#, items.join(", "));
    edge.post_raw("/api/v2/locations:batch", "application/json", &body)
        .await
}

/// The ids of a batch's answer.
fn ids(reply: &Value) -> Vec<i64> {
    reply["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|id| id.as_i64().expect("an id"))
        .collect()
}

/// Sends one keyed location to `edge` over gRPC.
async fn grpc(edge: &TestApp, person: i64, key: &str, lat: f64, time: &str) -> BatchReply {
    let mut client = IngestServiceClient::connect(edge.grpc.clone())
        .await
        .expect("connects");
    client
        .ingest_batch(LocationBatch {
            batch_id: 1,
            locations: vec![LocationInput {
                person_id: i32::try_from(person).expect("small"),
                lat,
                lon: -122.29,
                time: time.to_owned(),
                key: key.to_owned(),
            }],
        })
        .await
        .expect("answered")
        .into_inner()
}

async fn person(api: &TestApp) -> i64 {
    let (status, person) = api
        .post(
            "/api/v2/persons",
            &json!({"first_name": "Kay", "last_name": "Retry", "company_name": "Keys Co"}),
        )
        .await;
    assert_eq!(status, 201, "{person}");
    person["id"].as_i64().expect("an id")
}

/// What holds whatever the stack: `api` serves the API and an edge, `other`
/// is an edge on the same store and bus (`api` itself on one process).
async fn a_key_stands_for_its_first_location(api: &TestApp, other: &TestApp) {
    let person = person(api).await;
    // Seven digits of a second: stored to the microsecond.
    let first = keyed(person, "phone:1", DECIMAL, "2021-03-01T10:00:00.1234567Z");
    let zero = keyed(person, "phone:0", "37.55", "2021-03-01T09:00:00Z");
    let (status, reply) = post(api, &[first.clone(), zero]).await;
    assert_eq!(status, 200, "{reply}");
    let (id, before) = (ids(&reply)[0], ids(&reply)[1]);

    // Sent again (its answer was lost): the same id. Beside a new
    // location, which is stored too.
    let (status, again) = post(api, std::slice::from_ref(&first)).await;
    assert_eq!((status, ids(&again)), (200, vec![id]), "{again}");
    let third = keyed(person, "phone:3", "37.55", "2021-03-01T10:02:00Z");
    let (status, again) = post(api, &[first.clone(), third]).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(ids(&again)[0], id, "{again}");
    let after = ids(&again)[1];
    // Through the other edge, over gRPC: the decimal's double, the time
    // to the microsecond; the same location, the same id.
    let reply = grpc(
        other,
        person,
        "phone:1",
        nearest(),
        "2021-03-01T10:00:00.123456Z",
    )
    .await;
    assert_eq!((reply.ids, reply.rejected), (vec![id], vec![]));

    // Another location under the key: a conflict naming the stored one,
    // over HTTP and gRPC; the other items of the batch are taken.
    let moved = keyed(person, "phone:1", "45.0", "2021-03-01T10:00:00.1234567Z");
    let new = keyed(person, "phone:2", "45.0", "2021-03-01T10:01:00Z");
    let (status, reply) = post(other, &[moved, new]).await;
    assert_eq!(status, 207, "{reply}");
    assert_eq!(reply["rejected"][0]["index"], 0, "{reply}");
    assert_eq!(reply["rejected"][0]["field"], "key", "{reply}");
    assert_eq!(reply["rejected"][0]["problem"], "conflict", "{reply}");
    assert_eq!(reply["rejected"][0]["stored_id"], id, "{reply}");
    let second = ids(&reply)[0];
    let later = grpc(other, person, "phone:1", nearest(), "2021-03-01T11:00:00Z").await;
    assert_eq!(later.accepted, 0);
    assert_eq!(later.rejected[0].problem, "conflict");
    assert_eq!(later.rejected[0].stored_id, Some(id));
    assert_eq!(
        metric(
            other,
            "udaconnect_ingest_rejected_total{transport=\"http\",field=\"key\",problem=\"conflict\"}"
        )
        .await,
        Some(1.0)
    );

    // Stored under the id answered, as first sent.
    let stored = eventually_get(api, &format!("/api/v2/locations/{id}")).await;
    assert_eq!(stored["lat"].as_f64(), Some(nearest()), "{stored}");
    assert_eq!(stored["time"], "2021-03-01T10:00:00.123456Z", "{stored}");
    for other in [before, second, after] {
        eventually_get(api, &format!("/api/v2/locations/{other}")).await;
    }
    let (status, page) = api
        .get(&format!(
            "/api/v2/persons/{person}/locations?start=2021-03-01&end=2021-03-02"
        ))
        .await;
    assert_eq!(status, 200, "{page}");
    let stored: Vec<i64> = page["locations"]
        .as_array()
        .expect("locations")
        .iter()
        .map(|location| location["id"].as_i64().expect("an id"))
        .collect();
    assert_eq!(stored, [before, id, second, after]);

    // A batch sent to both edges at once (a client that gave up on one):
    // both answered with the same ids, each location stored once.
    let batch: Vec<String> = (0..50)
        .map(|n| {
            keyed(
                person,
                &format!("phone:both:{n}"),
                "37.55",
                &format!("2021-03-01T12:00:{n:02}Z"),
            )
        })
        .collect();
    let ((one, to_api), (two, to_other)) = tokio::join!(post(api, &batch), post(other, &batch));
    assert_eq!((one, two), (200, 200), "{to_api} {to_other}");
    assert_eq!(ids(&to_api), ids(&to_other));
    let last = ids(&to_api)[49];
    eventually_get(api, &format!("/api/v2/locations/{last}")).await;
}

#[tokio::test]
async fn a_key_stands_for_its_first_location_on_the_embedded_store() {
    let app = spawn_app(&[]).await;
    a_key_stands_for_its_first_location(&app, &app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_key_stands_for_its_first_location_through_two_edges_on_postgres() {
    let (nats, pg) = tokio::task::spawn_blocking(|| (NatsServer::start(), PostgresServer::start()))
        .await
        .expect("servers start");
    let db = pg.create_database("keys");
    let nats_url = nats.url();
    let args = ["--database-url", &db, "--nats-url", &nats_url];
    let app = spawn_app(&args).await;
    let edge = spawn_target("ingest", &args).await;
    a_key_stands_for_its_first_location(&app, &edge).await;
    edge.stop().await;
    app.stop().await;
}
