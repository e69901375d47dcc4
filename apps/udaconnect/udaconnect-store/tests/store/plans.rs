//! The v2 query's plan, and the original's endpoint's, read the others'
//! locations from the grid's index alone (its partitions'), with the GiST
//! over (point, time) for the searches the grid does not fit (the figures
//! at size are in the benchmark example and `make bench-api-memory`). A
//! later page of a person's meetings, of their locations or of the
//! persons starts at its cursor in the index.

use chrono::NaiveDate;
use udaconnect_domain::{
    CompatQuery, ConnectionQuery, Distance, Timestamp, Within,
    conference::{ScaleConfig, scale},
};

use crate::helpers::{client, migrated};

#[tokio::test]
async fn the_contacts_query_reads_the_grid_index_only() {
    let db = migrated().await;
    let config = ScaleConfig {
        persons: 200,
        locations: 40_000,
        venues: 10,
        ..ScaleConfig::default()
    };
    db.store.bulk_load(&scale(&config)).await.expect("load");
    // Every row is of 2020, in the history partition (migration 0009); the
    // days ahead are empty. The plan names the partitions' indexes.
    let client = client(&db.url).await;
    let cell = partition_indexes(&client, "location_cell_time_idx").await;
    let point = partition_indexes(&client, "location_point_time_idx").await;
    for within in [None, Some(600_000_000)] {
        let query = ConnectionQuery {
            person_id: 7,
            start: config.start,
            end: Timestamp::from_micros(config.start.micros() + 86_400_000_000),
            distance: Distance::new("distance", 5.0).expect("valid"),
            within: within.map(|micros| Within::from_micros("within", micros).expect("valid")),
            after: None,
            limit: 100,
        };
        let plan = db
            .store
            .explain_connections(&query, true)
            .await
            .expect("explain");
        assert!(
            cell.iter()
                .any(|index| plan.contains(&format!("Index Only Scan using {index} "))),
            "{plan}"
        );
        assert!(plan.contains("Heap Fetches: 0"), "{plan}");
        assert!(point.iter().any(|index| plan.contains(index)), "{plan}");
        assert!(!plan.contains("Seq Scan on location_history"), "{plan}");
    }
    let compat = CompatQuery {
        person_id: 7,
        start: NaiveDate::from_ymd_opt(2020, 6, 1).expect("a day"),
        end: NaiveDate::from_ymd_opt(2020, 6, 2).expect("a day"),
        distance: Distance::new("distance", 5.0).expect("valid"),
        limit: 100_001,
    };
    let plan = db
        .store
        .explain_compat_connections(&compat, true)
        .await
        .expect("explain");
    assert!(
        cell.iter()
            .any(|index| plan.contains(&format!("Index Only Scan using {index} "))),
        "{plan}"
    );
    assert!(!plan.contains("Seq Scan on location_history"), "{plan}");
}

/// A statement of the store, whole, from the file that holds every one
/// as sent (kept equal to them by the store's own test).
fn statement(name: &str) -> String {
    let file = include_str!("../../src/pg/statements.sql");
    let heading = format!("-- {name}\n");
    let start = file.find(&heading).expect("the statement's heading") + heading.len();
    let rest = &file[start..];
    rest[..rest.find("\n\n").unwrap_or(rest.len())].to_owned()
}

/// Planned once for every page (a generic plan, as a prepared statement
/// is after a few runs), a person's meetings are read from each index
/// from the page's cursor on: the cursor is a condition of the index
/// scan, not a filter over every earlier page's rows.
#[tokio::test]
async fn a_later_page_of_meetings_starts_at_its_cursor() {
    let db = migrated().await;
    let client = client(&db.url).await;
    // Persons 1 and 2 met 1,000 others each, once, every other minute;
    // the page asked for is 50 of person 1's, well into their history.
    client
        .batch_execute(
            "INSERT INTO meeting (person_a, person_b, start_time, end_time, contacts, closest_m, \
               closest_at, closest_lat, closest_lon, closest_location_a, closest_location_b) \
             SELECT CASE WHEN n % 2 = 0 THEN 1 ELSE 2 END, 2 + n, t, t + interval '5 minutes', 3, 1.5, \
               t, 51.5, -0.12, n, n + 1 \
             FROM generate_series(1, 2000) AS n, \
               LATERAL (SELECT timestamp '2020-06-01 09:00' + n * interval '1 minute' AS t) AS s; \
             ANALYZE meeting;",
        )
        .await
        .expect("meetings");
    let plan = generic_plan(
        &client,
        "MEETINGS_OF_PERSON",
        "int4, timestamp, timestamp, int8, int8",
        "1, '2020-06-01', '2020-06-01 20:00', 1000, 50",
    )
    .await;
    for index in ["meeting_a_recent_idx", "meeting_b_recent_idx"] {
        assert!(
            plan.contains(&format!("Index Scan using {index}")),
            "{plan}"
        );
    }
    assert!(
        plan.matches("Index Cond: ((person_").count() == 2
            && plan.matches("ROW(start_time, id) < ROW($3, $4)").count() == 2,
        "{plan}"
    );
    assert!(!plan.contains("Rows Removed by Filter"), "{plan}");
}

