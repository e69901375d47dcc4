//! Bounded time for every connection: a connection that sends no request
//! head, or sits idle between requests, is closed; a streaming client that
//! stops reading is dropped (reset, so it knows without reading) while the
//! others keep receiving everything; and
//! SIGTERM ends the process within its deadline whatever the clients do.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;
use testkit::{
    AppProcess, SseClient, connect_with_receive_buffer, connect_without_reading, eventually,
    was_reset,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::helpers::{
    BEACON, PATIENCE, fast, last_seq, metric, range, spawn_app, wait_for_seq, wait_readyz,
};

fn addr(base: &str) -> SocketAddr {
    base.trim_start_matches("http://")
        .parse()
        .expect("an IP:port base URL")
}

/// Reads until the server closes `stream` (or resets it); what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => return bytes,
            Ok(Ok(read)) => bytes.extend_from_slice(&chunk[..read]),
            Err(_) => panic!("still open after {PATIENCE:?}: {bytes:?}"),
        }
    }
}

/// Sends `request` and reads its (small, complete) response.
async fn request(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    while !response.ends_with(b"}") {
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut chunk))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(read > 0, "closed early");
        response.extend_from_slice(&chunk[..read]);
    }
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn silent_and_idle_connections_are_closed_by_their_timeouts() {
    let header = Duration::from_millis(300);
    let idle = Duration::from_millis(1500);
    let app = spawn_app(&[
        "--min-interval",
        "50ms",
        "--max-interval",
        "100ms",
        "--header-timeout",
        "300ms",
        "--idle-timeout",
        "1500ms",
    ])
    .await;
    wait_readyz(&app.base, 200).await;
    let addr = addr(&app.base);

    // Connections that send nothing, and ones whose head never ends: on a
    // path the receiver serves itself, and on ones the router serves.
    let mut waiting = Vec::new();
    for _ in 0..20 {
        waiting.push((Instant::now(), TcpStream::connect(addr).await.unwrap()));
    }
    for path in ["/events", "/livez", "/api/messages"] {
        let connected = Instant::now();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = format!("GET {path} HTTP/1.1\r\nHost: beacon\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        waiting.push((connected, stream));
    }
    // One request answered on a connection then kept alive, idle.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    let answer = request(&mut kept, "GET /livez HTTP/1.1\r\nHost: beacon\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answered = Instant::now();

    for (connected, stream) in &mut waiting {
        let said = read_until_closed(stream).await;
        assert!(
            said.is_empty(),
            "no answer: {}",
            String::from_utf8_lossy(&said)
        );
        let lived = connected.elapsed();
        assert!(
            lived >= header - Duration::from_millis(50),
            "closed after {lived:?}, before the header timeout"
        );
    }
    // The kept-alive connection outlives the header timeout: it is idle
    // between requests, not slow with one.
    let mut chunk = [0u8; 64];
    let early = tokio::time::timeout(header * 2, kept.read(&mut chunk)).await;
    assert!(early.is_err(), "closed early: {early:?}");
    assert!(read_until_closed(&mut kept).await.is_empty());
    let idled = answered.elapsed();
    assert!(
        idled >= idle - Duration::from_millis(50),
        "closed after {idled:?} idle"
    );

    let timed_out =
        |timeout| format!("beacon_http_connections_timed_out_total{{timeout=\"{timeout}\"}}");
    assert_eq!(metric(&app.base, &timed_out("header")).await, 23.0);
    // The test's own HTTP client keeps connections alive too.
    assert!(metric(&app.base, &timed_out("idle")).await >= 1.0);
    app.stop().await.unwrap();
}

/// What a client that stops reading leaves behind: held, never read.
enum Stuck {
    Tcp(TcpStream),
    Ws(Box<tokio_tungstenite::WebSocketStream<TcpStream>>),
}

impl Stuck {
    fn socket(&self) -> &TcpStream {
        match self {
            Stuck::Tcp(stream) => stream,
            Stuck::Ws(socket) => socket.get_ref(),
        }
    }
}

/// Streaming clients that read their response head (at most) and then
/// nothing, with receive buffers as small as the kernel allows: `raw` SSE
/// streams the receiver writes itself, `router` SSE streams hyper writes
/// (the stream is the second request on the connection), and `ws`
/// WebSockets. Each resumes from the start, so there is plenty to send.
async fn stop_reading(addr: SocketAddr, raw: usize, router: usize, ws: usize) -> Vec<Stuck> {
    let events = "GET /events?after=0 HTTP/1.1\r\nHost: beacon\r\n\r\n";
    let mut stuck = Vec::new();
    for _ in 0..raw {
        let mut stream = connect_without_reading(addr).await.unwrap();
        stream.write_all(events.as_bytes()).await.unwrap();
        stuck.push(Stuck::Tcp(stream));
    }
    for _ in 0..router {
        let mut stream = connect_without_reading(addr).await.unwrap();
        request(&mut stream, "GET /livez HTTP/1.1\r\nHost: beacon\r\n\r\n").await;
        stream.write_all(events.as_bytes()).await.unwrap();
        stuck.push(Stuck::Tcp(stream));
    }
    for _ in 0..ws {
        let stream = connect_without_reading(addr).await.unwrap();
        let url = format!("ws://{addr}/ws?after=0");
        let (socket, _) =
            tokio::time::timeout(PATIENCE, tokio_tungstenite::client_async(url, stream))
                .await
                .expect("a WebSocket handshake in time")
                .unwrap();
        stuck.push(Stuck::Ws(Box::new(socket)));
    }
    stuck
}

/// Reads `sse` on its own task, keeping each event's sequence (or its
/// event type, for anything but a message) until `want` messages arrived.
fn keep_reading(
    mut sse: SseClient,
    want: usize,
) -> (Arc<Mutex<Vec<Value>>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        while log.lock().unwrap().len() < want {
            let event = sse.next_event().await.expect("the stream stays open");
            let entry = match event.event {
                None => serde_json::from_str::<Value>(&event.data).unwrap()["seq"].clone(),
                Some(other) => Value::from(other),
            };
            log.lock().unwrap().push(entry);
        }
    });
    (seen, task)
}

