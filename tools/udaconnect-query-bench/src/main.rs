//! `udaconnect-query-bench` (`make bench-queries`): who met whom, at
//! size, measured side by side in one run on this machine.
//!
//! It starts its own PostgreSQL with PostGIS, creates the schema with
//! `udaconnect migrate`, loads a made-up June 2020 conference with
//! `udaconnect generate` (`BENCH_PERSONS`, 1,000; `BENCH_LOCATIONS`,
//! 1,000,000; 50 venues, a fixed seed), runs `ANALYZE`, prewarms the
//! buffers, checkpoints and starts `udaconnect api` on it twice: with
//! `UDACONNECT_REPLICA=true`, the connection queries answered from its
//! in-memory replica, and with `UDACONNECT_REPLICA=false` (the default),
//! in SQL. For
//! persons picked by a fixed seed (`BENCH_SAMPLE`, 20) it then times, one
//! request after another:
//!
//! 1. over HTTP, on both, the original's endpoint and v2, for one day and
//!    for the month, and v2 with `within=10m` for the month;
//! 2. the embedded store with the same data, through the `Store` trait in
//!    this process (the binary's embedded store only holds its demo
//!    conference);
//! 3. the original's own query, its exact SQL text, one statement per own
//!    location as `services.py` ran it, on the same data with the
//!    original's index on `creation_time`; for the month only the first
//!    `BENCH_ORIGINAL_MONTH` (3) persons. A person's replay stops at
//!    `BENCH_ORIGINAL_BUDGET` (30 s) and its time is projected from the
//!    statements run to all of them (each of the month's statements
//!    scans every location of June).
//!
//! It checks every measurement answered, that the original's endpoint, v2
//! and the original agree, prints the v2 query's plan, a table and one
//! `RESULT {...}` line last, and (unless `BENCH_RECORD=0`) adds the rows
//! to BENCHMARKS.md. It exits non-zero if a check fails.

mod record;
mod sample;

