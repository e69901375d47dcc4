//! `answer-memory` (`make bench-answer-memory`): what one large answer of
//! the original's connection endpoint costs the API in memory.
//!
//! It starts `udaconnect all` as `cargo run` does (the embedded store and
//! its demo conference, three days of 300 attendees at a dozen booths),
//! asks for one person's connections over one day at 5 m — about 750,000
//! rows, 185 MB of JSON — reads the whole answer, and reads the kernel's
//! accounting: how far the process's peak resident memory rose above what
//! it held just before (`VmHWM`, reset through `clear_refs`), and how much
//! more it still holds once answered (`VmRSS`). Each case runs on a fresh
//! process, so that memory an earlier answer freed, and the allocator
//! kept, hides nothing:
//!
//! - the whole answer (`UDACONNECT_COMPAT_MAX_ROWS=1000000`, the limit
//!   before it was lowered);
//! - the answer under the default row limit (cut at 100,000 rows), for a
//!   build that has one.
//!
//! `BENCH_UDACONNECT` names the binary to measure (by default the release
//! build beside this one), so that an older build can be measured side by
//! side; `BENCH_LABEL` says which build it is in the rows. It prints a
//! `RESULT {...}` line and adds a row per case to BENCHMARKS.md
//! (`BENCH_OUTPUT=-`: none).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use serde_json::json;
use testkit::{AppProcess, bench};

/// The table in BENCHMARKS.md this benchmark adds its rows to.
const HEADING: &str = "## UdaConnect API memory per answer";
const HEADER: &str = "| date | build measured | answer | rows | bytes | seconds | peak memory rise MB | held after MB | load avg | machine | command |";
/// One person's day on the demo conference, at the original's 5 m.
const QUESTION: &str =
    "/api/persons/1/connection?start_date=2020-06-08&end_date=2020-06-09&distance=5";
/// Long enough for the slowest build measured to answer.
const PATIENCE: Duration = Duration::from_secs(600);

/// What one answer cost.
struct Cost {
    rows: usize,
    bytes: usize,
    seconds: f64,
    memory: bench::MemoryCost,
}

/// Asks the question of a fresh `binary` with `settings`, reading the
/// answer to its end.
async fn measure(binary: &Path, settings: &[(&str, &str)]) -> anyhow::Result<Cost> {
    let mut env: Vec<(&str, String)> = settings
        .iter()
        .map(|(name, value)| (*name, (*value).to_owned()))
        .collect();
    env.push(("UDACONNECT_GRPC_ADDR", "127.0.0.1:0".to_owned()));
    // The demo as it was made: no live feed adding locations meanwhile.
    env.push(("UDACONNECT_DEMO_FEED", "0".to_owned()));
    let app = AppProcess::spawn(binary, "UDACONNECT", &["all"], &env);
    let http = reqwest::Client::builder().timeout(PATIENCE).build()?;
    let base = app.base_url().trim_end_matches('/').to_owned();
    let ready = Instant::now();
    while http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|response| !response.status().is_success())
        .unwrap_or(true)
    {
        anyhow::ensure!(ready.elapsed() < PATIENCE, "not ready in {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = app.pid();
    let before = bench::memory_before(pid)?;
    let started = Instant::now();
    let mut response = http.get(format!("{base}{QUESTION}")).send().await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{QUESTION}: {}",
        response.status()
    );
    let (mut bytes, mut rows) = (0, 0);
    while let Some(chunk) = response.chunk().await? {
        bytes += chunk.len();
        // One `"location"` per row.
        rows += chunk.windows(10).filter(|w| w == b"\"location\"").count();
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Cost {
        rows,
        bytes,
        seconds,
        memory: bench::memory_cost(pid, before)?,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let measured = bench::measured("BENCH_UDACONNECT", "udaconnect", "bench-answer-memory")?;
    // A build without a query deadline ignores the setting.
    let cases: [(&str, &[(&str, &str)]); 2] = [
        (
            "one day, whole (row limit 1,000,000)",
            &[
                ("UDACONNECT_COMPAT_MAX_ROWS", "1000000"),
                ("UDACONNECT_QUERY_TIMEOUT", "600s"),
            ],
        ),
        ("one day, default row limit", &[]),
    ];
    let mut results = Vec::new();
    for (what, settings) in cases {
        let load = bench::load_average();
        let cost = measure(&measured.binary, settings)
            .await
            .with_context(|| format!("measuring {what}"))?;
        eprintln!(
            "answer-memory: {what}: {} rows, {} bytes in {:.2} s, peak +{:.1} MB, held after +{:.1} MB",
            cost.rows,
            cost.bytes,
            cost.seconds,
            cost.memory.peak_rise_mb,
            cost.memory.held_after_mb
        );
        measured.record_memory(
            HEADING,
            HEADER,
            &[
                what.to_owned(),
                cost.rows.to_string(),
                cost.bytes.to_string(),
                format!("{:.2}", cost.seconds),
            ],
            &cost.memory,
            &load,
        )?;
        results.push(json!({
            "answer": what, "rows": cost.rows, "bytes": cost.bytes, "seconds": cost.seconds,
            "peak_rise_mb": cost.memory.peak_rise_mb, "held_after_mb": cost.memory.held_after_mb,
        }));
    }
    println!(
        "RESULT {}",
        json!({"build": measured.label, "binary": measured.binary.display().to_string(), "answers": results})
    );
    Ok(())
}
