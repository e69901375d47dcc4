//! The API on PostgreSQL: migrated at start, paging under inserts (with
//! the embedded store beside it), and a database that goes away and comes
//! back, the connections (answered in SQL, as by default, and from the
//! API's replica) up to date with every stored location throughout;
//! a query the database refuses for good (a privilege revoked) answered
//! 500, not "retry later".

use std::time::{Duration, Instant};

use serde_json::json;
use testkit::PostgresServer;

use super::helpers::{PATIENCE, TestApp, eventually_get, metric, spawn_app, spawn_target};

/// Adds a person with one location at the same place and time as every
/// other attendee's (through the bus and the writer), and waits until it
/// is stored; the person's id.
async fn attendee(app: &TestApp, name: &str) -> i64 {
    let (status, person) = app
        .post(
            "/api/persons",
            &json!({"first_name": name, "last_name": "Attendee", "company_name": "Co"}),
        )
        .await;
    assert_eq!(status, 200, "{person}");
    let id = person["id"].as_i64().expect("an id");
    let (status, location) = app
        .post(
            "/api/locations",
            &json!({"person_id": id, "latitude": "-122.290883", "longitude": "37.553441",
                    "creation_time": "2020-06-01T10:00:00"}),
        )
        .await;
    assert_eq!(status, 200, "{location}");
    let location_id = location["id"].as_i64().expect("an id");
    eventually_get(app, &format!("/api/locations/{location_id}")).await;
    id
}

/// The status of v2's answer for whom `id` met on 2020-06-01, and their ids.
async fn met(app: &TestApp, id: i64) -> (u16, Vec<i64>) {
    let (status, body) = app
        .get(&format!(
            "/api/v2/persons/{id}/connections?start=2020-06-01&end=2020-06-02"
        ))
        .await;
    let ids = body["contacts"]
        .as_array()
        .map(|contacts| {
            contacts
                .iter()
                .filter_map(|contact| contact["person"]["id"].as_i64())
                .collect()
        })
        .unwrap_or_default();
    (status, ids)
}

#[tokio::test]
async fn a_fresh_database_is_migrated_at_start_and_serves_both_apis() {
    let server = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .expect("the server starts");
    let url = server.create_database("fresh");
    let app = spawn_app(&["--database-url", &url]).await;
    let (status, persons) = app.get("/api/persons").await;
    assert_eq!((status, persons), (200, json!([])));
    let (status, person) = app
        .post(
            "/api/v2/persons",
            &json!({"first_name": "First", "last_name": "Person", "company_name": "Co"}),
        )
        .await;
    assert_eq!(status, 201, "{person}");
    let (status, persons) = app.get("/api/persons").await;
    assert_eq!(status, 200);
    assert_eq!(persons, json!([person]));
    let (status, stats) = app.get("/api/v2/stats").await;
    assert_eq!(status, 200);
    assert_eq!(stats["store"], "postgis");
    assert_eq!(stats["persons"], 1);
    app.stop().await;
}

#[tokio::test]
async fn a_database_that_goes_away_fails_fast_and_is_back_without_a_restart() {
    outage(false).await;
}

#[tokio::test]
async fn a_database_that_goes_away_fails_fast_and_is_back_without_a_restart_with_the_replica() {
    outage(true).await;
}

