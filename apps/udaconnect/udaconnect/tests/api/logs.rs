//! Positions, names and tokens are personal data: a full run of the
//! `udaconnect all` binary on NATS and PostgreSQL, logging its own and the
//! platform's lines down to `debug` (every request's line), with
//! attendees, their links and phones (OwnTracks and Traccar Client too),
//! positions that meet, are refused,
//! are sent for another person or with a revoked token, reads through
//! links and live streams, leaves none of them in its logs or its metrics.

use std::time::Duration;

use reqwest::{Client, Method};
use serde_json::{Value, json};
use testkit::{AppProcess, NatsServer, PostgresServer, eventually};

use super::helpers::{PATIENCE, UDACONNECT};

const ORGANISER: &str = "organiser-token-that-no-log-line-may-hold-4c1d";

async fn call(
    http: &Client,
    base: &str,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_full_run_logs_no_position_name_or_token() {
    let (nats, pg) = tokio::task::spawn_blocking(|| (NatsServer::start(), PostgresServer::start()))
        .await
        .expect("servers start");
    let envs = [
        ("DATABASE_URL", pg.create_database("logs")),
        ("NATS_URL", nats.url()),
        ("UDACONNECT_GRPC_ADDR", "127.0.0.1:0".to_owned()),
        ("UDACONNECT_OPEN_API", "false".to_owned()),
        ("UDACONNECT_ORGANISER_TOKEN", ORGANISER.to_owned()),
        (
            "RUST_LOG",
            "info,udaconnect=debug,platform=debug".to_owned(),
        ),
    ];
    let mut app = tokio::task::spawn_blocking(move || {
        AppProcess::spawn(UDACONNECT.as_ref(), "UDACONNECT", &["all"], &envs)
    })
    .await
    .expect("udaconnect all");
    let base = app.base_url().to_owned();
    let http = Client::builder()
        .timeout(PATIENCE)
        .build()
        .expect("a client");
    eventually("ready", PATIENCE, || async {
        let response = http.get(format!("{base}/readyz")).send().await.ok()?;
        (response.status() == 200).then_some(())
    })
    .await;

    let names = ["Zelda", "Quixotelle", "Yvonne", "Quasarine", "Privacorp"];
    let mut persons = Vec::new();
    let mut secrets = vec![ORGANISER.to_owned()];
    for (first, last) in [("Zelda", "Quixotelle"), ("Yvonne", "Quasarine")] {
        let (status, person) = call(
            &http,
            &base,
            ORGANISER,
            Method::POST,
            "/api/v2/persons",
            Some(json!({ "first_name": first, "last_name": last, "company_name": "Privacorp" })),
        )
        .await;
        assert_eq!(status, 201, "{person}");
        let id = person["id"].as_i64().expect("an id");
        let mut tokens = Vec::new();
        for kind in ["attendee", "device"] {
            let (status, made) = call(
                &http,
                &base,
                ORGANISER,
                Method::POST,
                &format!("/api/v2/persons/{id}/credentials"),
                Some(json!({ "kind": kind })),
            )
            .await;
            assert_eq!(status, 201, "{made}");
            let token = made["token"].as_str().expect("a token").to_owned();
            secrets.push(token.clone());
            tokens.push((made["id"].as_i64().expect("an id"), token));
        }
        persons.push((id, tokens));
    }
    let (a, a_tokens) = &persons[0];
    let (b, b_tokens) = &persons[1];
    let (link_a, device_a) = (&a_tokens[0].1, &a_tokens[1].1);
    let device_b = &b_tokens[1].1;

    // They meet: positions a metre apart, every 20 s for two minutes.
    let now = chrono::Utc::now();
    for step in 0..6_i64 {
        let time = (now - chrono::Duration::seconds(120 - 20 * step)).to_rfc3339();
        for (person, device, lon) in [(a, device_a, 2.1987654), (b, device_b, 2.1987777)] {
            let (status, answer) = call(
                &http,
                &base,
                device,
                Method::POST,
                "/api/v2/locations",
                Some(json!({ "person_id": person, "lat": 41.2345678, "lon": lon, "time": time })),
            )
            .await;
            assert_eq!(status, 201, "{answer}");
        }
    }
    // The phones' apps: Traccar Client's query holds the token and the
    // position; OwnTracks' Basic password is the token.
    let epoch = now.timestamp();
    let osmand = http
        .get(format!(
            "{base}/api/v2/osmand?id={device_a}&lat=41.2345678&lon=2.1987654&timestamp={epoch}"
        ))
        .send()
        .await
        .expect("an OsmAnd answer");
    assert_eq!(osmand.status(), 200);
    let owntracks = http
        .post(format!("{base}/api/v2/owntracks"))
        .basic_auth("person", Some(device_b))
        .json(&json!({ "_type": "location", "lat": 41.2345678, "lon": 2.1987777, "tst": epoch, "tid": "zq" }))
        .send()
        .await
        .expect("an OwnTracks answer");
    assert_eq!(owntracks.status(), 200);
    // Refused: out of range, for another person, with a revoked token.
    let refused = [
        (
            device_a.as_str(),
            json!({ "person_id": a, "lat": 123.4567891, "lon": 2.1987654 }),
        ),
        (
            device_a.as_str(),
            json!({ "person_id": b, "lat": 41.2345678, "lon": 2.1987654 }),
        ),
    ];
    for (token, body) in refused {
        let (status, _) = call(
            &http,
            &base,
            token,
            Method::POST,
            "/api/v2/locations",
            Some(body),
        )
        .await;
        assert!(status == 400 || status == 403, "{status}");
    }
    let (lost, lost_token) = &b_tokens[1];
    call(
        &http,
        &base,
        ORGANISER,
        Method::DELETE,
        &format!("/api/v2/credentials/{lost}"),
        None,
    )
    .await;
    let (status, _) = call(
        &http,
        &base,
        lost_token,
        Method::POST,
        "/api/v2/locations",
        Some(json!({ "person_id": b, "lat": 41.2345678, "lon": 2.1987654 })),
    )
    .await;
    assert_eq!(status, 401);

    // Read through A's link, the live stream with the token in its query.
    let meetings = eventually("A and B's meeting", PATIENCE, || async {
        let (_, page) = call(
            &http,
            &base,
            link_a,
            Method::GET,
            &format!("/api/v2/persons/{a}/meetings"),
            None,
        )
        .await;
        page["meetings"]
            .as_array()
            .filter(|found| !found.is_empty())
            .cloned()
    })
    .await;
    assert!(!meetings.is_empty());
    let mut live = http
        .get(format!(
            "{base}/api/v2/persons/{a}/meetings/live?access_token={link_a}"
        ))
        .send()
        .await
        .expect("the live stream");
    assert_eq!(live.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(10), live.chunk())
        .await
        .expect("an event in time")
        .expect("a chunk");
    assert!(first.is_some());
    drop(live);
    for path in [
        format!("/api/v2/persons/{a}/locations"),
        format!("/api/v2/persons/{a}/connections?start=2000-01-01&end=2100-01-01&within=10m"),
        "/api/persons".to_owned(),
        format!("/api/persons/{a}/connection?start_date=2000-01-01&end_date=2100-01-01&distance=5"),
    ] {
        let (status, _) = call(&http, &base, ORGANISER, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{path}");
    }
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");

    let exited = tokio::task::spawn_blocking(move || {
        let status = app.terminate(PATIENCE);
        (status, app.output())
    })
    .await
    .expect("stopped");
    let (status, lines) = exited;
    assert!(status.is_some_and(|status| status.success()), "{status:?}");
    assert!(
        lines.iter().any(|line| line.contains("\"DEBUG\"")),
        "the run logged at debug: {lines:?}"
    );
    let coordinates = ["41.2345", "2.19876", "2.19877", "123.4567"];
    for (what, needles) in [
        (
            "a token",
            secrets.iter().map(String::as_str).collect::<Vec<_>>(),
        ),
        ("a name", names.to_vec()),
        ("a coordinate", coordinates.to_vec()),
    ] {
        for needle in needles {
            let logged: Vec<&String> = lines.iter().filter(|line| line.contains(needle)).collect();
            assert!(logged.is_empty(), "{what} in the logs: {logged:?}");
            assert!(!metrics.contains(needle), "{what} in the metrics");
        }
    }
}
