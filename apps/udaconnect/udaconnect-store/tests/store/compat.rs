//! The compatibility query against the original's own SQL, replayed one
//! query per own location, on a database in the original's shape.

use chrono::NaiveDate;
use testkit::PostgresServer;
use udaconnect_domain::{CompatQuery, Distance, LocationId, PersonId, Store};
use udaconnect_store::original::{OriginalQuery, SHAPED_PERSONS, shaped_script};

use crate::helpers::{client, date, store};

/// What the original answers: the ids of its rows, sorted.
async fn original(
    client: &tokio_postgres::Client,
    person_id: PersonId,
    start: NaiveDate,
    end: NaiveDate,
    metres: f64,
) -> Vec<LocationId> {
    let query = OriginalQuery::prepare(client)
        .await
        .expect("the original's query prepares");
    let mut ids: Vec<LocationId> = query
        .connections(client, person_id, start, end, metres)
        .await
        .expect("the original's query")
        .iter()
        .map(|row| i64::from(row.get::<_, i32>(1)))
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn the_compatibility_query_returns_the_originals_rows() {
    let server = PostgresServer::start();
    let url = server.create_database("original");
    server.psql("original", &shaped_script(1));
    let client = client(&url).await;
    let (start, end) = (date(2020, 1, 1), date(2020, 12, 30));
    // The original's answers, on its own schema, before the upgrade.
    let mut expected = Vec::new();
    for person_id in SHAPED_PERSONS {
        for metres in [5.0, 1000.0] {
            expected.push(original(&client, person_id, start, end, metres).await);
        }
    }
    assert!(
        expected
            .iter()
            .any(|ids| ids.windows(2).any(|pair| pair[0] == pair[1])),
        "the data has rows the original answers more than once: {expected:?}"
    );
    let store = store(&url);
    store.migrate().await.expect("upgrade");
    let mut expected = expected.into_iter();
    for person_id in SHAPED_PERSONS {
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
            assert_eq!(
                Some(ids),
                expected.next(),
                "person {person_id} at {metres} m"
            );
        }
    }
}
