//! `udaconnect meetings-backfill` on a real PostgreSQL: locations stored
//! the way a database migrated from the original holds them (never on the
//! bus), some of them folded in already as a meetings process would have,
//! are folded in by two shards' backfills reading a few ids at a time;
//! the meetings then equal the one-pass reference, a second run finds
//! nothing to do, and a database it cannot use is a clear error.

use rand::{RngExt, SeedableRng, rngs::StdRng};
use testkit::PostgresServer;
use udaconnect_domain::{
    Position, Store as _, Timestamp,
    meeting::{MeetingRules, Sighting},
};
use udaconnect_store::{PgConfig, PgStore};

use super::{
    helpers::run,
    meetings::{add_persons, assert_stored_equal_reference, client},
};

const MINUTE: i64 = 60_000_000;

/// `udaconnect meetings-backfill` for shard `shard` of `shards`, reading
/// three ids at a time: its exit code and what it printed.
async fn backfill(db: &str, shard: &str, shards: &str) -> (Option<i32>, String, String) {
    run(
        &["meetings-backfill"],
        &[
            ("DATABASE_URL", db),
            ("UDACONNECT_BACKFILL_WINDOW", "3"),
            ("UDACONNECT_MEETINGS_SHARDS", shards),
            ("UDACONNECT_MEETINGS_SHARD", shard),
            ("UDACONNECT_MEETINGS_REGION", "10"),
            ("UDACONNECT_MEETINGS_GAP", "3m"),
        ],
    )
    .await
}

/// The number before `what` in a backfill's report (the last line it
/// prints).
fn figure(stdout: &str, what: &str) -> usize {
    let report = stdout.lines().last().unwrap_or_default();
    let before = report
        .split(what)
        .next()
        .unwrap_or_else(|| panic!("{what} in {report}"));
    before
        .split_whitespace()
        .last()
        .and_then(|n| n.trim_start_matches('(').parse().ok())
        .unwrap_or_else(|| panic!("a number before {what} in {report}"))
}

#[tokio::test]
async fn a_backfill_folds_in_what_the_stream_never_brought_once() {
    let pg = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .expect("the server starts");
    let db = pg.create_database("backfill");
    let store = PgStore::new(&PgConfig::new(db.clone())).expect("a store");
    store.migrate().await.expect("migrated");
    let admin = client(&db).await;
    add_persons(&admin, 5).await;
    // A crowd over a few 10 m regions for an hour, stored straight into the
    // table as the original stored it.
    let mut rng = StdRng::seed_from_u64(17);
    let base = chrono::NaiveDate::from_ymd_opt(2020, 6, 10)
        .and_then(|day| day.and_hms_opt(9, 0, 0))
        .expect("a time");
    for _ in 0..150 {
        let person: i32 = rng.random_range(1..=5);
        let time = base + chrono::Duration::microseconds(rng.random_range(0..60 * MINUTE));
        let lat = 45.0 + rng.random_range(-0.000_1..0.000_1);
        let lon = 7.0 + rng.random_range(-0.000_14..0.000_14);
        admin
            .execute(
                "INSERT INTO location (person_id, coordinate, creation_time) \
                 VALUES ($1, ST_SetSRID(ST_MakePoint($2, $3), 4326), $4)",
                &[&person, &lon, &lat, &time],
            )
            .await
            .expect("a location");
    }
    // A meetings process had folded the first forty in.
    let rules = MeetingRules::new(5.0, 2 * MINUTE, 3 * MINUTE).expect("rules");
    let first: Vec<Sighting> = admin
        .query(
            "SELECT id, person_id, creation_time, lat, lon FROM location ORDER BY id LIMIT 40",
            &[],
        )
        .await
        .expect("locations")
        .iter()
        .map(|row| Sighting {
            id: row.get(0),
            person: row.get(1),
            at: Timestamp::from_naive(row.get(2)),
            position: Position {
                lat: row.get(3),
                lon: row.get(4),
            },
        })
        .collect();
    store
        .apply_meetings(&rules, &first)
        .await
        .expect("folded in");

    let mut runs = Vec::new();
    for shard in ["0", "1"] {
        let (code, stdout, stderr) = backfill(&db, shard, "2").await;
        assert_eq!(code, Some(0), "{stdout}\n{stderr}");
        let found = figure(&stdout, "locations found");
        assert_eq!(figure(&stdout, "of "), found, "all folded in now: {stdout}");
        runs.push((found, figure(&stdout, "of other shards")));
    }
    // Every location not folded in was found by exactly one shard; the
    // first passed over what the second then found.
    assert_eq!(runs[0].0 + runs[1].0, 110, "{runs:?}");
    assert!(runs[1].0 > 0, "{runs:?}");
    assert_eq!(runs[0].1, runs[1].0, "{runs:?}");
    assert_eq!(runs[1].1, 0, "{runs:?}");
    let expected = assert_stored_equal_reference(&admin, &rules).await;
    assert!(expected.len() > 5, "the crowd meets: {}", expected.len());

    // Nothing is left to do.
    let (code, stdout, stderr) = backfill(&db, "0", "1").await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(figure(&stdout, "locations found"), 0, "{stdout}");
    assert_stored_equal_reference(&admin, &rules).await;

    // A shard that does not exist is refused before anything is read.
    let (code, _, stderr) = backfill(&db, "2", "2").await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("UDACONNECT_MEETINGS_SHARD"), "{stderr}");
}
