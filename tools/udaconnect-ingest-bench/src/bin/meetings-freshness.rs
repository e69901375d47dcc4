//! `meetings-freshness` (`make bench-meetings`): how soon a meeting is
//! visible after the edge acknowledged the location that made it, with the
//! whole pipeline running (edge, writer, meetings, API) under a simulated
//! conference sending `BENCH_RATE` locations/s for `BENCH_SECONDS`: five
//! times as many attendees as the rate (a report every 5 s each), twenty
//! to a venue (at most 400 venues, the simulator's most).
//!
//! Two probe persons stand side by side and report every 200 ms through
//! the edge's HTTP API; each report grows their meeting. For each report
//! the time from its acknowledgement until the meeting's end reaches it
//! is measured twice: as read from the API's live stream
//! (`/api/v2/persons/{id}/meetings/live`) and from the MEETINGS stream on
//! the bus. Besides: locations stored and folded in per second, and the
//! peak RSS of the meetings process.
//!
//! The meetings process logs each fold's steps (at debug): the run sums
//! them, so that `RESULT` says where the folds' time went (`fold_steps`:
//! folds, locations and meetings written per fold, milliseconds per step).
//!
//! `BENCH_MEETINGS` meetings processes share the work (1 by default), each
//! a shard of its own (`UDACONNECT_MEETINGS_SHARDS`), or all of them one
//! consumer with `BENCH_SHARDED=false`; `fold_steps` counts the folds the
//! database made start again (`conflicts`). `BENCH_PG` adds PostgreSQL
//! settings (`name=value,…`), such as the predicate locks' limits;
//! `BENCH_MEETINGS_ENV` settings of the meetings processes
//! (`UDACONNECT_MEETINGS_FETCH=16,…`). `BENCH_UDACONNECT` names another build's binary to measure (an older
//! one, side by side), `BENCH_LABEL` names it in the row. It prints one
//! `RESULT {...}` line last and adds a row to BENCHMARKS.md
//! (`BENCH_OUTPUT=-`: none); it fails if no probe was shown at all.

