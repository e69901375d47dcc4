//! The v2 query's plan reads the others' locations from the grid's index
//! alone, with the GiST over (point, time) for the searches the grid does
//! not fit (the figures at size are in the benchmark example).

use udaconnect_domain::{
    ConnectionQuery, Distance, Timestamp, Within,
    conference::{ScaleConfig, scale},
};

use crate::helpers::migrated;

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
            plan.contains("Index Only Scan using location_cell_time_idx"),
            "{plan}"
        );
        assert!(plan.contains("Heap Fetches: 0"), "{plan}");
        assert!(plan.contains("location_point_time_idx"), "{plan}");
        assert!(!plan.contains("Seq Scan on location"), "{plan}");
    }
}
