//! The phones' own apps end to end, over real HTTP, on a closed API: a
//! person and their device's token made by the organiser, then OwnTracks'
//! messages as the booklet shows them and every request of Traccar's
//! OsmAnd decoder test sent as the apps send them (to the addresses the
//! device's setup hands out, and to the bare address), and the locations
//! stored read back exactly. Resends are stored once; tokens that are not
//! a device's are refused; a device submits for its own person only, on
//! every transport; OwnTracks is answered with whom its person met today,
//! where they met; and the same through a real nats-server and
//! PostgreSQL, with the edge, the writer and the API as separate targets,
//! a full stream answered 503 and the app's resend stored once it drains.

use chrono::{DateTime, Utc};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use testkit::{NatsServer, PostgresServer, eventually};
use udaconnect::proto::v1::{
    LocationBatch, LocationInput, ingest_service_client::IngestServiceClient,
};

use super::helpers::{PATIENCE, TestApp, spawn_app, spawn_target};

/// The organiser's token of these tests.
const ORGANISER: &str = "phones-organiser-token-0123456789abcdef";
/// A closed API: tokens needed, the organiser's this one.
const CLOSED: [&str; 4] = ["--open-api", "false", "--organiser-token", ORGANISER];

/// A request's status and JSON body (`null` when it has none).
async fn answer(request: RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("answered");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("not JSON ({err}), status {status}: {text}"))
    };
    (status, body)
}

/// `method path` on `app` as the organiser.
async fn organiser(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = app
        .http
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(ORGANISER);
    if let Some(body) = body {
        request = request.json(&body);
    }
    answer(request).await
}

/// A new person; their id.
async fn person(app: &TestApp, first: &str, last: &str) -> i64 {
    let (status, person) = organiser(
        app,
        Method::POST,
        "/api/v2/persons",
        Some(json!({"first_name": first, "last_name": last, "company_name": "Phones Co"})),
    )
    .await;
    assert_eq!(status, 201, "{person}");
    person["id"].as_i64().expect("an id")
}

/// A device's credential, as the organiser is shown it once.
struct Device {
    id: i64,
    token: String,
    /// OwnTracks' URL and user name.
    owntracks_url: String,
    user: String,
    /// Traccar Client's server URL.
    server_url: String,
}

async fn device(app: &TestApp, person: i64) -> Device {
    let (status, made) = organiser(
        app,
        Method::POST,
        &format!("/api/v2/persons/{person}/credentials"),
        Some(json!({"kind": "device", "label": "Phone"})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let text = |value: &Value| value.as_str().expect("text").to_owned();
    let token = text(&made["token"]);
    assert_eq!(made["owntracks"]["password"], token.as_str(), "{made}");
    assert_eq!(
        made["traccar"]["device_identifier"],
        token.as_str(),
        "{made}"
    );
    Device {
        id: made["id"].as_i64().expect("an id"),
        owntracks_url: text(&made["owntracks"]["url"]),
        user: text(&made["owntracks"]["username"]),
        server_url: text(&made["traccar"]["server_url"]),
        token,
    }
}

/// An attendee's link's token for `person`.
async fn attendee(app: &TestApp, person: i64) -> String {
    let (status, made) = organiser(
        app,
        Method::POST,
        &format!("/api/v2/persons/{person}/credentials"),
        Some(json!({"kind": "attendee"})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    made["token"].as_str().expect("a token").to_owned()
}

/// What OwnTracks posts: `body` to `url`, the token as the Basic password,
/// with the app's headers.
async fn owntracks_post(
    app: &TestApp,
    url: &str,
    user: &str,
    token: &str,
    body: &str,
) -> reqwest::Response {
    app.http
        .post(url)
        .basic_auth(user, Some(token))
        .header("x-limit-u", user)
        .header("x-limit-d", "phone")
        .header("user-agent", "Owntracks-Android/gms/420503000")
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_owned())
        .send()
        .await
        .expect("answered")
}

/// [`owntracks_post`]'s status, `WWW-Authenticate` header and JSON answer.
async fn owntracks(
    app: &TestApp,
    url: &str,
    user: &str,
    token: &str,
    body: &str,
) -> (u16, Option<String>, Value) {
    let response = owntracks_post(app, url, user, token, body).await;
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("not JSON ({err}), status {status}: {text}"));
    (status, challenge, body)
}

/// How Traccar Client's requests reach the server in these tests.
#[derive(Clone, Copy, Debug)]
enum Sent {
    /// `GET <url>?<parameters>`.
    Get,
    /// `POST <url>?<parameters>`, no body.
    PostQuery,
    /// `POST <url>`, the parameters form-encoded.
    PostForm,
}

/// An OsmAnd request of `parameters` to `url`, sent as `sent` says.
async fn osmand(app: &TestApp, url: &str, parameters: &str, sent: Sent) -> (u16, Value) {
    let request = match sent {
        Sent::Get => app.http.get(format!("{url}?{parameters}")),
        Sent::PostQuery => app.http.post(format!("{url}?{parameters}")),
        Sent::PostForm => app
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(parameters.to_owned()),
    };
    answer(request).await
}

/// Traccar Client 9's JSON `body` posted to `url`.
async fn osmand_json(app: &TestApp, url: &str, body: &str) -> (u16, Value) {
    answer(
        app.http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_owned()),
    )
    .await
}

/// The one id an OsmAnd answer gives.
fn taken(status: u16, reply: &Value) -> i64 {
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["accepted"], 1, "{reply}");
    reply["ids"][0].as_i64().expect("an id")
}