use std::{
    collections::VecDeque,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use anyhow::Context as _;
use futures::StreamExt as _;
use serde_json::{Value, json};
use testkit::{AppProcess, NatsServer, PostgresServer, SseClient, bench};
use udaconnect_domain::{
    Timestamp,
    conference::{self, ScaleConfig},
};
use udaconnect_ingest_bench::{env, ready, simulate};
use udaconnect_store::{PgConfig, PgStore};

/// Each attendee's phone reports every this many seconds, as the
/// README's sizing has it: the attendees are the rate times this.
const REPORT_EVERY_S: u64 = 5;
/// Attendees per venue, as in a conference of 1,000 at 50 venues.
const PER_VENUE: u64 = 20;
const PROBE_EVERY: Duration = Duration::from_millis(200);
const HEADING: &str = "## UdaConnect meetings freshness";
const HEADER: &str = "| date | rate/s asked (attendees, venues) | stored/s | folded/s | probes | API live p50 / p99 ms | bus p50 / p99 ms | meetings RSS peak MB | load avg | machine | build | command |";

async fn number(db: &str, query: &str) -> anyhow::Result<i64> {
    let (client, connection) = tokio_postgres::connect(db, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client.query_one(query, &[]).await?.try_get(0)?)
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    (samples[rank.min(samples.len() - 1)] * 10.0).round() / 10.0
}

/// Probe reports: (the report's time, when its acknowledgement came).
type Acks = Arc<Mutex<VecDeque<(Timestamp, Instant)>>>;

/// Takes the acknowledged reports up to `end` (a meeting's end, as JSON):
/// how long each took to show.
fn shown(acks: &Acks, end: &Value, at: Instant, into: &mut Vec<f64>) {
    let Ok(end) = serde_json::from_value::<Timestamp>(end.clone()) else {
        return;
    };
    let mut acks = acks
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    while acks.front().is_some_and(|(time, _)| *time <= end) {
        if let Some((_, acked)) = acks.pop_front() {
            into.push(at.duration_since(acked).as_secs_f64() * 1000.0);
        }
    }
}

/// The meetings processes' fold steps (their debug events) summed: how
/// many folds, how many started again for a conflict, the counts per
/// fold, and the milliseconds of each step per fold.
fn fold_steps(output: &[String]) -> Value {
    let events: Vec<Value> = output
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .collect();
    let conflicts = events
        .iter()
        .filter(|event| event["message"] == "meetings: a fold conflicted, started again")
        .count();
    let mut folds = 0_u32;
    let mut sums: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
    for event in events
        .iter()
        .filter(|event| event["message"] == "meetings: a fold's steps")
    {
        folds += 1;
        if let Some(fields) = event.as_object() {
            for (key, value) in fields {
                if let Some(number) = value.as_f64() {
                    *sums.entry(key.clone()).or_default() += number;
                }
            }
        }
    }
    let per_fold: serde_json::Map<String, Value> = sums
        .into_iter()
        .map(|(key, sum)| (key, json!((sum / f64::from(folds.max(1))).round())))
        .collect();
    json!({"folds": folds, "conflicts": conflicts, "per_fold": per_fold})
}

/// The `name=value` pairs of setting `var`, `text`, separated by commas.
fn pairs<'a>(var: &str, text: &'a str) -> anyhow::Result<Vec<(&'a str, &'a str)>> {
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(name, value)| (name.trim(), value.trim()))
                .with_context(|| format!("{var}: {pair} is not name=value"))
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = env("BENCH_SECONDS", "20")
        .parse()
        .context("BENCH_SECONDS")?;
    let rate: u64 = env("BENCH_RATE", "10000").parse().context("BENCH_RATE")?;
    let folders: usize = env("BENCH_MEETINGS", "1")
        .parse()
        .context("BENCH_MEETINGS")?;
    let sharded: bool = env("BENCH_SHARDED", "true")
        .parse()
        .context("BENCH_SHARDED")?;
    // `BENCH_MEETINGS_ENV`: the meetings processes' own settings.
    let meetings_env = env("BENCH_MEETINGS_ENV", "");
    let folder_settings = pairs("BENCH_MEETINGS_ENV", &meetings_env)?;
    let measured = bench::measured("BENCH_UDACONNECT", "udaconnect", "bench-meetings")?;
    let binary = measured.binary.clone();
    let attendees = (rate * REPORT_EVERY_S).max(PER_VENUE);
    // The simulator walks between at most 400 venues.
    let venues = (attendees / PER_VENUE).clamp(1, 400);
    let persons = usize::try_from(attendees)?;
    let load_before = bench::load_average();
    let nats = NatsServer::start();
    // `BENCH_PG`: more server settings.
    let extra = env("BENCH_PG", "");
    let mut settings = vec![("max_wal_size", "8GB")];
    settings.extend(pairs("BENCH_PG", &extra)?);
    let pg = PostgresServer::start_with(&settings);
    let db = pg.create_database("bench");
    let store = PgStore::new(&PgConfig::new(db.clone()))?;
    store.migrate().await?;
    store
        .bulk_load(&conference::scale(&ScaleConfig {
            persons: persons + 2,
            locations: 0,
            ..ScaleConfig::default()
        }))
        .await?;
    let envs = vec![
        ("NATS_URL", nats.url()),
        ("DATABASE_URL", db.clone()),
        (
            "RUST_LOG",
            "warn,platform=info,udaconnect::ingest=info,udaconnect_store::pg::meetings=debug"
                .to_owned(),
        ),
        ("UDACONNECT_GRPC_ADDR", "127.0.0.1:0".to_owned()),
        (
            "UDACONNECT_LOCATIONS_STREAM_MAX_MESSAGES",
            "1000000".to_owned(),
        ),
        ("UDACONNECT_REPLICA", "false".to_owned()),
        // The pipeline measured, not the tokens: no token needed.
        ("UDACONNECT_OPEN_API", "true".to_owned()),
    ];
    let edge = AppProcess::spawn(&binary, "UDACONNECT", &["ingest"], &envs);
    let api = AppProcess::spawn(&binary, "UDACONNECT", &["api"], &envs);
    let writer = AppProcess::spawn(&binary, "UDACONNECT", &["writer"], &envs);
    let shards = folders.max(1);
    let meetings: Vec<AppProcess> = (0..shards)
        .map(|shard| {
            let mut envs = envs.clone();
            envs.extend(
                folder_settings
                    .iter()
                    .map(|&(name, value)| (name, value.to_owned())),
            );
            if sharded {
                envs.push(("UDACONNECT_MEETINGS_SHARDS", shards.to_string()));
                envs.push(("UDACONNECT_MEETINGS_SHARD", shard.to_string()));
            }
            AppProcess::spawn(&binary, "UDACONNECT", &["meetings"], &envs)
        })
        .collect();
    for process in [&edge, &api, &writer].into_iter().chain(&meetings) {
        ready(process).await;
    }
    let grpc = edge
        .output()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find_map(|event| event["grpc"].as_str().map(|addr| format!("http://{addr}")))
        .context("the edge's gRPC address")?;
    let (probe_a, probe_b) = (i64::try_from(persons)? + 1, i64::try_from(persons)? + 2);

    // Followers: the API's live stream and the bus.
    let acks: Acks = Arc::default();
    let live_samples = Arc::new(Mutex::new(Vec::new()));
    let mut live = SseClient::connect(
        &format!("{}/api/v2/persons/{probe_a}/meetings/live", api.base_url()),
        None,
    )
    .await
    .map_err(anyhow::Error::msg)?
    .with_patience(Duration::from_secs(seconds + 60));
    let live_acks = Arc::clone(&acks);
    let live_into = Arc::clone(&live_samples);
    let live_task = tokio::spawn(async move {
        while let Some(event) = live.next_event().await {
            if event.event.as_deref() != Some("meeting") {
                continue;
            }
            let Ok(meeting) = serde_json::from_str::<Value>(&event.data) else {
                continue;
            };
            let mut into = live_into
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            shown(&live_acks, &meeting["end"], Instant::now(), &mut into);
        }
    });
    let bus_acks: Acks = Arc::default();
    let bus_samples = Arc::new(Mutex::new(Vec::new()));
    let events = {
        let client = async_nats::connect(nats.url()).await?;
        client.subscribe("udaconnect.meetings").await?
    };
    let (bus_acks_task, bus_into) = (Arc::clone(&bus_acks), Arc::clone(&bus_samples));
    let bus_task = tokio::spawn(async move {
        let mut events = events;
        while let Some(message) = events.next().await {
            let Ok(meeting) = serde_json::from_slice::<Value>(&message.payload) else {
                continue;
            };
            let persons = &meeting["persons"];
            if persons[0] != probe_a || persons[1] != probe_b {
                continue;
            }
            let mut into = bus_into
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            shown(&bus_acks_task, &meeting["end"], Instant::now(), &mut into);
        }
    });

    // The load, and the probes beside it.
    let sim_args: Vec<String> = [
        "--api-url",
        api.base_url(),
        "--ingest-url",
        edge.base_url(),
        "--grpc-url",
        &grpc,
        "--transport",
        "grpc",
        "--first-person",
        "1",
        "--attendees",
        &attendees.to_string(),
        "--venues",
        &venues.to_string(),
        "--rate",
        &rate.to_string(),
        "--batch",
        "500",
        "--connections",
        "8",
        "--duration",
        &format!("{seconds}s"),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let stored_before = number(&db, "SELECT count(*)::int8 FROM location").await?;
    let started = Instant::now();
    let load = std::thread::spawn({
        let binary = binary.clone();
        move || simulate(&binary, &sim_args)
    });
    let http = reqwest::Client::new();
    let mut probes = 0;
    let mut peak_rss = 0.0_f64;
    let mut interval = tokio::time::interval(PROBE_EVERY);
    while started.elapsed() < Duration::from_secs(seconds) {
        interval.tick().await;
        // A second ago, as a phone's report is a moment old.
        let time = Timestamp::now().plus_micros(-1_000_000);
        let body = json!({"locations": [
            {"person_id": probe_a, "lat": 52.52, "lon": 13.405, "time": time.to_string()},
            {"person_id": probe_b, "lat": 52.52001, "lon": 13.405, "time": time.to_string()},
        ]});
        let response = http
            .post(format!("{}/api/v2/locations:batch", edge.base_url()))
            .json(&body)
            .send()
            .await?;
        if response.status().is_success() {
            let acked = Instant::now();
            for queue in [&acks, &bus_acks] {
                queue
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push_back((time, acked));
            }
            probes += 1;
        }
        for process in &meetings {
            peak_rss =
                peak_rss.max(bench::rss_kb(process.pid()).map_or(0.0, |kb| kb as f64 / 1024.0));
        }
    }
    let sent = load
        .join()
        .map_err(|_| anyhow::anyhow!("the simulator's thread panicked"))??;
    let elapsed = started.elapsed().as_secs_f64();
    let stored = number(&db, "SELECT count(*)::int8 FROM location").await? - stored_before;
    let folded = number(&db, "SELECT count(*)::int8 FROM meeting_position").await?;
    // Let the last probes show.
    tokio::time::sleep(Duration::from_secs(3)).await;
    live_task.abort();
    bus_task.abort();
    let mut live = live_samples
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let mut bus = bus_samples
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let result = json!({
        "rate_asked": rate,
        "attendees": attendees,
        "venues": venues,
        "seconds": seconds,
        "accepted_per_s": sent["accepted_per_s"],
        "stored_per_s": (stored as f64 / elapsed).round(),
        "folded_per_s": (folded as f64 / elapsed).round(),
        "probes": probes,
        "live_shown": live.len(),
        "live_p50_ms": percentile(&mut live, 50.0),
        "live_p99_ms": percentile(&mut live, 99.0),
        "bus_shown": bus.len(),
        "bus_p50_ms": percentile(&mut bus, 50.0),
        "bus_p99_ms": percentile(&mut bus, 99.0),
        "meetings_rss_peak_mb": peak_rss.round(),
        "load_before": load_before,
        "meetings_processes": meetings.len(),
        "sharded": sharded && meetings.len() > 1,
        "fold_steps": fold_steps(&meetings.iter().flat_map(AppProcess::output).collect::<Vec<_>>()),
    });
    let mut command = format!(
        "{} BENCH_RATE={rate} BENCH_SECONDS={seconds}",
        measured.command
    );
    if meetings.len() > 1 {
        command.push_str(&format!(" BENCH_MEETINGS={}", meetings.len()));
        if !sharded {
            command.push_str(" BENCH_SHARDED=false");
        }
    }
    if !extra.is_empty() {
        command.push_str(&format!(" BENCH_PG={extra}"));
    }
    if !meetings_env.is_empty() {
        command.push_str(&format!(" BENCH_MEETINGS_ENV={meetings_env}"));
    }
    let row = format!(
        "| {} | {rate} ({attendees}, {venues}) | {} | {} | {probes} | {} / {} | {} / {} | {} | {load_before} | {} | {} | `{command}` |",
        humantime::format_rfc3339_seconds(SystemTime::now()),
        result["stored_per_s"],
        result["folded_per_s"],
        result["live_p50_ms"],
        result["live_p99_ms"],
        result["bus_p50_ms"],
        result["bus_p99_ms"],
        result["meetings_rss_peak_mb"],
        bench::machine(),
        measured.label,
    );
    anyhow::ensure!(
        result["live_shown"].as_u64().is_some_and(|n| n > 0)
            && result["bus_shown"].as_u64().is_some_and(|n| n > 0),
        "no probe was shown: {result}"
    );
    let path = PathBuf::from(env("BENCH_OUTPUT", "BENCHMARKS.md"));
    if path.as_os_str() != "-" {
        bench::append_row(&path, HEADING, HEADER, &row)?;
    }
    drop((edge, api, writer, meetings, pg));
    println!("RESULT {result}");
    Ok(())
}
