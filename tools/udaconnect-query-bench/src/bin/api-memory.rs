//! `api-memory` (`make bench-api-memory`): what `udaconnect api` holds in
//! memory, and how fast it answers the connection queries, at a size of
//! stored history.
//!
//! It starts its own PostgreSQL with PostGIS, creates the schema with
//! `udaconnect migrate` (the location table partitioned by day), loads a
//! made-up June 2020 conference with `udaconnect generate`
//! (`BENCH_LOCATIONS`, 1,000,000; `BENCH_PERSONS`, 1,000; 50 venues, a
//! fixed seed), runs `ANALYZE` and a checkpoint, and then starts the
//! release `udaconnect api` on it, a fresh process per turn, in each mode
//! of `BENCH_MODES` in turn (`sql,replica`), `BENCH_ROUNDS` (2) times,
//! alternating:
//!
//! - `sql`: the API as it runs by default, the connection queries in SQL;
//! - `replica`: with `UDACONNECT_REPLICA=true`, from its in-memory
//!   replica of every location.
//!
//! Each turn waits for `/readyz`, then asks, for `BENCH_SAMPLE` (20)
//! persons picked by a fixed seed, one request after another: the
//! original's endpoint and v2 (every page), for one day (2020-06-10) and
//! for thirty (2020-06-01 to 2020-07-01), at 5 m. It reads the kernel's
//! accounting of the process: its resident memory once ready (`VmRSS`),
//! its peak since it started (`VmHWM`: the replica's load included), and
//! what it still holds two seconds after the last answer. Latencies are
//! from the request to the answer's last byte; an answer the API gave up
//! on at its deadline (`UDACONNECT_QUERY_TIMEOUT`) is counted, not timed.
//!
//! Every answer is compared across modes and rounds: the same question
//! must get the same bytes. Last, with `BENCH_EXPLAIN` (1), it prints
//! `EXPLAIN (ANALYZE, BUFFERS)` of the one-day v2 query and of the
//! original's endpoint's, for the first person, as the API sends them.
//!
//! It prints a table and one `RESULT {...}` line, and adds rows to
//! BENCHMARKS.md (`BENCH_OUTPUT=-`: none). It exits non-zero if answers
//! differ.

use std::{
    collections::{BTreeMap, hash_map::DefaultHasher},
    hash::{Hash as _, Hasher as _},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use chrono::NaiveDate;
use serde_json::{Value, json};
use testkit::{AppProcess, PostgresServer, bench};
use udaconnect_domain::{
    CompatQuery, ConnectionQuery, Distance, PersonId, Timestamp, query::MAX_PAGE,
};
use udaconnect_query_bench::{
    DATA_SEED, DISTANCE_M, VENUES, list_setting, pick, quantile, setting, tool,
};
use udaconnect_store::{PgConfig, PgStore};

/// The tables in BENCHMARKS.md this benchmark adds its rows to.
const MEMORY_HEADING: &str = "## UdaConnect API memory at size";
const MEMORY_HEADER: &str = "| date | build | locations | connection queries | turn | ready s | RSS ready MB | RSS peak MB | RSS settled MB | requests (gave up) | load avg | machine | command |";
const LATENCY_HEADING: &str = "## UdaConnect API latency at size";
const LATENCY_HEADER: &str = "| date | build | locations | connection queries | question | requests | p50 ms | p99 ms | rows a pass | bytes a pass | load avg | machine | command |";

/// The original's endpoint's row limit, as the API asks the store.
const COMPAT_LIMIT: usize = 100_001;
/// Longest one HTTP request may take (the API's own deadline is shorter).
const REQUEST_DEADLINE: Duration = Duration::from_secs(120);
/// Longest an API process may take to be ready (the replica loads first).
const READY_DEADLINE: Duration = Duration::from_secs(600);
/// Longest migrating, loading, `ANALYZE` or an `EXPLAIN ANALYZE` may take.
const LOAD_DEADLINE: Duration = Duration::from_secs(3600);
/// How long the process is left alone after its last answer before what
/// it holds is read.
const SETTLE: Duration = Duration::from_secs(2);

/// How the API answers the connection queries in a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    /// As configured by default: in SQL.
    Sql,
    /// `UDACONNECT_REPLICA=true`.
    Replica,
}

