//! Starting Beacon for a test, and reading what it serves.

use std::time::Duration;

use beacon::{Application, Cli, cli::Plan};
use clap::Parser;
use serde_json::Value;
use testkit::{AppProcess, NatsServer, SseClient, eventually};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The binary under test.
pub const BEACON: &str = env!("CARGO_BIN_EXE_beacon");
/// Long enough for anything that should happen, short enough to fail fast.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// `beacon all` running in this process, on a free port.
pub struct TestApp {
    pub base: String,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestApp {
    /// Stops it the way SIGTERM would, and waits until it has stopped.
    pub async fn stop(self) -> std::io::Result<()> {
        self.shutdown.cancel();
        self.task.await.expect("the app task")
    }
}

/// Builds and runs `beacon all <args>` with the in-process bus (whatever
/// `NATS_URL` the environment has) on a free port.
pub async fn spawn_app(args: &[&str]) -> TestApp {
    let argv = ["beacon", "all", "--http-addr", "127.0.0.1:0"]
        .iter()
        .chain(args);
    let mut cli = Cli::try_parse_from(argv).expect("valid arguments");
    if let Some(beacon::cli::Target::All(all)) = &mut cli.target {
        all.common.nats.nats_url = None;
    }
    let Ok(Plan::Serve(config)) = cli.plan() else {
        panic!("`beacon all` serves");
    };
    let app = Application::build(*config).await.expect("the app builds");
    let base = app.url().trim_end_matches('/').to_owned();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    TestApp {
        base,
        shutdown,
        task,
    }
}

/// Env vars for a fast broadcaster.
pub fn fast(min: &str, max: &str) -> Vec<(&'static str, String)> {
    vec![
        ("BEACON_MIN_INTERVAL", min.to_owned()),
        ("BEACON_MAX_INTERVAL", max.to_owned()),
    ]
}

/// Runs `beacon provision` against `nats` with the stream settings among
/// `extra`, as the provision Job does before broadcasters and receivers
/// (which only look the stream up) can be ready.
pub fn provision(nats: &NatsServer, extra: &[(&'static str, String)]) {
    let mut command = std::process::Command::new(BEACON);
    command
        .arg("provision")
        .env_clear()
        .env("NATS_URL", nats.url())
        .env("LOG_FORMAT", "json");
    for (name, value) in extra {
        if name.starts_with("BEACON_STREAM") || *name == "BEACON_SUBJECT" {
            command.env(name, value);
        }
    }
    let output = testkit::output_within(&mut command, PATIENCE);
    assert!(output.status.success(), "provision failed: {output:?}");
}

/// `beacon <target>` connected to `nats`, with extra env vars. The stream
/// is provisioned first for the targets that only look it up, if the
/// broker is up.
pub fn start(target: &str, nats: &NatsServer, extra: &[(&'static str, String)]) -> AppProcess {
    if matches!(target, "broadcaster" | "receiver") && nats.is_running() {
        provision(nats, extra);
    }
    let mut envs = vec![("NATS_URL", nats.url()), ("RUST_LOG", "info".to_owned())];
    envs.extend(extra.iter().cloned());
    AppProcess::spawn(BEACON.as_ref(), "BEACON", &[target], &envs)
}

/// An HTTP client whose every request gives up after [`PATIENCE`].
pub fn http() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(PATIENCE)
                .build()
                .expect("an HTTP client")
        })
        .clone()
}

/// GET `url`, within [`PATIENCE`].
pub async fn get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    http().get(url).send().await
}

/// The next WebSocket message, within [`PATIENCE`]; `None` once closed.
pub async fn next_ws<S>(ws: &mut S) -> Option<tokio_tungstenite::tungstenite::Message>
where
    S: futures::Stream<
            Item = tokio_tungstenite::tungstenite::Result<tokio_tungstenite::tungstenite::Message>,
        > + Unpin,
{
    use futures::StreamExt;
    tokio::time::timeout(PATIENCE, ws.next())
        .await
        .expect("a WebSocket message in time")
        .map(|message| message.expect("a valid WebSocket message"))
}

/// GET `url`: status and JSON body.
pub async fn get_json(url: &str) -> (u16, Value) {
    let response = get(url).await.expect("request sent");
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.expect("a JSON body");
    (status, body)
}

/// The sequences of a `/api/messages` page.
pub async fn page(base: &str, query: &str) -> Vec<u64> {
    let (status, body) = get_json(&format!("{base}/api/messages?{query}")).await;
    assert_eq!(status, 200, "{body}");
    seqs(&body["messages"])
}

pub fn seqs(messages: &Value) -> Vec<u64> {
    messages
        .as_array()
        .expect("an array of messages")
        .iter()
        .map(|message| message["seq"].as_u64().expect("a seq"))
        .collect()
}

/// The newest sequence the receiver at `base` holds.
pub async fn last_seq(base: &str) -> u64 {
    let (_, body) = get_json(&format!("{base}/api/messages?limit=1")).await;
    seqs(&body["messages"]).last().copied().unwrap_or(0)
}

/// Waits until the receiver at `base` holds at least `seq`.
pub async fn wait_for_seq(base: &str, seq: u64) {
    eventually(&format!("message {seq} at {base}"), PATIENCE, || async {
        (last_seq(base).await >= seq).then_some(())
    })
    .await;
}

/// Waits until `/readyz` at `base` answers `status`.
pub async fn wait_readyz(base: &str, status: u16) {
    eventually(&format!("{base}/readyz = {status}"), PATIENCE, || async {
        let response = get(format!("{base}/readyz")).await.ok()?;
        (response.status().as_u16() == status).then_some(())
    })
    .await;
}

/// The value of a sample in `/metrics`, e.g. `beacon_malformed_payloads_total`.
pub async fn metric(base: &str, sample: &str) -> f64 {
    let text = get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == sample).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or_else(|| panic!("no sample {sample} in:\n{text}"))
}

/// The next `n` messages of an SSE stream: their sequences, checking each
/// event's id matches its JSON.
pub async fn next_seqs(client: &mut SseClient, n: usize) -> Vec<u64> {
    let mut seqs = Vec::with_capacity(n);
    while seqs.len() < n {
        let event = tokio::time::timeout(PATIENCE, client.next_event())
            .await
            .expect("an event in time")
            .expect("the stream stays open");
        assert_eq!(event.event, None, "unexpected event {event:?}");
        let message: Value = serde_json::from_str(&event.data).expect("JSON data");
        let seq = message["seq"].as_u64().expect("a seq");
        assert_eq!(event.id, Some(seq.to_string()), "the id is the sequence");
        seqs.push(seq);
    }
    seqs
}

/// `from..=to` as a vector.
pub fn range(from: u64, to: u64) -> Vec<u64> {
    (from..=to).collect()
}
