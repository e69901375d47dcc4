//! `udaconnect simulate`: attendees walking between venues, each phone
//! sending its position, over gRPC streams or HTTP batches at a set total
//! rate. It reports what was accepted per second, rejected and refused,
//! the p50/p99 latency of the acknowledgements, and the freshness lag: from
//! a location's acknowledgement to the moment the API shows it. At a slow
//! rate it is the live demo feed; at full speed, the load generator of
//! `make bench-ingest`.

mod send;
pub(crate) mod walk;

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use futures::StreamExt as _;
use hdrhistogram::Histogram;
use platform::{config::parse_duration, telemetry::LogArgs};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use udaconnect_domain::{PersonId, Timestamp};

use self::walk::Crowd;
use crate::proto::v1::LocationInput;

/// How the simulator reaches the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// `IngestService.Ingest`, a stream of batches per connection.
    Grpc,
    /// `POST /api/v2/locations:batch`.
    Http,
}

/// Settings of `udaconnect simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub log: LogArgs,
    /// The API: attendees are created there, and freshness is read there.
    #[arg(
        long,
        env = "UDACONNECT_SIMULATE_API_URL",
        default_value = "http://127.0.0.1:8090"
    )]
    pub api_url: String,
    /// The edge's HTTP address, for `http` [default: the API's].
    #[arg(long, env = "UDACONNECT_SIMULATE_INGEST_URL")]
    pub ingest_url: Option<String>,
    /// The edge's gRPC address, for `grpc`.
    #[arg(
        long,
        env = "UDACONNECT_SIMULATE_GRPC_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub grpc_url: String,
    /// `grpc` or `http`.
    #[arg(long, env = "UDACONNECT_SIMULATE_TRANSPORT", value_enum, default_value_t = Transport::Grpc)]
    pub transport: Transport,
    /// Attendees (persons created through the API unless UDACONNECT_SIMULATE_FIRST_PERSON is set).
    #[arg(long, env = "UDACONNECT_SIMULATE_ATTENDEES", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub attendees: u32,
    /// Use the existing persons from this id on instead of creating attendees.
    #[arg(long, env = "UDACONNECT_SIMULATE_FIRST_PERSON", value_parser = clap::value_parser!(i32).range(1..))]
    pub first_person: Option<i32>,
    /// Locations per second in total; 0 sends as fast as the edge takes them.
    #[arg(long, env = "UDACONNECT_SIMULATE_RATE", default_value_t = 10.0)]
    pub rate: f64,
    /// Locations per request.
    #[arg(long, env = "UDACONNECT_SIMULATE_BATCH", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    /// Concurrent connections (gRPC streams, or HTTP requests in flight).
    #[arg(long, env = "UDACONNECT_SIMULATE_CONNECTIONS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub connections: u32,
    /// Stop after this long [default: run until stopped].
    #[arg(long, env = "UDACONNECT_SIMULATE_DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// How often to log what was sent.
    #[arg(long, env = "UDACONNECT_SIMULATE_REPORT_EVERY", default_value = "10s", value_parser = parse_duration)]
    pub report_every: Duration,
    /// How often to measure one location's freshness lag.
    #[arg(long, env = "UDACONNECT_SIMULATE_FRESHNESS_EVERY", default_value = "1s", value_parser = parse_duration)]
    pub freshness_every: Duration,
    /// Random seed of the walks.
    #[arg(long, env = "UDACONNECT_SIMULATE_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Venues the attendees walk between (a grid 40 m apart); with one,
    /// they all stay at the same place and meet.
    #[arg(long, env = "UDACONNECT_SIMULATE_VENUES", default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=400))]
    pub venues: u32,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct SimulateReport {
    pub transport: &'static str,
    pub seconds: f64,
    pub accepted: u64,
    pub rejected: u64,
    /// Requests answered "retry later" (then sent again).
    pub refused: u64,
    /// Requests that failed otherwise (then sent again).
    pub failed: u64,
    pub ack_p50_ms: f64,
    pub ack_p99_ms: f64,
    pub fresh_samples: u64,
    pub fresh_p50_ms: f64,
    pub fresh_p99_ms: f64,
    pub fresh_max_ms: f64,
}