#[tokio::test]
async fn clients_that_stop_reading_are_dropped_and_a_reader_beside_them_gets_everything() {
    // Large messages, sent fast: a socket buffer that grows to 4 MB fills
    // within seconds.
    let message = "x".repeat(1000);
    let app = spawn_app(&[
        "--min-interval",
        "1ms",
        "--max-interval",
        "2ms",
        "--message",
        &message,
        "--write-timeout",
        "1s",
    ])
    .await;
    let base = app.base.clone();
    wait_for_seq(&base, 2000).await;
    let reader = SseClient::connect(&format!("{base}/events?after=0"), None)
        .await
        .unwrap();
    let want = 8000;
    let (seen, reading) = keep_reading(reader, want);

    let _stuck = stop_reading(addr(&base), 4, 3, 3).await;
    let write = "beacon_http_connections_timed_out_total{timeout=\"write\"}";
    eventually("the ten stuck clients to be dropped", PATIENCE, || async {
        (metric(&base, write).await >= 10.0).then_some(())
    })
    .await;
    eventually("only the reader left connected", PATIENCE, || async {
        let sse = metric(&base, "beacon_clients_connected{transport=\"sse\"}").await;
        let ws = metric(&base, "beacon_clients_connected{transport=\"ws\"}").await;
        (sse == 1.0 && ws == 0.0).then_some(())
    })
    .await;
    assert_eq!(
        metric(&base, write).await,
        10.0,
        "the reader was not dropped"
    );

    reading.await.expect("the reader read on");
    let seen: Vec<Value> = seen.lock().unwrap().clone();
    let seqs: Vec<u64> = seen
        .iter()
        .map(|entry| {
            entry
                .as_u64()
                .unwrap_or_else(|| panic!("not a message: {entry}"))
        })
        .collect();
    assert_eq!(seqs, range(1, want as u64), "every message once, in order");
    // Who served the streams: the receiver itself, or hyper.
    let served = |path| {
        format!("beacon_http_requests_total{{route=\"/events\",status=\"200\",path=\"{path}\"}}")
    };
    assert_eq!(metric(&base, &served("raw")).await, 5.0);
    assert_eq!(metric(&base, &served("router")).await, 3.0);
    app.stop().await.unwrap();
}

