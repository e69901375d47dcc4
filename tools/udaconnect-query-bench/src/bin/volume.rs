//! `volume` (`make bench-volume`): UdaConnect at a conference's volume of
//! stored history, step by step.
//!
//! For each size of `BENCH_STEPS` (1,000,000, 10,000,000 and 50,000,000
//! locations) it makes a fresh database on its own PostgreSQL with PostGIS
//! (`udaconnect migrate`), loads a made-up three-day conference into it
//! (`udaconnect generate --shape walk`: `BENCH_PERSONS`, 1,000, walking
//! between spots of 50 venues and reporting steadily from 09:00 to 18:00
//! on June 1–3, 2020, a fixed seed: at 50 M, one report every 1.7 s each)
//! and then:
//!
//! - computes the meetings of that history with `udaconnect
//!   meetings-backfill`, up to `BENCH_BACKFILL_UP_TO` locations (all
//!   steps by default): its time, the locations it folded in a second, peak
//!   memory and the meetings written;
//! - up to `BENCH_REFERENCE_UP_TO` locations (all steps by default),
//!   checks the meetings written equal the one-pass reference over the
//!   same rows, read in time order ([`TimeOrderedReference`]);
//! - starts every long-running target on it (`api`, `ingest`, `writer`,
//!   `meetings`, on a nats-server of the step's own), sends `BENCH_FEED` (5,000)
//!   locations through the edge and waits until they are stored and
//!   folded in;
//! - asks the API, for `BENCH_SAMPLE` (20) persons picked by a fixed
//!   seed: each one's meetings over the whole conference (every page),
//!   the v2 connections of one day at 5 m within 10 minutes (every page),
//!   and the original's endpoint for one day; p50 and p99 of the time
//!   from each request to its answer's last byte (summed over the pages,
//!   not counting this program's parsing of them), rows and bytes;
//!   an answer given up at the API's deadline is counted, not timed;
//! - reads each process's resident memory at its peak (`VmHWM`).
//!
//! `BENCH_DATABASE_URL` measures a database loaded before instead of
//! loading one, made as a step makes it (`udaconnect migrate`, then
//! `udaconnect generate --shape walk` with the step's size, persons,
//! venues, days, start and seed). The load is not timed again, and the
//! backfill folds in only what is not folded in yet. (A run stopped by a
//! signal takes its own server and data with it.)
//!
//! `BENCH_UDACONNECT` names another build's binary to measure (an older
//! one, side by side), `BENCH_LABEL` names it in the rows. It prints what
//! it measured and one `RESULT {...}` line, and adds rows to BENCHMARKS.md
//! (`BENCH_OUTPUT=-`: none). It exits non-zero when the
//! meetings differ from the reference or a step fails.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant, SystemTime},
};

use anyhow::Context as _;
use serde_json::{Value, json};
use testkit::{AppProcess, NatsServer, PostgresServer, bench};
use udaconnect_domain::{
    PersonId, Position, Timestamp,
    meeting::{Closest, Meeting, MeetingRules, Sighting, time_ordered::TimeOrderedReference},
};
use udaconnect_query_bench::{DATA_SEED, VENUES, list_setting, pick, quantile, setting, tool};

const MEMORY_HEADING: &str = "## UdaConnect at volume: memory";
const MEMORY_HEADER: &str = "| date | build | locations | load s | backfill s (folded/s) | meetings | backfill peak MB | api / ingest / writer / meetings peak MB | reference | load avg | machine | command |";
const QUESTIONS_HEADING: &str = "## UdaConnect at volume: questions";
const QUESTIONS_HEADER: &str = "| date | build | locations | question | requests (gave up) | p50 ms | p99 ms | rows a pass | bytes a pass | load avg | machine | command |";

/// Longest migrating, loading or a backfill may take.
const LOAD_DEADLINE: Duration = Duration::from_secs(6 * 3600);
/// Longest a target may take to be ready, or the feed to be folded in.
const READY_DEADLINE: Duration = Duration::from_secs(300);
/// Longest one HTTP request may take (the API's own deadline is shorter).
const REQUEST_DEADLINE: Duration = Duration::from_secs(120);
/// The conference: three days from June 1, 2020.
const FIRST_DAY: &str = "2020-06-01";
const DAYS: u32 = 3;
/// The day the one-day questions ask about.
const ONE_DAY: (&str, &str) = ("2020-06-02", "2020-06-03");