use std::{
    collections::BTreeSet,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use chrono::NaiveDate;
use serde_json::{Value, json};
use testkit::{AppProcess, PostgresServer, bench};
use udaconnect_domain::{
    CompatQuery, ConnectionQuery, ContactCursor, Distance, PersonId, Store, Timestamp, Within,
    conference::{self, ScaleConfig},
    query::MAX_PAGE,
};
use udaconnect_query_bench::{DATA_SEED, DISTANCE_M, VENUES, pick, setting, tool};
use udaconnect_store::original::OriginalQuery;
use udaconnect_store::{MemoryStore, PgConfig, PgStore};

use crate::sample::{Measurement, Range, Sample};

/// The measurements of the API with `UDACONNECT_REPLICA=true` (the
/// connection queries from its replica), and their labels: the original's endpoint,
/// v2, v2 within 10 minutes.
const REPLICA_KEYS: [&str; 3] = ["compat", "v2", "v2_within_10m"];
const REPLICA_LABELS: [&str; 3] = [
    "original's endpoint, HTTP, PostgreSQL + replica",
    "v2, HTTP, PostgreSQL + replica",
    "v2 within=10m, HTTP, PostgreSQL + replica",
];
/// The same with `UDACONNECT_REPLICA=false`: in SQL.
const SQL_KEYS: [&str; 3] = ["sql_compat", "sql_v2", "sql_v2_within_10m"];
const SQL_LABELS: [&str; 3] = [
    "original's endpoint, HTTP, PostgreSQL in SQL",
    "v2, HTTP, PostgreSQL in SQL",
    "v2 within=10m, HTTP, PostgreSQL in SQL",
];

/// Requests before measuring, per endpoint.
const WARM_UP: usize = 3;
/// Longest one HTTP request may take.
const REQUEST_DEADLINE: Duration = Duration::from_secs(120);
/// Longest the original may take for one person's question.
const ORIGINAL_DEADLINE: Duration = Duration::from_secs(600);
/// Longest connecting, preparing or a small read may take.
const DB_DEADLINE: Duration = Duration::from_secs(30);
/// Longest migrating, loading or indexing may take.
const LOAD_DEADLINE: Duration = Duration::from_secs(1800);

fn june(day: u32) -> anyhow::Result<NaiveDate> {
    NaiveDate::from_ymd_opt(2020, 6, day).context("a day of June 2020")
}

/// The run's settings, from the environment.
struct Settings {
    persons: usize,
    locations: usize,
    sample: usize,
    original_month: usize,
    original_budget: Duration,
    record: bool,
    output: PathBuf,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let settings = Self {
            persons: setting("BENCH_PERSONS", 1_000)?,
            locations: setting("BENCH_LOCATIONS", 1_000_000)?,
            sample: setting("BENCH_SAMPLE", 20)?,
            original_month: setting("BENCH_ORIGINAL_MONTH", 3)?,
            original_budget: Duration::from_secs(setting("BENCH_ORIGINAL_BUDGET", 30)?.try_into()?),
            record: std::env::var("BENCH_RECORD").map_or(true, |value| value.trim() != "0"),
            output: PathBuf::from(
                std::env::var("BENCH_OUTPUT").unwrap_or_else(|_| "BENCHMARKS.md".to_owned()),
            ),
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
        Ok(settings)
    }

    /// The command that makes this run.
    fn command(&self) -> String {
        let target = if self.record {
            "bench-queries"
        } else {
            "bench-queries-smoke"
        };
        format!(
            "make {target} BENCH_PERSONS={} BENCH_LOCATIONS={} BENCH_SAMPLE={} BENCH_ORIGINAL_MONTH={} BENCH_ORIGINAL_BUDGET={}",
            self.persons,
            self.locations,
            self.sample,
            self.original_month,
            self.original_budget.as_secs()
        )
    }
}

/// `work`, failing if it takes longer than `deadline`.
async fn within<T, E: Into<anyhow::Error>>(
    what: &str,
    deadline: Duration,
    work: impl Future<Output = Result<T, E>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(deadline, work)
        .await
        .with_context(|| format!("{what}: no answer within {deadline:?}"))?
        .map_err(Into::into)
        .with_context(|| what.to_owned())
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = within(
        "connecting to the database",
        DB_DEADLINE,
        tokio_postgres::connect(url, tokio_postgres::NoTls),
    )
    .await?;
    tokio::spawn(connection);
    Ok(client)
}

/// One GET: the body as JSON, its size, and how long until it was read.
async fn get(client: &reqwest::Client, url: &str) -> anyhow::Result<(Value, usize, Duration)> {
    let started = Instant::now();
    let response = client.get(url).send().await?;
    let status = response.status();
    let body = response.bytes().await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        status.is_success(),
        "{url}: {status}: {}",
        String::from_utf8_lossy(&body[..body.len().min(500)])
    );
    Ok((serde_json::from_slice(&body)?, body.len(), elapsed))
}

fn ids(values: &[Value], pointer: &str) -> impl Iterator<Item = i64> {
    values
        .iter()
        .filter_map(move |value| value.pointer(pointer).and_then(Value::as_i64))
}

fn person_set(values: impl Iterator<Item = i64>) -> BTreeSet<PersonId> {
    values
        .filter_map(|id| PersonId::try_from(id).ok())
        .collect()
}

/// The API under test.
struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    /// The original's endpoint: every (own, other) pair.
    async fn compat(&self, person: PersonId, range: Range) -> anyhow::Result<Sample> {
        let url = format!(
            "{}/api/persons/{person}/connection?start_date={}&end_date={}&distance={DISTANCE_M}",
            self.base, range.start, range.end
        );
        let (body, bytes, elapsed) = get(&self.client, &url).await?;
        let rows = body.as_array().context("the original's answer is a list")?;
        let mut locations: Vec<i64> = ids(rows, "/location/id").collect();
        locations.sort_unstable();
        Ok(Sample {
            person,
            elapsed,
            rows: rows.len(),
            bytes: Some(bytes),
            persons: person_set(ids(rows, "/person/id")),
            locations: Some(locations),
            projected: None,
        })
    }

    /// v2: one entry per other person, every page.
    async fn v2(
        &self,
        person: PersonId,
        range: Range,
        within: Option<&str>,
    ) -> anyhow::Result<Sample> {
        let mut url = format!(
            "{}/api/v2/persons/{person}/connections?start={}&end={}&distance={DISTANCE_M}&limit={MAX_PAGE}",
            self.base, range.start, range.end
        );
        if let Some(within) = within {
            url.push_str(&format!("&within={within}"));
        }
        let (mut elapsed, mut bytes, mut contacts) = (Duration::ZERO, 0, Vec::new());
        let mut cursor: Option<String> = None;
        loop {
            let page_url = match &cursor {
                Some(cursor) => format!("{url}&cursor={cursor}"),
                None => url.clone(),
            };
            let (body, size, took) = get(&self.client, &page_url).await?;
            elapsed += took;
            bytes += size;
            contacts.extend(
                body["contacts"]
                    .as_array()
                    .context("v2's answer has contacts")?
                    .iter()
                    .cloned(),
            );
            match body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        Ok(Sample {
            person,
            elapsed,
            rows: contacts.len(),
            bytes: Some(bytes),
            persons: person_set(ids(&contacts, "/person/id")),
            locations: None,
            projected: None,
        })
    }
}

