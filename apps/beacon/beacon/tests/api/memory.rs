//! `beacon all` without a broker: the in-process bus behind the same page,
//! API and streams.

use testkit::SseClient;
use tokio_tungstenite::tungstenite::Message;

use super::helpers::{
    get, get_json, http, metric, next_seqs, next_ws, page, range, spawn_app, wait_for_seq,
    wait_readyz,
};

const FAST: [&str; 4] = ["--min-interval", "5ms", "--max-interval", "15ms"];

#[tokio::test]
async fn serves_the_page_and_its_assets() {
    let app = spawn_app(&FAST).await;
    for (path, content_type, needle) in [
        ("/", "text/html", "<title>Beacon"),
        ("/assets/app.js", "text/javascript", "EventSource"),
        ("/assets/style.css", "text/css", "prefers-color-scheme"),
    ] {
        let response = get(format!("{}{path}", app.base)).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let header = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(header.starts_with(content_type), "{path}: {header}");
        assert!(response.text().await.unwrap().contains(needle), "{path}");
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn history_and_live_messages_without_a_broker() {
    let app = spawn_app(&FAST).await;
    wait_readyz(&app.base, 200).await;
    wait_for_seq(&app.base, 20).await;
    assert_eq!(page(&app.base, "after=0&limit=5").await, range(1, 5));
    assert_eq!(page(&app.base, "after=4&before=9").await, range(5, 8));

    let mut sse = SseClient::connect(&format!("{}/events?after=10", app.base), None)
        .await
        .unwrap();
    assert_eq!(next_seqs(&mut sse, 30).await, range(11, 40));

    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "{}/ws?after=3",
        app.base.replace("http://", "ws://")
    ))
    .await
    .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 5 {
        if let Some(Message::Text(text)) = next_ws(&mut ws).await {
            let message: serde_json::Value = serde_json::from_str(&text).unwrap();
            seen.push(message["seq"].as_u64().unwrap());
        }
    }
    assert_eq!(seen, range(4, 8));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn resuming_beyond_the_window_reports_a_gap() {
    let app = spawn_app(&[
        "--min-interval",
        "2ms",
        "--max-interval",
        "4ms",
        "--window",
        "10",
    ])
    .await;
    wait_for_seq(&app.base, 30).await;
    let mut sse = SseClient::connect(&format!("{}/events", app.base), Some(2))
        .await
        .unwrap();
    let gap = sse.next_event().await.unwrap();
    assert_eq!(gap.event.as_deref(), Some("gap"));
    let body: serde_json::Value = serde_json::from_str(&gap.data).unwrap();
    let to = body["to"].as_u64().unwrap();
    assert_eq!(body["from"], 3);
    assert!(to >= 20, "{body}");
    assert_eq!(
        gap.id,
        Some(to.to_string()),
        "a reconnect resumes after the gap"
    );
    assert_eq!(next_seqs(&mut sse, 5).await, range(to + 1, to + 5));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn health_and_metrics() {
    let app = spawn_app(&FAST).await;
    let (status, body) = get_json(&format!("{}/livez", app.base)).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("alive")));
    wait_readyz(&app.base, 200).await;
    wait_for_seq(&app.base, 3).await;
    let metrics = get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for family in [
        "beacon_messages_published_total",
        "beacon_publish_retries_total",
        "beacon_messages_received_total",
        "beacon_messages_delivered_total{transport=\"sse\"}",
        "beacon_clients_connected{transport=\"ws\"}",
        "beacon_malformed_payloads_total",
        "beacon_broadcast_interval_seconds_bucket",
        "beacon_received_interval_seconds_bucket",
    ] {
        assert!(
            metrics.contains(family),
            "{family} missing from:\n{metrics}"
        );
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn bad_queries_get_a_json_error() {
    let app = spawn_app(&FAST).await;
    for query in [
        "/api/messages?limit=0",
        "/api/messages?limit=1001",
        "/api/messages?after=abc",
        "/api/messages?after=9&before=3",
        "/api/messages?colour=red",
        "/events?after=-1",
    ] {
        let (status, body) = get_json(&format!("{}{query}", app.base)).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{query}: {body}"
        );
    }
    let response = http()
        .get(format!("{}/events", app.base))
        .header("last-event-id", "abc")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let refused = tokio_tungstenite::connect_async(format!(
        "{}/ws?after=x",
        app.base.replace("http://", "ws://")
    ))
    .await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400)
        }
        other => panic!("expected a 400 handshake, got {other:?}"),
    }
    app.stop().await.unwrap();
}

