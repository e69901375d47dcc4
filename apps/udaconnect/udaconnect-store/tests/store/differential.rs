//! The PostGIS and embedded stores on the same random data: every query's
//! answer must be the same, row for row, whether PostGIS answers the
//! connection queries in SQL or from its in-memory replica.

use udaconnect_domain::{
    CompatQuery, ConnectionQuery, Contact, ContactCursor, Distance, LocationCursor, LocationRange,
    PersonId, PersonOrder, PersonSearch, Store, Timestamp, Within, conference::Dataset,
};
use udaconnect_store::{MemoryStore, PgStore};

use crate::helpers::{THRESHOLDS, clustered, clustered_end, date, june, migrated, replica_store};

/// Walks every page of contacts.
async fn all_contacts(store: &dyn Store, mut query: ConnectionQuery) -> Vec<Vec<Contact>> {
    let mut pages = Vec::new();
    loop {
        let page = store.connections(&query).await.expect("contacts");
        let Some(last) = page.last() else {
            return pages;
        };
        query.after = Some(ContactCursor::after(last));
        pages.push(page);
    }
}

async fn compare(seed: u64, pg: &PgStore, url: &str, data: &Dataset) {
    let replica = replica_store(url);
    // Most by COPY, the rest through the API's batches, in both stores.
    let (loaded, batched) = data.locations.split_at(data.locations.len() * 4 / 5);
    let memory = MemoryStore::from_dataset(&Dataset {
        persons: data.persons.clone(),
        locations: loaded.to_vec(),
    });
    pg.bulk_load(&Dataset {
        persons: data.persons.clone(),
        locations: loaded.to_vec(),
    })
    .await
    .expect("bulk load");
    // The replica loads what is there now, and catches up on the rest.
    replica.check().await.expect("the replica loads");
    for batch in batched.chunks(97) {
        let expected = memory.insert_locations(batch).await.expect("memory batch");
        assert_eq!(
            pg.insert_locations(batch).await.expect("pg batch"),
            expected
        );
    }
    let ids: Vec<PersonId> = data.persons.iter().map(|p| p.id).collect();
    let persons = &ids[..3];
    for metres in THRESHOLDS {
        let distance = Distance::new("distance", metres).expect("valid");
        for &person_id in persons {
            for (start, end) in [
                (date(2020, 6, 1), date(2020, 6, 4)),
                (date(2020, 6, 2), date(2020, 6, 3)),
            ] {
                let query = CompatQuery {
                    person_id,
                    start,
                    end,
                    distance,
                    limit: usize::MAX,
                };
                let expected = memory.compat_connections(&query).await.expect("memory");
                let found = pg.compat_connections(&query).await.expect("pg");
                // A limited answer is the unlimited one's beginning, alike.
                let first = CompatQuery { limit: 7, ..query };
                let prefix = &expected[..expected.len().min(7)];
                assert_eq!(
                    memory.compat_connections(&first).await.expect("memory"),
                    prefix
                );
                assert_eq!(pg.compat_connections(&first).await.expect("pg"), prefix);
                assert_eq!(
                    replica.compat_connections(&first).await.expect("replica"),
                    prefix
                );
                assert!(
                    replica.compat_connections(&query).await.expect("replica") == expected,
                    "seed {seed}: compat {query:?} from the replica"
                );
                assert!(
                    found == expected,
                    "seed {seed}: compat {query:?}: {} rows from PostGIS, {} embedded",
                    found.len(),
                    expected.len()
                );
            }
            for within in [None, Some(600_000_000), Some(3_600_000_000)] {
                for (start, end, limit) in [
                    (june(), clustered_end(), 3),
                    (
                        june().plus_micros(36 * 3_600_000_000),
                        clustered_end(),
                        1000,
                    ),
                ] {
                    let query = ConnectionQuery {
                        person_id,
                        start,
                        end,
                        distance,
                        within: within
                            .map(|micros| Within::from_micros("within", micros).expect("valid")),
                        after: None,
                        limit,
                    };
                    let expected = all_contacts(&memory, query).await;
                    let found = all_contacts(pg, query).await;
                    assert_eq!(found, expected, "seed {seed}: contacts {query:?}");
                    assert_eq!(
                        all_contacts(&replica, query).await,
                        expected,
                        "seed {seed}: contacts {query:?} from the replica"
                    );
                    assert!(
                        !expected.is_empty(),
                        "seed {seed}: no contacts for {query:?}"
                    );
                }
            }
        }
    }
    for (text, order) in [
        None,
        Some("first1".to_owned()),
        Some("COMPANY 2".to_owned()),
    ]
    .into_iter()
    .flat_map(|text| [(text.clone(), PersonOrder::Id), (text, PersonOrder::Newest)])
    {
        let mut search = PersonSearch {
            text,
            order,
            after: None,
            limit: 4,
        };
        loop {
            let expected = memory.search_persons(&search).await.expect("memory");
            assert_eq!(pg.search_persons(&search).await.expect("pg"), expected);
            let Some(last) = expected.last() else { break };
            search.after = Some(last.id);
        }
    }
    for &person_id in persons {
        let mut range = LocationRange {
            person_id,
            start: june().plus_micros(3_600_000_000),
            end: Timestamp::from_micros(clustered_end().micros() - 3_600_000_000),
            after: None,
            limit: 13,
        };
        loop {
            let expected = memory.locations_of(&range).await.expect("memory");
            assert_eq!(pg.locations_of(&range).await.expect("pg"), expected);
            let Some(last) = expected.last() else { break };
            range.after = Some(LocationCursor {
                time: last.time,
                id: last.id,
            });
        }
    }
    assert_eq!(
        pg.stats().await.expect("pg"),
        memory.stats().await.expect("memory")
    );
    assert_eq!(
        pg.persons().await.expect("pg"),
        memory.persons().await.expect("memory")
    );
}