/// Locations sent through the edge at each step unless `BENCH_FEED` says.
const FEED: usize = 5_000;

/// The run's settings, from the environment.
struct Settings {
    steps: Vec<usize>,
    persons: usize,
    sample: usize,
    feed: usize,
    backfill_up_to: usize,
    reference_up_to: usize,
    /// A database loaded before, measured as it is.
    database: Option<String>,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let steps = list_setting("BENCH_STEPS", "1000000,10000000,50000000")
            .iter()
            .map(|step| {
                step.parse::<usize>()
                    .with_context(|| format!("BENCH_STEPS: {step:?} is not a whole number"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let settings = Self {
            steps,
            persons: setting("BENCH_PERSONS", 1_000)?,
            sample: setting("BENCH_SAMPLE", 20)?,
            feed: setting("BENCH_FEED", FEED)?,
            backfill_up_to: setting("BENCH_BACKFILL_UP_TO", usize::MAX)?,
            reference_up_to: setting("BENCH_REFERENCE_UP_TO", usize::MAX)?,
            database: std::env::var("BENCH_DATABASE_URL")
                .ok()
                .filter(|url| !url.is_empty()),
        };
        anyhow::ensure!(
            settings.database.is_none() || settings.steps.len() == 1,
            "BENCH_DATABASE_URL measures one step: BENCH_STEPS must name one size"
        );
        anyhow::ensure!(
            settings.steps.iter().all(|&step| step >= 1),
            "BENCH_STEPS must be at least 1 each"
        );
        anyhow::ensure!(settings.persons >= 2, "BENCH_PERSONS must be at least 2");
        anyhow::ensure!(
            (1..=settings.persons).contains(&settings.sample),
            "BENCH_SAMPLE must be from 1 to BENCH_PERSONS"
        );
        Ok(settings)
    }

    /// The settings this run was made with, as `make` variables.
    fn command(&self) -> String {
        let steps: Vec<String> = self.steps.iter().map(ToString::to_string).collect();
        let mut command = format!(
            " BENCH_STEPS={} BENCH_PERSONS={} BENCH_SAMPLE={}",
            steps.join(","),
            self.persons,
            self.sample
        );
        // The others only when they are not their defaults.
        for (name, value, default) in [
            ("BENCH_FEED", self.feed, FEED),
            ("BENCH_BACKFILL_UP_TO", self.backfill_up_to, usize::MAX),
            ("BENCH_REFERENCE_UP_TO", self.reference_up_to, usize::MAX),
        ] {
            if value != default {
                command.push_str(&format!(" {name}={value}"));
            }
        }
        if self.database.is_some() {
            command.push_str(" BENCH_DATABASE_URL=<the step's database, loaded before>");
        }
        command
    }
}

/// A question asked of every sampled person.
#[derive(Debug, Clone, Copy)]
enum Question {
    Meetings,
    V2Day,
    CompatDay,
}

impl Question {
    const ALL: [Self; 3] = [Self::Meetings, Self::V2Day, Self::CompatDay];

    fn label(self) -> &'static str {
        match self {
            Self::Meetings => "meetings, whole conference, every page",
            Self::V2Day => "v2 connections, 1 day, within 10 min, every page",
            Self::CompatDay => "original's endpoint, 1 day",
        }
    }

    /// The first page's address, and the answer's array.
    fn first_page(self, base: &str, person: PersonId) -> (String, &'static str) {
        let (day, next) = ONE_DAY;
        match self {
            Self::Meetings => (
                format!(
                    "{base}/api/v2/persons/{person}/meetings?start={FIRST_DAY}&end=2020-06-04&limit=1000"
                ),
                "meetings",
            ),
            Self::V2Day => (
                format!(
                    "{base}/api/v2/persons/{person}/connections?start={day}&end={next}&distance=5&within=10m&limit=1000"
                ),
                "contacts",
            ),
            Self::CompatDay => (
                format!(
                    "{base}/api/persons/{person}/connection?start_date={day}&end_date={next}&distance=5"
                ),
                "",
            ),
        }
    }
}

/// What one question got: its time, rows and bytes, or `None` when the
/// API gave up at its deadline.
async fn ask(
    client: &reqwest::Client,
    base: &str,
    question: Question,
    person: PersonId,
) -> anyhow::Result<Option<(f64, usize, usize)>> {
    let (first, key) = question.first_page(base, person);
    // The time of the requests and their answers' bytes; not of this
    // program's reading of them.
    let mut taken = Duration::ZERO;
    let (mut rows, mut bytes) = (0, 0);
    let mut url = first.clone();
    loop {
        let started = Instant::now();
        let response = client.get(&url).send().await?;
        let status = response.status().as_u16();
        let body = response.bytes().await?;
        taken += started.elapsed();
        if status == 503 {
            return Ok(None);
        }
        anyhow::ensure!(status == 200, "{url}: {status}");
        let value: Value = serde_json::from_slice(&body)?;
        let items = if key.is_empty() { &value } else { &value[key] };
        rows += items.as_array().context("an array")?.len();
        bytes += body.len();
        match value["next_cursor"].as_str() {
            Some(cursor) => url = format!("{first}&cursor={cursor}"),
            None => break,
        }
    }
    Ok(Some((taken.as_secs_f64() * 1000.0, rows, bytes)))
}

fn mb(kb: u64) -> f64 {
    (kb as f64 / 1024.0).round()
}

/// Migrates `db` and loads the step's conference into it: seconds taken.
fn load_conference(
    binary: &Path,
    db: &str,
    settings: &Settings,
    locations: usize,
) -> anyhow::Result<f64> {
    tool(binary, &["migrate"], db, LOAD_DEADLINE)?;
    let loading = Instant::now();
    tool(
        binary,
        &[
            "generate",
            "--persons",
            &settings.persons.to_string(),
            "--locations",
            &locations.to_string(),
            "--venues",
            &VENUES.to_string(),
            "--start",
            FIRST_DAY,
            "--days",
            &DAYS.to_string(),
            "--seed",
            &DATA_SEED.to_string(),
            "--shape",
            "walk",
        ],
        db,
        LOAD_DEADLINE,
    )?;
    Ok(loading.elapsed().as_secs_f64())
}

/// What `udaconnect meetings-backfill` did in one step.
struct Backfilled {
    seconds: f64,
    /// The report it printed.
    report: String,
    peak_mb: f64,
    /// Locations it folded in: all of the step's, less those a run
    /// stopped before had folded in already.
    folded: i64,
}

impl Backfilled {
    fn per_second(&self) -> f64 {
        self.folded as f64 / self.seconds.max(0.001)
    }
}

/// Runs `udaconnect meetings-backfill` to its end, timing it and reading
/// its peak resident memory.
async fn backfill(
    binary: &Path,
    db: &str,
    admin: &tokio_postgres::Client,
) -> anyhow::Result<Backfilled> {
    // Counted before and after rather than read from its report, which is
    // for people: what it folds in is what was not in meeting_position.
    let before = count(admin, "SELECT count(*) FROM meeting_position").await?;
    let started = Instant::now();
    let mut child = Command::new(binary)
        .arg("meetings-backfill")
        .env("DATABASE_URL", db)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the backfill")?;
    let mut peak_kb = 0;
    let (seconds, report) = loop {
        if let Some(status) = child.try_wait()? {
            let seconds = started.elapsed().as_secs_f64();
            let mut report = String::new();
            if let Some(mut out) = child.stdout.take() {
                std::io::Read::read_to_string(&mut out, &mut report)?;
            }
            anyhow::ensure!(status.success(), "the backfill failed: {status}\n{report}");
            break (seconds, report.trim().to_owned());
        }
        if let Ok(kb) = bench::peak_rss_kb(child.id()) {
            peak_kb = peak_kb.max(kb);
        }
        if started.elapsed() > LOAD_DEADLINE {
            child.kill()?;
            anyhow::bail!("the backfill took longer than {LOAD_DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let after = count(admin, "SELECT count(*) FROM meeting_position").await?;
    Ok(Backfilled {
        seconds,
        report,
        peak_mb: mb(peak_kb),
        folded: after - before,
    })
}

fn time(row: &tokio_postgres::Row, index: usize) -> Result<Timestamp, tokio_postgres::Error> {
    row.try_get(index).map(Timestamp::from_naive)
}

/// Rows read from the database at a time by the reference check.
const CHECK_FETCH: i32 = 50_000;

/// Whether the meetings stored equal the one-pass reference over the
/// locations stored, read in time order a portion at a time (the
/// reference holds only the last few minutes and the meetings), and how
/// long the check took.
async fn equals_reference(admin: &mut tokio_postgres::Client) -> anyhow::Result<(bool, f64)> {
    let started = Instant::now();
    let transaction = admin.transaction().await?;
    // The sort of every location, in memory where it fits.
    transaction
        .batch_execute("SET LOCAL work_mem = '512MB'")
        .await?;
    let mut reference = TimeOrderedReference::new(MeetingRules::default());
    let locations = transaction
        .bind(
            "SELECT id, person_id, creation_time, lat, lon FROM location \
             ORDER BY creation_time, id",
            &[],
        )
        .await?;
    each_row(&transaction, &locations, |row| {
        reference.push(Sighting {
            id: row.try_get(0)?,
            person: row.try_get(1)?,
            at: time(row, 2)?,
            position: Position {
                lat: row.try_get(3)?,
                lon: row.try_get(4)?,
            },
        })?;
        Ok(())
    })
    .await?;
    let expected = reference.meetings();
    let meetings = transaction
        .bind(
            "SELECT person_a, person_b, start_time, end_time, contacts, closest_m, closest_at, \
             closest_lat, closest_lon, closest_location_a, closest_location_b \
             FROM meeting ORDER BY person_a, person_b, start_time",
            &[],
        )
        .await?;
    let mut stored: Vec<Meeting> = Vec::with_capacity(expected.len());
    each_row(&transaction, &meetings, |row| {
        stored.push(Meeting {
            persons: (row.try_get(0)?, row.try_get(1)?),
            start: time(row, 2)?,
            end: time(row, 3)?,
            contacts: row.try_get(4)?,
            closest: Closest {
                metres: row.try_get(5)?,
                at: time(row, 6)?,
                place: Position {
                    lat: row.try_get(7)?,
                    lon: row.try_get(8)?,
                },
                locations: (row.try_get(9)?, row.try_get(10)?),
            },
        });
        Ok(())
    })
    .await?;
    transaction.commit().await?;
    Ok((stored == expected, started.elapsed().as_secs_f64()))
}

/// Runs `row` on every row of `portal`, [`CHECK_FETCH`] read at a time.
async fn each_row(
    transaction: &tokio_postgres::Transaction<'_>,
    portal: &tokio_postgres::Portal,
    mut row: impl FnMut(&tokio_postgres::Row) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    loop {
        let rows = transaction.query_portal(portal, CHECK_FETCH).await?;
        for each in &rows {
            row(each)?;
        }
        if rows.len() < CHECK_FETCH as usize {
            return Ok(());
        }
    }
}

async fn count(admin: &tokio_postgres::Client, query: &str) -> anyhow::Result<i64> {
    Ok(admin.query_one(query, &[]).await?.get(0))
}

/// Waits until `process` answers `/readyz` with 200.
async fn ready(client: &reqwest::Client, process: &AppProcess, name: &str) -> anyhow::Result<()> {
    let url = format!("{}/readyz", process.base_url().trim_end_matches('/'));
    let started = Instant::now();
    loop {
        if let Ok(response) = client.get(&url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < READY_DEADLINE,
            "{name}: not ready in {READY_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Where the steps' databases come from.
enum Databases {
    /// One loaded before (`BENCH_DATABASE_URL`), measured as it is.
    Loaded(String),
    /// Made and loaded by this run, on a server of its own.
    Fresh(Box<PostgresServer>),
}

/// One step's figures.
struct Step {
    locations: usize,
    /// `None` when the database was loaded before.
    load_s: Option<f64>,
    backfill: Option<Backfilled>,
    meetings: i64,
    reference: Option<bool>,
    peaks: Vec<(&'static str, f64)>,
    questions: Vec<(Question, Vec<f64>, usize, usize, usize)>,
    load: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let measured = bench::measured("BENCH_UDACONNECT", "udaconnect", "bench-volume")?;
    let binary = measured.binary.clone();
    let (build, machine) = (measured.label.clone(), bench::machine());
    let command = format!("{}{}", measured.command, settings.command());
    let databases = match &settings.database {
        Some(db) => Databases::Loaded(db.clone()),
        // Autovacuum on, as in production: the backfill fills
        // meeting_position from nothing, and with its statistics left
        // as they were at the load, the read of a fold's candidates ran
        // past the statement timeout at 30 M until it was analyzed.
        None => Databases::Fresh(Box::new(PostgresServer::start_with(&[
            ("shared_buffers", "1GB"),
            ("max_wal_size", "8GB"),
            ("autovacuum", "on"),
        ]))),
    };
    let client = reqwest::Client::builder()
        .timeout(REQUEST_DEADLINE)
        .build()?;
    let mut steps = Vec::new();
    let mut failures = Vec::new();
    for (n, &locations) in settings.steps.iter().enumerate() {
        let load = bench::load_average();
        eprintln!("volume: {locations} locations");
        let (db, load_s) = match &databases {
            Databases::Loaded(db) => (db.clone(), None),
            Databases::Fresh(pg) => {
                let db = pg.create_database(&format!("volume{n}"));
                let load_s = load_conference(&binary, &db, &settings, locations)?;
                (db, Some(load_s))
            }
        };
        let (mut admin, connection) = tokio_postgres::connect(&db, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        admin.batch_execute("ANALYZE").await?;
        if let Some(load_s) = load_s {
            eprintln!("volume: loaded in {load_s:.0} s");
        }

        let backfilled = if locations <= settings.backfill_up_to {
            let run = backfill(&binary, &db, &admin).await?;
            eprintln!(
                "volume: backfill in {:.0} s, {:.0} folded a second: {}",
                run.seconds,
                run.per_second(),
                run.report
            );
            Some(run)
        } else {
            None
        };
        let reference = if backfilled.is_some() && locations <= settings.reference_up_to {
            let (equal, check_s) = equals_reference(&mut admin).await?;
            eprintln!("volume: checked against the reference in {check_s:.0} s");
            if !equal {
                failures.push(format!(
                    "{locations} locations: the meetings differ from the reference"
                ));
            }
            Some(equal)
        } else {
            None
        };
        let meetings = count(&admin, "SELECT count(*) FROM meeting").await?;

        // Every long-running target, on this history.
        let nats = NatsServer::start();
        let envs = vec![
            ("DATABASE_URL", db.clone()),
            ("NATS_URL", nats.url()),
            ("UDACONNECT_MIGRATE", "false".to_owned()),
            ("UDACONNECT_OPEN_API", "true".to_owned()),
            ("UDACONNECT_GRPC_ADDR", "127.0.0.1:0".to_owned()),
            ("RUST_LOG", "warn,platform=info".to_owned()),
        ];
        let targets = ["api", "ingest", "writer", "meetings"];
        let processes: Vec<AppProcess> = targets
            .iter()
            .map(|target| AppProcess::spawn(&binary, "UDACONNECT", &[target], &envs))
            .collect();
        for (process, name) in processes.iter().zip(targets) {
            ready(&client, process, name).await?;
        }
        let edge = processes[1].base_url().trim_end_matches('/').to_owned();
        let base = processes[0].base_url().trim_end_matches('/').to_owned();
        let before = count(&admin, "SELECT count(*) FROM meeting_position").await?;
        let mut sent = 0;
        while sent < settings.feed {
            let batch: Vec<Value> = (sent..(sent + 500).min(settings.feed))
                .map(|i| {
                    json!({
                        "person_id": 1 + i % settings.persons,
                        // A hundred spots 200 m apart, a few metres wide.
                        "lat": 37.553 + (i % 100) as f64 * 0.002 + (i % 3) as f64 * 0.000_01,
                        "lon": -122.29,
                        "time": format!("2020-06-03T17:{:02}:{:02}Z", (i / 60) % 60, i % 60),
                    })
                })
                .collect();
            let response = client
                .post(format!("{edge}/api/v2/locations:batch"))
                .json(&json!({ "locations": batch }))
                .send()
                .await?;
            anyhow::ensure!(
                response.status().is_success(),
                "the feed: {}",
                response.status()
            );
            sent += batch.len();
        }
        let expected = before + i64::try_from(sent)?;
        let feeding = Instant::now();
        while count(&admin, "SELECT count(*) FROM meeting_position").await? < expected {
            anyhow::ensure!(
                feeding.elapsed() < READY_DEADLINE,
                "the feed not folded in within {READY_DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        let ids: Vec<PersonId> = admin
            .query("SELECT id FROM person ORDER BY id", &[])
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let mut questions = Vec::new();
        for question in Question::ALL {
            let (mut times, mut gave_up, mut rows, mut bytes) = (Vec::new(), 0, 0, 0);
            for &person in &pick(&ids, settings.sample) {
                match ask(&client, &base, question, person).await? {
                    Some((ms, r, b)) => {
                        times.push(ms);
                        rows += r;
                        bytes += b;
                    }
                    None => gave_up += 1,
                }
            }
            times.sort_by(f64::total_cmp);
            eprintln!(
                "volume: {}: p50 {:.1} ms, p99 {:.1} ms, {rows} rows, {bytes} bytes, {gave_up} given up",
                question.label(),
                quantile(&times, 0.5),
                quantile(&times, 0.99)
            );
            questions.push((question, times, gave_up, rows, bytes));
        }
        let mut peaks = Vec::new();
        for (process, name) in processes.iter().zip(targets) {
            peaks.push((name, mb(bench::peak_rss_kb(process.pid())?)));
        }
        eprintln!("volume: peak RSS {peaks:?}");
        for mut process in processes {
            if process.terminate(Duration::from_secs(15)).is_none() {
                eprintln!("volume: a target did not stop in time, killed");
            }
        }
        steps.push(Step {
            locations,
            load_s,
            backfill: backfilled,
            meetings,
            reference,
            peaks,
            questions,
            load,
        });
    }

    let now = now_utc();
    let mut memory_rows = Vec::new();
    let mut question_rows = Vec::new();
    let mut result = Vec::new();
    for step in &steps {
        let backfill = step.backfill.as_ref().map_or("–".to_owned(), |run| {
            format!("{:.0} ({:.0})", run.seconds, run.per_second())
        });
        let backfill_peak = step
            .backfill
            .as_ref()
            .map_or("–".to_owned(), |run| format!("{:.0}", run.peak_mb));
        let peaks: Vec<String> = step
            .peaks
            .iter()
            .map(|(_, mb)| format!("{mb:.0}"))
            .collect();
        let reference = match step.reference {
            Some(true) => "equal",
            Some(false) => "DIFFERENT",
            None => "–",
        };
        let load_s = step.load_s.map_or("–".to_owned(), |s| format!("{s:.0}"));
        memory_rows.push(format!(
            "| {now} | {build} | {} | {load_s} | {backfill} | {} | {backfill_peak} | {} | {reference} | {} | {machine} | `{command}` |",
            step.locations,
            step.meetings,
            peaks.join(" / "),
            step.load,
        ));
        let mut asked = serde_json::Map::new();
        for (question, times, gave_up, rows, bytes) in &step.questions {
            question_rows.push(format!(
                "| {now} | {build} | {} | {} | {} ({gave_up}) | {:.1} | {:.1} | {rows} | {bytes} | {} | {machine} | `{command}` |",
                step.locations,
                question.label(),
                times.len() + gave_up,
                quantile(times, 0.5),
                quantile(times, 0.99),
                step.load,
            ));
            asked.insert(
                question.label().to_owned(),
                json!({"p50_ms": quantile(times, 0.5), "p99_ms": quantile(times, 0.99),
                       "rows": rows, "bytes": bytes, "gave_up": gave_up}),
            );
        }
        result.push(json!({
            "locations": step.locations,
            "load_s": step.load_s.map(f64::round),
            "backfill_s": step.backfill.as_ref().map(|run| run.seconds.round()),
            "backfill_folded": step.backfill.as_ref().map(|run| run.folded),
            "backfill_report": step.backfill.as_ref().map(|run| run.report.clone()),
            "backfill_peak_mb": step.backfill.as_ref().map(|run| run.peak_mb),
            "meetings": step.meetings,
            "reference": step.reference,
            "peak_rss_mb": step.peaks.iter().map(|(name, mb)| ((*name).to_owned(), json!(mb))).collect::<serde_json::Map<_, _>>(),
            "questions": asked,
            "load_before": step.load,
        }));
    }
    for row in memory_rows.iter().chain(&question_rows) {
        println!("{row}");
    }
    println!("RESULT {}", json!({ "steps": result }));
    let output = std::env::var("BENCH_OUTPUT").unwrap_or_else(|_| "BENCHMARKS.md".to_owned());
    if output != "-" {
        let path = Path::new(&output);
        for row in &memory_rows {
            bench::append_row(path, MEMORY_HEADING, MEMORY_HEADER, row)?;
        }
        for row in &question_rows {
            bench::append_row(path, QUESTIONS_HEADING, QUESTIONS_HEADER, row)?;
        }
    }
    anyhow::ensure!(failures.is_empty(), "{}", failures.join("; "));
    Ok(())
}

/// Now, to the second, as the other benchmarks' rows say it.
fn now_utc() -> String {
    chrono::DateTime::<chrono::Utc>::from(SystemTime::now())
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