impl SimulateReport {
    /// Accepted per second.
    pub fn accepted_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.accepted as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// One JSON object.
    pub fn to_json(&self) -> String {
        json!({
            "transport": self.transport,
            "seconds": round(self.seconds),
            "accepted": self.accepted,
            "accepted_per_s": round(self.accepted_per_s()),
            "rejected": self.rejected,
            "refused": self.refused,
            "failed": self.failed,
            "ack_p50_ms": round(self.ack_p50_ms),
            "ack_p99_ms": round(self.ack_p99_ms),
            "fresh_samples": self.fresh_samples,
            "fresh_p50_ms": round(self.fresh_p50_ms),
            "fresh_p99_ms": round(self.fresh_p99_ms),
            "fresh_max_ms": round(self.fresh_max_ms),
        })
        .to_string()
    }
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Counters and histograms every connection adds to.
pub(crate) struct Tally {
    accepted: AtomicU64,
    rejected: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    ack_us: Mutex<Histogram<u64>>,
    fresh_us: Mutex<Histogram<u64>>,
    /// Acknowledgement times since the last progress line.
    recent_ack_us: Mutex<Histogram<u64>>,
}

/// One progress line's figures: what happened since the previous one.
struct Progress {
    accepted: u64,
    accepted_per_s: f64,
    ack_p99_ms: f64,
}

impl Tally {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            accepted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            ack_us: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3)?),
            fresh_us: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3)?),
            recent_ack_us: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3)?),
        })
    }

    /// The figures since the previous call (which accepted `before` in
    /// all, `seconds` ago), and those counters started again.
    fn progress(&self, before: u64, seconds: f64) -> Progress {
        let accepted = self.accepted.load(Ordering::Relaxed);
        let mut recent = self
            .recent_ack_us
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let ack_p99_ms = if recent.is_empty() {
            0.0
        } else {
            recent.value_at_quantile(0.99) as f64 / 1000.0
        };
        recent.reset();
        Progress {
            accepted,
            accepted_per_s: if seconds > 0.0 {
                accepted.saturating_sub(before) as f64 / seconds
            } else {
                0.0
            },
            ack_p99_ms,
        }
    }

    pub(crate) fn acked(&self, accepted: usize, rejected: usize, took: Duration) {
        self.accepted
            .fetch_add(u64::try_from(accepted).unwrap_or(0), Ordering::Relaxed);
        self.rejected
            .fetch_add(u64::try_from(rejected).unwrap_or(0), Ordering::Relaxed);
        record(&self.ack_us, took);
        record(&self.recent_ack_us, took);
    }

    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    fn report(&self, transport: &'static str, seconds: f64) -> SimulateReport {
        let quantile = |histogram: &Mutex<Histogram<u64>>, q: f64| {
            let histogram = histogram.lock().unwrap_or_else(PoisonError::into_inner);
            if histogram.is_empty() {
                0.0
            } else {
                histogram.value_at_quantile(q) as f64 / 1000.0
            }
        };
        let fresh_samples = self
            .fresh_us
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        SimulateReport {
            transport,
            seconds,
            accepted: self.accepted.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            ack_p50_ms: quantile(&self.ack_us, 0.5),
            ack_p99_ms: quantile(&self.ack_us, 0.99),
            fresh_samples,
            fresh_p50_ms: quantile(&self.fresh_us, 0.5),
            fresh_p99_ms: quantile(&self.fresh_us, 0.99),
            fresh_max_ms: quantile(&self.fresh_us, 1.0),
        }
    }
}

fn record(histogram: &Mutex<Histogram<u64>>, took: Duration) {
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
    let _ = histogram
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .record(micros.min(600_000_000));
}

