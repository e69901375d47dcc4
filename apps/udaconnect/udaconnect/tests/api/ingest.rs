//! The ingest edge over HTTP and gRPC, in-process on the embedded store and
//! the in-process bus: per-item checks, good items taken and bad ones
//! listed, ids known at once, idempotency keys, persons just created, and
//! what every write becomes once a writer has stored it.

use serde_json::{Value, json};
use testkit::eventually;
use tonic::Code;
use tonic_types::StatusExt;
use udaconnect::proto::v1::{
    Location, LocationBatch, LocationInput, ingest_service_client::IngestServiceClient,
    location_service_client::LocationServiceClient,
};

use super::helpers::{PATIENCE, TestApp, eventually_get, metric, spawn_app};

async fn person(app: &TestApp, name: &str) -> i64 {
    let (status, person) = app
        .post(
            "/api/v2/persons",
            &json!({"first_name": name, "last_name": "Ingest", "company_name": "Edge Co"}),
        )
        .await;
    assert_eq!(status, 201, "{person}");
    person["id"].as_i64().expect("an id")
}

fn item(person: i64, lat: f64, time: &str) -> Value {
    json!({"person_id": person, "lat": lat, "lon": 7.0, "time": time})
}

/// The ids of `person`'s stored locations on 2021-03-01.
async fn stored(app: &TestApp, person: i64) -> Vec<i64> {
    let (status, page) = app
        .get(&format!(
            "/api/v2/persons/{person}/locations?start=2021-03-01&end=2021-03-02"
        ))
        .await;
    assert_eq!(status, 200, "{page}");
    page["locations"]
        .as_array()
        .expect("locations")
        .iter()
        .map(|location| location["id"].as_i64().expect("an id"))
        .collect()
}

#[tokio::test]
async fn a_batch_takes_the_good_items_and_lists_the_bad_ones() {
    let app = spawn_app(&[]).await;
    let ada = person(&app, "Ada").await;
    let batch = json!({"locations": [
        item(ada, 45.0, "2021-03-01T10:00:00Z"),
        item(ada, 91.0, "2021-03-01T10:01:00Z"),
        item(99_999, 45.0, "2021-03-01T10:02:00Z"),
        item(ada, 45.0, "yesterday"),
        item(ada, 45.0, "2099-01-01T00:00:00Z"),
        {"person_id": ada, "lat": "north", "lon": 7.0, "time": "2021-03-01T10:03:00Z"},
        item(ada, 45.0001, "2021-03-01T10:04:00Z"),
    ]});
    let (status, reply) = app.post("/api/v2/locations:batch", &batch).await;
    assert_eq!(status, 207, "{reply}");
    assert_eq!(reply["accepted"], 2);
    let ids: Vec<i64> = reply["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|id| id.as_i64().expect("an id"))
        .collect();
    let rejected: Vec<(u64, String)> = reply["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().expect("index"),
                r["reason"].as_str().expect("reason").to_owned(),
            )
        })
        .collect();
    let indexes: Vec<u64> = rejected.iter().map(|(index, _)| *index).collect();
    assert_eq!(indexes, vec![1, 2, 3, 4, 5], "{reply}");
    for ((_, reason), field) in rejected
        .iter()
        .zip(["lat", "person_id", "time", "time", "lat"])
    {
        assert!(reason.starts_with(field), "{reason:?} should name {field}");
    }
    assert!(rejected[1].1.contains("does not exist"), "{rejected:?}");
    assert!(rejected[3].1.contains("future"), "{rejected:?}");
    // The good ones are stored, under the ids answered; the bad ones never.
    for id in &ids {
        eventually_get(&app, &format!("/api/v2/locations/{id}")).await;
    }
    assert_eq!(stored(&app, ada).await, ids);
    assert_eq!(
        metric(
            &app,
            "udaconnect_ingest_rejected_total{transport=\"http\",field=\"person_id\",problem=\"unknown\"}"
        )
        .await,
        Some(1.0)
    );

    // All good: 200; none good: 400, each listed; nothing: 400.
    let (status, reply) = app
        .post(
            "/api/v2/locations:batch",
            &json!({"locations": [item(ada, 45.0, "2021-03-01T11:00:00Z")]}),
        )
        .await;
    assert_eq!(
        (status, reply["accepted"].as_u64()),
        (200, Some(1)),
        "{reply}"
    );
    let (status, reply) = app
        .post(
            "/api/v2/locations:batch",
            &json!({"locations": [item(ada, 95.0, "2021-03-01T11:00:00Z")]}),
        )
        .await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["rejected"][0]["index"], 0);
    assert!(reply["error"].is_string());
    let (status, reply) = app
        .post("/api/v2/locations:batch", &json!({"locations": []}))
        .await;
    assert_eq!(status, 400, "{reply}");
    let (status, reply) = app
        .post_raw("/api/v2/locations:batch", "application/json", "[1, 2]")
        .await;
    assert_eq!(status, 400, "{reply}");
    app.stop().await;
}

