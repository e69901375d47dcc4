//! Who may see and do what: every endpoint called as every kind of
//! caller (none, the organiser, attendee A, attendee B, a device of A, a
//! revoked token) on a closed API, each answer's status checked exactly;
//! a device of A submitting for B refused over HTTP and gRPC, with
//! nothing of it stored; the open API and the organiser's token alike.

use reqwest::Method;
use serde_json::{Value, json};
use testkit::eventually;
use tonic::{Code, Request};
use udaconnect::proto::v1::{
    Location, LocationBatch, LocationInput, ingest_service_client::IngestServiceClient,
    location_service_client::LocationServiceClient,
};

use super::helpers::{PATIENCE, TestApp, spawn_app};

/// The organiser's token the closed app is started with.
const ORGANISER: &str = "organiser-token-for-the-access-tests-0123456789";

/// The callers, in the order of each row's expected statuses.
const CALLERS: [&str; 6] = [
    "none",
    "organiser",
    "attendee A",
    "attendee B",
    "device of A",
    "revoked",
];

/// A closed API, two attendees, a device of A (and one revoked), a
/// location of each.
struct World {
    app: TestApp,
    a: i64,
    b: i64,
    tokens: [Option<String>; 6],
    /// A credential of A's, revoked again and again.
    spare: i64,
    location_a: i64,
    location_b: i64,
}

