//! The meetings' work cut by space on a real nats-server and PostgreSQL: a
//! crowd milling over a few small regions (so that most contacts cross a
//! border between two shards) is folded in by two meetings processes, one
//! of which is killed mid-stream and replaced; then the work is cut again
//! in three while more arrives. Each time the meetings stored equal the
//! one-pass reference, each process folds in only its regions, and the
//! new cut starts where the old one stopped instead of reading the stream
//! again.

use rand::{RngExt, SeedableRng, rngs::StdRng, seq::SliceRandom};
use serde_json::{Value, json};
use testkit::{NatsServer, PostgresServer, eventually};
use udaconnect_domain::meeting::MeetingRules;

use super::{
    helpers::{PATIENCE, TestApp, metric, spawn_target},
    meetings::{add_persons, assert_stored_equal_reference, client, count},
};

const MINUTE: i64 = 60_000_000;
const PERSONS: i32 = 6;

/// `per_person` locations of each person, within 15 m of one spot over an
/// hour from `hour`, shuffled.
fn crowd(rng: &mut StdRng, hour: u32, per_person: usize) -> Vec<Value> {
    let base = chrono::NaiveDate::from_ymd_opt(2021, 3, 1)
        .and_then(|day| day.and_hms_opt(hour, 0, 0))
        .expect("a time");
    let mut locations = Vec::new();
    for person in 1..=PERSONS {
        for _ in 0..per_person {
            let time = base + chrono::Duration::microseconds(rng.random_range(0..60 * MINUTE));
            locations.push(json!({
                "person_id": person,
                "lat": 45.0 + rng.random_range(-0.000_13..0.000_13),
                "lon": 7.0 + rng.random_range(-0.000_18..0.000_18),
                "time": format!("{}Z", time.format("%Y-%m-%dT%H:%M:%S%.6f")),
            }));
        }
    }
    locations.shuffle(rng);
    locations
}

async fn send(edge: &TestApp, locations: &[Value]) {
    for chunk in locations.chunks(15) {
        let (status, reply) = edge
            .post("/api/v2/locations:batch", &json!({ "locations": chunk }))
            .await;
        assert_eq!(status, 200, "{reply}");
    }
}

/// A meetings process's count of locations with `outcome`.
async fn folded(app: &TestApp, outcome: &str) -> f64 {
    metric(
        app,
        &format!("udaconnect_meetings_locations_total{{outcome=\"{outcome}\"}}"),
    )
    .await
    .unwrap_or(0.0)
}

#[tokio::test]
async fn shards_fold_their_regions_in_and_meet_across_borders_after_a_kill_and_a_recut() {
    let (nats, pg) = tokio::task::spawn_blocking(|| (NatsServer::start(), PostgresServer::start()))
        .await
        .expect("servers start");
    let db = pg.create_database("shards");
    let url = nats.url();
    let common = ["--nats-url", url.as_str(), "--database-url", db.as_str()];
    let edge = spawn_target("ingest", &common).await;
    let writer = spawn_target("writer", &common).await;
    let shard = |index: &'static str, shards: &'static str, ack_wait: &'static str| {
        let mut args = common.to_vec();
        args.extend([
            "--meetings-shards",
            shards,
            "--meetings-shard",
            index,
            "--meetings-region",
            "10",
            "--meetings-ack-wait",
            ack_wait,
            "--meetings-fetch",
            "2",
        ]);
        args
    };
    let first = spawn_target("meetings", &shard("0", "2", "2s")).await;
    let second = spawn_target("meetings", &shard("1", "2", "2s")).await;

    let admin = client(&db).await;
    add_persons(&admin, PERSONS).await;
    let rules = MeetingRules::new(5.0, 2 * MINUTE, 2 * MINUTE).expect("rules");
    let mut rng = StdRng::seed_from_u64(21);
    let mut sent = 0_i64;

    // Two shards, the first killed with work in flight and replaced.
    let locations = crowd(&mut rng, 10, 60);
    let (early, late) = locations.split_at(locations.len() / 2);
    send(&edge, early).await;
    eventually("some locations folded in", PATIENCE, || async {
        (count(&db, "SELECT count(*) FROM meeting_position").await > 0).then_some(())
    })
    .await;
    first.kill().await;
    send(&edge, late).await;
    sent += locations.len() as i64;
    let replaced = spawn_target("meetings", &shard("0", "2", "2s")).await;
    eventually("every location folded in", PATIENCE, || async {
        (count(&db, "SELECT count(*) FROM meeting_position").await == sent).then_some(())
    })
    .await;
    let expected = assert_stored_equal_reference(&admin, &rules).await;
    assert!(expected.len() > 10, "the crowd meets: {}", expected.len());
    // Each shard folded some in and passed the rest over.
    for app in [&second, &replaced] {
        assert!(folded(app, "applied").await > 0.0);
        assert!(folded(app, "elsewhere").await > 0.0);
    }
    replaced.stop().await;
    second.stop().await;

    // Cut again in three, with the old cut's consumers still on the bus.
    let cut: Vec<TestApp> = vec![
        spawn_target("meetings", &shard("0", "3", "30s")).await,
        spawn_target("meetings", &shard("1", "3", "30s")).await,
        spawn_target("meetings", &shard("2", "3", "30s")).await,
    ];
    let more = crowd(&mut rng, 12, 40);
    send(&edge, &more).await;
    sent += more.len() as i64;
    eventually("the new locations folded in", PATIENCE, || async {
        (count(&db, "SELECT count(*) FROM meeting_position").await == sent).then_some(())
    })
    .await;
    let expected = assert_stored_equal_reference(&admin, &rules).await;
    assert!(
        expected.len() > 20,
        "the crowd meets again: {}",
        expected.len()
    );
    let (mut applied, mut elsewhere, mut already) = (0.0, 0.0, 0.0);
    for app in &cut {
        applied += folded(app, "applied").await;
        elsewhere += folded(app, "elsewhere").await;
        already += folded(app, "already").await;
    }
    // Every new location folded in by one of the three and passed over by
    // the other two; none of the old ones read again.
    assert_eq!(applied, more.len() as f64);
    assert_eq!(elsewhere, 2.0 * more.len() as f64);
    assert_eq!(already, 0.0);

    for app in cut.into_iter().chain([writer, edge]) {
        app.stop().await;
    }
}