/// The database stopped and started again under a running API, the
/// connections answered in SQL or (with `replica`) from the replica.
async fn outage(replica: bool) {
    let mut server = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .expect("the server starts");
    let url = server.create_database("outage");
    let app = spawn_app(&["--database-url", &url, "--replica", &replica.to_string()]).await;
    let (status, _) = app.get("/api/persons").await;
    assert_eq!(status, 200);
    // A location readable is a location the connections count, at once.
    let (ada, bob) = (attendee(&app, "Ada").await, attendee(&app, "Bob").await);
    assert_eq!(met(&app, ada).await, (200, vec![bob]));
    assert_eq!(
        metric(&app, "udaconnect_replica_locations").await,
        replica.then_some(2.0)
    );

    let mut server = tokio::task::spawn_blocking(move || {
        server.stop();
        server
    })
    .await
    .expect("stopped");
    app.wait_readyz(503).await;
    let asked = Instant::now();
    let (status, body) = app.get("/api/persons").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|error| error.contains("unavailable")),
        "{body}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "failed fast: {:?}",
        asked.elapsed()
    );
    assert_eq!(met(&app, ada).await.0, 503);
    let response = app
        .http
        .get(format!("{}/api/v2/persons/{ada}", app.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");

    let server = tokio::task::spawn_blocking(move || {
        server.start_again();
        server
    })
    .await
    .expect("started");
    app.wait_readyz(200).await;
    let (status, _) = app.get("/api/persons").await;
    assert_eq!(status, 200, "the same process answers again");
    let cy = attendee(&app, "Cy").await;
    assert_eq!(met(&app, ada).await, (200, vec![bob, cy]));
    assert_eq!(
        metric(&app, "udaconnect_replica_locations").await,
        replica.then_some(3.0)
    );
    if replica {
        assert!(
            metric(&app, "udaconnect_replica_caught_up_rows_total")
                .await
                .is_some_and(|rows| rows >= 2.0),
            "Cy and Cy's location, at least, were caught up after the load"
        );
    }
    assert!(asked.elapsed() < PATIENCE * 2);
    drop(server);
    app.stop().await;
}

#[tokio::test]
async fn a_query_the_database_refuses_for_good_is_answered_500_not_retry_later() {
    let server = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .expect("the server starts");
    let url = server.create_database("refused");
    let owner = spawn_app(&["--database-url", &url]).await;
    let (ada, bob) = (attendee(&owner, "Ada").await, attendee(&owner, "Bob").await);
    owner.stop().await;
    // The API as a role of its own, which may read everything, for now.
    server.psql(
        "refused",
        "CREATE ROLE reader LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader",
    );
    let reader = url.replacen("postgres@", "reader@", 1);
    let api = spawn_target("api", &["--database-url", &reader, "--migrate", "false"]).await;
    assert_eq!(met(&api, ada).await, (200, vec![bob]));

    server.psql("refused", "REVOKE SELECT ON location FROM reader");
    let compat = format!(
        "/api/persons/{ada}/connection?start_date=2020-06-01&end_date=2020-06-02&distance=5"
    );
    for path in [
        format!("/api/v2/persons/{ada}/connections?start=2020-06-01&end=2020-06-02"),
        compat,
        format!("/api/v2/persons/{ada}/locations"),
    ] {
        let response = api
            .http
            .get(format!("{}{path}", api.base))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 500, "{path}");
        assert!(response.headers().get("retry-after").is_none(), "{path}");
        let body: serde_json::Value = response.json().await.expect("a JSON body");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains("rejected"), "{path}: {body}");
        assert!(
            !error.contains("42501") && !error.contains("location"),
            "no SQL details for the client: {body}"
        );
    }
    let (status, _) = api.get(&format!("/api/v2/persons/{ada}")).await;
    assert_eq!(status, 200, "persons are still readable");
    api.stop().await;
}