/// A stored location as compared here: latitude, longitude, time.
type Said = (f64, f64, String);

/// The locations of `person` the API answers, by time.
async fn stored(app: &TestApp, person: i64) -> Vec<Value> {
    let (status, page) = organiser(
        app,
        Method::GET,
        &format!("/api/v2/persons/{person}/locations?limit=1000"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page["locations"].as_array().expect("locations").clone()
}

fn said(location: &Value) -> Said {
    (
        location["lat"].as_f64().expect("lat"),
        location["lon"].as_f64().expect("lon"),
        location["time"].as_str().expect("a time").to_owned(),
    )
}

/// Waits until `person` has `count` locations stored (the in-process
/// writer stores them a moment after the edge took them), and returns
/// them all.
async fn stored_count(app: &TestApp, person: i64, count: usize) -> Vec<Value> {
    eventually(
        &format!("{count} locations of person {person}"),
        PATIENCE,
        || async {
            let found = stored(app, person).await;
            (found.len() >= count).then_some(found)
        },
    )
    .await
}

fn owned(expected: &[(f64, f64, &str)]) -> Vec<Said> {
    expected
        .iter()
        .map(|(lat, lon, time)| (*lat, *lon, (*time).to_owned()))
        .collect()
}

/// Whole seconds since 1970 of an RFC 3339 time.
fn seconds(time: &str) -> i64 {
    DateTime::parse_from_rfc3339(time)
        .expect("an RFC 3339 time")
        .timestamp()
}

/// The same location message, with every element the booklet shows.
const FULL_LOCATION: &str = r#"{"cog":271,"batt":41,"lon":2.29513,"acc":5,"vel":61,"vac":21,"lat":48.85833,"t":"u","tst":1497508651,"alt":167,"_type":"location","topic":"owntracks/jane/iphone","p":71,"tid":"JJ"}"#;

#[tokio::test]
async fn owntracks_messages_of_the_booklet_are_taken_as_the_app_sends_them() {
    let app = spawn_app(&CLOSED).await;
    let jane = person(&app, "Jane", "Jolie").await;
    let phone = device(&app, jane).await;
    assert!(
        phone.owntracks_url.ends_with("/api/v2/owntracks"),
        "{}",
        phone.owntracks_url
    );
    let post =
        |body: &'static str| owntracks(&app, &phone.owntracks_url, &phone.user, &phone.token, body);

    // Every message of the booklet's, and an empty body, is taken and
    // answered with the friends (none: Jane met nobody); the full
    // location twice, as the app sends again what it has no answer for.
    for body in [
        r#"{"lon":2.29513,"lat":48.85833,"_type":"location","tst":1497476456, "tid":"JJ"}"#,
        FULL_LOCATION,
        r#"{"_type": "location", "alt": 160, "cog": 0, "dist": 189, "trip": 279122, "lat": 45.46427, "lon": 9.18951, "vel": 12, "t": "t", "tst": 1406803894}"#,
        r#"{"_type": "transition", "wtst": 1425042603, "lat": 12.34, "lon": 44.5, "tst": 1427634603, "acc": 130, "tid": "JP", "event": "enter", "desc": "my Indian restaurant", "t": "b"}"#,
        r#"{"_type":"lwt","tst": 1380738247}"#,
        r#"{"_type": "card", "name": "Jane Jolie", "face": "iV1CFEVkMhmCIKBUKh3ghAAAAABJRU5ErkJggg=="}"#,
        r#"{"_type": "waypoint", "desc": "Free text entered on device", "lat": 48.85833, "lon": 2.29513, "rad": 100, "tst": 1425042603, "shared": true, "tid": "XX", "uuid": "YYYYYYYYYYYYYYYYY", "major": 17, "minor": 1}"#,
        "",
        FULL_LOCATION,
    ] {
        let (status, _, friends) = post(body).await;
        assert_eq!((status, friends), (200, json!([])), "{body}");
    }

    // A location the checks refuse is a 400 naming why, and not stored;
    // so is a body that is not OwnTracks messages.
    let (status, _, refused) =
        post(r#"{"_type":"location","lat":91.5,"lon":2.29513,"tst":1497476456}"#).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["field"], "lat", "{refused}");
    assert_eq!(refused["problem"], "out_of_range", "{refused}");
    let (status, _, refused) = post(r#"{"lat":1.0,"lon":2.0,"tst":1}"#).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"], "the message: has no _type", "{refused}");

    // Stored: the three locations, the full one once.
    let found = stored_count(&app, jane, 3).await;
    assert_eq!(
        found.iter().map(said).collect::<Vec<_>>(),
        owned(&[
            (45.46427, 9.18951, "2014-07-31T10:51:34Z"),
            (48.85833, 2.29513, "2017-06-14T21:40:56Z"),
            (48.85833, 2.29513, "2017-06-15T06:37:31Z"),
        ])
    );
    assert!(found.iter().all(|location| location["person_id"] == jane));
    app.stop().await;
}

/// Each request of Traccar's OsmAndProtocolDecoderTest, in its order, the
/// device's id `{id}`, and how it is sent here (to the server URL, or to
/// the bare address): a query, or a form.
const DECODER_QUERIES: [(&str, Sent, bool); 11] = [
    (
        "id={id}&timestamp=1377177267&cell=257,02,16,2224&cell=257,02,16,2223,-90&wifi=00-14-22-01-23-45,-80&wifi=00-1C-B3-09-85-15,-70",
        Sent::Get,
        false,
    ),
    (
        "timestamp=1377177267&lat=60.0&lon=30.0",
        Sent::PostQuery,
        false,
    ),
    (
        "id={id}&lat=42.06288&lon=-88.23412&timestamp=2016-01-27T18%3A55%3A47Z&hdop=6.0&altitude=224.0&speed=0.0",
        Sent::Get,
        false,
    ),
    (
        "id={id}&lat=42.06288&lon=-88.23412&timestamp=1442068686579&hdop=6.0&altitude=224.0&speed=0.0",
        Sent::PostQuery,
        false,
    ),
    (
        "lat=49.60688&lon=6.15788&timestamp=2014-06-04+09%3A10%3A11&altitude=384.7&speed=0.0&id={id}",
        Sent::PostForm,
        false,
    ),
    (
        "id={id}&timestamp=1377177267&lat=60.0&lon=30.0&speed=0.0&bearing=0.0&altitude=0&hdop=0.0",
        Sent::Get,
        true,
    ),
    (
        "id={id}&timestamp=1377177267&lat=60.0&lon=30.0",
        Sent::PostQuery,
        true,
    ),
    (
        "lat=60.0&lon=30.0&speed=0.0&heading=0.0&vacc=0&hacc=0&altitude=0&deviceid={id}",
        Sent::Get,
        true,
    ),
    (
        "id={id}&lat=41.666667&lon=-0.883333&altitude=350.059479&speed=0.000000&batt=87",
        Sent::PostForm,
        true,
    ),
    (
        "id={id}&timestamp=1377177267&location=60.0,30.0",
        Sent::PostQuery,
        false,
    ),
    (
        "id={id}&timestamp=1504763810&lat=40.7232948571&lon=-74.0061408571&bearing=7.19889788244&speed=40&ignition=true&rpm=933&fuel=24",
        Sent::Get,
        false,
    ),
];

/// Each JSON body of the decoder test (Traccar Client 9), the device's id
/// `{id}`, and whether it goes to the bare address.
const DECODER_JSON: [(&str, bool); 4] = [
    (
        r#"{"location":{"timestamp":"2025-06-15T13:45:12.862Z","coords":{"latitude":37.4219983,"longitude":-122.084,"accuracy":5,"speed":0,"heading":-1,"altitude":5},"is_moving":false,"odometer":0,"event":"motionchange","battery":{"level":1,"is_charging":false},"activity":{"type":"still"},"extras":{},"_":"&id=48241179&lat=37.4219983&lon=-122.084&timestamp=2025-06-15T13:45:12.862Z&"},"device_id":"{id}"}"#,
        false,
    ),
    (
        r#"{"location":{"timestamp":"2025-06-15T13:45:12.862Z","coords":{"latitude":37.4219983,"longitude":-122.084,"accuracy":5,"speed":0,"heading":-1,"altitude":5},"is_moving":false,"odometer":0,"event":"motionchange","battery":{"level":1,"is_charging":false},"activity":{"type":"still"},"extras":{"device_string_test":"long_device_id","device_bool_test":true,"device_bool_false_test":false,"device_integer_test":1,"device_double_test":1.345,"device_very_long_double_test":1763636.3442},"_":"&id=48241179&lat=37.4219983&lon=-122.084&timestamp=2025-06-15T13:45:12.862Z&"},"device_id":"{id}"}"#,
        true,
    ),
    (
        r#"{"location":{"extras":{},"mock":true,"coords":{"speed_accuracy":-1,"speed":-1,"longitude":-122.406417,"ellipsoidal_altitude":0,"floor":null,"heading_accuracy":-1,"latitude":37.785834000000001,"accuracy":5,"altitude_accuracy":-1,"altitude":0,"heading":-1},"is_moving":false,"age":188,"odometer":0,"uuid":"2FB04C65-99CF-42AB-8DD3-EBCB4B108BF8","event":"motionchange","battery":{"level":-1,"is_charging":false},"activity":{"type":"unknown","confidence":100},"timestamp":"2025-05-09T04:11:30.579Z"},"device_id":"{id}"}"#,
        false,
    ),
    (
        r#"{"location":{"event":"motionchange","is_moving":false,"uuid":"0e9a2473-a9a7-4c00-997b-fb97d2154e75","timestamp":"2021-07-21T08:06:34.444Z","odometer":0,"coords":{"latitude":-6.1148096,"longitude":106.6837015,"accuracy":3.8,"speed":18.67,"speed_accuracy":0.26,"heading":63,"heading_accuracy":0.28,"altitude":35.7,"altitude_accuracy":3.8},"activity":{"type":"still","confidence":100},"battery":{"is_charging":false,"level":0.79},"extras":{}},"device_id":"{id}"}"#,
        true,
    ),
];

#[tokio::test]
async fn every_request_of_traccars_osmand_decoder_test_is_taken_as_sent() {
    let app = spawn_app(&CLOSED).await;
    let ann = person(&app, "Ann", "Droid").await;
    let phone = device(&app, ann).await;
    assert!(
        phone.server_url.ends_with("/api/v2/osmand"),
        "{}",
        phone.server_url
    );
    let bare = format!("{}/", app.base);
    let before = Utc::now();
    let mut ids = Vec::new();
    for (query, sent, to_bare) in DECODER_QUERIES {
        let url = if to_bare { &bare } else { &phone.server_url };
        let (status, reply) = osmand(&app, url, &query.replace("{id}", &phone.token), sent).await;
        ids.push((status, reply));
    }
    let after = Utc::now();
    for (body, to_bare) in DECODER_JSON {
        let url = if to_bare { &bare } else { &phone.server_url };
        ids.push(osmand_json(&app, url, &body.replace("{id}", &phone.token)).await);
    }
    // The first holds cells and Wi-Fi only: nothing to store. The second
    // names no device: refused, as Traccar's decoder refuses it.
    assert_eq!(
        ids[0],
        (
            200,
            json!({"accepted": 0, "ids": [], "reason": "no coordinates"})
        )
    );
    assert_eq!(ids[1].0, 400, "{}", ids[1].1);
    assert!(
        ids[1].1["error"]
            .as_str()
            .is_some_and(|error| error.contains("names no device")),
        "{}",
        ids[1].1
    );
    let ids: Vec<i64> = ids[2..]
        .iter()
        .map(|(status, reply)| taken(*status, reply))
        .collect();
    // The sixth, seventh and tenth are one position at one time (by
    // `lat`/`lon` and by `location`): one location, answered with one id;
    // so are the first two JSON bodies.
    assert_eq!((ids[4], ids[7]), (ids[3], ids[3]));
    assert_eq!(ids[10], ids[9]);
    // `valid=false` holds nothing to store.
    let (status, reply) = osmand(
        &app,
        &phone.server_url,
        &format!(
            "id={}&lat=1&lon=2&timestamp=1377177267&valid=false",
            phone.token
        ),
        Sent::Get,
    )
    .await;
    assert_eq!(
        (status, reply),
        (
            200,
            json!({"accepted": 0, "ids": [], "reason": "valid=false"})
        )
    );
    // A position the checks refuse is a 400 naming the field.
    let (status, refused) = osmand(
        &app,
        &phone.server_url,
        &format!("id={}&lat=91.5&lon=2&timestamp=1377177267", phone.token),
        Sent::Get,
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(
        (&refused["field"], &refused["problem"]),
        (&json!("lat"), &json!("out_of_range"))
    );
    // The bare address is still the page for a browser.
    let page = app.http.get(&bare).send().await.expect("answered");
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .is_ok_and(|kind| kind.starts_with("text/html"))
    );

    // Stored: ten locations. The eighth and ninth have no time of their
    // own: they are stored at the time they were read.
    let found = stored_count(&app, ann, 10).await;
    let mut at_once: Vec<Said> = Vec::new();
    let mut timed: Vec<Said> = Vec::new();
    for location in &found {
        let time = location["time"].as_str().expect("a time");
        let at: DateTime<Utc> = time.parse().expect("a time");
        if at >= before && at <= after {
            at_once.push(said(location));
        } else {
            timed.push(said(location));
        }
    }
    assert_eq!(
        timed,
        owned(&[
            (60.0, 30.0, "2013-08-22T13:14:27Z"),
            (49.60688, 6.15788, "2014-06-04T09:10:11Z"),
            (42.06288, -88.23412, "2015-09-12T14:38:06.579Z"),
            (42.06288, -88.23412, "2016-01-27T18:55:47Z"),
            (40.7232948571, -74.0061408571, "2017-09-07T05:56:50Z"),
            (-6.1148096, 106.6837015, "2021-07-21T08:06:34.444Z"),
            (37.785834, -122.406417, "2025-05-09T04:11:30.579Z"),
            (37.4219983, -122.084, "2025-06-15T13:45:12.862Z"),
        ])
    );
    assert_eq!(
        at_once
            .iter()
            .map(|(lat, lon, _)| (*lat, *lon))
            .collect::<Vec<_>>(),
        [(60.0, 30.0), (41.666667, -0.883333)]
    );
    let stored_ids: Vec<i64> = found
        .iter()
        .map(|location| location["id"].as_i64().expect("an id"))
        .collect();
    for id in &ids {
        assert!(stored_ids.contains(id), "{id} not stored: {stored_ids:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn tokens_other_than_a_live_devices_are_refused_by_the_phones_endpoints() {
    let app = spawn_app(&CLOSED).await;
    let bob = person(&app, "Bob", "Tokens").await;
    let phone = device(&app, bob).await;
    let link = attendee(&app, bob).await;
    let lwt = r#"{"_type":"lwt","tst":1380738247}"#;
    let fix = |token: &str| format!("id={token}&lat=1&lon=2&timestamp=1377177267");

    // The device itself is taken.
    let (status, _, friends) =
        owntracks(&app, &phone.owntracks_url, &phone.user, &phone.token, lwt).await;
    assert_eq!((status, friends), (200, json!([])));
    let (status, reply) = osmand(&app, &phone.server_url, &fix(&phone.token), Sent::Get).await;
    taken(status, &reply);

    // No credentials, or a token nobody holds: 401, OwnTracks challenged
    // for Basic credentials so that the app says so.
    let basic = Some("Basic realm=\"udaconnect\"".to_owned());
    let (status, challenge, _) =
        owntracks(&app, &phone.owntracks_url, &phone.user, "ucd_nobody", lwt).await;
    assert_eq!((status, challenge), (401, basic.clone()));
    let bare = app
        .http
        .post(&phone.owntracks_url)
        .body(lwt)
        .send()
        .await
        .expect("answered");
    assert_eq!(bare.status(), 401);
    assert_eq!(
        bare.headers()["www-authenticate"],
        "Basic realm=\"udaconnect\""
    );
    let (status, reply) = osmand(&app, &phone.server_url, &fix("ucd_nobody"), Sent::Get).await;
    assert_eq!(status, 401, "{reply}");

    // The organiser's token and an attendee's link: not a device's, 403.
    for token in [ORGANISER, link.as_str()] {
        let (status, _, reply) = owntracks(&app, &phone.owntracks_url, "someone", token, lwt).await;
        assert_eq!(status, 403, "{reply}");
        let (status, reply) = osmand(&app, &phone.server_url, &fix(token), Sent::PostQuery).await;
        assert_eq!(status, 403, "{reply}");
    }

    // Revoked (the phone is lost): 401 from now on, on both.
    let (status, revoked) = organiser(
        &app,
        Method::DELETE,
        &format!("/api/v2/credentials/{}", phone.id),
        None,
    )
    .await;
    assert_eq!(status, 200, "{revoked}");
    let (status, challenge, _) =
        owntracks(&app, &phone.owntracks_url, &phone.user, &phone.token, lwt).await;
    assert_eq!((status, challenge), (401, basic));
    let (status, reply) = osmand(&app, &phone.server_url, &fix(&phone.token), Sent::Get).await;
    assert_eq!(status, 401, "{reply}");
    app.stop().await;
}

#[tokio::test]
async fn a_device_submits_for_its_own_person_only_on_every_transport() {
    let app = spawn_app(&CLOSED).await;
    let a = person(&app, "Ada", "Own").await;
    let b = person(&app, "Bea", "Other").await;
    let phone = device(&app, a).await;
    // OwnTracks and OsmAnd requests cannot name a person at all: their
    // positions are the device's person's (the tests above store them so).
    // The transports that do name one hold a device to its own.
    let location = |person: i64, second: u32| json!({"person_id": person, "lat": 45.0, "lon": 7.0, "time": format!("2021-03-01T10:00:{second:02}Z")});
    let as_device = |method: Method, path: &str| {
        app.http
            .request(method, format!("{}{path}", app.base))
            .bearer_auth(&phone.token)
    };

    // Its own person: taken.
    let (status, own) =
        answer(as_device(Method::POST, "/api/v2/locations").json(&location(a, 0))).await;
    assert_eq!(status, 201, "{own}");
    // Another's: 403 over HTTP, one location or a batch (its own location
    // in it not taken either), and over gRPC.
    let (status, reply) =
        answer(as_device(Method::POST, "/api/v2/locations").json(&location(b, 1))).await;
    assert_eq!(status, 403, "{reply}");
    let (status, reply) = answer(
        as_device(Method::POST, "/api/v2/locations:batch")
            .json(&json!({"locations": [location(a, 2), location(b, 3)]})),
    )
    .await;
    assert_eq!(status, 403, "{reply}");
    let mut client = IngestServiceClient::connect(app.grpc.clone())
        .await
        .expect("connects");
    let mut request = tonic::Request::new(LocationBatch {
        batch_id: 1,
        locations: vec![LocationInput {
            person_id: i32::try_from(b).expect("small"),
            lat: 45.0,
            lon: 7.0,
            time: "2021-03-01T10:00:04Z".to_owned(),
            key: "phone:4".to_owned(),
        }],
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", phone.token).parse().expect("metadata"),
    );
    let refused = client.ingest_batch(request).await.expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");

    // Nothing of those stored: after one of B's own locations, sent last
    // by the organiser, B has that one alone, and A its own.
    let (status, last) = organiser(
        &app,
        Method::POST,
        "/api/v2/locations",
        Some(location(b, 5)),
    )
    .await;
    assert_eq!(status, 201, "{last}");
    let found = stored_count(&app, b, 1).await;
    assert_eq!(
        found.iter().map(said).collect::<Vec<_>>(),
        owned(&[(45.0, 7.0, "2021-03-01T10:00:05Z")])
    );
    let found = stored_count(&app, a, 1).await;
    assert_eq!(
        found.iter().map(said).collect::<Vec<_>>(),
        owned(&[(45.0, 7.0, "2021-03-01T10:00:00Z")])
    );
    app.stop().await;
}

#[tokio::test]
async fn owntracks_shows_whom_its_person_met_today_where_they_met_not_where_they_are() {
    let app = spawn_app(&CLOSED).await;
    let ada = person(&app, "Ada", "Lovelace").await;
    let grace = person(&app, "Grace", "Hopper").await;
    let ada_phone = device(&app, ada).await;
    let grace_phone = device(&app, grace).await;
    // Two minutes ago, or just after midnight: today, in UTC.
    let now = Utc::now().timestamp();
    let base = (now - 120).max(now - now.rem_euclid(86_400) + 1);
    let (on, phone) = (&app, &ada_phone);
    let ada_post = move |body: String| async move {
        owntracks(on, &phone.owntracks_url, &phone.user, &phone.token, &body).await
    };

    // Ada at the coffee bar, nobody met yet.
    let (status, _, friends) = ada_post(format!(
        r#"{{"_type":"location","lat":45.0,"lon":7.0,"tst":{base},"tid":"ne"}}"#
    ))
    .await;
    assert_eq!((status, friends), (200, json!([])));
    // Grace there too, ten seconds later (Traccar Client): they meet.
    let (status, reply) = osmand(
        &app,
        &grace_phone.server_url,
        &format!(
            "id={}&lat=45.0&lon=7.00001&timestamp={}",
            grace_phone.token,
            base + 10
        ),
        Sent::PostQuery,
    )
    .await;
    taken(status, &reply);
    let meeting = eventually("Ada and Grace's meeting", PATIENCE, || async {
        let (status, page) = organiser(
            &app,
            Method::GET,
            &format!("/api/v2/persons/{ada}/meetings"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        page["meetings"]
            .as_array()
            .and_then(|meetings| meetings.first().cloned())
    })
    .await;
    assert_eq!(meeting["with"]["id"], grace, "{meeting}");
    // Then Grace goes far away.
    let (status, reply) = osmand(
        &app,
        &grace_phone.server_url,
        &format!(
            "id={}&lat=46.0&lon=8.0&timestamp={}",
            grace_phone.token,
            base + 60
        ),
        Sent::Get,
    )
    .await;
    taken(status, &reply);
    stored_count(&app, grace, 2).await;

    // Ada's next post, from elsewhere, is answered with Grace: her card,
    // and where they met, when the meeting ended; not where Grace is now.
    let (status, _, friends) = ada_post(format!(
        r#"{{"_type":"location","lat":45.1,"lon":7.1,"tst":{}}}"#,
        base + 30
    ))
    .await;
    assert_eq!(status, 200, "{friends}");
    let tid = {
        let n = usize::try_from(grace.rem_euclid(676)).expect("small");
        let letter = |n: usize| char::from(b'A' + u8::try_from(n).expect("a letter"));
        [letter(n / 26), letter(n % 26)].iter().collect::<String>()
    };
    let met = json!([
        {"_type": "card", "tid": tid, "name": "Grace Hopper"},
        {"_type": "location", "tid": tid,
         "lat": meeting["closest"]["lat"], "lon": meeting["closest"]["lon"],
         "tst": seconds(meeting["end"].as_str().expect("an end"))},
    ]);
    assert_eq!(friends, met);
    assert_eq!(seconds(meeting["end"].as_str().expect("an end")), base + 10);
    let place = (friends[1]["lat"].as_f64(), friends[1]["lon"].as_f64());
    assert!(
        place.0.is_some_and(|lat| (lat - 45.0).abs() < 1e-4)
            && place.1.is_some_and(|lon| (lon - 7.0).abs() < 1e-4),
        "{friends}"
    );
    // Whatever the message: an lwt is answered with the same friends.
    let (status, _, again) = ada_post(r#"{"_type":"lwt","tst":1380738247}"#.to_owned()).await;
    assert_eq!((status, again), (200, met));

    // Grace erased: Ada's friends no longer name her, and her phone's
    // token went with her.
    let (status, _) = organiser(
        &app,
        Method::DELETE,
        &format!("/api/v2/persons/{grace}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _, friends) = ada_post(r#"{"_type":"lwt","tst":1380738248}"#.to_owned()).await;
    assert_eq!((status, friends), (200, json!([])));
    let (status, _) = osmand(
        &app,
        &grace_phone.server_url,
        &format!(
            "id={}&lat=45.0&lon=7.0&timestamp={}",
            grace_phone.token,
            base + 90
        ),
        Sent::Get,
    )
    .await;
    assert_eq!(status, 401, "an erased person's phone is refused");
    app.stop().await;
}

/// The one row of `sql` on `db`.
async fn row(db: &str, sql: &str) -> Option<tokio_postgres::Row> {
    let (client, connection) = tokio_postgres::connect(db, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(connection);
    client.query_opt(sql, &[]).await.ok()?
}

#[tokio::test]
async fn phones_through_nats_and_postgres_are_stored_as_sent_and_resent_when_the_bus_is_full() {
    let (nats, pg) = tokio::task::spawn_blocking(|| (NatsServer::start(), PostgresServer::start()))
        .await
        .expect("servers start");
    let db = pg.create_database("phones");
    let nats_url = nats.url();
    let stored_in = ["--database-url", db.as_str()];
    let bus = [
        "--database-url",
        db.as_str(),
        "--nats-url",
        nats_url.as_str(),
    ];
    let small = [
        "--locations-stream-max-messages",
        "2",
        "--ingest-retry-after",
        "3s",
    ];
    let api = spawn_target("api", &[stored_in.as_slice(), &CLOSED].concat()).await;
    // No writer yet: the stream holds two messages, then is full.
    let edge = spawn_target("ingest", &[bus.as_slice(), &CLOSED, &small].concat()).await;
    let zoe = person(&api, "Zoe", "Postgres").await;
    let phone = device(&api, zoe).await;

    // The edge is its own target: the apps post to its address (behind an
    // ingress, the one the setup hands out).
    let owntracks_url = format!("{}/api/v2/owntracks", edge.base);
    let (status, _, friends) = owntracks(
        &edge,
        &owntracks_url,
        &phone.user,
        &phone.token,
        FULL_LOCATION,
    )
    .await;
    assert_eq!((status, friends), (200, json!([])));
    let (status, reply) = osmand(
        &edge,
        &format!("{}/", edge.base),
        &format!("id={}&lat=60.0&lon=30.0&timestamp=1377177267", phone.token),
        Sent::Get,
    )
    .await;
    let id = taken(status, &reply);
    // Full: told to come back, which OwnTracks does, until a writer drains
    // the stream and the edge has room again.
    let later = r#"{"_type":"location","lat":48.86,"lon":2.3,"tst":1497508700}"#;
    let full = owntracks_post(&edge, &owntracks_url, &phone.user, &phone.token, later).await;
    assert_eq!(full.status(), 503);
    assert_eq!(full.headers()["retry-after"], "3");
    let writer = spawn_target("writer", &bus).await;
    edge.wait_readyz(200).await;
    let (status, _, friends) =
        owntracks(&edge, &owntracks_url, &phone.user, &phone.token, later).await;
    assert_eq!((status, friends), (200, json!([])));

    let rows = eventually("the three rows", PATIENCE, || async {
        let found = row(
            &db,
            "SELECT count(*) AS n, string_agg(format('%s|%s|%s|%s|%s', person_id, lat, lon, creation_time, ingest_key), ';' ORDER BY creation_time) AS rows FROM location",
        )
        .await?;
        (found.get::<_, i64>("n") == 3).then(|| found.get::<_, String>("rows"))
    })
    .await;
    assert_eq!(
        rows,
        format!(
            "{zoe}|60|30|2013-08-22 13:14:27|device/{device}/osmand:1377177267000000;\
             {zoe}|48.85833|2.29513|2017-06-15 06:37:31|device/{device}/owntracks:1497508651;\
             {zoe}|48.86|2.3|2017-06-15 06:38:20|device/{device}/owntracks:1497508700",
            device = phone.id
        )
    );
    let stored = row(&db, &format!("SELECT id FROM location WHERE id = {id}")).await;
    assert!(stored.is_some(), "location {id} is stored under its id");
    writer.stop().await;
    edge.stop().await;
    api.stop().await;
}
