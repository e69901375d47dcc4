//! Bad settings: exit code 2 and one line on stderr naming the variable.

use super::helpers::run;

async fn assert_refused(args: &[&str], envs: &[(&str, &str)], var: &str, mention: &str) {
    let (code, _, stderr) = run(args, envs).await;
    assert_eq!(
        code,
        Some(2),
        "{args:?} {envs:?} should exit 2; stderr: {stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line, got: {stderr}");
    assert!(stderr.contains(var), "{stderr} should name {var}");
    assert!(
        stderr.contains(mention),
        "{stderr} should mention {mention:?}"
    );
}

#[tokio::test]
async fn bad_settings_name_their_variable() {
    assert_refused(
        &[],
        &[("DATABASE_URL", "mysql://db/x")],
        "DATABASE_URL",
        "postgres://",
    )
    .await;
    assert_refused(
        &["api"],
        &[("UDACONNECT_HTTP_ADDR", "nowhere")],
        "UDACONNECT_HTTP_ADDR",
        "IP:port",
    )
    .await;
    assert_refused(
        &[],
        &[("UDACONNECT_MIGRATE", "perhaps")],
        "UDACONNECT_MIGRATE",
        "perhaps",
    )
    .await;
    assert_refused(
        &[],
        &[("UDACONNECT_SHUTDOWN_TIMEOUT", "0s")],
        "UDACONNECT_SHUTDOWN_TIMEOUT",
        "greater than zero",
    )
    .await;
    assert_refused(&["migrate"], &[], "DATABASE_URL", "required").await;
    assert_refused(
        &[],
        &[("UDACONNECT_MEETINGS_SHARDS", "2")],
        "UDACONNECT_MEETINGS_SHARDS",
        "in-process bus",
    )
    .await;
    assert_refused(
        &["meetings"],
        &[
            ("DATABASE_URL", "postgres://127.0.0.1:1/x"),
            ("NATS_URL", "nats://127.0.0.1:1"),
            ("UDACONNECT_MEETINGS_SHARDS", "2"),
            ("UDACONNECT_MEETINGS_SHARD", "2"),
        ],
        "UDACONNECT_MEETINGS_SHARD",
        "from 0 to 1",
    )
    .await;
    assert_refused(
        &["meetings"],
        &[
            ("DATABASE_URL", "postgres://127.0.0.1:1/x"),
            ("NATS_URL", "nats://127.0.0.1:1"),
            ("UDACONNECT_MEETINGS_REGION", "5"),
        ],
        "UDACONNECT_MEETINGS_REGION",
        "metres",
    )
    .await;
    assert_refused(
        &[],
        &[
            ("DATABASE_URL", "postgres://db/x"),
            ("UDACONNECT_DEMO_FEED", "5"),
        ],
        "UDACONNECT_DEMO_FEED",
        "never a database",
    )
    .await;
    assert_refused(
        &[],
        &[("UDACONNECT_DEMO_FEED", "5000")],
        "UDACONNECT_DEMO_FEED",
        "from 0 to 1000",
    )
    .await;
    assert_refused(
        &["generate", "--persons", "0"],
        &[("DATABASE_URL", "postgres://db/x")],
        "UDACONNECT_GENERATE_PERSONS",
        "at least 1",
    )
    .await;
}

#[tokio::test]
async fn bad_ingest_and_writer_settings_name_their_variable() {
    let db = ("DATABASE_URL", "postgres://db/x");
    let nats = ("NATS_URL", "nats://127.0.0.1:4222");
    assert_refused(&["ingest"], &[db], "NATS_URL", "required").await;
    assert_refused(&["writer"], &[nats], "DATABASE_URL", "required").await;
    assert_refused(
        &["ingest"],
        &[db, nats, ("UDACONNECT_GRPC_ADDR", "nowhere")],
        "UDACONNECT_GRPC_ADDR",
        "IP:port",
    )
    .await;
    assert_refused(
        &[],
        &[("UDACONNECT_GRPC_STREAM_IDLE_TIMEOUT", "0s")],
        "UDACONNECT_GRPC_STREAM_IDLE_TIMEOUT",
        "greater than zero",
    )
    .await;
    assert_refused(
        &["ingest"],
        &[db, nats, ("UDACONNECT_GRPC_MAX_CONNECTIONS", "0")],
        "UDACONNECT_GRPC_MAX_CONNECTIONS",
        "at least 1",
    )
    .await;
    assert_refused(
        &[],
        &[("UDACONNECT_INGEST_CHUNK", "0")],
        "UDACONNECT_INGEST_CHUNK",
        "at least 1",
    )
    .await;
    assert_refused(
        &[],
        &[("UDACONNECT_INGEST_CHUNK", "20000")],
        "UDACONNECT_INGEST_CHUNK",
        "at most 10000",
    )
    .await;
    assert_refused(
        &[],
        &[("UDACONNECT_INGEST_RETRY_AFTER", "1500ms")],
        "UDACONNECT_INGEST_RETRY_AFTER",
        "whole seconds",
    )
    .await;
    assert_refused(
        &["writer"],
        &[db, nats, ("UDACONNECT_WRITER_CONSUMER", "no spaces")],
        "UDACONNECT_WRITER_CONSUMER",
        "letters",
    )
    .await;
    assert_refused(
        &[],
        &[("UDACONNECT_DEAD_SUBJECT", "udaconnect.locations")],
        "UDACONNECT_DEAD_SUBJECT",
        "must differ",
    )
    .await;
    assert_refused(
        &["ingest"],
        &[db, nats, ("UDACONNECT_CREATE_STREAMS", "perhaps")],
        "UDACONNECT_CREATE_STREAMS",
        "perhaps",
    )
    .await;
    assert_refused(&["provision"], &[], "NATS_URL", "required").await;
    assert_refused(
        &["provision"],
        &[nats, ("UDACONNECT_DEAD_STREAM", "LOCATIONS")],
        "UDACONNECT_DEAD_STREAM",
        "must differ",
    )
    .await;
    assert_refused(
        &["simulate"],
        &[("UDACONNECT_SIMULATE_TRANSPORT", "carrier-pigeon")],
        "UDACONNECT_SIMULATE_TRANSPORT",
        "grpc",
    )
    .await;
}

#[tokio::test]
async fn an_address_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("an address").to_string();
    assert_refused(
        &["api", "--http-addr", &addr],
        &[],
        "UDACONNECT_HTTP_ADDR",
        "cannot listen",
    )
    .await;
}

#[tokio::test]
async fn help_is_not_an_error() {
    let (code, stdout, _) = run(&["--help"], &[]).await;
    assert_eq!(code, Some(0));
    for target in [
        "all",
        "api",
        "ingest",
        "writer",
        "simulate",
        "migrate",
        "generate",
        "provision",
    ] {
        assert!(stdout.contains(target), "{target} in:\n{stdout}");
    }
}