impl Mode {
    fn parse(text: &str) -> anyhow::Result<Self> {
        match text.trim() {
            "sql" => Ok(Self::Sql),
            "replica" => Ok(Self::Replica),
            other => anyhow::bail!("BENCH_MODES: `sql` or `replica`, got {other:?}"),
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::Sql => "sql",
            Self::Replica => "replica",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Sql => "in SQL (default)",
            Self::Replica => "replica (UDACONNECT_REPLICA=true)",
        }
    }

    fn settings(self) -> Vec<(&'static str, String)> {
        match self {
            Self::Sql => Vec::new(),
            Self::Replica => vec![("UDACONNECT_REPLICA", "true".to_owned())],
        }
    }
}

/// The run's settings, from the environment.
struct Settings {
    persons: usize,
    locations: usize,
    sample: usize,
    rounds: usize,
    modes: Vec<Mode>,
    explain: bool,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let modes = list_setting("BENCH_MODES", "sql,replica")
            .iter()
            .map(|mode| Mode::parse(mode))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let settings = Self {
            persons: setting("BENCH_PERSONS", 1_000)?,
            locations: setting("BENCH_LOCATIONS", 1_000_000)?,
            sample: setting("BENCH_SAMPLE", 20)?,
            rounds: setting("BENCH_ROUNDS", 2)?,
            modes,
            explain: setting("BENCH_EXPLAIN", 1)? != 0,
        };
        anyhow::ensure!(settings.persons >= 2, "BENCH_PERSONS must be at least 2");
        anyhow::ensure!(
            settings.locations >= 1,
            "BENCH_LOCATIONS must be at least 1"
        );
        anyhow::ensure!(
            (1..=settings.persons).contains(&settings.sample),
            "BENCH_SAMPLE must be from 1 to BENCH_PERSONS"
        );
        anyhow::ensure!(settings.rounds >= 1, "BENCH_ROUNDS must be at least 1");
        Ok(settings)
    }

    /// The command that makes this run.
    fn command(&self) -> String {
        let modes: Vec<&str> = self.modes.iter().map(|mode| mode.key()).collect();
        format!(
            "make bench-api-memory BENCH_LOCATIONS={} BENCH_PERSONS={} BENCH_SAMPLE={} BENCH_ROUNDS={} BENCH_MODES={}",
            self.locations,
            self.persons,
            self.sample,
            self.rounds,
            modes.join(",")
        )
    }
}

/// One of the questions asked of every person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Question {
    CompatDay,
    V2Day,
    CompatMonth,
    V2Month,
}

impl Question {
    const ALL: [Self; 4] = [
        Self::CompatDay,
        Self::V2Day,
        Self::CompatMonth,
        Self::V2Month,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::CompatDay => "original's endpoint, 1 day",
            Self::V2Day => "v2, 1 day, every page",
            Self::CompatMonth => "original's endpoint, 30 days",
            Self::V2Month => "v2, 30 days, every page",
        }
    }

    /// First day, and the day the person's own locations end before.
    fn days(self) -> (NaiveDate, NaiveDate) {
        let day = |month, day| NaiveDate::from_ymd_opt(2020, month, day).unwrap_or_default();
        match self {
            Self::CompatDay | Self::V2Day => (day(6, 10), day(6, 11)),
            Self::CompatMonth | Self::V2Month => (day(6, 1), day(7, 1)),
        }
    }
}

/// One answer.
struct Answer {
    elapsed: Duration,
    rows: usize,
    bytes: usize,
    /// Of the answer's bytes (every page's, in order).
    digest: u64,
}

/// What one question got: an answer, or the API's refusal at its deadline.
enum Outcome {
    Answered(Answer),
    GaveUp(String),
}

async fn get(client: &reqwest::Client, url: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let response = client.get(url).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.bytes().await?.to_vec()))
}

