//! Every connection query has a bound in time and in concurrency: a
//! question too wide for the deadline is stopped (in the embedded store,
//! in the PostGIS store's replica, and in SQL, where the statement is
//! cancelled) and answered 503 with `Retry-After` and how to narrow it;
//! past the concurrency cap a query is refused the same way at once; the
//! cheap endpoints answer all along.

use serde_json::Value;
use testkit::{AppProcess, PostgresServer, eventually};

use super::helpers::{PATIENCE, TestApp, UDACONNECT, metric, run, spawn_app};

/// Over the whole demo conference, 10 km: every pair of locations.
const WIDE_V2: &str = "/api/v2/persons/1/connections?start=2020-06-01T00:00:00Z&end=2020-06-30T00:00:00Z&distance=10000";
const WIDE_COMPAT: &str =
    "/api/persons/1/connection?start_date=2020-06-01&end_date=2020-06-30&distance=10000";

/// GET `path`: status, `Retry-After`, JSON body.
async fn get(app: &TestApp, path: &str) -> (u16, Option<String>, Value) {
    let response = app
        .http
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .expect("request sent");
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let status = response.status().as_u16();
    (status, retry_after, response.json().await.expect("JSON"))
}

/// `path` is answered 503, with `Retry-After` and how to narrow it.
async fn stopped(app: &TestApp, path: &str) {
    let (status, retry_after, body) = get(app, path).await;
    let shown: String = body.to_string().chars().take(300).collect();
    assert_eq!(status, 503, "{path}: {shown}");
    assert_eq!(retry_after.as_deref(), Some("1"), "{path}");
    let error = body["error"].as_str().expect("an error");
    assert!(
        error.contains("fewer days") && error.contains("shorter distance"),
        "{error}"
    );
}