#[tokio::test]
async fn both_stores_answer_alike_on_random_data() {
    let db = migrated().await;
    for seed in [1, 2, 3] {
        let name = format!("seed{seed}");
        let url = db.server.create_database(&name);
        let pg = crate::helpers::store(&url);
        pg.migrate().await.expect("migrate");
        compare(seed, &pg, &url, &clustered(seed, 12, 2000)).await;
    }
}

#[tokio::test]
async fn contacts_without_within_summarise_the_compat_rows() {
    let db = migrated().await;
    let data = clustered(9, 10, 2000);
    db.store.bulk_load(&data).await.expect("load");
    let distance = Distance::new("distance", 5.0).expect("valid");
    for person_id in [1, 2, 3] {
        let rows = db
            .store
            .compat_connections(&CompatQuery {
                person_id,
                start: date(2020, 6, 1),
                end: date(2020, 6, 3),
                distance,
                limit: usize::MAX,
            })
            .await
            .expect("compat");
        let contacts = db
            .store
            .connections(&ConnectionQuery {
                person_id,
                start: june(),
                end: Timestamp::start_of(date(2020, 6, 3)),
                distance,
                within: None,
                after: None,
                limit: 1000,
            })
            .await
            .expect("contacts");
        let mut expected: Vec<(PersonId, u64, Timestamp, Timestamp)> = Vec::new();
        let mut others: Vec<PersonId> = rows.iter().map(|row| row.person.id).collect();
        others.sort_unstable();
        others.dedup();
        for other in others {
            let times: Vec<Timestamp> = rows
                .iter()
                .filter(|row| row.person.id == other)
                .map(|row| row.location.time)
                .collect();
            let first = times.iter().min().copied().expect("a row");
            let last = times.iter().max().copied().expect("a row");
            expected.push((other, times.len() as u64, first, last));
        }
        expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let found: Vec<(PersonId, u64, Timestamp, Timestamp)> = contacts
            .iter()
            .map(|c| (c.person.id, c.encounters, c.first_met, c.last_met))
            .collect();
        assert!(!found.is_empty());
        assert_eq!(found, expected, "person {person_id}");
    }
}