/// Clients with 4 KB receive buffers that never read, one on each way of
/// streaming: SSE live, SSE resuming from `?after=0` and from
/// `Last-Event-ID: 0` (written by the receiver itself), SSE resuming as the
/// second request of a connection (written by hyper), and WebSockets, live
/// and resuming.
async fn stuck_on_every_path(addr: SocketAddr) -> Vec<(&'static str, Stuck)> {
    let connect = || connect_with_receive_buffer(addr, 4096);
    let mut stuck = Vec::new();
    for (path, head) in [
        ("sse live", "GET /events HTTP/1.1\r\nHost: beacon\r\n\r\n"),
        (
            "sse after=0",
            "GET /events?after=0 HTTP/1.1\r\nHost: beacon\r\n\r\n",
        ),
        (
            "sse Last-Event-ID",
            "GET /events HTTP/1.1\r\nHost: beacon\r\nLast-Event-ID: 0\r\n\r\n",
        ),
    ] {
        let mut stream = connect().await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        stuck.push((path, Stuck::Tcp(stream)));
    }
    let mut routed = connect().await.unwrap();
    request(&mut routed, "GET /livez HTTP/1.1\r\nHost: beacon\r\n\r\n").await;
    routed
        .write_all(b"GET /events?after=0 HTTP/1.1\r\nHost: beacon\r\n\r\n")
        .await
        .unwrap();
    stuck.push(("sse after=0 through hyper", Stuck::Tcp(routed)));
    for (path, query) in [("ws live", ""), ("ws after=0", "?after=0")] {
        let stream = connect().await.unwrap();
        let url = format!("ws://{addr}/ws{query}");
        let (socket, _) =
            tokio::time::timeout(PATIENCE, tokio_tungstenite::client_async(url, stream))
                .await
                .expect("a WebSocket handshake in time")
                .unwrap();
        stuck.push((path, Stuck::Ws(Box::new(socket))));
    }
    stuck
}

/// On a busy stream (1,000-byte messages every 1–2 ms), a client that
/// never reads fills its socket within seconds while new messages keep
/// coming. The write timeout must then end its connection for real: the
/// client is reset (an orderly close would wait behind megabytes it never
/// takes, and the kernel would hold them), on every path, and counted,
/// while a reader beside them gets every message once, in order.
#[tokio::test]
async fn stuck_clients_on_a_busy_stream_are_reset_after_the_write_timeout() {
    let message = "x".repeat(1000);
    let app = spawn_app(&[
        "--min-interval",
        "1ms",
        "--max-interval",
        "2ms",
        "--message",
        &message,
        "--write-timeout",
        "2s",
    ])
    .await;
    let base = app.base.clone();
    wait_for_seq(&base, 500).await;
    let reader = SseClient::connect(&format!("{base}/events?after=0"), None)
        .await
        .unwrap();
    let (seen, reading) = keep_reading(reader, usize::MAX);

    let stuck = stuck_on_every_path(addr(&base)).await;
    // Seen without reading: each client's socket says it was reset.
    let mut reset = vec![false; stuck.len()];
    let mut waiting_for = Vec::new();
    eventually("every stuck client reset", PATIENCE, || {
        for ((_, client), reset) in stuck.iter().zip(&mut reset) {
            if !*reset {
                *reset = was_reset(client.socket()).expect("no other socket error");
            }
        }
        let left: Vec<&str> = stuck
            .iter()
            .zip(&reset)
            .filter(|(_, reset)| !**reset)
            .map(|((path, _), _)| *path)
            .collect();
        if left != waiting_for {
            eprintln!("not reset yet: {left:?}");
            waiting_for.clone_from(&left);
        }
        async move { left.is_empty().then_some(()) }
    })
    .await;
    let write = "beacon_http_connections_timed_out_total{timeout=\"write\"}";
    assert_eq!(
        metric(&base, write).await,
        stuck.len() as f64,
        "each stuck client counted once, the reader not at all"
    );
    eventually("only the reader left connected", PATIENCE, || async {
        let sse = metric(&base, "beacon_clients_connected{transport=\"sse\"}").await;
        let ws = metric(&base, "beacon_clients_connected{transport=\"ws\"}").await;
        (sse == 1.0 && ws == 0.0).then_some(())
    })
    .await;

    // The reader reads on past the moment the last of them was reset.
    let until = last_seq(&base).await + 500;
    eventually(&format!("the reader at message {until}"), PATIENCE, || {
        let read = seen.lock().unwrap().len() as u64;
        async move { (read >= until).then_some(()) }
    })
    .await;
    reading.abort();
    let seqs: Vec<u64> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|entry| {
            entry
                .as_u64()
                .unwrap_or_else(|| panic!("not a message: {entry}"))
        })
        .collect();
    assert_eq!(
        seqs,
        range(1, seqs.len() as u64),
        "every message once, in order"
    );
    app.stop().await.unwrap();
}

