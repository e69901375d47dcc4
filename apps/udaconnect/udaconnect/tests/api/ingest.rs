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
        assert_eq!(report.denied, 0, "{}", report.to_json());
        assert!(report.fresh_samples >= 3, "{}", report.to_json());
        assert!(report.fresh_p99_ms < 2000.0, "{}", report.to_json());
    }
    app.stop().await;
}

/// The organiser's token of the closed API the simulator tests run.
const ORGANISER: &str = "simulated-conference-organiser-0123456789";

/// `udaconnect simulate` with `args` (and the API at `app`).
fn simulate_args(app: &TestApp, args: &[&str]) -> udaconnect::simulate::SimulateArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        simulate: udaconnect::simulate::SimulateArgs,
    }
    let mut argv = vec!["simulate", "--api-url", &app.base, "--grpc-url", &app.grpc];
    argv.extend(args);
    Args::try_parse_from(argv)
        .expect("valid arguments")
        .simulate
}

/// GET `path` with the organiser's token: status and JSON body.
async fn organiser_get(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app
        .http
        .get(format!("{}{path}", app.base))
        .bearer_auth(ORGANISER)
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

/// The simulated attendees' ids.
async fn simulated(app: &TestApp) -> Vec<i64> {
    let (status, persons) = organiser_get(app, "/api/persons").await;
    assert_eq!(status, 200, "{persons}");
    persons
        .as_array()
        .expect("persons")
        .iter()
        .filter(|person| person["last_name"] == "Simulated")
        .filter_map(|person| person["id"].as_i64())
        .collect()
}

/// On a closed API the simulator, given the organiser's token, gives each
/// attendee's phone a token of its own and sends each attendee's positions
/// with it only: once one phone's token is revoked, that attendee's
/// positions are refused (and counted) while the others' go on being
/// stored. Freshness is read with the organiser's token.
#[tokio::test]
async fn on_a_closed_api_the_simulator_sends_each_attendees_positions_with_its_phones_token() {
    let app = spawn_app(&["--open-api", "false", "--organiser-token", ORGANISER]).await;
    for transport in ["grpc", "http"] {
        let before = simulated(&app).await;
        let args = simulate_args(
            &app,
            &[
                "--organiser-token",
                ORGANISER,
                "--transport",
                transport,
                "--attendees",
                "10",
                "--rate",
                "100",
                "--batch",
                "10",
                "--connections",
                "2",
                "--duration",
                "5s",
                "--freshness-every",
                "200ms",
            ],
        );
        let run = tokio::spawn(async move {
            udaconnect::simulate::run(&args, tokio_util::sync::CancellationToken::new()).await
        });

        // Its ten attendees, each with one phone, once it has made them.
        let phones = eventually("ten attendees, a phone each", PATIENCE, || async {
            let attendees: Vec<i64> = simulated(&app)
                .await
                .into_iter()
                .filter(|id| !before.contains(id))
                .collect();
            if attendees.len() != 10 {
                return None;
            }
            let mut phones = Vec::new();
            for attendee in &attendees {
                let (status, page) =
                    organiser_get(&app, &format!("/api/v2/persons/{attendee}/credentials")).await;
                assert_eq!(status, 200, "{page}");
                let credentials = page["credentials"].as_array()?.clone();
                if credentials.is_empty() {
                    return None;
                }
                assert_eq!(credentials.len(), 1, "{attendee}: {page}");
                assert_eq!(credentials[0]["kind"], "device", "{page}");
                assert_eq!(credentials[0]["label"], "simulated phone", "{page}");
                phones.push((*attendee, credentials[0]["id"].as_i64()?));
            }
            Some(phones)
        })
        .await;
        // The first attendee's phone is lost.
        let (lost, credential) = phones[0];
        let response = app
            .http
            .delete(format!("{}/api/v2/credentials/{credential}", app.base))
            .bearer_auth(ORGANISER)
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status().as_u16(), 200, "{transport}");
        let revoked: Value = response.json().await.expect("JSON");
        let revoked_at: chrono::DateTime<chrono::Utc> = revoked["revoked"]
            .as_str()
            .and_then(|time| time.parse().ok())
            .unwrap_or_else(|| panic!("a revocation time: {revoked}"));

        let report = tokio::time::timeout(PATIENCE, run)
            .await
            .expect("the run ends in time")
            .expect("the run's task")
            .expect("ran");
        let summary = report.to_json();
        assert!(report.accepted >= 200, "{transport}: {summary}");
        assert!(report.denied >= 1, "{transport}: {summary}");
        assert_eq!(
            (report.rejected, report.failed),
            (0, 0),
            "{transport}: {summary}"
        );
        assert!(report.fresh_samples >= 1, "{transport}: {summary}");

        // A moment after the revocation (a batch stamped just before it may
        // still have been taken), the lost phone's attendee has no new
        // location, and every other attendee has.
        let since = (revoked_at + chrono::Duration::milliseconds(500))
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let since_revocation = |attendee: i64| {
            let (app, since) = (&app, &since);
            async move {
                let path = format!("/api/v2/persons/{attendee}/locations?start={since}");
                let (status, page) = organiser_get(app, &path).await;
                assert_eq!(status, 200, "{page}");
                page["locations"].as_array().map_or(0, Vec::len)
            }
        };
        for (attendee, _) in phones.iter().filter(|(attendee, _)| *attendee != lost) {
            eventually(
                &format!("{transport}: attendee {attendee}'s locations since"),
                PATIENCE,
                || async { (since_revocation(*attendee).await >= 1).then_some(()) },
            )
            .await;
        }
        assert_eq!(
            since_revocation(lost).await,
            0,
            "{transport}: the lost phone's attendee"
        );
    }
    app.stop().await;
}

/// Without the organiser's token, the simulator says it needs one on a
/// closed API rather than sending anything.
#[tokio::test]
async fn on_a_closed_api_the_simulator_without_a_token_says_what_it_needs() {
    let app = spawn_app(&["--open-api", "false", "--organiser-token", ORGANISER]).await;
    let args = simulate_args(&app, &["--attendees", "2", "--duration", "1s"]);
    let err = udaconnect::simulate::run(&args, tokio_util::sync::CancellationToken::new())
        .await
        .expect_err("refused");
    let err = format!("{err:#}");
    assert!(err.contains("401"), "{err}");
    assert!(err.contains("UDACONNECT_ORGANISER_TOKEN"), "{err}");
    app.stop().await;
}