/// Walks every page of `/api/v2/persons`, `limit` at a time, adding a
/// person after the first page: each person is seen once, in id order, and
/// the one added meanwhile comes last; `q` then finds it.
async fn paging_gives_each_person_once_while_others_are_added(app: &TestApp, limit: usize) {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut added = None;
    loop {
        let page = cursor
            .as_deref()
            .map(|cursor| format!("&cursor={cursor}"))
            .unwrap_or_default();
        let (status, body) = app
            .get(&format!("/api/v2/persons?limit={limit}{page}"))
            .await;
        assert_eq!(status, 200, "{body}");
        seen.extend(
            body["persons"]
                .as_array()
                .expect("persons")
                .iter()
                .map(|person| person["id"].as_i64().expect("an id")),
        );
        if added.is_none() {
            let (status, person) = app
                .post(
                    "/api/v2/persons",
                    &json!({"first_name": "Late", "last_name": "Comer", "company_name": "Paging"}),
                )
                .await;
            assert_eq!(status, 201, "{person}");
            added = person["id"].as_i64();
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert!(
        seen.windows(2).all(|pair| pair[0] < pair[1]),
        "in order, each once: {seen:?}"
    );
    assert_eq!(
        seen.last().copied(),
        added,
        "the person added meanwhile comes last"
    );
    let (_, everyone) = app.get("/api/persons").await;
    assert_eq!(seen.len(), everyone.as_array().expect("a list").len());
    let (status, found) = app.get("/api/v2/persons?q=comer").await;
    assert_eq!(status, 200);
    assert_eq!(found["persons"][0]["id"].as_i64(), added);
}

#[tokio::test]
async fn paging_persons_gives_each_once_in_order_while_others_are_added_in_both_stores() {
    let embedded = spawn_app(&[]).await;
    paging_gives_each_person_once_while_others_are_added(&embedded, 37).await;
    embedded.stop().await;

    let server = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .expect("the server starts");
    let url = server.create_database("paging");
    let app = spawn_app(&["--database-url", &url]).await;
    for n in 0..25 {
        let (status, person) = app
            .post(
                "/api/v2/persons",
                &json!({"first_name": format!("P{n}"), "last_name": "Page", "company_name": "Co"}),
            )
            .await;
        assert_eq!(status, 201, "{person}");
    }
    paging_gives_each_person_once_while_others_are_added(&app, 10).await;
    app.stop().await;
}

/// A CA, and a server certificate it signs for `names` (PEM: the CA's
/// certificate, the server's certificate, its key).
fn certificates(names: &[&str]) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("the CA's certificate");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("a server key");
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    let cert = CertificateParams::new(names)
        .expect("server parameters")
        .signed_by(&key, &issuer)
        .expect("the server's certificate");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// Whether a store with these settings reaches the server (its check).
async fn reaches(url: &str, mode: &str, root_cert: Option<&std::path::Path>) -> Result<(), String> {
    let store = udaconnect_store::PgStore::new(&udaconnect_store::PgConfig {
        ssl_mode: Some(mode.parse().expect("a mode")),
        root_cert: root_cert.map(std::path::Path::to_path_buf),
        ..udaconnect_store::PgConfig::new(url)
    })
    .map_err(|err| err.to_string())?;
    udaconnect_domain::Store::check(&store)
        .await
        .map_err(|err| err.to_string())
}

#[tokio::test]
async fn a_database_that_requires_tls_is_reached_as_each_sslmode_says() {
    let mut server = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .expect("the server starts");
    let dir = tempfile::tempdir().expect("a directory");
    let (ca, cert, key) = certificates(&["127.0.0.1", "localhost"]);
    let (other_ca, _, _) = certificates(&["127.0.0.1"]);
    let (ca_file, other_file) = (dir.path().join("ca.pem"), dir.path().join("other.pem"));
    std::fs::write(&ca_file, ca).expect("write the CA");
    std::fs::write(&other_file, other_ca).expect("write the other CA");
    let server = tokio::task::spawn_blocking(move || {
        server.require_tls(&cert, &key);
        server
    })
    .await
    .expect("restarted with TLS");
    let url = server.create_database("tls");

    assert!(
        reaches(&url, "disable", None).await.is_err(),
        "plain TCP is refused"
    );
    for mode in ["prefer", "require"] {
        reaches(&url, mode, None)
            .await
            .unwrap_or_else(|err| panic!("{mode}: {err}"));
    }
    reaches(&url, "verify-full", Some(&ca_file))
        .await
        .expect("verify-full with its CA");
    reaches(&url, "verify-ca", Some(&ca_file))
        .await
        .expect("verify-ca with its CA");
    let err = reaches(&url, "verify-full", Some(&other_file))
        .await
        .expect_err("another CA is not trusted");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(reaches(&url, "verify-ca", Some(&other_file)).await.is_err());

    // As libpq takes them, in the URL; and through the API, whose
    // connections are encrypted.
    let in_url = format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        ca_file.display()
    );
    let app = spawn_app(&["--database-url", &in_url]).await;
    let (status, stats) = app.get("/api/v2/stats").await;
    assert_eq!(status, 200, "{stats}");
    let encrypted = server.psql(
        "tls",
        "COPY (SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = 'udaconnect') TO STDOUT",
    );
    assert_eq!(encrypted.trim(), "t", "the API's connections use TLS");
    app.stop().await;
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_for_another_host_which_verify_ca_accepts() {
    let mut server = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .expect("the server starts");
    let dir = tempfile::tempdir().expect("a directory");
    let (ca, cert, key) = certificates(&["db.example.com"]);
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).expect("write the CA");
    let server = tokio::task::spawn_blocking(move || {
        server.require_tls(&cert, &key);
        server
    })
    .await
    .expect("restarted with TLS");
    let url = server.create_database("tls");
    reaches(&url, "verify-ca", Some(&ca_file))
        .await
        .expect("verify-ca checks the CA only");
    let err = reaches(&url, "verify-full", Some(&ca_file))
        .await
        .expect_err("not issued for 127.0.0.1");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}