/// Streams whose clients stopped reading, connections that never sent a
/// request and one that sent half of one: none of them holds SIGTERM past
/// the shutdown deadline, though the write and header timeouts are far
/// longer.
#[tokio::test]
async fn sigterm_with_stuck_clients_exits_within_the_deadline() {
    let deadline = Duration::from_secs(3);
    let mut envs = fast("1ms", "2ms");
    envs.extend([
        ("BEACON_MESSAGE", "x".repeat(1000)),
        ("BEACON_SHUTDOWN_TIMEOUT", "3s".to_owned()),
        ("BEACON_WRITE_TIMEOUT", "10m".to_owned()),
        ("BEACON_HEADER_TIMEOUT", "10m".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]);
    let mut app = AppProcess::spawn(BEACON.as_ref(), "BEACON", &["all"], &envs);
    let base = app.base_url().to_owned();
    wait_for_seq(&base, 2000).await;
    let addr = addr(&base);
    let _stuck = stop_reading(addr, 5, 3, 3).await;
    let mut idle = Vec::new();
    for _ in 0..5 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /api/messages HTTP/1.1\r\n")
        .await
        .unwrap();
    // Long enough for every stuck client's socket to fill: megabytes more
    // than any socket buffer holds.
    let now = super::helpers::last_seq(&base).await;
    wait_for_seq(&base, now + 4000).await;

    let signalled = Instant::now();
    let status = app
        .terminate(deadline + Duration::from_secs(1))
        .unwrap_or_else(|| panic!("still running {:?} after SIGTERM", signalled.elapsed()));
    let took = signalled.elapsed();
    assert!(status.success(), "{status}");
    assert!(took <= deadline, "exited {took:?} after SIGTERM");
    // The log is read on another thread: its last lines may lag the exit.
    eventually("the stopped line", PATIENCE, || async {
        app.output()
            .iter()
            .any(|line| line.contains("\"stopped\""))
            .then_some(())
    })
    .await;
}

/// At the client cap, `/events` (raw or routed, GET or HEAD) and `/ws`
/// answer 503 with Retry-After and a JSON reason, and are counted; the
/// probes, the metrics, the page and the API answer as ever; a slot that
/// frees is taken again.
#[tokio::test]
async fn beyond_the_client_cap_streams_are_refused_and_probes_still_answer() {
    let app = spawn_app(&[
        "--min-interval",
        "5ms",
        "--max-interval",
        "15ms",
        "--max-clients",
        "3",
    ])
    .await;
    let base = app.base.clone();
    wait_for_seq(&base, 3).await;
    let events = format!("{base}/events");
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(SseClient::connect(&events, None).await.unwrap());
    }
    let ws_url = format!("{}/ws", base.replace("http://", "ws://"));
    let (ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();

    let refused = SseClient::connect(&events, None)
        .await
        .err()
        .expect("refused");
    assert!(refused.starts_with("503"), "{refused}");
    for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
        let response = super::helpers::http()
            .request(method.clone(), &events)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503, "{method}");
        assert_eq!(response.headers()["retry-after"], "5", "{method}");
        if method == reqwest::Method::GET {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["retry_after"], 5, "{body}");
            assert!(
                body["error"].as_str().unwrap().contains("maximum of 3"),
                "{body}"
            );
        }
    }
    match tokio_tungstenite::connect_async(&ws_url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            assert_eq!(response.headers()["retry-after"], "5");
        }
        other => panic!("expected a 503 handshake, got {other:?}"),
    }
    for path in [
        "/livez",
        "/readyz",
        "/metrics",
        "/",
        "/api/messages?limit=1",
    ] {
        let response = super::helpers::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(response.status(), 200, "{path} at the cap");
    }
    let refused_sse = metric(&base, "beacon_clients_refused_total{transport=\"sse\"}").await;
    assert_eq!(refused_sse, 3.0);
    assert_eq!(
        metric(&base, "beacon_clients_refused_total{transport=\"ws\"}").await,
        1.0
    );

    // A client leaves: its slot is taken again.
    drop(held.pop());
    eventually("a free slot", PATIENCE, || async {
        SseClient::connect(&events, None).await.ok()
    })
    .await;
    drop(ws);
    app.stop().await.unwrap();
}