/// Reads from `stream` into `buffer` until `done` holds for it.
async fn read_until(
    stream: &mut tokio::net::TcpStream,
    buffer: &mut Vec<u8>,
    done: impl Fn(&[u8]) -> bool,
) {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + super::helpers::PATIENCE;
    while !done(buffer) {
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .expect("more bytes in time")
            .expect("read");
        assert!(
            read > 0,
            "closed early: {}",
            String::from_utf8_lossy(buffer)
        );
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// The head and the decoded chunked body of one response in `bytes`, and
/// whether the body ended.
fn dechunk(bytes: &[u8]) -> (String, Vec<u8>, bool) {
    let text = String::from_utf8_lossy(bytes);
    let (head, mut rest) = text.split_once("\r\n\r\n").expect("a complete head");
    let mut body = Vec::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size, 16).expect("a chunk size");
        if size == 0 {
            return (head.to_lowercase(), body, true);
        }
        if after.len() < size + 2 {
            break;
        }
        body.extend_from_slice(&after.as_bytes()[..size]);
        rest = &after[size + 2..];
    }
    (head.to_lowercase(), body, false)
}

fn events_in(body: &[u8]) -> usize {
    String::from_utf8_lossy(body).matches("\ndata: ").count()
}

/// The response head without its date, which is the only line that may
/// differ between two responses.
fn head_without_date(bytes: &[u8]) -> String {
    dechunk(bytes)
        .0
        .lines()
        .filter(|line| !line.starts_with("date:"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The same stream three ways: as the first request on a connection
/// (served raw), after another request on a kept-alive connection, and as
/// a first request the raw path declines (more headers than it looks at);
/// the last two go through the router. The bytes are the same; the
/// metrics tell who served each.
#[tokio::test]
async fn an_event_stream_is_the_same_whoever_serves_it() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app(&FAST).await;
    wait_for_seq(&app.base, 6).await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let request = "GET /events?after=2 HTTP/1.1\r\nHost: beacon\r\n\r\n";
    let has_three_events = |bytes: &[u8]| {
        bytes.windows(4).any(|w| w == b"\r\n\r\n") && events_in(&dechunk(bytes).1) >= 3
    };

    // First request on the connection: served on the raw socket.
    let mut fresh = tokio::net::TcpStream::connect(&address).await.unwrap();
    fresh.write_all(request.as_bytes()).await.unwrap();
    let mut fresh_bytes = Vec::new();
    read_until(&mut fresh, &mut fresh_bytes, has_three_events).await;

    // After another request on a kept-alive connection: served by hyper.
    let mut reused = tokio::net::TcpStream::connect(&address).await.unwrap();
    reused
        .write_all(b"GET /livez HTTP/1.1\r\nHost: beacon\r\n\r\n")
        .await
        .unwrap();
    let mut livez = Vec::new();
    read_until(&mut reused, &mut livez, |bytes| bytes.ends_with(b"}")).await;
    reused.write_all(request.as_bytes()).await.unwrap();
    let mut reused_bytes = Vec::new();
    read_until(&mut reused, &mut reused_bytes, has_three_events).await;

    // A first request the raw path declines: served by hyper too.
    let mut declined = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut crowded = String::from("GET /events?after=2 HTTP/1.1\r\nHost: beacon\r\n");
    for n in 0..40 {
        crowded.push_str(&format!("X-Filler-{n}: {n}\r\n"));
    }
    crowded.push_str("\r\n");
    declined.write_all(crowded.as_bytes()).await.unwrap();
    let mut declined_bytes = Vec::new();
    read_until(&mut declined, &mut declined_bytes, has_three_events).await;

    for bytes in [&fresh_bytes, &reused_bytes, &declined_bytes] {
        let (head, body, _) = dechunk(bytes);
        assert!(head.starts_with("http/1.1 200 ok"), "{head}");
        for header in [
            "content-type: text/event-stream",
            "cache-control: no-cache",
            "x-accel-buffering: no",
            "transfer-encoding: chunked",
            "date: ",
        ] {
            assert!(head.contains(header), "{header} missing from {head}");
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        assert!(
            body.starts_with("retry: 1000\n\nid: 3\ndata: {\"seq\":3,"),
            "{body}"
        );
    }
    let first_three = |bytes: &[u8]| -> String {
        let body = String::from_utf8_lossy(&dechunk(bytes).1).into_owned();
        body.split("\n\n").take(4).collect::<Vec<_>>().join("\n\n")
    };
    for other in [&reused_bytes, &declined_bytes] {
        assert_eq!(head_without_date(&fresh_bytes), head_without_date(other));
        assert_eq!(first_three(&fresh_bytes), first_three(other));
    }
    let served = |path| {
        format!("beacon_http_requests_total{{route=\"/events\",status=\"200\",path=\"{path}\"}}")
    };
    assert_eq!(metric(&app.base, &served("raw")).await, 1.0);
    assert_eq!(metric(&app.base, &served("router")).await, 2.0);

    // Shutting down ends every body properly.
    let stopping = tokio::spawn(app.stop());
    for (stream, bytes) in [
        (&mut fresh, &mut fresh_bytes),
        (&mut reused, &mut reused_bytes),
        (&mut declined, &mut declined_bytes),
    ] {
        read_until(stream, bytes, |bytes| dechunk(bytes).2).await;
    }
    stopping.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_connection_that_sent_nothing_does_not_hold_shutdown() {
    use tokio::io::AsyncReadExt;
    let mut args = FAST.to_vec();
    args.extend(["--shutdown-timeout", "300s"]);
    let app = spawn_app(&args).await;
    wait_readyz(&app.base, 200).await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut idle = tokio::net::TcpStream::connect(&address).await.unwrap();
    // Connections are accepted in order: once a later one is answered, the
    // idle one has been accepted too.
    wait_readyz(&app.base, 200).await;
    // Stopping must not wait the 300 s deadline for this connection.
    tokio::time::timeout(super::helpers::PATIENCE, app.stop())
        .await
        .expect("stopped without waiting for the idle connection")
        .unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(super::helpers::PATIENCE, idle.read_to_end(&mut rest))
        .await
        .expect("the idle connection is closed");
    // Closed (or reset, if it was still in the accept queue), with no reply.
    assert!(rest.is_empty(), "{read:?}: {rest:?}");
}

/// A resume point beyond the end of the stream (the stream was created
/// anew since) gets a reset, then the stream from its oldest message.
#[tokio::test]
async fn resuming_past_the_end_of_a_new_stream_resets() {
    let app = spawn_app(&FAST).await;
    wait_for_seq(&app.base, 3).await;
    let mut sse = SseClient::connect(&format!("{}/events", app.base), Some(1_000_000))
        .await
        .unwrap();
    let reset = sse.next_event().await.unwrap();
    assert_eq!(reset.event.as_deref(), Some("reset"), "{reset:?}");
    assert_eq!(
        reset.id.as_deref(),
        Some("0"),
        "a reconnect resumes from the start"
    );
    let body: serde_json::Value = serde_json::from_str(&reset.data).unwrap();
    assert_eq!(body["first_seq"], 1);
    assert!(body["last_seq"].as_u64().unwrap() >= 3, "{body}");
    assert_eq!(next_seqs(&mut sse, 5).await, range(1, 5));
    app.stop().await.unwrap();
}

/// One log line per request, whoever served it: a stream served raw, the
/// same stream through the router, and an ordinary request.
#[tokio::test]
async fn every_request_has_its_log_line_raw_or_not() {
    use tokio::io::AsyncWriteExt;
    let envs = [
        ("BEACON_MIN_INTERVAL", "5ms".to_owned()),
        ("BEACON_MAX_INTERVAL", "15ms".to_owned()),
        ("RUST_LOG", "info,platform::requests=debug".to_owned()),
    ];
    let app =
        testkit::AppProcess::spawn(super::helpers::BEACON.as_ref(), "BEACON", &["all"], &envs);
    let base = app.base_url().to_owned();
    wait_for_seq(&base, 3).await;
    let address = base.trim_start_matches("http://").to_owned();
    let mut raw = tokio::net::TcpStream::connect(&address).await.unwrap();
    raw.write_all(b"GET /events?after=1 HTTP/1.1\r\nHost: beacon\r\n\r\n")
        .await
        .unwrap();
    let mut bytes = Vec::new();
    read_until(&mut raw, &mut bytes, |bytes| {
        bytes.windows(4).any(|w| w == b"\r\n\r\n") && events_in(&dechunk(bytes).1) >= 1
    })
    .await;
    let mut routed = tokio::net::TcpStream::connect(&address).await.unwrap();
    routed
        .write_all(b"GET /livez HTTP/1.1\r\nHost: beacon\r\n\r\nGET /events?after=1 HTTP/1.1\r\nHost: beacon\r\n\r\n")
        .await
        .unwrap();
    let mut bytes = Vec::new();
    read_until(&mut routed, &mut bytes, |bytes| {
        String::from_utf8_lossy(bytes).matches("\ndata: ").count() >= 1
    })
    .await;

    let request_lines = || -> Vec<serde_json::Value> {
        app.output()
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|event| event["message"] == "request")
            .collect()
    };
    let find = |route: &str, path: &str| {
        request_lines().into_iter().find(|event| {
            event["route"] == route && event["path"] == path && event["status"] == 200
        })
    };
    testkit::eventually("the request lines", super::helpers::PATIENCE, || async {
        (find("/events", "raw").is_some()
            && find("/events", "router").is_some()
            && find("/livez", "router").is_some())
        .then_some(())
    })
    .await;
    let raw_line = find("/events", "raw").unwrap();
    let routed_line = find("/events", "router").unwrap();
    for line in [&raw_line, &routed_line] {
        assert_eq!(line["level"], "DEBUG", "{line}");
        assert_eq!(line["method"], "GET", "{line}");
        // The path only: a query may carry what no log keeps.
        assert_eq!(line["uri_path"], "/events", "{line}");
        assert!(line.get("uri").is_none(), "{line}");
        assert!(line["latency_ms"].as_f64().is_some(), "{line}");
    }
}
