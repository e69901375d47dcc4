//! The v2 query's plan, and the original's endpoint's, read the others'
//! locations from the grid's index alone (its partitions'), with the GiST
//! over (point, time) for the searches the grid does not fit (the figures
//! at size are in the benchmark example and `make bench-api-memory`).

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
