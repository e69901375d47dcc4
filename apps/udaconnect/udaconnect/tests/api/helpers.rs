//! Starting UdaConnect for a test, and talking to it.

use std::time::Duration;

use clap::Parser;
use serde_json::Value;
use testkit::eventually;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use udaconnect::{Application, Cli, cli::Plan};

/// The binary under test.
pub const UDACONNECT: &str = env!("CARGO_BIN_EXE_udaconnect");
/// Long enough for anything that should happen, short enough to fail fast.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// UdaConnect running in this process, on a free port.
pub struct TestApp {
    pub base: String,
    /// `http://127.0.0.1:<port>` of its gRPC server.
    pub grpc: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestApp {
    /// Stops it the way SIGTERM would, and waits until it has stopped.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("stopped in time")
            .expect("the app task")
            .expect("served");
    }

    /// Stops it the way a kill would: its work dropped where it stands,
    /// nothing acknowledged, no transaction committed.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// GET `path`: status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request sent");
        status_and_json(response).await
    }

    /// POST `body` as JSON to `path`: status and JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("request sent");
        status_and_json(response).await
    }

    /// POST raw `body` with `content_type` to `path`.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: &str) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .expect("request sent");
        status_and_json(response).await
    }

    /// Waits until `/readyz` answers `status`.
    pub async fn wait_readyz(&self, status: u16) {
        eventually(&format!("/readyz = {status}"), PATIENCE, || async {
            let response = self
                .http
                .get(format!("{}/readyz", self.base))
                .send()
                .await
                .ok()?;
            (response.status().as_u16() == status).then_some(())
        })
        .await;
    }
}

async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("not JSON ({err}), status {status}: {text}"));
    (status, body)
}

/// Builds and runs `udaconnect all <args>` on free ports (HTTP and gRPC).
/// Without `--database-url` in `args` it runs on the embedded store,
/// without `--nats-url` on the in-process bus, without `--demo-feed` with
/// no demo feed (so that the counts are the tests' own), without
/// `--demo-meetings` with no meetings of the demo conference (folding it
/// in takes seconds of a debug build), and without `--open-api` with the
/// API open (no token needed: the tests of the access rules close it),
/// whatever the environment has.
pub async fn spawn_app(args: &[&str]) -> TestApp {
    spawn_target("all", args).await
}

/// Builds and runs `udaconnect <target> <args>` on free ports.
pub async fn spawn_target(target: &str, args: &[&str]) -> TestApp {
    let mut argv = vec!["udaconnect", target, "--http-addr", "127.0.0.1:0"];
    if matches!(target, "all" | "ingest") {
        argv.extend(["--grpc-addr", "127.0.0.1:0"]);
    }
    let mut cli = Cli::try_parse_from(argv.iter().chain(args)).expect("valid arguments");
    if !args.contains(&"--open-api") {
        match &mut cli.target {
            Some(udaconnect::cli::Target::All(all)) => all.serve.access.open_api = Some(true),
            Some(udaconnect::cli::Target::Api(api)) => api.access.open_api = Some(true),
            Some(udaconnect::cli::Target::Ingest(ingest)) => ingest.access.open_api = Some(true),
            _ => {}
        }
    }
    if let Some(udaconnect::cli::Target::All(all)) = &mut cli.target {
        if !args.contains(&"--database-url") {
            all.serve.store.database_url = None;
        }
        if !args.contains(&"--nats-url") {
            all.bus.nats.nats_url = None;
        }
        if !args.contains(&"--demo-feed") {
            all.demo.demo_feed = Some(0.0);
        }
        if !args.contains(&"--demo-meetings") {
            all.meetings.demo_meetings = false;
        }
    }
    let Ok(Plan::Serve(config)) = cli.plan() else {
        panic!("`udaconnect {target}` serves");
    };
    let app = Application::build(*config).await.expect("the app builds");
    let base = app.url().trim_end_matches('/').to_owned();
    let grpc = app
        .grpc_addr()
        .map(|addr| format!("http://{addr}"))
        .unwrap_or_default();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let app = TestApp {
        base,
        grpc,
        http: reqwest::Client::builder()
            .timeout(PATIENCE)
            .build()
            .expect("an HTTP client"),
        shutdown,
        task,
    };
    app.wait_readyz(200).await;
    app
}

/// Runs `udaconnect <args>` with only `envs` set, to completion (bounded):
/// exit code, stdout, stderr.
pub async fn run(args: &[&str], envs: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut command = tokio::process::Command::new(UDACONNECT);
    command
        .args(args)
        .env_clear()
        .envs(envs.iter().copied())
        .kill_on_drop(true);
    let output = tokio::time::timeout(PATIENCE, command.output())
        .await
        .expect("udaconnect finished in time")
        .expect("udaconnect runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Waits until `GET path` answers 200 (a location written by a writer
/// shows a moment after the edge took it), and returns the body.
pub async fn eventually_get(app: &TestApp, path: &str) -> Value {
    eventually(&format!("GET {path} = 200"), PATIENCE, || async {
        let (status, body) = app.get(path).await;
        (status == 200).then_some(body)
    })
    .await
}

/// The value of a sample in `/metrics`, if any.
pub async fn metric(app: &TestApp, sample: &str) -> Option<f64> {
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == sample).then(|| value.parse().ok()).flatten()
    })
}
