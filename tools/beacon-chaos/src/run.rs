//! One chaos run: start everything, break things on schedule until enough
//! messages were broadcast, stop the broadcasters cleanly, then check.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use serde_json::Value;
use testkit::{AppProcess, NatsServer, eventually, free_port};

use crate::{
    clients::Fleet,
    config::ChaosArgs,
    faults::{self, Receiver, lock},
    verify::{self, Findings},
};

/// Receivers the clients spread over.
const RECEIVERS: usize = 2;
/// The stream the broadcasters create (the binary's default).
const STREAM: &str = "HELLO";

/// What a run found.
#[derive(Debug)]
pub struct Report {
    pub messages: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub broker_kills: u32,
    pub receiver_restarts: u32,
    pub client_reconnects: u64,
    pub seconds: f64,
}

impl Report {
    /// The `RESULT` payload: JSON, keys in the documented order.
    pub fn to_json(&self) -> String {
        format!(
            r#"{{"messages": {}, "lost": {}, "duplicated": {}, "broker_kills": {}, "receiver_restarts": {}, "client_reconnects": {}, "seconds": {:.1}}}"#,
            self.messages,
            self.lost,
            self.duplicated,
            self.broker_kills,
            self.receiver_restarts,
            self.client_reconnects,
            self.seconds
        )
    }
}