/// Asks `question` about `person` of the API at `base`.
async fn ask(
    client: &reqwest::Client,
    base: &str,
    question: Question,
    person: PersonId,
) -> anyhow::Result<Outcome> {
    let (start, end) = question.days();
    let started = Instant::now();
    let mut hasher = DefaultHasher::new();
    let (mut rows, mut bytes) = (0, 0);
    match question {
        Question::CompatDay | Question::CompatMonth => {
            let url = format!(
                "{base}/api/persons/{person}/connection?start_date={start}&end_date={end}&distance={DISTANCE_M}"
            );
            let (status, body) = get(client, &url).await?;
            if status == 503 {
                return Ok(Outcome::GaveUp(String::from_utf8_lossy(&body).into_owned()));
            }
            anyhow::ensure!(status == 200, "{url}: {status}");
            let value: Value = serde_json::from_slice(&body)?;
            rows = value.as_array().context("an array of rows")?.len();
            bytes = body.len();
            body.hash(&mut hasher);
        }
        Question::V2Day | Question::V2Month => {
            let url = format!(
                "{base}/api/v2/persons/{person}/connections?start={start}&end={end}&distance={DISTANCE_M}&limit={MAX_PAGE}"
            );
            let mut cursor: Option<String> = None;
            loop {
                let page_url = match &cursor {
                    Some(cursor) => format!("{url}&cursor={cursor}"),
                    None => url.clone(),
                };
                let (status, body) = get(client, &page_url).await?;
                if status == 503 {
                    return Ok(Outcome::GaveUp(String::from_utf8_lossy(&body).into_owned()));
                }
                anyhow::ensure!(status == 200, "{page_url}: {status}");
                let value: Value = serde_json::from_slice(&body)?;
                rows += value["contacts"].as_array().context("contacts")?.len();
                bytes += body.len();
                body.hash(&mut hasher);
                match value["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
        }
    }
    Ok(Outcome::Answered(Answer {
        elapsed: started.elapsed(),
        rows,
        bytes,
        digest: hasher.finish(),
    }))
}

/// One API process's turn.
struct Turn {
    mode: Mode,
    round: usize,
    ready_s: f64,
    ready_mb: f64,
    peak_mb: f64,
    settled_mb: f64,
    requests: usize,
    gave_up: usize,
    load: String,
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let binary: PathBuf = std::env::current_exe()?.with_file_name("udaconnect");
    anyhow::ensure!(
        binary.is_file(),
        "no udaconnect binary at {} (cargo build --release -p udaconnect)",
        binary.display()
    );
    let build = bench::build();
    let machine = bench::machine();
    let command = settings.command();

    eprintln!(
        "api-memory: loading {} persons, {} locations",
        settings.persons, settings.locations
    );
    let pg = PostgresServer::start_with(&[("shared_buffers", "1GB"), ("max_wal_size", "8GB")]);
    let db = pg.create_database("connect");
    let migrated = tool(&binary, &["migrate"], &db, LOAD_DEADLINE)?;
    let loading = Instant::now();
    let loaded = tool(
        &binary,
        &[
            "generate",
            "--persons",
            &settings.persons.to_string(),
            "--locations",
            &settings.locations.to_string(),
            "--venues",
            &VENUES.to_string(),
            "--seed",
            &DATA_SEED.to_string(),
        ],
        &db,
        LOAD_DEADLINE,
    )?;
    eprintln!(
        "api-memory: {migrated}; {loaded} ({:.0} s in all)",
        loading.elapsed().as_secs_f64()
    );
    let (admin, connection) = tokio_postgres::connect(&db, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    tokio::time::timeout(LOAD_DEADLINE, admin.batch_execute("ANALYZE; CHECKPOINT"))
        .await
        .context("ANALYZE: no answer")??;
    let size: String = admin
        .query_one(
            "SELECT pg_size_pretty(sum(pg_total_relation_size(relid))) \
             FROM pg_partition_tree('location'::regclass) WHERE isleaf",
            &[],
        )
        .await?
        .get(0);
    eprintln!("api-memory: location, with its indexes: {size}");
    let ids: Vec<PersonId> = admin
        .query("SELECT id FROM person ORDER BY id", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let persons = pick(&ids, settings.sample);
    eprintln!("api-memory: persons {persons:?}");

    let client = reqwest::Client::builder()
        .timeout(REQUEST_DEADLINE)
        .build()?;
    let mut turns = Vec::new();
    let mut latencies: BTreeMap<(Mode, Question), Vec<f64>> = BTreeMap::new();
    let mut per_pass: BTreeMap<(Mode, Question), (usize, usize)> = BTreeMap::new();
    // Each (person, question)'s answer as first seen, to hold every other
    // turn's to it.
    let mut answers: BTreeMap<(PersonId, Question), (u64, Mode, usize)> = BTreeMap::new();
    let mut differ = Vec::new();
    for round in 1..=settings.rounds {
        for &mode in &settings.modes {
            let load = bench::load_average();
            let mut env = mode.settings();
            env.extend([
                ("DATABASE_URL", db.clone()),
                ("UDACONNECT_MIGRATE", "false".to_owned()),
                // The memory measured, not the tokens: no token needed.
                ("UDACONNECT_OPEN_API", "true".to_owned()),
                // The address is logged at `info` by `platform`.
                ("RUST_LOG", "warn,platform=info".to_owned()),
            ]);
            let started = Instant::now();
            let api = AppProcess::spawn(&binary, "UDACONNECT", &["api"], &env);
            let base = api.base_url().trim_end_matches('/').to_owned();
            while client
                .get(format!("{base}/readyz"))
                .send()
                .await
                .map(|response| !response.status().is_success())
                .unwrap_or(true)
            {
                anyhow::ensure!(
                    started.elapsed() < READY_DEADLINE,
                    "{}: not ready in {READY_DEADLINE:?}",
                    mode.label()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let ready_s = started.elapsed().as_secs_f64();
            let pid = api.pid();
            let ready_kb = bench::rss_kb(pid)?;
            let (mut requests, mut gave_up) = (0, 0);
            for &person in &persons {
                for question in Question::ALL {
                    requests += 1;
                    match ask(&client, &base, question, person).await? {
                        Outcome::GaveUp(why) => {
                            gave_up += 1;
                            eprintln!(
                                "api-memory: {}, {}, person {person}: gave up: {why}",
                                mode.label(),
                                question.label()
                            );
                        }
                        Outcome::Answered(answer) => {
                            latencies
                                .entry((mode, question))
                                .or_default()
                                .push(answer.elapsed.as_secs_f64() * 1000.0);
                            if round == 1 {
                                let pass = per_pass.entry((mode, question)).or_default();
                                pass.0 += answer.rows;
                                pass.1 += answer.bytes;
                            }
                            let first = *answers.entry((person, question)).or_insert((
                                answer.digest,
                                mode,
                                round,
                            ));
                            if first.0 != answer.digest {
                                differ.push(format!(
                                    "person {person}, {}: {} round {round} differs from {} round {}",
                                    question.label(),
                                    mode.label(),
                                    first.1.label(),
                                    first.2
                                ));
                            }
                        }
                    }
                }
            }
            tokio::time::sleep(SETTLE).await;
            let turn = Turn {
                mode,
                round,
                ready_s,
                ready_mb: mb(ready_kb),
                peak_mb: mb(bench::peak_rss_kb(pid)?),
                settled_mb: mb(bench::rss_kb(pid)?),
                requests,
                gave_up,
                load,
            };
            eprintln!(
                "api-memory: {} round {round}: ready in {:.1} s at {:.0} MB; peak {:.0} MB, settled {:.0} MB; {requests} requests, {gave_up} given up",
                mode.label(),
                turn.ready_s,
                turn.ready_mb,
                turn.peak_mb,
                turn.settled_mb
            );
            turns.push(turn);
            drop(api);
        }
    }

    let date = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let locations = settings.locations.to_string();
    let mut memory_rows = Vec::new();
    for turn in &turns {
        memory_rows.push(format!(
            "| {date} | {build} | {locations} | {} | {} of {} | {:.1} | {:.0} | {:.0} | {:.0} | {} ({}) | {} | {machine} | `{command}` |",
            turn.mode.label(),
            turn.round,
            settings.rounds,
            turn.ready_s,
            turn.ready_mb,
            turn.peak_mb,
            turn.settled_mb,
            turn.requests,
            turn.gave_up,
            turn.load,
        ));
    }
    let load = bench::load_average();
    let mut latency_rows = Vec::new();
    let mut latency_json = Vec::new();
    for (&(mode, question), values) in &mut latencies {
        values.sort_by(f64::total_cmp);
        let (p50, p99) = (quantile(values, 0.5), quantile(values, 0.99));
        let (rows, bytes) = per_pass.get(&(mode, question)).copied().unwrap_or_default();
        latency_rows.push(format!(
            "| {date} | {build} | {locations} | {} | {} | {} | {p50:.1} | {p99:.1} | {rows} | {bytes} | {load} | {machine} | `{command}` |",
            mode.label(),
            question.label(),
            values.len(),
        ));
        latency_json.push(json!({
            "mode": mode.key(), "question": question.label(), "requests": values.len(),
            "p50_ms": p50, "p99_ms": p99, "rows_a_pass": rows, "bytes_a_pass": bytes,
        }));
    }
    println!("{MEMORY_HEADER}");
    memory_rows.iter().for_each(|row| println!("{row}"));
    println!("\n{LATENCY_HEADER}");
    latency_rows.iter().for_each(|row| println!("{row}"));

    if settings.explain {
        let first = *persons.first().context("a person to explain")?;
        let mut config = PgConfig::new(db.clone());
        config.statement_timeout = LOAD_DEADLINE;
        let store = PgStore::new(&config)?;
        let distance = Distance::new("distance", DISTANCE_M)?;
        let (start, end) = Question::V2Day.days();
        let v2 = ConnectionQuery {
            person_id: first,
            start: Timestamp::start_of(start),
            end: Timestamp::start_of(end),
            distance,
            within: None,
            after: None,
            limit: MAX_PAGE + 1,
        };
        let compat = CompatQuery {
            person_id: first,
            start,
            end,
            distance,
            limit: COMPAT_LIMIT,
        };
        println!(
            "\nEXPLAIN (ANALYZE, BUFFERS), v2, person {first}, 1 day ({start}):\n{}",
            store.explain_connections(&v2, true).await?
        );
        println!(
            "\nEXPLAIN (ANALYZE, BUFFERS), the original's endpoint, person {first}, 1 day ({start}):\n{}",
            store.explain_compat_connections(&compat, true).await?
        );
    }

    let output = std::env::var("BENCH_OUTPUT").unwrap_or_else(|_| "BENCHMARKS.md".to_owned());
    if output != "-" {
        let path = Path::new(&output);
        for row in &memory_rows {
            bench::append_row(path, MEMORY_HEADING, MEMORY_HEADER, row)?;
        }
        for row in &latency_rows {
            bench::append_row(path, LATENCY_HEADING, LATENCY_HEADER, row)?;
        }
        eprintln!("api-memory: rows added to {output}");
    }
    let result = json!({
        "date": date, "build": build, "machine": machine, "command": command,
        "locations": settings.locations, "persons": persons, "location_size": size,
        "turns": turns.iter().map(|turn| json!({
            "mode": turn.mode.key(), "round": turn.round, "ready_s": turn.ready_s,
            "rss_ready_mb": turn.ready_mb, "rss_peak_mb": turn.peak_mb,
            "rss_settled_mb": turn.settled_mb, "requests": turn.requests,
            "gave_up": turn.gave_up, "load": turn.load,
        })).collect::<Vec<_>>(),
        "latencies": latency_json,
        "answers_differ": differ,
    });
    println!("RESULT {result}");
    anyhow::ensure!(differ.is_empty(), "answers differ: {differ:?}");
    Ok(())
}
