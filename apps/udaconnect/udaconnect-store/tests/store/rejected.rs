//! Statements the database refuses for good (a constraint the rows break,
//! a privilege the role lacks) come back as `Rejected` with their
//! SQLSTATE and leave nothing half stored; a connection refused stays
//! `Unavailable`.

use udaconnect_domain::{LocationRecord, NewPerson, Position, Store, StoreError};

use crate::helpers::{june, migrated, store};

fn code(outcome: Result<impl std::fmt::Debug, StoreError>) -> String {
    match outcome {
        Err(StoreError::Rejected { code, .. }) => code,
        other => panic!("not rejected: {other:?}"),
    }
}

#[tokio::test]
async fn refused_statements_are_rejected_with_their_sqlstate() {
    let db = migrated().await;
    let person = db
        .store
        .create_person(&NewPerson::new("Ada", "Lovelace", "Engines").expect("valid"))
        .await
        .expect("person");
    let ids = db.store.reserve_location_ids(3).await.expect("ids");
    let at = |id, lat| LocationRecord {
        id,
        person_id: person.id,
        position: Position::new(lat, 7.0).expect("valid"),
        time: june(),
        key: None,
    };
    let south = at(ids[0], 45.0);
    db.store
        .insert_locations(std::slice::from_ref(&south))
        .await
        .expect("stored");
    db.server.psql(
        "udaconnect",
        "ALTER TABLE location ADD CONSTRAINT no_north CHECK (ST_Y(coordinate) < 50) NOT VALID",
    );
    // By the copy, and by the insert that follows a copy meeting a row
    // already stored.
    let north = at(ids[1], 55.0);
    let fresh = at(ids[2], 46.0);
    for batch in [
        vec![fresh.clone(), north.clone()],
        vec![south.clone(), fresh.clone(), north.clone()],
    ] {
        match db.store.insert_locations(&batch).await {
            Err(StoreError::Rejected { code, message }) => {
                assert_eq!(code, "23514");
                assert!(message.contains("no_north"), "{message}");
            }
            other => panic!("not rejected: {other:?}"),
        }
    }
    assert_eq!(
        db.store.location(fresh.id).await,
        Ok(None),
        "all or nothing"
    );
    db.store
        .insert_locations(std::slice::from_ref(&fresh))
        .await
        .expect("a row that keeps the constraint is stored");

    // A role that may read persons but not locations.
    db.server.psql(
        "udaconnect",
        "CREATE ROLE reader LOGIN; GRANT SELECT ON person TO reader",
    );
    let reader = store(&db.url.replacen("postgres@", "reader@", 1));
    assert_eq!(
        reader.person(person.id).await.map(|found| found.is_some()),
        Ok(true)
    );
    assert_eq!(code(reader.location(fresh.id).await), "42501");
    assert_eq!(code(reader.insert_locations(&[north]).await), "42501");

    // No statement was tried: a role that cannot log in is a database
    // unavailable to this process, not a rejection.
    let nobody = store(&db.url.replacen("postgres@", "nobody@", 1));
    assert!(
        matches!(nobody.check().await, Err(StoreError::Unavailable(_))),
        "{:?}",
        nobody.check().await
    );
}