/// As [`a_later_page_of_meetings_starts_at_its_cursor`], for a page of a
/// person's locations (the export walks them all).
#[tokio::test]
async fn a_later_page_of_locations_starts_at_its_cursor() {
    let db = migrated().await;
    let config = ScaleConfig {
        persons: 20,
        locations: 20_000,
        venues: 4,
        ..ScaleConfig::default()
    };
    db.store.bulk_load(&scale(&config)).await.expect("load");
    let client = client(&db.url).await;
    client
        .batch_execute("ANALYZE location")
        .await
        .expect("statistics");
    // The cursor: person 3's 500th location.
    let cursor = client
        .query_one(
            "SELECT creation_time, id FROM location WHERE person_id = 3 \
             ORDER BY creation_time, id OFFSET 499 LIMIT 1",
            &[],
        )
        .await
        .expect("a cursor");
    let (time, id): (chrono::NaiveDateTime, i64) = (cursor.get(0), cursor.get(1));
    let plan = generic_plan(
        &client,
        "LOCATIONS_OF",
        "int4, timestamp, timestamp, timestamp, int8, int8",
        &format!("3, '2020-01-01', '2021-01-01', '{time}', {id}, 100"),
    )
    .await;
    assert!(plan.contains("creation_time >= $4"), "{plan}");
    // The cursor's own row at most, not the 499 before it.
    assert!(
        plan.lines()
            .filter_map(|line| line.split("Rows Removed by Filter: ").nth(1))
            .all(|removed| removed.trim().parse::<u32>().is_ok_and(|n| n <= 1)),
        "{plan}"
    );
}

/// As [`a_later_page_of_meetings_starts_at_its_cursor`], for a page of
/// the persons, in either order.
#[tokio::test]
async fn a_later_page_of_persons_starts_at_its_cursor() {
    let db = migrated().await;
    let client = client(&db.url).await;
    client
        .batch_execute(
            "INSERT INTO person (first_name, last_name, company_name) \
             SELECT 'Ada', 'Lovelace', 'Analytical' FROM generate_series(1, 20000); \
             ANALYZE person;",
        )
        .await
        .expect("persons");
    for (name, bound) in [
        ("SEARCH_PERSONS", "(id > $1)"),
        ("SEARCH_PERSONS_NEWEST", "(id < $1)"),
    ] {
        let plan = generic_plan(&client, name, "int8, text, int8", "10000, NULL, 50").await;
        assert!(plan.contains("Index Scan"), "{name}: {plan}");
        assert!(
            plan.contains(&format!("Index Cond: {bound}")),
            "{name}: {plan}"
        );
        assert!(!plan.contains("Rows Removed by Filter"), "{name}: {plan}");
    }
}

/// The store's statement `name` prepared with parameters of `types`,
/// planned once for any parameters (as a connection plans a prepared
/// statement after a few runs), and run with `args`: its plan, as text.
async fn generic_plan(
    client: &tokio_postgres::Client,
    name: &str,
    types: &str,
    args: &str,
) -> String {
    client
        .batch_execute(&format!(
            "SET plan_cache_mode = force_generic_plan; DEALLOCATE ALL; \
             PREPARE page({types}) AS {}",
            statement(name)
        ))
        .await
        .expect("prepare");
    let rows = client
        .query(
            &format!("EXPLAIN (ANALYZE, BUFFERS) EXECUTE page({args})"),
            &[],
        )
        .await
        .expect("explain");
    rows.iter()
        .map(|row| row.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The partitions' indexes of the location table's index `index`.
async fn partition_indexes(client: &tokio_postgres::Client, index: &str) -> Vec<String> {
    client
        .query(
            "SELECT relid::regclass::text FROM pg_partition_tree($1::text::regclass) WHERE isleaf",
            &[&index],
        )
        .await
        .expect("the partitions' indexes")
        .iter()
        .map(|row| row.get(0))
        .collect()
}
