//! `udaconnect-ingest-bench` (`make bench-ingest`): the ingest path at
//! volume, measured side by side in one run on this machine, the load
//! generator (`udaconnect simulate`) included.
//!
//! 1. **edge**: the simulator sends as fast as the edge takes (over
//!    `BENCH_TRANSPORT`), for `BENCH_SECONDS`, to an edge cutting batches
//!    into bus messages of 1,000 locations, then to one publishing one
//!    message per location: accepted locations/s;
//! 2. **end to end**: rows/s the writer stored during the first, against
//!    the raw ceiling of the same database (one `COPY` of as many rows
//!    into the same schema, in a database of its own, by this program),
//!    with `BENCH_MEETINGS` meetings processes (1 by default, each a
//!    shard of its own) folding the stored locations in meanwhile, as
//!    deployed: how many they folded a second is beside it; they are
//!    stopped before the `COPY`, so as not to slow the ceiling;
//! 3. **freshness** at 10,000 locations/s (or half the ceiling if lower):
//!    p99 from the edge's acknowledgement to visible through the API;
//! 4. the writer's RSS before, during and after a database outage while
//!    the stream fills.
//!
//! The API runs as deployed, keeping its connections replica caught up
//! with what the writer stores; `BENCH_API_REPLICA=false` runs it without,
//! to see what the replica costs the rest.
//!
//! Every location carries an idempotency key, as this project's clients
//! send them, each claimed in PostgreSQL before the edge answers;
//! `BENCH_KEYS=false` sends none, as the original's clients do.
//!
//! It prints one `RESULT {...}` line last and adds a row to BENCHMARKS.md.

use std::{
    path::PathBuf,
    time::{Duration, Instant, SystemTime},
};

use anyhow::Context as _;
use serde_json::{Value, json};
use testkit::{AppProcess, NatsServer, PostgresServer, bench};
use udaconnect_domain::conference::{self, ScaleConfig};
use udaconnect_ingest_bench::{env, ready, simulate};
use udaconnect_store::{PgConfig, PgStore};

const PERSONS: usize = 1000;

/// The table in BENCHMARKS.md this benchmark adds its rows to.
const HEADING: &str = "## UdaConnect ingest";
const HEADER: &str = "| date | transport | edge locations/s (batch messages) | edge locations/s (one message each) | edge ack p99 ms | end to end rows/s | COPY ceiling rows/s | end to end of ceiling | meetings processes (folded/s) | freshness rate/s | freshness p50 / p99 ms | writer RSS MB before / during / after an outage | load avg | machine | build | command |";

fn rss_mb(pid: u32) -> f64 {
    bench::rss_kb(pid).map_or(0.0, |kb| kb as f64 / 1024.0)
}