pub async fn run(args: ChaosArgs) -> anyhow::Result<Report> {
    let started = Instant::now();
    let binary = args.beacon_binary()?;
    let broker: faults::Broker = Arc::new(Mutex::new(NatsServer::start()));
    let nats_url = lock(&broker).url();
    eprintln!(
        "chaos: nats-server at {nats_url}, store {}",
        lock(&broker).store().display()
    );

    // As on Kubernetes: the stream is provisioned, then used by broadcasters
    // and receivers that only look it up.
    let provisioned = testkit::output_within(
        std::process::Command::new(&binary)
            .arg("provision")
            .env("NATS_URL", &nats_url)
            .env("LOG_FORMAT", "json"),
        Duration::from_secs(60),
    );
    anyhow::ensure!(
        provisioned.status.success(),
        "beacon provision failed: {}",
        String::from_utf8_lossy(&provisioned.stdout)
    );

    let mut receivers = Vec::new();
    let mut bases = Vec::new();
    for _ in 0..RECEIVERS {
        let port = free_port();
        let envs = vec![
            ("NATS_URL", nats_url.clone()),
            ("BEACON_HTTP_ADDR", format!("127.0.0.1:{port}")),
            ("RUST_LOG", "info".to_owned()),
        ];
        let process = AppProcess::spawn(&binary, "BEACON", &["receiver"], &envs);
        bases.push(process.base_url().to_owned());
        receivers.push(Arc::new(Mutex::new(Receiver {
            process,
            binary: binary.clone(),
            envs,
        })));
    }
    let mut broadcasters: Vec<(String, AppProcess)> = (1..=args.broadcasters)
        .map(|n| {
            let sender = format!("chaos-{n}");
            let envs = [
                ("NATS_URL", nats_url.clone()),
                ("BEACON_SENDER", sender.clone()),
                ("BEACON_MIN_INTERVAL", args.min_interval.clone()),
                ("BEACON_MAX_INTERVAL", args.max_interval.clone()),
                // Time for the last publish to be acknowledged.
                ("BEACON_SHUTDOWN_TIMEOUT", "60s".to_owned()),
            ];
            (
                sender,
                AppProcess::spawn(&binary, "BEACON", &["broadcaster"], &envs),
            )
        })
        .collect();
    let fleet = Fleet::spawn(args.clients.max(1), Arc::new(bases));
    eprintln!(
        "chaos: {} broadcaster(s), {RECEIVERS} receivers, {} clients; target {} messages",
        args.broadcasters, args.clients, args.messages
    );

    // Faults fire at sequence thresholds spread over the run.
    let progress = || fleet.progress();
    let broker_task = {
        let broker = Arc::clone(&broker);
        let thresholds = faults::thresholds(args.broker_kills, args.messages);
        let progress = fleet.progress_handle();
        tokio::spawn(async move {
            let mut kills = 0;
            for threshold in thresholds {
                wait_for(&progress, threshold).await;
                faults::crash_broker(&broker).await;
                kills += 1;
            }
            kills
        })
    };
    let receiver_task = {
        let receivers = receivers.clone();
        let thresholds = faults::thresholds(args.receiver_restarts, args.messages);
        let progress = fleet.progress_handle();
        tokio::spawn(async move {
            let mut restarts = 0;
            for (n, threshold) in thresholds.into_iter().enumerate() {
                wait_for(&progress, threshold).await;
                faults::crash_receiver(&receivers[n % receivers.len()]).await;
                restarts += 1;
            }
            restarts
        })
    };
    let mut drops = faults::thresholds(args.client_reconnects, args.messages);
    drops.sort_unstable();
    let mut drops = drops.into_iter().peekable();
    let mut last_progress = (0, Instant::now());
    let mut reported = Instant::now();
    while progress() < args.messages {
        let now = progress();
        while drops.next_if(|threshold| *threshold <= now).is_some() {
            fleet.drop_one();
        }
        if now > last_progress.0 {
            last_progress = (now, Instant::now());
        }
        anyhow::ensure!(
            last_progress.1.elapsed() < args.stall_timeout,
            "no progress for {:?} at message {now}",
            args.stall_timeout
        );
        if reported.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "chaos: {now}/{} messages, {:.0} s",
                args.messages,
                started.elapsed().as_secs_f64()
            );
            reported = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let broker_kills = broker_task.await.context("the broker fault task")?;
    let receiver_restarts = receiver_task.await.context("the receiver fault task")?;

    // Stop the broadcasters cleanly: each reports how many it generated.
    let mut generated = HashMap::new();
    for (sender, process) in &mut broadcasters {
        let status = process
            .terminate(Duration::from_secs(90))
            .with_context(|| format!("{sender} did not stop"))?;
        anyhow::ensure!(status.success(), "{sender} exited with {status}");
        generated.insert(sender.clone(), generated_by(&process.output())?);
    }
    let total: u64 = generated.values().sum();
    eprintln!("chaos: broadcasters generated {total} messages: {generated:?}");

    let (mut findings, last) = verify::stream(&nats_url, STREAM, &generated).await?;
    // Every client must catch up to the end of the stream.
    let caught_up = tokio::time::timeout(
        Duration::from_secs(120),
        eventually(
            "every client to reach the last message",
            Duration::from_secs(120),
            || async { (fleet.slowest() >= last).then_some(()) },
        ),
    )
    .await;
    if caught_up.is_err() {
        eprintln!("chaos: not every client reached {last}");
    }
    let logs = fleet.stop().await;
    let client_reconnects = logs.iter().map(|log| log.reconnects).sum();
    findings.merge(verify::clients(&logs, last));
    print_examples(&findings);

    Ok(Report {
        messages: total,
        lost: findings.lost,
        duplicated: findings.duplicated,
        broker_kills,
        receiver_restarts,
        client_reconnects,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn wait_for(progress: &AtomicU64, threshold: u64) {
    while progress.load(Ordering::Relaxed) < threshold {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Messages a broadcaster generated: those stored, plus one if the last
/// was abandoned at the shutdown deadline.
fn generated_by(output: &[String]) -> anyhow::Result<u64> {
    let summary = output
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|event| event["message"] == "broadcaster stopped")
        .context("no 'broadcaster stopped' summary in its log")?;
    let published = summary["published"].as_u64().context("published count")?;
    let abandoned = u64::from(summary["abandoned"].as_bool().unwrap_or(false));
    Ok(published + abandoned)
}

fn print_examples(findings: &Findings) {
    for example in &findings.examples {
        eprintln!("chaos: {example}");
    }
}
