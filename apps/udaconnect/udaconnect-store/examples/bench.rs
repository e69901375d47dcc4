//! The connection queries at size, on both stores: loads the scale data
//! set (1,000 persons, 1,000,000 locations, 50 venues, June 2020 by
//! default) into a throwaway PostgreSQL and into the embedded store, times
//! each query, checks that both stores agree, and prints the v2 query's
//! `EXPLAIN (ANALYZE, BUFFERS)`.
//!
//! `cargo run --release -p udaconnect-store --example bench`
//! (`BENCH_LOCATIONS`, `BENCH_PERSONS` to change the size;
//! `BENCH_DATABASE_URL` to load into an empty database of yours instead of
//! a throwaway server; `BENCH_EMBEDDED_ONLY=1` for the embedded store
//! alone).

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use testkit::PostgresServer;
use udaconnect_domain::{
    CompatQuery, ConnectionQuery, Distance, PersonId, Store, Timestamp, Within,
    conference::{self, ScaleConfig, scale},
};
use udaconnect_store::{MemoryStore, PgConfig, PgStore};

const RUNS: usize = 5;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2020, 6, d).expect("a June day")
}

/// The median of `RUNS` runs of `run`, and what the last run returned.
async fn time<F, Fut>(mut run: F) -> (Duration, usize)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = usize>,
{
    let mut times = Vec::with_capacity(RUNS);
    let mut size = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        size = run().await;
        times.push(started.elapsed());
    }
    times.sort();
    (times[RUNS / 2], size)
}

fn v2(
    person_id: PersonId,
    start: NaiveDate,
    end: NaiveDate,
    within: Option<i64>,
) -> ConnectionQuery {
    ConnectionQuery {
        person_id,
        start: Timestamp::start_of(start),
        end: Timestamp::start_of(end),
        distance: Distance::new("distance", 5.0).expect("valid"),
        within: within.map(|micros| Within::from_micros("within", micros).expect("valid")),
        after: None,
        limit: 100,
    }
}

fn compat(person_id: PersonId, start: NaiveDate, end: NaiveDate) -> CompatQuery {
    CompatQuery {
        person_id,
        start,
        end,
        distance: Distance::new("distance", 5.0).expect("valid"),
        limit: usize::MAX,
    }
}

/// One timed query.
struct Case {
    name: &'static str,
    days: (NaiveDate, NaiveDate),
    within: Option<i64>,
    is_compat: bool,
}

impl Case {
    fn new(
        name: &'static str,
        days: (NaiveDate, NaiveDate),
        within: Option<i64>,
        is_compat: bool,
    ) -> Self {
        Self {
            name,
            days,
            within,
            is_compat,
        }
    }
}

#[tokio::main]
async fn main() {
    let config = ScaleConfig {
        persons: env("BENCH_PERSONS", 1_000),
        locations: env("BENCH_LOCATIONS", 1_000_000),
        ..ScaleConfig::default()
    };
    let started = Instant::now();
    let data = scale(&config);
    println!(
        "generated {} persons, {} locations in {:?}",
        data.persons.len(),
        data.locations.len(),
        started.elapsed()
    );

    let started = Instant::now();
    let demo = conference::demo(Timestamp::start_of(day(1)), 1);
    let generated = started.elapsed();
    let embedded = MemoryStore::from_dataset(&demo);
    println!(
        "demo: {} attendees, {} locations generated in {generated:?}, stored in {:?}",
        demo.persons.len(),
        demo.locations.len(),
        started.elapsed() - generated
    );
    drop((demo, embedded));

    let server;
    let pg = if std::env::var_os("BENCH_EMBEDDED_ONLY").is_some() {
        None
    } else {
        let url = match std::env::var("BENCH_DATABASE_URL") {
            Ok(url) => url,
            Err(_) => {
                server = PostgresServer::start_with(&[("shared_buffers", "2GB")]);
                server.create_database("bench")
            }
        };
        let pg = PgStore::new(&PgConfig::new(&url)).expect("store");
        println!("{}", pg.migrate().await.expect("migrate"));
        let started = Instant::now();
        pg.bulk_load(&data).await.expect("bulk load");
        println!(
            "PostGIS: COPY, indexes and ANALYZE in {:?}",
            started.elapsed()
        );
        Some(pg)
    };

    let started = Instant::now();
    let memory = MemoryStore::from_dataset(&data);
    println!("embedded: loaded in {:?}", started.elapsed());
    drop(data);

    let mut stores: Vec<(&str, &dyn Store)> = Vec::new();
    if let Some(pg) = &pg {
        stores.push(("postgis", pg));
    }
    stores.push(("embedded", &memory));
    let one_day = (day(10), day(11));
    let june = (
        day(1),
        NaiveDate::from_ymd_opt(2020, 7, 1).expect("July 1st"),
    );
    println!("\n| query | person | store | median of {RUNS} | rows or contacts |");
    println!("|---|---|---|---|---|");
    for person_id in [1, 2, 3] {
        let cases = [
            Case::new("compat 1 day", one_day, None, true),
            Case::new("compat 30 days", june, None, true),
            Case::new("v2 1 day", one_day, None, false),
            Case::new("v2 30 days", june, None, false),
            Case::new("v2 30 days within 10m", june, Some(600_000_000), false),
        ];
        for Case {
            name,
            days: (start, end),
            within,
            is_compat,
        } in cases
        {
            let mut answers = Vec::new();
            for &(kind, store) in &stores {
                let (median, size) = if is_compat {
                    let query = compat(person_id, start, end);
                    time(|| async {
                        store
                            .compat_connections(&query)
                            .await
                            .expect("compat")
                            .len()
                    })
                    .await
                } else {
                    let query = v2(person_id, start, end, within);
                    time(|| async { store.connections(&query).await.expect("v2").len() }).await
                };
                println!("| {name} | {person_id} | {kind} | {median:.1?} | {size} |");
                answers.push(if is_compat {
                    format!(
                        "{:?}",
                        store
                            .compat_connections(&compat(person_id, start, end))
                            .await
                    )
                } else {
                    format!(
                        "{:?}",
                        store.connections(&v2(person_id, start, end, within)).await
                    )
                });
            }
            assert!(
                answers.windows(2).all(|pair| pair[0] == pair[1]),
                "the stores disagree on {name} for {person_id}"
            );
        }
    }
    let Some(pg) = pg else { return };
    for within in [None, Some(600_000_000)] {
        let plan = pg
            .explain_connections(&v2(1, june.0, june.1, within), true)
            .await
            .expect("explain");
        println!("\nEXPLAIN (ANALYZE, BUFFERS), v2 30 days, within {within:?} µs:\n{plan}");
    }
    let plan = pg
        .explain_connections(&v2(1, one_day.0, one_day.1, None), true)
        .await
        .expect("explain");
    println!("\nEXPLAIN (ANALYZE, BUFFERS), v2 1 day:\n{plan}");
}
