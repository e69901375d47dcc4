//! What breaks in production: a receiver restarts, the broker is SIGKILLed
//! mid-stream, someone publishes garbage on the subject.

use std::collections::HashMap;

use serde_json::Value;
use testkit::{NatsServer, SseClient, eventually};

use super::helpers::{
    PATIENCE, fast, get_json, metric, next_seqs, page, range, seqs, start, wait_for_seq,
    wait_readyz,
};

#[tokio::test]
async fn a_restarted_receiver_shows_the_earlier_history() {
    let nats = NatsServer::start();
    let mut receiver = start("receiver", &nats, &[]);
    let mut broadcaster = start("broadcaster", &nats, &fast("5ms", "10ms"));
    wait_for_seq(receiver.base_url(), 20).await;
    broadcaster.terminate(PATIENCE).unwrap();
    let (_, before) = get_json(&format!(
        "{}/api/messages?after=0&limit=1000",
        receiver.base_url()
    ))
    .await;
    receiver.kill();

    let restarted = start("receiver", &nats, &[]);
    wait_readyz(restarted.base_url(), 200).await;
    let (_, after) = get_json(&format!(
        "{}/api/messages?after=0&limit=1000",
        restarted.base_url()
    ))
    .await;
    assert!(seqs(&before["messages"]).len() >= 20);
    assert_eq!(
        after["messages"], before["messages"],
        "same messages, same ids, same order"
    );
}

/// The broker is SIGKILLed three times while a broadcaster publishes every
/// few milliseconds. Afterwards the stream must hold every message the
/// broadcaster generated exactly once, in order, and an SSE client that
/// stayed connected must have seen every sequence exactly once.
#[tokio::test]
async fn nothing_is_lost_or_duplicated_when_the_broker_is_killed() {
    let mut nats = NatsServer::start();
    let receiver = start("receiver", &nats, &[]);
    let mut broadcaster = start("broadcaster", &nats, &fast("3ms", "8ms"));
    let base = receiver.base_url().to_owned();
    wait_readyz(&base, 200).await;
    let mut sse = SseClient::connect(&format!("{base}/events?after=0"), None)
        .await
        .unwrap();

    let mut next = 1;
    for kill in 1..=3u64 {
        // Let some messages through, then crash the broker while publishing.
        wait_for_seq(&base, kill * 60).await;
        let retries = metric(broadcaster.base_url(), "beacon_publish_retries_total").await;
        nats.kill();
        // Keep the broker down until the broadcaster has had to retry.
        eventually("the broadcaster to retry a publish", PATIENCE, || async {
            (metric(broadcaster.base_url(), "beacon_publish_retries_total").await > retries)
                .then_some(())
        })
        .await;
        nats.restart();
        wait_readyz(&base, 200).await;
        let last = kill * 60;
        let seen = next_seqs(&mut sse, usize::try_from(last + 1 - next).unwrap()).await;
        assert_eq!(seen, range(next, last), "SSE after kill {kill}");
        next = last + 1;
    }
    wait_for_seq(&base, next + 20).await;
    let status = broadcaster
        .terminate(PATIENCE)
        .expect("the broadcaster stops");
    assert!(status.success(), "{status}");
    let published = published_count(&broadcaster.output());

    // The stream: every generated message exactly once, in order.
    wait_for_seq(&base, published).await;
    let stored = all_messages(&base).await;
    assert_eq!(
        stored.len() as u64,
        published,
        "one stored message per generated message"
    );
    let seqs: Vec<u64> = stored.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, range(1, published));
    let mut counters: HashMap<String, Vec<u64>> = HashMap::new();
    for message in &stored {
        let (instance, counter) = message["id"].as_str().unwrap().rsplit_once('-').unwrap();
        counters
            .entry(instance.to_owned())
            .or_default()
            .push(counter.parse().unwrap());
    }
    assert_eq!(counters.len(), 1, "one broadcaster run");
    for counters in counters.values() {
        assert_eq!(
            *counters,
            range(1, published),
            "generated order, none twice"
        );
    }

    // The client that stayed connected: the rest, once each.
    let rest = next_seqs(&mut sse, usize::try_from(published + 1 - next).unwrap()).await;
    assert_eq!(rest, range(next, published));
}

/// `published=N` from the broadcaster's "broadcaster stopped" log line.
fn published_count(output: &[String]) -> u64 {
    output
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|event| event["message"] == "broadcaster stopped")
        .and_then(|event| {
            assert_eq!(event["abandoned"], false, "{event}");
            event["published"].as_u64()
        })
        .unwrap_or_else(|| panic!("no summary in:\n{}", output.join("\n")))
}

/// Every retained message, paged through the API.
async fn all_messages(base: &str) -> Vec<Value> {
    let mut messages = Vec::new();
    let mut after = 0;
    loop {
        let (_, body) = get_json(&format!("{base}/api/messages?after={after}&limit=1000")).await;
        let batch = body["messages"].as_array().unwrap().clone();
        let Some(last) = batch.last() else { break };
        after = last["seq"].as_u64().unwrap();
        messages.extend(batch);
    }
    messages
}

#[tokio::test]
async fn a_malformed_payload_is_counted_and_skipped() {
    let nats = NatsServer::start();
    let receiver = start("receiver", &nats, &[]);
    let base = receiver.base_url().to_owned();
    wait_readyz(&base, 200).await;
    let mut sse = SseClient::connect(&format!("{base}/events?after=0"), None)
        .await
        .unwrap();

    let client = async_nats::connect(nats.url()).await.unwrap();
    for junk in [&b"not json"[..], br#"{"id":"x","text":"no time"}"#] {
        client.publish("beacon.hello", junk.into()).await.unwrap();
    }
    client.flush().await.unwrap();
    eventually("two malformed payloads counted", PATIENCE, || async {
        (metric(&base, "beacon_malformed_payloads_total").await == 2.0).then_some(())
    })
    .await;

    let _broadcaster = start("broadcaster", &nats, &fast("5ms", "10ms"));
    // The client is told the sequence jumps, then gets the messages.
    let gap = sse.next_event().await.unwrap();
    assert_eq!(gap.event.as_deref(), Some("gap"), "{gap:?}");
    assert_eq!(gap.data, r#"{"event":"gap","from":1,"to":2}"#);
    assert_eq!(gap.id.as_deref(), Some("2"));
    assert_eq!(
        next_seqs(&mut sse, 5).await,
        range(3, 7),
        "junk at 1 and 2 skipped"
    );
    wait_readyz(&base, 200).await;
    assert_eq!(page(&base, "after=0&limit=3").await, range(3, 5));
}