/// Waits until the database holds `rows` locations (at most 10 minutes).
async fn wait_stored(db: &str, rows: i64) -> anyhow::Result<i64> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let now = count(db).await?;
        if now >= rows || Instant::now() >= deadline {
            return Ok(now);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn count(db: &str) -> anyhow::Result<i64> {
    count_of(db, "SELECT count(*) FROM location").await
}

/// Locations folded into meetings so far.
async fn folded(db: &str) -> anyhow::Result<i64> {
    count_of(db, "SELECT count(*) FROM meeting_position").await
}

async fn count_of(db: &str, query: &str) -> anyhow::Result<i64> {
    let (client, connection) = tokio_postgres::connect(db, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client.query_one(query, &[]).await?.try_get(0)?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = env("BENCH_SECONDS", "20")
        .parse()
        .context("BENCH_SECONDS")?;
    let transport = env("BENCH_TRANSPORT", "grpc");
    anyhow::ensure!(
        matches!(transport.as_str(), "grpc" | "http"),
        "BENCH_TRANSPORT must be grpc or http"
    );
    let replica = env("BENCH_API_REPLICA", "true");
    anyhow::ensure!(
        matches!(replica.as_str(), "true" | "false"),
        "BENCH_API_REPLICA must be true or false"
    );
    let keys = env("BENCH_KEYS", "true");
    anyhow::ensure!(
        matches!(keys.as_str(), "true" | "false"),
        "BENCH_KEYS must be true or false"
    );
    let folders: usize = env("BENCH_MEETINGS", "1")
        .parse()
        .context("BENCH_MEETINGS must be a whole number")?;
    let binary: PathBuf = std::env::current_exe()?.with_file_name("udaconnect");
    let load_before = bench::load_average();
    let nats = NatsServer::start();
    let pg = PostgresServer::start_with(&[("max_wal_size", "8GB")]);
    let db = pg.create_database("bench");
    let ceiling_db = pg.create_database("ceiling");
    for url in [&db, &ceiling_db] {
        PgStore::new(&PgConfig::new(url.clone()))?.migrate().await?;
    }
    let data = conference::scale(&ScaleConfig {
        persons: PERSONS,
        locations: 0,
        ..ScaleConfig::default()
    });
    PgStore::new(&PgConfig::new(db.clone()))?
        .bulk_load(&data)
        .await?;
    let envs = |extra: &[(&'static str, &str)]| {
        let mut envs = vec![
            ("NATS_URL", nats.url()),
            ("DATABASE_URL", db.clone()),
            ("RUST_LOG", "warn,platform=info".to_owned()),
            ("UDACONNECT_GRPC_ADDR", "127.0.0.1:0".to_owned()),
            // The pipeline measured, not the tokens: no token needed.
            ("UDACONNECT_OPEN_API", "true".to_owned()),
            (
                "UDACONNECT_LOCATIONS_STREAM_MAX_MESSAGES",
                "1000000".to_owned(),
            ),
        ];
        envs.extend(extra.iter().map(|(key, value)| (*key, (*value).to_owned())));
        envs
    };
    let grpc_of = |edge: &AppProcess| -> anyhow::Result<String> {
        edge.output()
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find_map(|event| event["grpc"].as_str().map(|addr| format!("http://{addr}")))
            .context("the edge's gRPC address")
    };
    let edge = AppProcess::spawn(
        &binary,
        "UDACONNECT",
        &["ingest"],
        &envs(&[("RUST_LOG", "warn,platform=info,udaconnect::ingest=info")]),
    );
    let api = AppProcess::spawn(
        &binary,
        "UDACONNECT",
        &["api"],
        &envs(&[("UDACONNECT_REPLICA", &replica)]),
    );
    let mut writer = AppProcess::spawn(&binary, "UDACONNECT", &["writer"], &envs(&[]));
    let shards = folders.to_string();
    let mut meetings: Vec<AppProcess> = (0..folders)
        .map(|shard| {
            AppProcess::spawn(
                &binary,
                "UDACONNECT",
                &["meetings"],
                &envs(&[
                    ("UDACONNECT_MEETINGS_SHARDS", &shards),
                    ("UDACONNECT_MEETINGS_SHARD", &shard.to_string()),
                ]),
            )
        })
        .collect();
    for process in [&edge, &api, &writer].into_iter().chain(&meetings) {
        ready(process).await;
    }
    let sim = |edge: &AppProcess, rate: &str, secs: u64| -> anyhow::Result<Vec<String>> {
        Ok(vec![
            "--api-url".into(),
            api.base_url().into(),
            "--ingest-url".into(),
            edge.base_url().into(),
            "--grpc-url".into(),
            grpc_of(edge)?,
            "--transport".into(),
            transport.clone(),
            "--first-person".into(),
            "1".into(),
            "--attendees".into(),
            PERSONS.to_string(),
            "--rate".into(),
            rate.into(),
            "--batch".into(),
            "1000".into(),
            "--connections".into(),
            "8".into(),
            "--duration".into(),
            format!("{secs}s"),
            "--freshness-every".into(),
            "100ms".into(),
            "--keys".into(),
            keys.clone(),
        ])
    };

    // 1 and 2: the edge at full speed; the writer behind it.
    eprintln!("bench: edge at full speed for {seconds} s ({transport})");
    let before = count(&db).await?;
    let started = Instant::now();
    let edge_run = simulate(&binary, &sim(&edge, "0", seconds)?)?;
    let accepted = edge_run["accepted"].as_i64().unwrap_or(0);
    let stored = wait_stored(&db, before + accepted).await? - before;
    let e2e_s = started.elapsed().as_secs_f64();
    let e2e = stored as f64 / e2e_s;
    let folded = folded(&db).await?;
    let folded_per_s = folded as f64 / e2e_s;
    eprintln!(
        "bench: {} meetings processes folded {folded} of {stored} locations meanwhile",
        meetings.len()
    );
    meetings.clear();

    // The ceiling: one COPY of as many rows into the same schema.
    let rows = usize::try_from(stored.max(100_000)).unwrap_or(100_000);
    let ceiling_data = conference::scale(&ScaleConfig {
        persons: PERSONS,
        locations: rows,
        ..ScaleConfig::default()
    });
    let copy_started = Instant::now();
    PgStore::new(&PgConfig::new(ceiling_db.clone()))?
        .bulk_load(&ceiling_data)
        .await?;
    let ceiling = rows as f64 / copy_started.elapsed().as_secs_f64();

    // One message per location.
    let single = AppProcess::spawn(
        &binary,
        "UDACONNECT",
        &["ingest"],
        &envs(&[
            ("UDACONNECT_INGEST_CHUNK", "1"),
            ("RUST_LOG", "warn,platform=info,udaconnect::ingest=info"),
        ]),
    );
    ready(&single).await;
    eprintln!("bench: one message per location for {} s", seconds.min(10));
    let single_run = simulate(&binary, &sim(&single, "0", seconds.min(10))?)?;
    drop(single);

    // 3: freshness at 10,000/s, or half the ceiling.
    let rate = if ceiling < 20_000.0 {
        ceiling / 2.0
    } else {
        10_000.0
    };
    eprintln!("bench: freshness at {rate:.0}/s");
    let mut expected = before + accepted + single_run["accepted"].as_i64().unwrap_or(0);
    wait_stored(&db, expected).await?;
    let fresh = simulate(
        &binary,
        &sim(&edge, &format!("{rate:.0}"), seconds.min(20))?,
    )?;

    // 4: the writer through a database outage while the stream fills.
    expected += fresh["accepted"].as_i64().unwrap_or(0);
    wait_stored(&db, expected).await?;
    let rss_before = rss_mb(writer.pid());
    let mut pg = pg;
    pg.stop();
    let filler_args = sim(&edge, "10000", 15)?;
    let (filled, rss_during) = std::thread::scope(|scope| {
        let filler = scope.spawn(|| simulate(&binary, &filler_args));
        // Sampled near the end of the outage, with the stream at its fullest.
        std::thread::sleep(Duration::from_secs(12));
        let during = rss_mb(writer.pid());
        (filler.join(), during)
    });
    let filled = filled.map_err(|_| anyhow::anyhow!("the simulator's thread panicked"))??;
    pg.start_again();
    expected += filled["accepted"].as_i64().unwrap_or(0);
    let after_outage = wait_stored(&db, expected).await?;
    anyhow::ensure!(
        after_outage >= expected,
        "the writer stored {after_outage} of {expected} locations after the outage"
    );
    let rss_after = rss_mb(writer.pid());
    writer.kill();

    let result = json!({
        "transport": transport,
        "seconds": seconds,
        "edge_accepted_per_s": edge_run["accepted_per_s"],
        "edge_ack_p99_ms": edge_run["ack_p99_ms"],
        "edge_one_message_per_location_per_s": single_run["accepted_per_s"],
        "e2e_rows_per_s": e2e.round(),
        "copy_ceiling_rows_per_s": ceiling.round(),
        "e2e_of_ceiling_pct": (e2e / ceiling * 1000.0).round() / 10.0,
        "keys": keys == "true",
        "meetings_processes": folders,
        "meetings_folded_per_s": folded_per_s.round(),
        "fresh_rate_per_s": rate.round(),
        "fresh_p50_ms": fresh["fresh_p50_ms"],
        "fresh_p99_ms": fresh["fresh_p99_ms"],
        "fresh_samples": fresh["fresh_samples"],
        "writer_rss_mb_before_during_after": [rss_before.round(), rss_during.round(), rss_after.round()],
        "load_before": load_before,
    });
    let mut command = format!(
        "make bench-ingest BENCH_SECONDS={seconds} BENCH_TRANSPORT={transport} BENCH_API_REPLICA={replica} BENCH_MEETINGS={folders}"
    );
    if keys != "true" {
        command.push_str(&format!(" BENCH_KEYS={keys}"));
    }
    let row = format!(
        "| {} | {transport} | {} | {} | {} | {} | {} | {} % | {folders} ({}) | {} | {} / {} | {} / {} / {} | {load_before} | {} | {} | `{command}` |",
        humantime::format_rfc3339_seconds(SystemTime::now()),
        result["edge_accepted_per_s"],
        result["edge_one_message_per_location_per_s"],
        result["edge_ack_p99_ms"],
        result["e2e_rows_per_s"],
        result["copy_ceiling_rows_per_s"],
        result["e2e_of_ceiling_pct"],
        result["meetings_folded_per_s"],
        result["fresh_rate_per_s"],
        result["fresh_p50_ms"],
        result["fresh_p99_ms"],
        rss_before.round(),
        rss_during.round(),
        rss_after.round(),
        bench::machine(),
        bench::build(),
    );
    let path = PathBuf::from(env("BENCH_OUTPUT", "BENCHMARKS.md"));
    if path.as_os_str() != "-" {
        bench::append_row(&path, HEADING, HEADER, &row)?;
    }
    drop((edge, api));
    println!("RESULT {result}");
    Ok(())
}
