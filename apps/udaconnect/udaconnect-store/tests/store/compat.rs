//! The compatibility query against the original's own SQL, replayed one
//! query per own location, on the original's database.

use chrono::{Duration, NaiveDate, NaiveDateTime};
use testkit::PostgresServer;
use udaconnect_domain::{CompatQuery, Distance, LocationId, PersonId, Store};

use crate::helpers::{client, date, store};

/// The original's per-location query, verbatim but for its parameters.
const ORIGINAL: &str = "SELECT  person_id, id, ST_X(coordinate), ST_Y(coordinate), creation_time
FROM    location
WHERE   ST_DWithin(coordinate::geography,ST_SetSRID(ST_MakePoint($1,$2),4326)::geography, $3)
AND     person_id != $4
AND     TO_DATE($5, 'YYYY-MM-DD') <= creation_time
AND     TO_DATE($6, 'YYYY-MM-DD') > creation_time";

/// What the original answers: its own locations, then its query for each.
async fn original(
    client: &tokio_postgres::Client,
    person_id: PersonId,
    start: NaiveDate,
    end: NaiveDate,
    metres: f64,
) -> Vec<LocationId> {
    let midnight =
        |day: NaiveDate| -> NaiveDateTime { day.and_hms_opt(0, 0, 0).expect("midnight") };
    let own = client
        .query(
            "SELECT ST_X(coordinate), ST_Y(coordinate) FROM location \
             WHERE person_id = $1 AND creation_time < $2 AND creation_time >= $3",
            &[&person_id, &midnight(end), &midnight(start)],
        )
        .await
        .expect("own locations");
    let start_text = start.format("%Y-%m-%d").to_string();
    let end_text = (end + Duration::days(1)).format("%Y-%m-%d").to_string();
    let mut ids = Vec::new();
    for row in own {
        let (latitude, longitude): (f64, f64) = (row.get(0), row.get(1));
        for other in client
            .query(
                ORIGINAL,
                &[
                    &latitude,
                    &longitude,
                    &metres,
                    &person_id,
                    &start_text,
                    &end_text,
                ],
            )
            .await
            .expect("the original's query")
        {
            ids.push(other.get::<_, i64>(1));
        }
    }
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn the_compatibility_query_returns_the_originals_rows() {
    let server = PostgresServer::start();
    let Some(url) = server.original_database("original") else {
        return;
    };
    let store = store(&url);
    store.migrate().await.expect("upgrade");
    let client = client(&url).await;
    let (start, end) = (date(2020, 1, 1), date(2020, 12, 30));
    let mut answers = Vec::new();
    for person_id in [1, 5, 6, 8, 9] {
        for metres in [5.0, 1000.0] {
            let rows = store
                .compat_connections(&CompatQuery {
                    person_id,
                    start,
                    end,
                    distance: Distance::new("distance", metres).expect("valid"),
                    limit: usize::MAX,
                })
                .await
                .expect("compat connections");
            assert!(
                rows.iter()
                    .all(|row| row.person.id == row.location.person_id)
            );
            let mut ids: Vec<LocationId> = rows.iter().map(|row| row.location.id).collect();
            ids.sort_unstable();
            let expected = original(&client, person_id, start, end, metres).await;
            assert_eq!(ids, expected, "person {person_id} at {metres} m");
            if metres == 5.0 {
                answers.push((person_id, ids));
            }
        }
    }
    // Checked by hand: person 1's six locations of 2020-07-07 (36–41) are
    // at the point of 30, 34, 57, 65, 66, 67 and 68, which so appear six
    // times each; 31 is within a metre of 29, 32 and 33.
    let person_1 = &answers[0].1;
    for (id, times) in [
        (30, 6),
        (34, 6),
        (57, 6),
        (65, 6),
        (66, 6),
        (67, 6),
        (68, 6),
        (31, 3),
    ] {
        let found = person_1.iter().filter(|other| **other == id).count();
        assert_eq!(found, times, "location {id} in {person_1:?}");
    }
    assert_eq!(person_1.len(), 45);
    assert!(
        answers.iter().all(|(_, ids)| !ids.is_empty()),
        "{answers:?}"
    );
}
