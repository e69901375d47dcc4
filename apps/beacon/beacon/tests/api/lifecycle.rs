//! Start order and stop: a receiver waits for the broker instead of
//! exiting, and SIGTERM ends open streams within the deadline.

use testkit::{NatsServer, SseClient, output_within};

use super::helpers::{
    BEACON, PATIENCE, fast, get_json, provision, start, wait_for_seq, wait_readyz,
};

#[tokio::test]
async fn ready_only_while_the_broker_is_there() {
    let mut nats = NatsServer::start();
    nats.kill();
    let receiver = start("receiver", &nats, &[]);
    let broadcaster = start("broadcaster", &nats, &fast("5ms", "10ms"));
    for process in [&receiver, &broadcaster] {
        let (status, body) = get_json(&format!("{}/readyz", process.base_url())).await;
        assert_eq!(status, 503, "{body}");
        assert!(
            body["waiting_for"]
                .as_array()
                .is_some_and(|w| !w.is_empty()),
            "{body}"
        );
        let (status, _) = get_json(&format!("{}/livez", process.base_url())).await;
        assert_eq!(status, 200);
    }

    nats.restart();
    // Connected, but the stream is not there yet: still not ready.
    wait_readyz(receiver.base_url(), 503).await;
    provision(&nats, &[]);
    wait_readyz(receiver.base_url(), 200).await;
    wait_readyz(broadcaster.base_url(), 200).await;
    wait_for_seq(receiver.base_url(), 5).await;

    nats.kill();
    wait_readyz(receiver.base_url(), 503).await;
    wait_readyz(broadcaster.base_url(), 503).await;
}

/// With a 10-minute deadline, an open SSE stream that did not end on
/// shutdown would hold the receiver far past the wait below.
#[tokio::test]
async fn sigterm_ends_open_streams_without_waiting_for_the_deadline() {
    let nats = NatsServer::start();
    let mut receiver = start(
        "receiver",
        &nats,
        &[("BEACON_SHUTDOWN_TIMEOUT", "10m".to_owned())],
    );
    let mut broadcaster = start("broadcaster", &nats, &fast("5ms", "10ms"));
    wait_for_seq(receiver.base_url(), 3).await;
    let mut sse = SseClient::connect(&format!("{}/events", receiver.base_url()), None)
        .await
        .unwrap();
    assert!(sse.next_event().await.is_some());

    let status = receiver
        .terminate(PATIENCE)
        .expect("the receiver exits before its deadline");
    assert!(status.success(), "{status}");
    // The stream ends rather than hanging.
    while sse.next_event().await.is_some() {}

    let status = broadcaster
        .terminate(PATIENCE)
        .expect("the broadcaster exits");
    assert!(status.success(), "{status}");
    assert!(
        broadcaster
            .output()
            .iter()
            .any(|line| line.contains("broadcaster stopped")),
        "{:?}",
        broadcaster.output()
    );
}

/// `beacon provision` creates the stream with the configured retention, and
/// a second run with other settings updates it in place.
#[tokio::test]
async fn provision_creates_then_updates_the_stream() {
    let nats = NatsServer::start();
    for (max_age, max_messages) in [("1h", 500u64), ("2h", 900)] {
        let output = output_within(
            std::process::Command::new(BEACON)
                .arg("provision")
                .env_clear()
                .env("NATS_URL", nats.url())
                .env("BEACON_STREAM_MAX_AGE", max_age)
                .env("BEACON_STREAM_MAX_MESSAGES", max_messages.to_string()),
            PATIENCE,
        );
        assert!(output.status.success(), "{output:?}");
        let client = async_nats::connect(nats.url()).await.unwrap();
        let mut stream = async_nats::jetstream::new(client)
            .get_stream("HELLO")
            .await
            .unwrap();
        let config = &stream.info().await.unwrap().config;
        assert_eq!(config.subjects, vec!["beacon.hello".to_owned()]);
        assert_eq!(config.max_messages, i64::try_from(max_messages).unwrap());
        assert_eq!(
            config.max_age,
            std::time::Duration::from_secs(if max_age == "1h" { 3600 } else { 7200 })
        );
    }
}