#[tokio::test]
async fn ndjson_batches_and_limits() {
    let app = spawn_app(&["--ingest-max-batch", "3"]).await;
    let bob = person(&app, "Bob").await;
    let body = format!(
        "{}\n\n{}\n{{\"person_id\": {bob}}}\n",
        item(bob, 45.0, "2021-03-01T10:00:00Z"),
        json!({"person_id": bob, "lat": 45.0, "lon": 7.0, "time": "2021-03-01T10:01:00Z", "key": "bob:2"}),
    );
    let (status, reply) = app
        .post_raw("/api/v2/locations:batch", "application/x-ndjson", &body)
        .await;
    assert_eq!(status, 207, "{reply}");
    assert_eq!(reply["accepted"], 2);
    assert_eq!(reply["rejected"][0]["index"], 2);
    assert!(
        reply["rejected"][0]["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("lat")),
        "{reply}"
    );
    let four: Vec<Value> = (0..4)
        .map(|n| item(bob, 45.0, &format!("2021-03-01T12:0{n}:00Z")))
        .collect();
    let (status, reply) = app
        .post("/api/v2/locations:batch", &json!({ "locations": four }))
        .await;
    assert_eq!(status, 413, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .is_some_and(|e| e.contains("UDACONNECT_INGEST_MAX_BATCH"))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_retry_with_the_same_key_is_stored_once() {
    let app = spawn_app(&[]).await;
    let cy = person(&app, "Cy").await;
    let keyed = |key: &str, minute: u32| {
        json!({"person_id": cy, "lat": 45.0, "lon": 7.0,
               "time": format!("2021-03-01T10:{minute:02}:00Z"), "key": key})
    };
    let first = json!({"locations": [keyed("cy:1", 0), keyed("cy:2", 1)]});
    let (status, one) = app.post("/api/v2/locations:batch", &first).await;
    assert_eq!(status, 200, "{one}");
    // The same locations again (the answer was lost), and one new one.
    let again = json!({"locations": [keyed("cy:1", 0), keyed("cy:2", 1), keyed("cy:3", 2)]});
    let (status, two) = app.post("/api/v2/locations:batch", &again).await;
    assert_eq!(status, 200, "{two}");
    // Answered with the ids first answered.
    assert_eq!(two["ids"][0], one["ids"][0], "{one} {two}");
    assert_eq!(two["ids"][1], one["ids"][1], "{one} {two}");
    let last = two["ids"][2].as_i64().expect("an id");
    eventually_get(&app, &format!("/api/v2/locations/{last}")).await;
    eventually("the writer to report the duplicates", PATIENCE, || async {
        metric(&app, "udaconnect_writer_rows_total{outcome=\"duplicate\"}")
            .await
            .filter(|duplicates| *duplicates >= 2.0)
    })
    .await;
    let ids = stored(&app, cy).await;
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(
        ids[..2],
        [
            one["ids"][0].as_i64().expect("id"),
            one["ids"][1].as_i64().expect("id")
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn grpc_create_batch_and_stream() {
    let app = spawn_app(&[]).await;
    let dee = person(&app, "Dee").await;
    let dee32 = i32::try_from(dee).expect("small");

    let mut unary = LocationServiceClient::connect(app.grpc.clone())
        .await
        .expect("connects");
    let created = unary
        .create(Location {
            id: 0,
            person_id: dee32,
            latitude: "7.0".into(),
            longitude: "45.0".into(),
            creation_time: "2021-03-01T10:00:00".into(),
        })
        .await
        .expect("created")
        .into_inner();
    assert!(created.id > 0);
    assert_eq!(
        (
            created.latitude.as_str(),
            created.longitude.as_str(),
            created.creation_time.as_str()
        ),
        ("7", "45", "2021-03-01T10:00:00")
    );
    let fetched = eventually_get(&app, &format!("/api/locations/{}", created.id)).await;
    assert_eq!(fetched["latitude"], "7");
    let refused = unary
        .create(Location {
            id: 0,
            person_id: dee32,
            latitude: "7.0".into(),
            longitude: "95.0".into(),
            creation_time: String::new(),
        })
        .await
        .expect_err("out of range");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let details = refused.get_error_details();
    let violations = &details
        .bad_request()
        .expect("a BadRequest")
        .field_violations;
    assert_eq!(violations[0].field, "longitude", "{refused:?}");

    let mut ingest = IngestServiceClient::connect(app.grpc.clone())
        .await
        .expect("connects");
    let input = |lat: f64, person_id: i32| LocationInput {
        person_id,
        lat,
        lon: 7.0,
        time: "2021-03-01T11:00:00Z".into(),
        key: String::new(),
    };
    let reply = ingest
        .ingest_batch(LocationBatch {
            batch_id: 7,
            locations: vec![input(45.0, dee32), input(-91.0, dee32), input(45.0, 99_999)],
        })
        .await
        .expect("answered")
        .into_inner();
    assert_eq!((reply.batch_id, reply.accepted, reply.ids.len()), (7, 1, 1));
    let rejected: Vec<u32> = reply.rejected.iter().map(|r| r.index).collect();
    assert_eq!(rejected, vec![1, 2]);
    let empty = ingest
        .ingest_batch(LocationBatch {
            batch_id: 8,
            locations: Vec::new(),
        })
        .await
        .expect_err("empty");
    assert_eq!(empty.code(), Code::InvalidArgument);

    let batches = (1..=3).map(move |n| LocationBatch {
        batch_id: n,
        locations: (0..10).map(|_| input(45.0, dee32)).collect(),
    });
    let mut replies = ingest
        .ingest(futures::stream::iter(batches))
        .await
        .expect("a stream")
        .into_inner();
    let mut ids = Vec::new();
    for n in 1..=3 {
        let reply = replies
            .message()
            .await
            .expect("a reply")
            .expect("not ended");
        assert_eq!((reply.batch_id, reply.accepted), (n, 10));
        ids.extend(reply.ids);
    }
    assert!(replies.message().await.expect("ends cleanly").is_none());
    let last = ids.last().expect("ids");
    eventually_get(&app, &format!("/api/v2/locations/{last}")).await;
    assert_eq!(
        metric(&app, "udaconnect_ingest_accepted_total{transport=\"grpc\"}").await,
        Some(32.0)
    );

    let channel = tonic::transport::Channel::from_shared(app.grpc.clone())
        .expect("a URL")
        .connect()
        .await
        .expect("connects");
    let health = tonic_health::pb::health_client::HealthClient::new(channel);
    let serving = eventually("gRPC health to say serving", PATIENCE, || {
        let mut health = health.clone();
        async move {
            let status = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: "udaconnect.v1.IngestService".into(),
                })
                .await
                .ok()?
                .into_inner()
                .status;
            (status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32)
                .then_some(status)
        }
    })
    .await;
    assert_eq!(serving, 1);
    app.stop().await;
}

#[tokio::test]
async fn the_original_and_v2_writes_go_through_the_edge() {
    let app = spawn_app(&[]).await;
    let eve = person(&app, "Eve").await;
    // Created a moment ago: known to the edge at once (asked on a miss).
    let (status, v2) = app
        .post(
            "/api/v2/locations",
            &json!({"person_id": eve, "lat": 45.0, "lon": 7.0, "time": "2021-03-01T10:00:00Z"}),
        )
        .await;
    assert_eq!(status, 201, "{v2}");
    let id = v2["id"].as_i64().expect("an id");
    assert_eq!(
        eventually_get(&app, &format!("/api/v2/locations/{id}")).await,
        v2
    );
    let (status, body) = app
        .post(
            "/api/v2/locations",
            &json!({"person_id": 99_999, "lat": 45.0, "lon": 7.0}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("person_id"))
    );
    app.stop().await;
}

#[tokio::test]
async fn the_simulator_feeds_an_edge_and_measures_freshness() {
    use clap::Parser;
    let app = spawn_app(&[]).await;
    for transport in ["grpc", "http"] {
        #[derive(Parser)]
        struct Args {
            #[command(flatten)]
            simulate: udaconnect::simulate::SimulateArgs,
        }
        let args = Args::try_parse_from([
            "simulate",
            "--api-url",
            &app.base,
            "--grpc-url",
            &app.grpc,
            "--transport",
            transport,
            "--attendees",
            "20",
            "--rate",
            "400",
            "--batch",
            "20",
            "--duration",
            "3s",
            "--freshness-every",
            "200ms",
        ])
        .expect("valid arguments");
        let report =
            udaconnect::simulate::run(&args.simulate, tokio_util::sync::CancellationToken::new())
                .await
                .expect("ran");
        assert!(report.accepted >= 600, "{transport}: {}", report.to_json());
        assert_eq!(report.rejected, 0, "{}", report.to_json());
        assert!(report.fresh_samples >= 3, "{}", report.to_json());
        assert!(report.fresh_p99_ms < 2000.0, "{}", report.to_json());
    }
    app.stop().await;
}
