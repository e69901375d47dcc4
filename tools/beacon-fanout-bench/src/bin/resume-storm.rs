//! `resume-storm`: many SSE clients resuming from the start of a long
//! stream at once, as browsers do when a receiver comes back after an
//! outage. Every client must get every message once, in order; the figures
//! are how long the last one took and the most JetStream consumers the
//! stream had meanwhile (the receiver's history reads are bounded, so this
//! stays small however many clients resume).
//!
//! It starts a `nats-server`, provisions the stream, stores
//! `STORM_MESSAGES` messages (default 20,000), starts one receiver
//! (`STORM_WINDOW` messages in memory, default 10,000, so the older ones
//! come from the stream), then connects `STORM_CLIENTS` (default 1,000)
//! clients with `Last-Event-ID: 0` at once. `STORM_BEACON` runs another
//! `beacon` build. `make bench-resume` builds and runs it; it prints one
//! `RESULT {...}` line.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use beacon_wire::{Broadcast, Timestamp};
use bytes::Bytes;
use futures::{StreamExt, stream};
use platform::bus::{Bus, NatsArgs, NatsBus, StreamSettings};
use testkit::{AppProcess, NatsServer, output_within};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// How long the whole storm may take before it counts as failed.
const DEADLINE: Duration = Duration::from_secs(600);

fn setting(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .with_context(|| format!("{name} must be a whole number, got {value:?}")),
        Err(_) => Ok(default),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let clients = setting("STORM_CLIENTS", 1000)?;
    let messages = setting("STORM_MESSAGES", 20_000)?;
    let window = setting("STORM_WINDOW", 10_000)?;
    let beacon = match std::env::var_os("STORM_BEACON") {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe()?.with_file_name("beacon"),
    };
    anyhow::ensure!(beacon.is_file(), "no beacon binary at {}", beacon.display());

    let nats = NatsServer::start();
    let provisioned = output_within(
        std::process::Command::new(&beacon)
            .arg("provision")
            .env("NATS_URL", nats.url()),
        Duration::from_secs(60),
    );
    anyhow::ensure!(provisioned.status.success(), "beacon provision failed");
    eprintln!("storm: storing {messages} messages");
    store(&nats, messages).await?;

    let receiver = AppProcess::spawn(
        &beacon,
        "BEACON",
        &["receiver"],
        &[
            ("NATS_URL", nats.url()),
            ("BEACON_WINDOW", window.to_string()),
            ("RUST_LOG", "info".to_owned()),
        ],
    );
    let base = receiver.base_url().to_owned();
    wait_ready(&base).await?;
    let addr: SocketAddr = base.trim_start_matches("http://").parse()?;

    // The stream's consumers, polled while the clients catch up.
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let poller = tokio::spawn(poll_consumers(
        nats.url(),
        Arc::clone(&done),
        Arc::clone(&peak),
    ));

    eprintln!("storm: {clients} clients resume from the start");
    let started = Instant::now();
    let expected = u64::try_from(messages)?;
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(follow(addr, expected)))
        .collect();
    let mut failures = Vec::new();
    let mut slowest = Duration::ZERO;
    for task in tasks {
        match tokio::time::timeout(DEADLINE, task).await {
            Ok(Ok(Ok(took))) => slowest = slowest.max(took),
            Ok(Ok(Err(err))) => failures.push(err.to_string()),
            Ok(Err(err)) => failures.push(err.to_string()),
            Err(_) => failures.push(format!("not done within {DEADLINE:?}")),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    poller.await??;
    if let Some(first) = failures.first() {
        bail!(
            "{} of {clients} clients failed; the first: {first}",
            failures.len()
        );
    }
    let result = serde_json::json!({
        "clients": clients,
        "messages": messages,
        "window": window,
        "seconds": (seconds * 100.0).round() / 100.0,
        "slowest_client_seconds": (slowest.as_secs_f64() * 100.0).round() / 100.0,
        "peak_consumers": peak.load(Ordering::Relaxed),
        "every_client_got_every_message_once_in_order": true,
    });
    println!("RESULT {result}");
    Ok(())
}

/// Stores `count` messages, many publishes in flight at once.
async fn store(nats: &NatsServer, count: usize) -> anyhow::Result<()> {
    let urls = nats.url().parse().map_err(anyhow::Error::msg)?;
    let bus = NatsBus::connect(&urls, &NatsArgs::default(), "resume-storm").await?;
    let stream = Bus::Nats(bus).stream(StreamSettings::log("HELLO", "beacon.hello", 1_000_000));
    let published = stream::iter(0..count)
        .map(|n| {
            let stream = stream.clone();
            async move {
                let broadcast = Broadcast {
                    id: format!("storm-{n}"),
                    text: "Hello world".to_owned(),
                    sender: "resume-storm".to_owned(),
                    sent_at: Timestamp::now(),
                    interval_ms: 1,
                };
                let payload = Bytes::from(broadcast.encode()?);
                stream.publish(&broadcast.id, payload).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(256)
        .collect::<Vec<_>>()
        .await;
    published.into_iter().collect()
}

async fn wait_ready(base: &str) -> anyhow::Result<()> {
    let give_up = Instant::now() + Duration::from_secs(60);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    while Instant::now() < give_up {
        if let Ok(response) = client.get(format!("{base}/readyz")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the receiver was not ready within 60 s")
}

/// The most consumers the stream had, every 10 ms until `done`.
async fn poll_consumers(
    url: String,
    done: Arc<AtomicBool>,
    peak: Arc<AtomicUsize>,
) -> anyhow::Result<()> {
    let client = async_nats_client(&url).await?;
    let jetstream = async_nats::jetstream::new(client);
    while !done.load(Ordering::Relaxed) {
        if let Ok(mut stream) = jetstream.get_stream("HELLO").await
            && let Ok(info) = stream.info().await
        {
            peak.fetch_max(info.state.consumer_count, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

async fn async_nats_client(url: &str) -> anyhow::Result<async_nats::Client> {
    Ok(async_nats::connect(url).await?)
}

/// One client: resumes from the start on a fresh connection and reads
/// until message `last`, checking every sequence comes once, in order,
/// with no gap. Returns how long it took.
async fn follow(addr: SocketAddr, last: u64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut socket = TcpStream::connect(addr).await?;
    socket
        .write_all(b"GET /events HTTP/1.1\r\nHost: storm\r\nLast-Event-ID: 0\r\n\r\n")
        .await?;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut line = Vec::new();
    let mut next = 1u64;
    while next <= last {
        let read = socket.read(&mut buffer).await?;
        if read == 0 {
            bail!("the stream ended at {next}");
        }
        for byte in &buffer[..read] {
            if *byte != b'\n' {
                line.push(*byte);
                continue;
            }
            if let Some(id) = line.strip_prefix(b"id: ") {
                let seq: u64 = std::str::from_utf8(id)?.trim().parse()?;
                if seq != next {
                    bail!("expected {next}, got {seq}");
                }
                next += 1;
            } else if line.starts_with(b"event: ") {
                bail!("unexpected {} at {next}", String::from_utf8_lossy(&line));
            }
            line.clear();
        }
    }
    Ok(started.elapsed())
}