fn distance() -> anyhow::Result<Distance> {
    Ok(Distance::new("distance", DISTANCE_M)?)
}

fn v2_query(
    person: PersonId,
    range: Range,
    within: Option<Within>,
) -> anyhow::Result<ConnectionQuery> {
    Ok(ConnectionQuery {
        person_id: person,
        start: Timestamp::start_of(range.start),
        end: Timestamp::start_of(range.end),
        distance: distance()?,
        within,
        after: None,
        limit: MAX_PAGE,
    })
}

/// The embedded store, asked in this process.
async fn embedded_compat(
    store: &MemoryStore,
    person: PersonId,
    range: Range,
) -> anyhow::Result<Sample> {
    let started = Instant::now();
    let rows = store
        .compat_connections(&CompatQuery {
            person_id: person,
            start: range.start,
            end: range.end,
            distance: distance()?,
            limit: usize::MAX,
        })
        .await?;
    let elapsed = started.elapsed();
    let mut locations: Vec<i64> = rows.iter().map(|row| row.location.id).collect();
    locations.sort_unstable();
    Ok(Sample {
        person,
        elapsed,
        rows: rows.len(),
        bytes: None,
        persons: rows.iter().map(|row| row.person.id).collect(),
        locations: Some(locations),
        projected: None,
    })
}

async fn embedded_v2(
    store: &MemoryStore,
    person: PersonId,
    range: Range,
    within: Option<Within>,
) -> anyhow::Result<Sample> {
    let mut query = v2_query(person, range, within)?;
    let started = Instant::now();
    let mut contacts = Vec::new();
    loop {
        let page = store.connections(&query).await?;
        let full = page.len() == query.limit;
        query.after = page.last().map(ContactCursor::after);
        contacts.extend(page);
        if !full {
            break;
        }
    }
    Ok(Sample {
        person,
        elapsed: started.elapsed(),
        rows: contacts.len(),
        bytes: None,
        persons: contacts.iter().map(|contact| contact.person.id).collect(),
        locations: None,
        projected: None,
    })
}