/// Makes the batches: the crowd, walking in simulated time as fast as the
/// rate has them report.
pub(crate) struct Feed {
    crowd: Mutex<(Crowd, usize)>,
    run: String,
    batch: usize,
    /// Seconds between two reports of one attendee.
    step: f64,
}

impl Feed {
    pub(crate) fn next_batch(&self) -> Vec<LocationInput> {
        let mut guard = self.crowd.lock().unwrap_or_else(PoisonError::into_inner);
        let (crowd, next) = &mut *guard;
        let time = Timestamp::now().to_string();
        let count = crowd.attendees.len();
        (0..self.batch)
            .map(|_| {
                let index = *next;
                *next = (*next + 1) % count;
                let attendee = crowd.step(index, self.step);
                attendee.sent += 1;
                LocationInput {
                    person_id: attendee.person_id,
                    lat: attendee.position.lat,
                    lon: attendee.position.lon,
                    time: time.clone(),
                    key: format!("{}-{}-{}", self.run, attendee.person_id, attendee.sent),
                }
            })
            .collect()
    }
}

/// Runs until the duration is over or `shutdown` is cancelled.
pub async fn run(
    args: &SimulateArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<SimulateReport> {
    anyhow::ensure!(
        args.rate >= 0.0 && args.rate.is_finite(),
        "UDACONNECT_SIMULATE_RATE must be 0 or more"
    );
    let http = reqwest::Client::builder()
        .timeout(send::ANSWER_DEADLINE)
        .pool_max_idle_per_host(usize::try_from(args.connections).unwrap_or(1) + 4)
        .build()?;
    let api = args.api_url.trim_end_matches('/').to_owned();
    let persons = attendees(&http, &api, args).await?;
    let rate_per_attendee = if args.rate > 0.0 {
        args.rate / persons.len() as f64
    } else {
        1.0
    };
    let feed = Arc::new(Feed {
        crowd: Mutex::new((Crowd::new(&persons, args.seed, args.venues), 0)),
        run: format!("sim{}", Timestamp::now().micros()),
        batch: usize::try_from(args.batch).unwrap_or(1),
        step: 1.0 / rate_per_attendee,
    });
    let tally = Arc::new(Tally::new()?);
    let stop = shutdown.child_token();
    let started = Instant::now();
    tracing::info!(
        attendees = persons.len(),
        rate = args.rate,
        transport = ?args.transport,
        "simulating"
    );
    let (probes, probe_rx) = tokio::sync::mpsc::channel::<(i64, Instant)>(64);
    let prober = tokio::spawn(send::probe_freshness(
        http.clone(),
        api.clone(),
        probe_rx,
        Arc::clone(&tally),
        stop.clone(),
    ));
    let connections = usize::try_from(args.connections).unwrap_or(1);
    let interval = (args.rate > 0.0)
        .then(|| Duration::from_secs_f64(args.batch as f64 * connections as f64 / args.rate));
    let mut senders = Vec::new();
    for n in 0..connections {
        let sender = send::Sender {
            feed: Arc::clone(&feed),
            tally: Arc::clone(&tally),
            probes: probes.clone(),
            probe_every: args.freshness_every.mul_f64(connections as f64),
            interval,
            stop: stop.clone(),
        };
        let transport = args.transport;
        let target = match transport {
            Transport::Grpc => args.grpc_url.clone(),
            Transport::Http => format!(
                "{}/api/v2/locations:batch",
                args.ingest_url
                    .as_deref()
                    .unwrap_or(&api)
                    .trim_end_matches('/')
            ),
        };
        let http = http.clone();
        senders.push(tokio::spawn(async move {
            // Spread the connections' first sends over one interval.
            if let Some(interval) = interval {
                tokio::time::sleep(interval.mul_f64(n as f64 / connections as f64)).await;
            }
            match transport {
                Transport::Grpc => sender.grpc(target).await,
                Transport::Http => sender.http(http, target).await,
            }
        }));
    }
    drop(probes);
    let transport = match args.transport {
        Transport::Grpc => "grpc",
        Transport::Http => "http",
    };
    let mut ticker = tokio::time::interval(args.report_every);
    ticker.tick().await;
    let (mut last_line, mut accepted_before) = (Instant::now(), 0);
    let until = args
        .duration
        .map(|duration| tokio::time::Instant::now() + duration);
    loop {
        let over = async {
            match until {
                Some(until) => tokio::time::sleep_until(until).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = ticker.tick() => {
                // Each line says what happened since the one before.
                let progress = tally.progress(accepted_before, last_line.elapsed().as_secs_f64());
                (last_line, accepted_before) = (Instant::now(), progress.accepted);
                tracing::info!(
                    accepted = progress.accepted,
                    accepted_per_s = (progress.accepted_per_s * 10.0).round() / 10.0,
                    ack_p99_ms = progress.ack_p99_ms,
                    "simulate: progress (since the last line)"
                );
            }
            () = over => break,
            () = shutdown.cancelled() => break,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.cancel();
    for sender in senders {
        sender.await.context("a sender")?;
    }
    // Probes in flight finish (bounded) so that freshness counts them.
    prober.await.context("the freshness probe")?;
    let mut report = tally.report(transport, seconds);
    report.seconds = seconds;
    Ok(report)
}

/// The attendees' person ids: existing ones, or created through the API.
async fn attendees(
    http: &reqwest::Client,
    api: &str,
    args: &SimulateArgs,
) -> anyhow::Result<Vec<PersonId>> {
    let count = i32::try_from(args.attendees).unwrap_or(i32::MAX);
    if let Some(first) = args.first_person {
        return Ok((first..first.saturating_add(count)).collect());
    }
    let mut ids = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let created = futures::stream::iter(0..count)
        .map(|n| {
            let http = http.clone();
            let url = format!("{api}/api/v2/persons");
            async move {
                let body = json!({
                    "first_name": format!("Attendee {}", n + 1),
                    "last_name": "Simulated",
                    "company_name": format!("Booth Co {}", n % 16),
                });
                let response = http.post(&url).json(&body).send().await?;
                anyhow::ensure!(
                    response.status().is_success(),
                    "creating an attendee at {url}: {}",
                    response.status()
                );
                let person: serde_json::Value = response.json().await?;
                person["id"]
                    .as_i64()
                    .and_then(|id| i32::try_from(id).ok())
                    .context("a person id")
            }
        })
        .buffer_unordered(16);
    futures::pin_mut!(created);
    while let Some(id) = created.next().await {
        ids.push(id.context("creating attendees (is the API at UDACONNECT_SIMULATE_API_URL?)")?);
    }
    ids.sort_unstable();
    Ok(ids)
}

#[cfg(test)]
mod progress_tests {
    use super::*;

    #[test]
    fn a_progress_line_counts_since_the_one_before_not_since_the_start() {
        let tally = Tally::new().expect("a tally");
        tally.acked(50, 0, Duration::from_millis(900));
        let first = tally.progress(0, 10.0);
        assert_eq!((first.accepted, first.accepted_per_s), (50, 5.0));
        assert!(
            (first.ack_p99_ms - 900.0).abs() < 10.0,
            "{}",
            first.ack_p99_ms
        );
        // A quiet minute with five accepted: 5 in 60 s, and only their
        // acknowledgement times, not the slow ones before.
        tally.acked(5, 0, Duration::from_millis(20));
        let second = tally.progress(first.accepted, 60.0);
        assert_eq!(second.accepted, 55);
        assert!((second.accepted_per_s - 5.0 / 60.0).abs() < 1e-9);
        assert!(
            (second.ack_p99_ms - 20.0).abs() < 1.0,
            "{}",
            second.ack_p99_ms
        );
        let idle = tally.progress(second.accepted, 10.0);
        assert_eq!((idle.accepted_per_s, idle.ack_p99_ms), (0.0, 0.0));
    }
}