#[tokio::test]
async fn a_question_too_wide_for_the_deadline_is_stopped_on_the_embedded_store() {
    // No row limit to stop the original's question early.
    let app = spawn_app(&["--query-timeout", "300ms", "--compat-max-rows", "100000000"]).await;
    stopped(&app, WIDE_V2).await;
    stopped(&app, WIDE_COMPAT).await;
    assert_eq!(
        metric(
            &app,
            "udaconnect_connection_queries_refused_total{reason=\"timed_out\"}"
        )
        .await,
        Some(2.0)
    );
    // A narrow question is answered as before.
    let (status, _, body) = get(
        &app,
        "/api/v2/persons/1/connections?start=2020-06-08T00:00:00Z&end=2020-06-09T00:00:00Z&distance=1&within=1m",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn past_the_cap_a_query_is_refused_while_the_rest_answers() {
    // The deadline well below what the wide question takes on an idle
    // machine (about 1.8 s, debug build), long enough for the requests
    // made while it runs.
    let app = spawn_app(&["--query-timeout", "1s", "--query-concurrency", "1"]).await;
    let (base, http) = (app.base.clone(), app.http.clone());
    // One wide question takes the only slot, until its deadline.
    let wide = tokio::spawn(async move {
        http.get(format!("{base}{WIDE_V2}"))
            .send()
            .await
            .map(|response| response.status().as_u16())
    });
    eventually("the wide question running", PATIENCE, || async {
        let running = metric(&app, "udaconnect_connection_queries_running").await;
        (running == Some(1.0)).then_some(())
    })
    .await;
    // A second question, narrow, finds the only slot taken.
    let narrow = "/api/v2/persons/2/connections?start=2020-06-08T00:00:00Z&end=2020-06-09T00:00:00Z&distance=1";
    let (status, retry_after, body) = get(&app, narrow).await;
    assert_eq!((status, retry_after.as_deref()), (503, Some("1")), "{body}");
    let error = body["error"].as_str().expect("an error");
    assert!(error.contains("being answered"), "{error}");
    // Meanwhile persons, readiness and metrics answer.
    for path in ["/api/persons", "/api/v2/persons", "/readyz", "/metrics"] {
        let status = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .expect("answered")
            .status()
            .as_u16();
        assert_eq!(status, 200, "{path}");
    }
    assert!(!wide.is_finished(), "the wide question is still running");
    let wide = tokio::time::timeout(PATIENCE, wide)
        .await
        .expect("the wide question ends at its deadline")
        .expect("joined")
        .expect("answered");
    assert_eq!(wide, 503);
    assert!(
        metric(
            &app,
            "udaconnect_connection_queries_refused_total{reason=\"busy\"}"
        )
        .await
        .is_some_and(|busy| busy >= 1.0)
    );
    app.stop().await;
}

#[tokio::test]
async fn a_question_too_wide_for_the_deadline_is_cancelled_in_postgresql() {
    let server = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .expect("the server starts");
    let url = server.create_database("wide");
    let (code, _, stderr) = run(&["migrate"], &[("DATABASE_URL", &url)]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let (code, _, stderr) = run(
        &[
            "generate",
            "--persons",
            "20",
            "--locations",
            "20000",
            "--venues",
            "2",
            "--days",
            "1",
        ],
        &[("DATABASE_URL", &url)],
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    // In SQL: the server cancels the statement at the deadline.
    let sql = spawn_app(&[
        "--database-url",
        &url,
        "--replica",
        "false",
        "--query-timeout",
        "50ms",
        "--compat-max-rows",
        "100000000",
    ])
    .await;
    stopped(&sql, WIDE_V2).await;
    stopped(&sql, WIDE_COMPAT).await;
    let running = |server: &PostgresServer| {
        server.psql(
            "wide",
            "COPY (SELECT count(*) FROM pg_stat_activity \
             WHERE state = 'active' AND query LIKE '%own AS MATERIALIZED%' \
               AND pid <> pg_backend_pid()) TO STDOUT",
        )
    };
    eventually("no connection query left running", PATIENCE, || async {
        (running(&server).trim() == "0").then_some(())
    })
    .await;
    let (status, _, body) = get(&sql, "/api/v2/persons").await;
    assert_eq!(status, 200, "{body}");
    sql.stop().await;
    // From the replica: its search gives up at the deadline.
    let replica = spawn_app(&[
        "--database-url",
        &url,
        "--replica",
        "true",
        "--query-timeout",
        "20ms",
    ])
    .await;
    stopped(&replica, WIDE_V2).await;
    replica.stop().await;
}

#[tokio::test]
async fn a_long_query_on_the_replica_holds_up_neither_its_catch_up_nor_readyz() {
    let server = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .expect("the server starts");
    let url = server.create_database("long");
    let (code, _, stderr) = run(&["migrate"], &[("DATABASE_URL", &url)]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let (code, _, stderr) = run(
        &[
            "generate",
            "--persons",
            "20",
            "--locations",
            "60000",
            "--venues",
            "2",
            "--days",
            "1",
        ],
        &[("DATABASE_URL", &url)],
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    // The real binary, with its multi-threaded runtime, as deployed.
    let process = AppProcess::spawn(
        UDACONNECT.as_ref(),
        "UDACONNECT",
        &["api"],
        &[
            ("DATABASE_URL", url.clone()),
            ("UDACONNECT_REPLICA", "true".to_owned()),
            ("UDACONNECT_QUERY_TIMEOUT", "4s".to_owned()),
            // The deadline tested, not the tokens: no token needed.
            ("UDACONNECT_OPEN_API", "true".to_owned()),
        ],
    );
    let base = process.base_url().trim_end_matches('/').to_owned();
    let http = reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .expect("a client");
    let status = |path: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            http.get(format!("{base}{path}"))
                .send()
                .await
                .map(|response| response.status().as_u16())
                .unwrap_or(0)
        }
    };
    eventually("ready", PATIENCE, || async {
        (status("/readyz").await == 200).then_some(())
    })
    .await;
    let wide = tokio::spawn(status(WIDE_V2));
    let running = || async {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .any(|line| line == "udaconnect_connection_queries_running 1")
            .then_some(())
    };
    eventually("the wide question running", PATIENCE, running).await;
    // Rows for the replica to catch up on while the query reads it.
    server.psql(
        "long",
        "INSERT INTO person (first_name, last_name, company_name) VALUES ('Late', 'Comer', 'Co')",
    );
    // While the query runs, readiness (which catches the replica up every
    // second, and must within two) keeps answering ready.
    let mut checks = 0;
    while !wide.is_finished() {
        assert_eq!(
            status("/readyz").await,
            200,
            "readiness during a long query"
        );
        checks += 1;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        checks >= 10,
        "the query ran long enough to matter: {checks} checks"
    );
    drop(process);
}