/// The original's query, as `services.py` runs it: one statement per own
/// location, until they are all run or `budget` is spent; then the time
/// is projected to all of them from those run.
async fn original(
    db: &tokio_postgres::Client,
    query: &OriginalQuery,
    person: PersonId,
    range: Range,
    budget: Duration,
) -> anyhow::Result<Sample> {
    let started = Instant::now();
    let own = within(
        "reading the person's own locations",
        DB_DEADLINE,
        query.own_locations(db, person, range.start, range.end),
    )
    .await?;
    let mut rows = Vec::new();
    let mut run = 0;
    for location in &own {
        if started.elapsed() >= budget {
            break;
        }
        rows.extend(
            tokio::time::timeout(
                ORIGINAL_DEADLINE,
                query.near(db, *location, person, range.start, range.end, DISTANCE_M),
            )
            .await
            .with_context(|| {
                format!("one statement of the original took over {ORIGINAL_DEADLINE:?}")
            })??,
        );
        run += 1;
    }
    let mut elapsed = started.elapsed();
    let projected = (run < own.len()).then_some((run, own.len()));
    if run > 0 && run < own.len() {
        elapsed = elapsed.mul_f64(own.len() as f64 / run as f64);
    }
    let mut locations = rows
        .iter()
        .map(|row| row.try_get::<_, i64>(1))
        .collect::<Result<Vec<_>, _>>()?;
    locations.sort_unstable();
    let persons = rows
        .iter()
        .map(|row| row.try_get::<_, PersonId>(0))
        .collect::<Result<BTreeSet<_>, _>>()?;
    Ok(Sample {
        person,
        elapsed,
        rows: rows.len(),
        bytes: None,
        persons,
        locations: Some(locations),
        projected,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let binary: PathBuf = std::env::current_exe()?.with_file_name("udaconnect");
    let started_at = chrono::Utc::now();
    let load_before = bench::load_average();
    let one_day = Range {
        key: "1d",
        label: "1 day (2020-06-10..2020-06-11)",
        start: june(10)?,
        end: june(11)?,
    };
    let month = Range {
        key: "30d",
        label: "30 days (2020-06-01..2020-06-30)",
        start: june(1)?,
        end: june(30)?,
    };

    eprintln!(
        "bench: loading {} persons, {} locations",
        settings.persons, settings.locations
    );
    let pg = PostgresServer::start_with(&[("shared_buffers", "1GB"), ("max_wal_size", "8GB")]);
    let db = pg.create_database("connect");
    let migrated = tool(&binary, &["migrate"], &db, LOAD_DEADLINE)?;
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
    eprintln!("bench: {migrated}; {loaded}");
    let admin = connect(&db).await?;
    within("ANALYZE", LOAD_DEADLINE, admin.batch_execute("ANALYZE")).await?;
    // The tables and their indexes in shared buffers, as a server that has
    // been answering for a while has them: otherwise each person's first
    // question reads its pages from disk, and the figures measure the disk.
    // Then a checkpoint, so that the load's dirty pages are not written
    // out while the questions are timed.
    within(
        "pg_prewarm",
        LOAD_DEADLINE,
        admin.batch_execute(
            "CREATE EXTENSION IF NOT EXISTS pg_prewarm;
             SELECT pg_prewarm(c.oid)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i');
             CHECKPOINT",
        ),
    )
    .await?;

    let api = |replica: bool| {
        AppProcess::spawn(
            &binary,
            "UDACONNECT",
            &["api"],
            &[
                ("DATABASE_URL", db.clone()),
                ("UDACONNECT_MIGRATE", "false".to_owned()),
                ("UDACONNECT_REPLICA", replica.to_string()),
                // The queries measured, not the tokens: no token needed.
                ("UDACONNECT_OPEN_API", "true".to_owned()),
                ("RUST_LOG", "warn,platform=info".to_owned()),
            ],
        )
    };
    let (replica_api, sql_api) = (api(true), api(false));

    // The same conference, in the embedded store of this process.
    let data = conference::scale(&ScaleConfig {
        persons: settings.persons,
        locations: settings.locations,
        venues: VENUES,
        seed: DATA_SEED,
        ..ScaleConfig::default()
    });
    let all: Vec<PersonId> = data.persons.iter().map(|person| person.id).collect();
    let memory = MemoryStore::from_dataset(&data);
    drop(data);
    let persons = pick(&all, settings.sample);
    eprintln!("bench: persons {persons:?}");

    let client = reqwest::Client::builder()
        .timeout(REQUEST_DEADLINE)
        .build()?;
    let ten_minutes = Within::from_micros("within", 600_000_000)?;
    let mut measurements = Vec::new();
    for (api, keys, labels) in [
        (&replica_api, REPLICA_KEYS, REPLICA_LABELS),
        (&sql_api, SQL_KEYS, SQL_LABELS),
    ] {
        let http = Http {
            client: client.clone(),
            base: api.base_url().to_owned(),
        };
        for person in persons.iter().take(WARM_UP) {
            http.compat(*person, one_day).await?;
            http.v2(*person, one_day, None).await?;
            http.v2(*person, month, Some("10m")).await?;
        }
        for range in [one_day, month] {
            eprintln!("bench: {}, {}", labels[1], range.label);
            let mut compat = Measurement::new(keys[0], range, labels[0]);
            let mut v2 = Measurement::new(keys[1], range, labels[1]);
            for person in &persons {
                compat.push(http.compat(*person, range).await?);
                v2.push(http.v2(*person, range, None).await?);
            }
            measurements.push(compat);
            measurements.push(v2);
            if range.key == "30d" {
                let mut within = Measurement::new(keys[2], range, labels[2]);
                for person in &persons {
                    within.push(http.v2(*person, range, Some("10m")).await?);
                }
                measurements.push(within);
            }
        }
    }

    eprintln!("bench: the embedded store, in this process");
    for range in [one_day, month] {
        let mut compat = Measurement::new(
            "embedded_compat",
            range,
            "original's query, embedded store, in-process",
        );
        let mut v2 = Measurement::new("embedded_v2", range, "v2, embedded store, in-process");
        let mut within = Measurement::new(
            "embedded_v2_within_10m",
            range,
            "v2 within=10m, embedded store, in-process",
        );
        for person in &persons {
            compat.push(embedded_compat(&memory, *person, range).await?);
            v2.push(embedded_v2(&memory, *person, range, None).await?);
            if range.key == "30d" {
                within.push(embedded_v2(&memory, *person, range, Some(ten_minutes)).await?);
            }
        }
        measurements.push(compat);
        measurements.push(v2);
        if range.key == "30d" {
            measurements.push(within);
        }
    }
    drop(memory);

    // The original's query on its own schema's indexes: migrating drops
    // its btree on `creation_time`, which its one-day query uses.
    within(
        "creating the original's index",
        LOAD_DEADLINE,
        admin.batch_execute(
            "CREATE INDEX original_creation_time_idx ON location (creation_time); ANALYZE location",
        ),
    )
    .await?;
    let query = within(
        "preparing the original's query",
        DB_DEADLINE,
        OriginalQuery::prepare(&admin),
    )
    .await?;
    for (range, count) in [(one_day, persons.len()), (month, settings.original_month)] {
        eprintln!(
            "bench: the original's query, {}, {count} persons",
            range.label
        );
        let mut replay = Measurement::new(
            "original",
            range,
            "original's SQL, one query per own location, PostgreSQL",
        );
        for person in persons.iter().take(count) {
            replay.push(original(&admin, &query, *person, range, settings.original_budget).await?);
        }
        measurements.push(replay);
    }
    within(
        "dropping the original's index",
        LOAD_DEADLINE,
        admin.batch_execute("DROP INDEX original_creation_time_idx; ANALYZE location"),
    )
    .await?;

    let explain_person = persons.first().copied().context("a person to explain")?;
    let store = PgStore::new(&PgConfig::new(db.clone()))?;
    let mut explain_query = v2_query(explain_person, month, None)?;
    explain_query.limit = MAX_PAGE + 1;
    let plan = store.explain_connections(&explain_query, true).await?;
    drop((replica_api, sql_api));

    let report = record::Report {
        date: started_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        machine: bench::machine(),
        load: format!("{load_before} / {}", bench::load_average()),
        commit: bench::build(),
        command: settings.command(),
        data: format!(
            "{} persons, {} locations, {VENUES} venues",
            settings.persons, settings.locations
        ),
        measurements,
        plan: plan.clone(),
        plan_person: explain_person,
    };
    let checks = report.checks();
    let targets = report.targets();
    println!("{}", report.table());
    println!(
        "\nEXPLAIN (ANALYZE, BUFFERS), v2, person {explain_person}, {}:\n{plan}",
        month.label
    );
    if settings.record {
        report.write(&settings.output)?;
        eprintln!("bench: rows added to {}", settings.output.display());
    }
    let failed: Vec<&String> = checks
        .iter()
        .filter_map(|(name, passed)| (!passed).then_some(name))
        .collect();
    let result = json!({
        "date": report.date,
        "commit": report.commit,
        "machine": report.machine,
        "load": report.load,
        "data": report.data,
        "persons": persons,
        "embedded": "the embedded store measured in this process through the Store trait (the api binary's embedded store holds only its demo conference)",
        "original_month_persons": settings.original_month.min(persons.len()),
        "measurements": report.measurements.iter().map(Measurement::json).collect::<Vec<_>>(),
        "targets": targets.iter().map(record::TargetResult::json).collect::<Vec<_>>(),
        "checks": checks.iter().map(|(name, passed)| json!({"check": name, "passed": passed})).collect::<Vec<_>>(),
        "ok": failed.is_empty(),
    });
    println!("RESULT {result}");
    anyhow::ensure!(failed.is_empty(), "checks failed: {failed:?}");
    Ok(())
}
