//! `udaconnect simulate`: attendees walking between venues, each phone
//! sending its position, over gRPC streams or HTTP batches at a set total
//! rate. It reports what was accepted per second, rejected and refused,
//! the p50/p99 latency of the acknowledgements, and the freshness lag: from
//! a location's acknowledgement to the moment the API shows it. At a slow
//! rate it is the live demo feed; at full speed, the load generator of
//! `make bench-ingest`.
//!
//! On a closed API it is given the organiser's token: it creates its
//! attendees with it, gives each attendee's phone a token of its own
//! ([`phones`]), and sends each attendee's positions with that phone's
//! token only, as real phones do. Without a token (an open API: the
//! embedded demo, the benchmarks) its requests carry no token, and a batch
//! holds any attendees' positions.

mod phones;
mod send;
pub(crate) mod walk;

use std::{
    collections::HashMap,
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

use self::{phones::PhoneToken, walk::Crowd};
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
    /// The organiser's token of a closed API and edge. With it the attendees are created, each attendee's phone is given a token of its own (a device credential), each request holds one attendee's positions and carries that phone's token, and freshness is read with the organiser's. Unset: an open API, and no token is sent.
    #[arg(long, env = "UDACONNECT_ORGANISER_TOKEN", hide_env_values = true, value_parser = crate::cli::parse_organiser_token)]
    pub organiser_token: Option<String>,
    /// Attendees (persons created through the API unless UDACONNECT_SIMULATE_FIRST_PERSON is set).
    #[arg(long, env = "UDACONNECT_SIMULATE_ATTENDEES", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub attendees: u32,
    /// Use the existing persons from this id on instead of creating attendees.
    #[arg(long, env = "UDACONNECT_SIMULATE_FIRST_PERSON", value_parser = clap::value_parser!(i32).range(1..))]
    pub first_person: Option<i32>,
    /// Locations per second in total; 0 sends as fast as the edge takes them.
    #[arg(long, env = "UDACONNECT_SIMULATE_RATE", default_value_t = 10.0)]
    pub rate: f64,
    /// Locations a connection sends at a time: one request, or with the organiser's token one per attendee among them.
    #[arg(long, env = "UDACONNECT_SIMULATE_BATCH", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    /// Concurrent connections: gRPC connections (each a stream of batches, or with the organiser's token the phones' calls side by side on it), or HTTP requests in flight.
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
    /// Give every location an idempotency key, as this project's clients do (each is then claimed by the edge before it answers); false sends none, as the original's clients do (the phones' apps are keyed by the edge, by device and time).
    #[arg(long, env = "UDACONNECT_SIMULATE_KEYS", default_value_t = true, action = clap::ArgAction::Set)]
    pub keys: bool,
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
    /// Requests refused for their token (401, 403; not sent again).
    pub denied: u64,
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
            "denied": self.denied,
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
    denied: AtomicU64,
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
            denied: AtomicU64::new(0),
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

    pub(crate) fn denied(&self) {
        self.denied.fetch_add(1, Ordering::Relaxed);
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
            denied: self.denied.load(Ordering::Relaxed),
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
    /// Each attendee's phone's token, by the attendee's place in the
    /// crowd; none without the organiser's token.
    phones: Option<Vec<PhoneToken>>,
    /// What this run's idempotency keys start with; none: no keys.
    run: Option<String>,
    batch: usize,
    /// Seconds between two reports of one attendee.
    step: f64,
}

/// One request: the locations, and the token of the phone whose they all
/// are (none without the organiser's token: anyone's).
pub(crate) struct Batch {
    pub phone: Option<PhoneToken>,
    pub locations: Vec<LocationInput>,
}

impl Feed {
    /// `persons` walking between `venues` venues with `seed`, `batch`
    /// reports taken at a time, each attendee reporting every `step`
    /// seconds of its walk, each report with an idempotency key if `keys`;
    /// with `phones`, one per person, in their order.
    fn new(
        persons: &[PersonId],
        phones: Option<Vec<PhoneToken>>,
        seed: u64,
        venues: u32,
        batch: usize,
        step: f64,
        keys: bool,
    ) -> Self {
        Self {
            crowd: Mutex::new((Crowd::new(persons, seed, venues), 0)),
            phones,
            run: keys.then(|| format!("sim{}", Timestamp::now().micros())),
            batch: batch.max(1),
            step,
        }
    }

    /// The next `batch` reports, the attendees in turn: one request of
    /// them all, or with the phones' tokens one request per attendee among
    /// them, with its phone's token.
    pub(crate) fn next_batches(&self) -> Vec<Batch> {
        let mut guard = self.crowd.lock().unwrap_or_else(PoisonError::into_inner);
        let (crowd, next) = &mut *guard;
        let time = Timestamp::now().to_string();
        let count = crowd.attendees.len();
        let mut batches: Vec<Batch> = Vec::new();
        // Where each attendee's request is among `batches`.
        let mut requests: HashMap<usize, usize> = HashMap::new();
        for _ in 0..self.batch {
            let index = *next;
            *next = (*next + 1) % count;
            let attendee = crowd.step(index, self.step);
            attendee.sent += 1;
            let location = LocationInput {
                person_id: attendee.person_id,
                lat: attendee.position.lat,
                lon: attendee.position.lon,
                time: time.clone(),
                // Empty: no key.
                key: self.run.as_ref().map_or_else(String::new, |run| {
                    format!("{run}-{}-{}", attendee.person_id, attendee.sent)
                }),
            };
            let (request, phone) = match &self.phones {
                Some(phones) => (index, phones.get(index)),
                None => (0, None),
            };
            let at = *requests.entry(request).or_insert_with(|| {
                batches.push(Batch {
                    phone: phone.cloned(),
                    locations: Vec::new(),
                });
                batches.len() - 1
            });
            batches[at].locations.push(location);
        }
        batches
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
    let organiser = args.organiser_token.as_deref();
    // With phones, each connection carries the phones' calls side by side.
    let calls = match (organiser, args.transport) {
        (Some(_), Transport::Grpc) => Some(
            tonic::transport::Endpoint::from_shared(args.grpc_url.clone())
                .context("UDACONNECT_SIMULATE_GRPC_URL is not a URL")?,
        ),
        _ => None,
    };
    let persons = attendees(&http, &api, organiser, args).await?;
    let phones = match organiser {
        Some(organiser) => Some(phones::enroll(&http, &api, organiser, &persons).await?),
        None => None,
    };
    let rate_per_attendee = if args.rate > 0.0 {
        args.rate / persons.len() as f64
    } else {
        1.0
    };
    tracing::info!(
        attendees = persons.len(),
        rate = args.rate,
        transport = ?args.transport,
        phones = phones.is_some(),
        "simulating"
    );
    let feed = Arc::new(Feed::new(
        &persons,
        phones,
        args.seed,
        args.venues,
        usize::try_from(args.batch).unwrap_or(1),
        1.0 / rate_per_attendee,
        args.keys,
    ));
    let tally = Arc::new(Tally::new()?);
    let stop = shutdown.child_token();
    let started = Instant::now();
    let (probes, probe_rx) = tokio::sync::mpsc::channel::<(i64, Instant)>(64);
    let prober = tokio::spawn(send::probe_freshness(
        http.clone(),
        api.clone(),
        args.organiser_token.clone(),
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
        // A connection of its own, opened at its first call.
        let channel = calls.as_ref().map(tonic::transport::Endpoint::connect_lazy);
        senders.push(tokio::spawn(async move {
            // Spread the connections' first sends over one interval.
            if let Some(interval) = interval {
                tokio::time::sleep(interval.mul_f64(n as f64 / connections as f64)).await;
            }
            match (transport, channel) {
                (Transport::Grpc, Some(channel)) => sender.grpc_calls(channel).await,
                (Transport::Grpc, None) => sender.grpc(target).await,
                (Transport::Http, _) => sender.http(http, target).await,
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

/// The attendees' person ids: existing ones, or created through the API
/// (with the `organiser`'s token, if given).
async fn attendees(
    http: &reqwest::Client,
    api: &str,
    organiser: Option<&str>,
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
                let mut request = http.post(&url).json(&body);
                if let Some(organiser) = organiser {
                    request = request.bearer_auth(organiser);
                }
                let response = request.send().await?;
                let status = response.status();
                anyhow::ensure!(
                    status.is_success(),
                    "creating an attendee at {url}: {status}{}",
                    match (status.as_u16(), organiser) {
                        (401 | 403, None) => " (a closed API: set UDACONNECT_ORGANISER_TOKEN)",
                        (401 | 403, Some(_)) =>
                            " (is UDACONNECT_ORGANISER_TOKEN the API's organiser token?)",
                        _ => "",
                    }
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

#[cfg(test)]
mod feed_tests {
    use super::*;

    fn people(feed: &Feed) -> Vec<(Option<PhoneToken>, Vec<PersonId>)> {
        feed.next_batches()
            .into_iter()
            .map(|batch| {
                let persons = batch.locations.iter().map(|l| l.person_id).collect();
                (batch.phone, persons)
            })
            .collect()
    }

    #[test]
    fn with_phones_a_request_holds_one_attendees_positions_with_its_phones_token() {
        let tokens: Vec<PhoneToken> = ["ucd_a", "ucd_b", "ucd_c"]
            .into_iter()
            .filter_map(PhoneToken::new)
            .collect();
        let phone = |n: usize| Some(tokens[n].clone());
        let feed = Feed::new(&[11, 12, 13], Some(tokens.clone()), 1, 4, 5, 1.0, true);
        // Five reports, the attendees in turn: 11, 12, 13, 11, 12.
        assert_eq!(
            people(&feed),
            [
                (phone(0), vec![11, 11]),
                (phone(1), vec![12, 12]),
                (phone(2), vec![13]),
            ]
        );
        // The turn goes on where it stopped: 13, 11, 12, 13, 11.
        assert_eq!(
            people(&feed),
            [
                (phone(2), vec![13, 13]),
                (phone(0), vec![11, 11]),
                (phone(1), vec![12]),
            ]
        );
    }

    #[test]
    fn without_phones_one_request_holds_everyones_positions() {
        let feed = Feed::new(&[11, 12, 13], None, 1, 4, 5, 1.0, true);
        assert_eq!(people(&feed), [(None, vec![11, 12, 13, 11, 12])]);
        let keys: Vec<String> = feed.next_batches()[0]
            .locations
            .iter()
            .map(|location| location.key.clone())
            .collect();
        let distinct: std::collections::BTreeSet<&String> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len(), "{keys:?}");
        assert!(keys.iter().all(|key| !key.is_empty()), "{keys:?}");
    }

    #[test]
    fn without_keys_no_location_carries_one() {
        let unkeyed = Feed::new(&[11, 12, 13], None, 1, 4, 5, 1.0, false);
        let locations = &unkeyed.next_batches()[0].locations;
        assert_eq!(locations.len(), 5);
        assert!(locations.iter().all(|location| location.key.is_empty()));
    }
}
