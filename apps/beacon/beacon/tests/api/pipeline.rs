//! Broadcaster and receiver as separate processes around a real NATS
//! JetStream: ordering, history, resume on every transport, gaps, replicas.

use serde_json::Value;
use testkit::{NatsServer, SseClient};
use tokio_tungstenite::tungstenite::Message;

use super::helpers::{
    fast, get_json, next_seqs, next_ws, page, range, start, wait_for_seq, wait_readyz,
};

#[tokio::test]
async fn every_message_arrives_once_in_order_with_all_fields() {
    let nats = NatsServer::start();
    let receiver = start("receiver", &nats, &[]);
    let _broadcaster = start("broadcaster", &nats, &fast("10ms", "30ms"));
    wait_readyz(receiver.base_url(), 200).await;

    let mut sse = SseClient::connect(&format!("{}/events?after=0", receiver.base_url()), None)
        .await
        .unwrap();
    let mut previous_sent = None;
    for seq in 1..=40u64 {
        let event = sse.next_event().await.unwrap();
        let message: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(message["seq"], seq);
        assert_eq!(message["text"], "Hello world");
        assert!(message["sender"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(
            message["id"]
                .as_str()
                .unwrap()
                .ends_with(&format!("-{seq}"))
        );
        let interval = message["interval_ms"].as_u64().unwrap();
        assert!((10..=30).contains(&interval), "interval {interval}");
        let sent_at = message["sent_at"].as_str().unwrap();
        assert_eq!(sent_at.len(), "2026-11-25T10:15:30.123Z".len(), "{sent_at}");
        assert!(sent_at.ends_with('Z'));
        assert!(previous_sent.is_none_or(|previous: String| previous.as_str() <= sent_at));
        previous_sent = Some(sent_at.to_owned());
    }
}

#[tokio::test]
async fn history_pages_from_memory_and_from_the_stream() {
    let nats = NatsServer::start();
    // A window of 10: most of these pages must be read back from the stream.
    let receiver = start("receiver", &nats, &[("BEACON_WINDOW", "10".to_owned())]);
    let _broadcaster = start("broadcaster", &nats, &fast("5ms", "10ms"));
    wait_for_seq(receiver.base_url(), 60).await;
    let base = receiver.base_url();

    assert_eq!(page(base, "after=0&limit=30").await, range(1, 30));
    assert_eq!(page(base, "after=5&before=9").await, range(6, 8));
    assert_eq!(page(base, "before=20&limit=5").await, range(15, 19));
    let newest = page(base, "limit=10").await;
    assert_eq!(newest.len(), 10);
    assert_eq!(
        newest,
        range(newest[0], newest[0] + 9),
        "newest ten, oldest first"
    );
    let (_, body) = get_json(&format!("{base}/api/messages?limit=1")).await;
    assert_eq!(body["first_seq"], 1);
    assert!(body["last_seq"].as_u64().unwrap() >= 60);
    assert_whole_history(base).await;
}

/// While a page is read from the stream, fast messages push the window past
/// where the stream part ends; what left the window meanwhile must still be
/// in the page.
#[tokio::test]
async fn a_page_has_no_hole_while_the_window_moves() {
    let nats = NatsServer::start();
    let receiver = start("receiver", &nats, &[("BEACON_WINDOW", "3".to_owned())]);
    let _broadcaster = start("broadcaster", &nats, &fast("1ms", "3ms"));
    let base = receiver.base_url();
    wait_for_seq(base, 20).await;
    for _ in 0..100 {
        assert_whole_history(base).await;
    }
}

#[tokio::test]
async fn sse_resumes_from_last_event_id_or_after() {
    let nats = NatsServer::start();
    let receiver = start("receiver", &nats, &[("BEACON_WINDOW", "10".to_owned())]);
    let _broadcaster = start("broadcaster", &nats, &fast("5ms", "10ms"));
    wait_for_seq(receiver.base_url(), 40).await;
    let events = format!("{}/events", receiver.base_url());

    let mut by_header = SseClient::connect(&events, Some(25)).await.unwrap();
    assert_eq!(next_seqs(&mut by_header, 5).await, range(26, 30));

    let mut by_query = SseClient::connect(&format!("{events}?after=33"), None)
        .await
        .unwrap();
    assert_eq!(next_seqs(&mut by_query, 5).await, range(34, 38));

    // A reconnecting EventSource keeps its URL and sends the newer header.
    let mut both = SseClient::connect(&format!("{events}?after=3"), Some(30))
        .await
        .unwrap();
    assert_eq!(next_seqs(&mut both, 3).await, range(31, 33));

    // Older than the window: read back from the stream, then live.
    let mut old = SseClient::connect(&events, Some(1)).await.unwrap();
    assert_eq!(next_seqs(&mut old, 80).await, range(2, 81));
}

#[tokio::test]
async fn websocket_resumes_after_a_sequence() {
    let nats = NatsServer::start();
    let receiver = start("receiver", &nats, &[]);
    let _broadcaster = start("broadcaster", &nats, &fast("5ms", "10ms"));
    wait_for_seq(receiver.base_url(), 12).await;
    let url = format!(
        "{}/ws?after=5",
        receiver.base_url().replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut frames = Vec::new();
    while frames.len() < 20 {
        match next_ws(&mut ws).await.unwrap() {
            Message::Text(text) => frames.push(serde_json::from_str::<Value>(&text).unwrap()),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
    let seqs: Vec<u64> = frames.iter().map(|f| f["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, range(6, 25));

    // The same JSON as the SSE data and the API.
    let (_, body) = get_json(&format!(
        "{}/api/messages?after=5&limit=1",
        receiver.base_url()
    ))
    .await;
    assert_eq!(body["messages"][0], frames[0]);
}

#[tokio::test]
async fn messages_the_stream_dropped_arrive_as_a_gap() {
    let nats = NatsServer::start();
    let stream = [
        ("BEACON_STREAM_MAX_MESSAGES", "20".to_owned()),
        ("BEACON_WINDOW", "5".to_owned()),
    ];
    let receiver = start("receiver", &nats, &stream);
    let mut envs = fast("2ms", "5ms");
    envs.extend(stream.iter().cloned());
    let _broadcaster = start("broadcaster", &nats, &envs);
    wait_for_seq(receiver.base_url(), 60).await;

    let mut sse = SseClient::connect(&format!("{}/events?after=2", receiver.base_url()), None)
        .await
        .unwrap();
    let gap = sse.next_event().await.unwrap();
    assert_eq!(gap.event.as_deref(), Some("gap"), "{gap:?}");
    let body: Value = serde_json::from_str(&gap.data).unwrap();
    let to = body["to"].as_u64().unwrap();
    assert_eq!(body["from"], 3);
    assert!(to >= 40, "at most 20 retained of 60+: {body}");
    assert_eq!(gap.id, Some(to.to_string()));
    // Right after the gap: the oldest retained messages, from the stream,
    // then the window, then live, without a hole.
    assert_eq!(next_seqs(&mut sse, 40).await, range(to + 1, to + 40));
}

#[tokio::test]
async fn two_receivers_see_the_same_sequences() {
    let nats = NatsServer::start();
    let first = start("receiver", &nats, &[]);
    let second = start("receiver", &nats, &[]);
    let _broadcaster = start("broadcaster", &nats, &fast("5ms", "15ms"));
    let mut streams = Vec::new();
    for receiver in [&first, &second] {
        let url = format!("{}/events?after=0", receiver.base_url());
        streams.push(SseClient::connect(&url, None).await.unwrap());
    }
    let mut seen: Vec<Vec<(u64, String)>> = Vec::new();
    for sse in &mut streams {
        let mut messages = Vec::new();
        while messages.len() < 30 {
            let event = sse.next_event().await.unwrap();
            let message: Value = serde_json::from_str(&event.data).unwrap();
            messages.push((message["seq"].as_u64().unwrap(), message["id"].to_string()));
        }
        seen.push(messages);
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(
        seen[0].iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        range(1, 30)
    );
}

/// `beacon all` with `NATS_URL` set goes through JetStream like the split
/// targets: the stream holds what the page shows.
#[tokio::test]
async fn all_with_nats_url_uses_the_stream() {
    let nats = NatsServer::start();
    let all = start("all", &nats, &fast("5ms", "10ms"));
    wait_for_seq(all.base_url(), 10).await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut stream = async_nats::jetstream::new(client)
        .get_stream("HELLO")
        .await
        .unwrap();
    let stored = stream.info().await.unwrap().state.last_sequence;
    assert!(stored >= 10, "the stream holds the messages: {stored}");
    assert_eq!(page(all.base_url(), "after=0&limit=10").await, range(1, 10));
}

/// The first page of history holds 1, 2, 3… with no gap and no duplicate.
async fn assert_whole_history(base: &str) {
    let all = page(base, "after=0&limit=1000").await;
    assert_eq!(
        all,
        range(1, *all.last().unwrap()),
        "no gaps, no duplicates"
    );
}

/// Many browsers resume from the start of a stream far longer than the
/// receiver's window, at once (the receiver came back after an outage).
/// Every one gets every message once, in order, while the stream never has
/// more consumers than the receiver's bound on history reads (4) and its
/// own ordered consumer. `make bench-resume` runs the same at full scale.
#[tokio::test]
async fn a_hundred_clients_resume_from_the_start_at_once() {
    const MESSAGES: u64 = 2000;
    const CLIENTS: usize = 100;
    let nats = NatsServer::start();
    super::helpers::provision(&nats, &[]);
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut acks = Vec::new();
    for n in 1..=MESSAGES {
        let broadcast = beacon_wire::Broadcast {
            id: format!("resume-{n}"),
            text: "Hello world".to_owned(),
            sender: "test".to_owned(),
            sent_at: beacon_wire::Timestamp::now(),
            interval_ms: 1,
        };
        let payload = broadcast.encode().unwrap();
        acks.push(js.publish("beacon.hello", payload.into()).await.unwrap());
    }
    for ack in acks {
        ack.await.unwrap();
    }
    let receiver = start("receiver", &nats, &[("BEACON_WINDOW", "100".to_owned())]);
    wait_readyz(receiver.base_url(), 200).await;

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = tokio::spawn({
        let done = std::sync::Arc::clone(&done);
        let js = js.clone();
        async move {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(mut stream) = js.get_stream("HELLO").await
                    && let Ok(info) = stream.info().await
                {
                    peak = peak.max(info.state.consumer_count);
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            peak
        }
    });
    let events = format!("{}/events", receiver.base_url());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let events = events.clone();
            tokio::spawn(async move {
                let mut sse = SseClient::connect(&events, Some(0)).await.unwrap();
                next_seqs(&mut sse, usize::try_from(MESSAGES).unwrap()).await
            })
        })
        .collect();
    for client in clients {
        assert_eq!(
            client.await.unwrap(),
            range(1, MESSAGES),
            "once each, in order"
        );
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = poller.await.unwrap();
    assert!(peak <= 5, "{peak} consumers at once");
}