async fn call(
    app: &TestApp,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, String) {
    let mut request = app.http.request(method, format!("{}{path}", app.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    if response
        .headers()
        .get("content-type")
        .is_some_and(|kind| kind == "text/event-stream")
    {
        // An endless stream: its head says enough.
        return (status, String::new());
    }
    (status, response.text().await.expect("a body"))
}

async fn organiser(app: &TestApp, method: Method, path: &str, body: &Value) -> Value {
    let (status, text) = call(app, Some(ORGANISER), method, path, Some(body)).await;
    assert!((200..300).contains(&status), "{path}: {status} {text}");
    serde_json::from_str(&text).expect("JSON")
}

async fn credential(app: &TestApp, person: i64, kind: &str) -> (i64, String) {
    let made = organiser(
        app,
        Method::POST,
        &format!("/api/v2/persons/{person}/credentials"),
        &json!({ "kind": kind }),
    )
    .await;
    (
        made["id"].as_i64().expect("an id"),
        made["token"].as_str().expect("a token").to_owned(),
    )
}

fn location(person: i64, lat: f64) -> Value {
    json!({ "person_id": person, "lat": lat, "lon": 7.0, "time": "2024-05-01T10:00:00Z" })
}

async fn world() -> World {
    let app = spawn_app(&["--open-api", "false", "--organiser-token", ORGANISER]).await;
    let person =
        |first: &str| json!({ "first_name": first, "last_name": "Test", "company_name": "Acme" });
    let a = organiser(&app, Method::POST, "/api/v2/persons", &person("Ana")).await["id"]
        .as_i64()
        .expect("A");
    let b = organiser(&app, Method::POST, "/api/v2/persons", &person("Bea")).await["id"]
        .as_i64()
        .expect("B");
    let (_, attendee_a) = credential(&app, a, "attendee").await;
    let (_, attendee_b) = credential(&app, b, "attendee").await;
    let (_, device_a) = credential(&app, a, "device").await;
    let (lost, revoked) = credential(&app, a, "device").await;
    let (spare, _) = credential(&app, a, "device").await;
    organiser(
        &app,
        Method::DELETE,
        &format!("/api/v2/credentials/{lost}"),
        &json!(null),
    )
    .await;
    let location_a =
        organiser(&app, Method::POST, "/api/v2/locations", &location(a, 20.0)).await["id"]
            .as_i64()
            .expect("A's location");
    let location_b =
        organiser(&app, Method::POST, "/api/v2/locations", &location(b, 20.0)).await["id"]
            .as_i64()
            .expect("B's location");
    // Written once the writer has them.
    for id in [location_a, location_b] {
        eventually("the locations written", PATIENCE, || async {
            let (status, _) = call(
                &app,
                Some(ORGANISER),
                Method::GET,
                &format!("/api/v2/locations/{id}"),
                None,
            )
            .await;
            (status == 200).then_some(())
        })
        .await;
    }
    World {
        app,
        a,
        b,
        tokens: [
            None,
            Some(ORGANISER.to_owned()),
            Some(attendee_a),
            Some(attendee_b),
            Some(device_a),
            Some(revoked),
        ],
        spare,
        location_a,
        location_b,
    }
}

#[tokio::test]
async fn every_endpoint_answers_every_caller_as_the_rules_say() {
    let world = world().await;
    let (a, b) = (world.a, world.b);
    let (la, lb) = (world.location_a, world.location_b);
    let new_person = json!({ "first_name": "New", "last_name": "Person", "company_name": "Acme" });
    let original_location = json!({
        "person_id": a, "latitude": "7.0", "longitude": "20.0", "creation_time": "2024-05-01T10:00:00"
    });
    let for_b = location(b, 10.0);
    let rows: Vec<(Method, String, Option<Value>, [u16; 6])> = vec![
        // The page, its documentation and health: everyone, but a bad token.
        (
            Method::GET,
            "/".into(),
            None,
            [200, 200, 200, 200, 200, 200],
        ),
        (
            Method::GET,
            "/api/openapi.json".into(),
            None,
            [200, 200, 200, 200, 200, 200],
        ),
        (
            Method::GET,
            "/api/v2/me".into(),
            None,
            [200, 200, 200, 200, 200, 401],
        ),
        // The original's API: the organiser's.
        (
            Method::GET,
            "/api/persons".into(),
            None,
            [401, 200, 403, 403, 403, 401],
        ),
        (
            Method::POST,
            "/api/persons".into(),
            Some(new_person.clone()),
            [401, 200, 403, 403, 403, 401],
        ),
        (
            Method::GET,
            format!("/api/persons/{a}"),
            None,
            [401, 200, 403, 403, 403, 401],
        ),
        (
            Method::GET,
            format!(
                "/api/persons/{a}/connection?start_date=2024-05-01&end_date=2024-05-02&distance=5"
            ),
            None,
            [401, 200, 403, 403, 403, 401],
        ),
        (
            Method::GET,
            format!("/api/locations/{la}"),
            None,
            [401, 200, 403, 403, 403, 401],
        ),
        (
            Method::POST,
            "/api/locations".into(),
            Some(original_location),
            [401, 200, 403, 403, 403, 401],
        ),
        // v2 reads: the organiser, or the attendee themselves.
        (
            Method::GET,
            "/api/v2/persons".into(),
            None,
            [401, 200, 200, 200, 403, 401],
        ),
        (
            Method::POST,
            "/api/v2/persons".into(),
            Some(new_person),
            [401, 201, 403, 403, 403, 401],
        ),
        (
            Method::GET,
            format!("/api/v2/persons/{a}"),
            None,
            [401, 200, 200, 403, 403, 401],
        ),
        (
            Method::GET,
            format!("/api/v2/persons/{b}"),
            None,
            [401, 200, 403, 200, 403, 401],
        ),
        (
            Method::GET,
            "/api/v2/persons/999999".into(),
            None,
            [401, 404, 403, 403, 403, 401],
        ),
        (
            Method::GET,
            format!("/api/v2/persons/{a}/locations"),
            None,
            [401, 200, 200, 403, 403, 401],
        ),
        (
            Method::GET,
            format!("/api/v2/persons/{a}/meetings"),
            None,
            [401, 200, 200, 403, 403, 401],
        ),
        (
            Method::GET,
            format!("/api/v2/persons/{a}/meetings/live"),
            None,
            [401, 200, 200, 403, 403, 401],
        ),
        (
            Method::GET,
            format!(
                "/api/v2/persons/{a}/connections?start=2024-05-01T00:00:00Z&end=2024-05-02T00:00:00Z"
            ),
            None,
            [401, 200, 200, 403, 403, 401],
        ),
        (
            Method::GET,
            format!("/api/v2/locations/{la}"),
            None,
            [401, 200, 200, 403, 403, 401],
        ),
        (
            Method::GET,
            format!("/api/v2/locations/{lb}"),
            None,
            [401, 200, 403, 200, 403, 401],
        ),
        (
            Method::GET,
            "/api/v2/locations/999999999".into(),
            None,
            [401, 404, 403, 403, 403, 401],
        ),
        (
            Method::GET,
            format!("/api/v2/persons/{a}/export"),
            None,
            [401, 200, 200, 403, 403, 401],
        ),
        (
            Method::DELETE,
            "/api/v2/persons/999999".into(),
            None,
            [401, 404, 403, 403, 403, 401],
        ),
        (
            Method::DELETE,
            format!("/api/v2/persons/{b}"),
            None,
            // Every caller but the organiser and B: B stays for the rows below.
            [401, 0, 403, 0, 403, 401],
        ),
        (
            Method::GET,
            "/api/v2/stats".into(),
            None,
            [401, 200, 200, 200, 403, 401],
        ),
        (
            Method::GET,
            "/api/v2/live".into(),
            None,
            [401, 200, 200, 200, 403, 401],
        ),
        // Credentials: the organiser makes them; the attendee lists and revokes theirs.
        (
            Method::GET,
            format!("/api/v2/persons/{a}/credentials"),
            None,
            [401, 200, 200, 403, 403, 401],
        ),
        (
            Method::POST,
            format!("/api/v2/persons/{a}/credentials"),
            Some(json!({ "kind": "device" })),
            [401, 201, 403, 403, 403, 401],
        ),
        (
            Method::DELETE,
            format!("/api/v2/credentials/{}", world.spare),
            None,
            [401, 200, 200, 403, 403, 401],
        ),
        (
            Method::DELETE,
            "/api/v2/credentials/999999".into(),
            None,
            [401, 404, 403, 403, 403, 401],
        ),
        // Positions: the organiser for anyone, a device for its own person.
        (
            Method::POST,
            "/api/v2/locations".into(),
            Some(location(a, 20.0)),
            [401, 201, 403, 403, 201, 401],
        ),
        (
            Method::POST,
            "/api/v2/locations".into(),
            Some(for_b.clone()),
            [401, 201, 403, 403, 403, 401],
        ),
        (
            Method::POST,
            "/api/v2/locations:batch".into(),
            Some(json!({ "locations": [location(a, 20.0)] })),
            [401, 200, 403, 403, 200, 401],
        ),
        (
            Method::POST,
            "/api/v2/locations:batch".into(),
            Some(json!({ "locations": [location(a, 10.0), for_b] })),
            [401, 200, 403, 403, 403, 401],
        ),
    ];
    let mut wrong = Vec::new();
    for (method, path, body, expected) in &rows {
        for (caller, (token, want)) in CALLERS.iter().zip(world.tokens.iter().zip(expected)) {
            if *want == 0 {
                // Not asked of this caller here (see the test below).
                continue;
            }
            let (got, text) = call(
                &world.app,
                token.as_deref(),
                method.clone(),
                path,
                body.as_ref(),
            )
            .await;
            if got != *want {
                wrong.push(format!(
                    "{method} {path} as {caller}: {got}, not {want} ({text})"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} answers differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // Nothing the device of A sent for B was stored; the organiser's were.
    // A's: one at the start, the original's, and five taken in the rows
    // (three the organiser's, two the device's); B's: one at the start,
    // and the organiser's two. Once A's are all written, B's are counted.
    let count = |person: i64| {
        let app = &world.app;
        async move {
            let (_, text) = call(
                app,
                Some(ORGANISER),
                Method::GET,
                &format!(
                    "/api/v2/persons/{person}/locations?start=2024-05-01T00:00:00Z&end=2024-05-02T00:00:00Z"
                ),
                None,
            )
            .await;
            let page: Value = serde_json::from_str(&text).ok()?;
            page["locations"].as_array().map(Vec::len)
        }
    };
    eventually("A's positions written", PATIENCE, || async {
        (count(a).await? >= 7).then_some(())
    })
    .await;
    assert_eq!(count(a).await, Some(7));
    let b_stored = eventually("B's positions written", PATIENCE, || async {
        count(b).await.filter(|stored| *stored >= 3)
    })
    .await;
    assert_eq!(b_stored, 3, "a device of A stored a position for B");
    world.app.stop().await;
}

#[tokio::test]
async fn a_device_submits_over_grpc_for_its_own_person_only() {
    let world = world().await;
    let [_, _, attendee_a, _, device_a, revoked] = world.tokens.clone();
    let batch = |person: i64, lat: f64| LocationBatch {
        batch_id: 1,
        locations: vec![LocationInput {
            person_id: i32::try_from(person).expect("small"),
            lat,
            lon: 7.0,
            time: "2024-05-01T11:00:00Z".into(),
            key: String::new(),
        }],
    };
    let mut grpc = IngestServiceClient::connect(world.app.grpc.clone())
        .await
        .expect("connects");
    let send = |token: Option<String>, person: i64, lat: f64| {
        let mut request = Request::new(batch(person, lat));
        if let Some(token) = token {
            request.metadata_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("metadata"),
            );
        }
        request
    };
    let code = |result: Result<tonic::Response<_>, tonic::Status>| {
        result.err().map(|status| status.code())
    };
    assert_eq!(
        code(grpc.ingest_batch(send(None, world.a, 20.0)).await),
        Some(Code::Unauthenticated)
    );
    assert_eq!(
        code(grpc.ingest_batch(send(revoked, world.a, 20.0)).await),
        Some(Code::Unauthenticated)
    );
    assert_eq!(
        code(grpc.ingest_batch(send(attendee_a, world.a, 20.0)).await),
        Some(Code::PermissionDenied)
    );
    assert_eq!(
        code(
            grpc.ingest_batch(send(device_a.clone(), world.b, 10.0))
                .await
        ),
        Some(Code::PermissionDenied)
    );
    let taken = grpc
        .ingest_batch(send(device_a, world.a, 30.0))
        .await
        .expect("A's own position taken")
        .into_inner();
    assert_eq!(taken.accepted, 1);
    assert_eq!(
        grpc.ingest_batch(send(Some(ORGANISER.to_owned()), world.b, 30.0))
            .await
            .expect("the organiser's")
            .into_inner()
            .accepted,
        1
    );
    // The original's call is the organiser's, a device's token or none.
    let mut original = LocationServiceClient::connect(world.app.grpc.clone())
        .await
        .expect("connects");
    let create = |token: Option<&str>| {
        let mut request = Request::new(Location {
            id: 0,
            person_id: i32::try_from(world.a).expect("small"),
            latitude: "7.0".into(),
            longitude: "20.0".into(),
            creation_time: "2024-05-01T12:00:00".into(),
        });
        if let Some(token) = token {
            request.metadata_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("metadata"),
            );
        }
        request
    };
    assert_eq!(
        original
            .create(create(None))
            .await
            .err()
            .map(|status| status.code()),
        Some(Code::Unauthenticated)
    );
    assert_eq!(
        original
            .create(create(world.tokens[4].as_deref()))
            .await
            .err()
            .map(|status| status.code()),
        Some(Code::PermissionDenied)
    );
    original
        .create(create(Some(ORGANISER)))
        .await
        .expect("the organiser's");
    // B's: the one at the start and the organiser's, never the device's.
    let stored = eventually("B's positions written", PATIENCE, || async {
        let (_, text) = call(
            &world.app,
            Some(ORGANISER),
            Method::GET,
            &format!("/api/v2/persons/{}/locations", world.b),
            None,
        )
        .await;
        let page: Value = serde_json::from_str(&text).ok()?;
        let locations = page["locations"].as_array()?.clone();
        (locations.len() >= 2).then_some(locations)
    })
    .await;
    assert!(
        stored.iter().all(|location| location["lat"] != 10.0),
        "{stored:?}"
    );
    world.app.stop().await;
}

#[tokio::test]
async fn the_open_api_needs_no_token_and_still_refuses_a_bad_one() {
    let app = spawn_app(&["--open-api", "true"]).await;
    let (status, me) = app.get("/api/v2/me").await;
    assert_eq!(status, 200);
    assert_eq!(me, json!({ "caller": "organiser", "open_api": true }));
    assert_eq!(app.get("/api/persons").await.0, 200);
    let (status, _) = call(&app, Some("not-a-token"), Method::GET, "/api/persons", None).await;
    assert_eq!(
        status, 401,
        "a bad token is refused, even where none is needed"
    );
    let response = app
        .http
        .get(format!("{}/api/persons", app.base))
        .bearer_auth("not-a-token")
        .send()
        .await
        .expect("an answer");
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .map(|value| value.to_str().ok()),
        Some(Some("Bearer realm=\"udaconnect\""))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_token_in_the_query_is_a_token_and_a_revoked_one_is_refused_at_once() {
    let world = world().await;
    let token = world.tokens[2].clone().expect("attendee A's");
    let path = |token: &str| format!("/api/v2/persons/{}?access_token={token}", world.a);
    assert_eq!(
        call(&world.app, None, Method::GET, &path(&token), None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(
            &world.app,
            None,
            Method::GET,
            &format!("/api/v2/persons/{}?access_token={token}", world.b),
            None
        )
        .await
        .0,
        403
    );
    // Revoked here: refused at once, though its lookup was cached.
    let (_, listed) = call(
        &world.app,
        Some(ORGANISER),
        Method::GET,
        &format!("/api/v2/persons/{}/credentials", world.a),
        None,
    )
    .await;
    let listed: Value = serde_json::from_str(&listed).expect("JSON");
    let link = listed["credentials"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|credential| credential["kind"] == "attendee")
        .and_then(|credential| credential["id"].as_i64())
        .expect("A's link");
    assert!(
        listed.to_string().find("uca_").is_none() && listed.to_string().find("ucd_").is_none(),
        "a list never shows a token: {listed}"
    );
    let (status, _) = call(
        &world.app,
        Some(&token),
        Method::DELETE,
        &format!("/api/v2/credentials/{link}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "an attendee revokes their own link");
    assert_eq!(
        call(&world.app, None, Method::GET, &path(&token), None)
            .await
            .0,
        401
    );
    world.app.stop().await;
}

#[tokio::test]
async fn a_stream_opened_with_a_link_ends_once_the_link_is_revoked() {
    let app = spawn_app(&[
        "--open-api",
        "false",
        "--organiser-token",
        ORGANISER,
        "--auth-cache",
        "1s",
    ])
    .await;
    let person = organiser(
        &app,
        Method::POST,
        "/api/v2/persons",
        &json!({ "first_name": "Ana", "last_name": "Test", "company_name": "Acme" }),
    )
    .await["id"]
        .as_i64()
        .expect("a person");
    let (link, token) = credential(&app, person, "attendee").await;
    let mut streams = Vec::new();
    for path in [
        format!("/api/v2/persons/{person}/meetings/live"),
        "/api/v2/live".to_owned(),
    ] {
        let response = app
            .http
            .get(format!("{}{path}?access_token={token}", app.base))
            .send()
            .await
            .expect("a stream");
        assert_eq!(response.status(), 200, "{path}");
        streams.push((path, response));
    }
    organiser(
        &app,
        Method::DELETE,
        &format!("/api/v2/credentials/{link}"),
        &json!(null),
    )
    .await;
    for (path, mut response) in streams {
        // Events may come until the token is checked again; then the end.
        let ended = tokio::time::timeout(PATIENCE, async {
            while let Ok(Some(_)) = response.chunk().await {}
        })
        .await;
        assert!(
            ended.is_ok(),
            "{path} still open after its link was revoked"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn an_attendee_erases_themselves_and_their_credentials_go_with_them() {
    let world = world().await;
    let [_, _, attendee_a, attendee_b, device_a, _] = world.tokens.clone();
    let (attendee_a, attendee_b, device_a) = (
        attendee_a.expect("A's link"),
        attendee_b.expect("B's link"),
        device_a.expect("A's phone"),
    );
    let erase = |person: i64| format!("/api/v2/persons/{person}");
    assert_eq!(
        call(
            &world.app,
            Some(&attendee_b),
            Method::DELETE,
            &erase(world.a),
            None
        )
        .await
        .0,
        403,
        "B may not erase A"
    );
    assert_eq!(
        call(
            &world.app,
            Some(&device_a),
            Method::DELETE,
            &erase(world.a),
            None
        )
        .await
        .0,
        403,
        "a phone may not erase its person"
    );
    let (status, export) = call(
        &world.app,
        Some(&attendee_a),
        Method::GET,
        &format!("/api/v2/persons/{}/export", world.a),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        !export.contains("uca_") && !export.contains("ucd_"),
        "an export never holds a token: {export}"
    );
    let exported: Value = serde_json::from_str(&export).expect("JSON");
    assert_eq!(
        exported["devices"].as_array().map(Vec::len),
        Some(4),
        "A's link and three phones (one revoked): {export}"
    );
    assert_eq!(
        call(
            &world.app,
            Some(&attendee_a),
            Method::DELETE,
            &erase(world.a),
            None
        )
        .await
        .0,
        204
    );
    for token in [&attendee_a, &device_a] {
        assert_eq!(
            call(&world.app, Some(token), Method::GET, "/api/v2/me", None)
                .await
                .0,
            401,
            "an erased person's credentials are gone"
        );
    }
    assert_eq!(
        call(
            &world.app,
            Some(ORGANISER),
            Method::GET,
            &erase(world.a),
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(
            &world.app,
            Some(ORGANISER),
            Method::DELETE,
            &erase(world.b),
            None
        )
        .await
        .0,
        204,
        "the organiser erases anyone"
    );
    world.app.stop().await;
}
