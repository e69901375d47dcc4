//! Idempotency keys claimed by the edges: both stores answer every claim
//! alike (a key's first claim owns it, within a call and across calls),
//! PostgreSQL also under edges claiming the same keys at once (a key
//! claimed by another edge between the check that none is held and the
//! copy; a copy and a statement at once in a database that sorts keys by
//! language), and keys stored before claims existed are claimed by their
//! locations.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};
use udaconnect_domain::{
    ClaimOutcome::{self, Claimed, Conflict, Same},
    KeyClaim, LocationId, LocationRecord, NewPerson, Position, Store, StoreError,
};
use udaconnect_store::MemoryStore;

use crate::helpers::{client, june, migrated};

fn claim(key: &str, id: LocationId, lat: f64, micros: i64) -> KeyClaim {
    KeyClaim {
        key: key.to_owned(),
        id,
        person_id: 1,
        position: Position { lat, lon: 7.0 },
        time: june().plus_micros(micros),
    }
}

async fn claims(store: &dyn Store, claims: &[KeyClaim]) -> Vec<ClaimOutcome> {
    store.claim_keys(claims).await.expect("claimed")
}

async fn a_key_is_held_to_its_first_claim(store: &dyn Store) {
    assert_eq!(claims(store, &[]).await, [], "{}", store.kind());
    // Within one call: the first claim of a key owns it.
    let first = claims(
        store,
        &[
            claim("a", 1, 45.0, 0),
            claim("b", 2, 45.0, 0),
            claim("a", 3, 45.0, 0),
            claim("a", 4, 46.0, 0),
            claim("b", 5, 45.0, 1),
        ],
    )
    .await;
    assert_eq!(
        first,
        [Claimed, Claimed, Same(1), Conflict(1), Conflict(2)],
        "{}",
        store.kind()
    );
    // Across calls: the claims held before own their keys, whatever the
    // order, the same location to the bit and the microsecond.
    let one_bit_north = f64::from_bits(45.0_f64.to_bits() + 1);
    let second = claims(
        store,
        &[
            claim("b", 6, 45.0, 1),
            claim("a", 7, 45.0, 0),
            claim("c", 8, 45.0, 0),
            claim("b", 9, 45.0, 0),
            claim("c", 10, one_bit_north, 0),
            claim("a", 11, 45.0, 0),
        ],
    )
    .await;
    assert_eq!(
        second,
        [Conflict(2), Same(1), Claimed, Same(2), Conflict(8), Same(1)],
        "{}",
        store.kind()
    );
    let mut other_person = claim("c", 12, 45.0, 0);
    other_person.person_id = 2;
    // A later claim, retry or conflict, changes nothing of the first.
    assert_eq!(
        claims(
            store,
            &[
                other_person,
                claim("c", 13, 45.0, 0),
                claim("b", 14, 45.0, 0),
                claim("a", 15, 45.0, 0),
            ]
        )
        .await,
        [Conflict(8), Same(8), Same(2), Same(1)],
        "{}",
        store.kind()
    );
}

#[tokio::test]
async fn both_stores_hold_a_key_to_its_first_claim() {
    let db = migrated().await;
    a_key_is_held_to_its_first_claim(&db.store).await;
    a_key_is_held_to_its_first_claim(&MemoryStore::new()).await;
}

/// Edges claiming the same keys at once, each in its own order with its
/// own ids, `round` after round: every key is claimed by one of them, and
/// every edge is answered that claim's id. (Most rounds, an edge's claims
/// wait for another's to commit, and are read once they have.)
async fn edges_at_once_agree(store: Arc<dyn Store>) {
    for round in 0..10 {
        edges_at_once_agree_on(&store, round).await;
    }
}

async fn edges_at_once_agree_on(store: &Arc<dyn Store>, round: usize) {
    const EDGES: usize = 8;
    const KEYS: usize = 200;
    let calls = (0..EDGES).map(|edge| {
        let store = Arc::clone(store);
        let mut order: Vec<usize> = (0..KEYS).collect();
        order.shuffle(&mut StdRng::seed_from_u64((round * EDGES + edge) as u64));
        let batch: Vec<KeyClaim> = order
            .iter()
            .map(|key| {
                let id =
                    LocationId::try_from((round * EDGES + edge) * KEYS + key + 1).expect("an id");
                claim(&format!("{round}-key-{key}"), id, 45.0, 0)
            })
            .collect();
        async move {
            let outcomes = store
                .claim_keys(&batch)
                .await
                .expect("claimed, no deadlock");
            batch.into_iter().zip(outcomes).collect::<Vec<_>>()
        }
    });
    let mut owners: Vec<Option<LocationId>> = vec![None; KEYS];
    let mut answered: Vec<Vec<LocationId>> = vec![Vec::new(); KEYS];
    for outcomes in futures::future::join_all(calls).await {
        for (claim, outcome) in outcomes {
            let key: usize = claim
                .key
                .rsplit('-')
                .next()
                .and_then(|key| key.parse().ok())
                .expect("a key number");
            let id = match outcome {
                Claimed => {
                    assert_eq!(owners[key], None, "{} claimed twice", claim.key);
                    owners[key] = Some(claim.id);
                    claim.id
                }
                Same(id) => id,
                Conflict(id) => panic!("{}: the same location is a conflict with {id}", claim.key),
            };
            answered[key].push(id);
        }
    }
    for (key, ids) in answered.iter().enumerate() {
        let owner = owners[key].unwrap_or_else(|| panic!("key-{key} claimed by nobody"));
        assert!(ids.iter().all(|id| *id == owner), "key-{key}: {ids:?}");
    }
}

#[tokio::test]
async fn edges_claiming_the_same_keys_at_once_agree_in_both_stores() {
    let db = migrated().await;
    edges_at_once_agree(Arc::new(db.store.clone())).await;
    edges_at_once_agree(Arc::new(MemoryStore::new())).await;
}

/// Waits (30 s at most) until one session whose statement starts with
/// `prefix` waits on a lock.
async fn wait_on_a_lock(watcher: &tokio_postgres::Client, prefix: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let count: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND ltrim(query, E' \\n') LIKE $1",
                &[&format!("{prefix}%")],
            )
            .await
            .and_then(|row| row.try_get(0))
            .expect("the sessions read");
        if count == 1 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{prefix}: never waited on a lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A database that sorts text by language (ICU's `en-US`, as a server
/// made with `en_US.UTF-8` does), where `k1` sorts before `K2`, bytewise
/// after. Edge X claims both with a key held before (so through the
/// statement), edge Y only them (so through a copy), while a third session
/// holds `k1`. Bytewise, X takes `K2` and waits on the third for `k1`, Y
/// waits on X for `K2`, and once the third lets go X claims both and Y is
/// answered X's ids. Had the statement taken its keys by language, X
/// would wait for `k1` holding nothing and Y take `K2` and wait for `k1`
/// too: then either each waits on the other (`40P01`) or Y claims both.
#[tokio::test]
async fn edges_agree_in_a_database_that_sorts_keys_by_language() {
    let db = migrated().await;
    db.server.psql(
        "postgres",
        "CREATE DATABASE by_language TEMPLATE template0 ENCODING 'UTF8' \
         LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'",
    );
    let url = db.server.url("by_language");
    let watcher = client(&url).await;
    let sorted = watcher
        .query_one(
            "SELECT array_agg(k ORDER BY k) FROM unnest(ARRAY['K2', 'k1']) AS k",
            &[],
        )
        .await
        .and_then(|row| row.try_get::<_, Vec<String>>(0))
        .expect("sorted");
    assert_eq!(sorted, ["k1", "K2"], "the database sorts bytewise");
    let store = crate::helpers::store(&url);
    store.migrate().await.expect("migrated");
    a_key_is_held_to_its_first_claim(&store).await;
    assert_eq!(
        claims(&store, &[claim("held", 1, 45.0, 0)]).await,
        [Claimed]
    );

    let mut holder = client(&url).await;
    let holding = holder.transaction().await.expect("a transaction");
    holding
        .execute(
            "INSERT INTO ingest_key_claim (ingest_key, location_id, person_id, lon, lat, creation_time) \
             VALUES ('k1', 9, 1, 7, 45, now())",
            &[],
        )
        .await
        .expect("k1 held");
    let edge = |batch: Vec<KeyClaim>| {
        let store = store.clone();
        tokio::spawn(async move { store.claim_keys(&batch).await })
    };
    let x = edge(vec![
        claim("held", 2, 45.0, 0),
        claim("k1", 3, 45.0, 0),
        claim("K2", 4, 45.0, 0),
    ]);
    wait_on_a_lock(&watcher, "WITH claim").await;
    let y = edge(vec![claim("k1", 5, 45.0, 0), claim("K2", 6, 45.0, 0)]);
    wait_on_a_lock(&watcher, "COPY ingest_key_claim").await;
    holding.rollback().await.expect("k1 let go");

    type Claiming = tokio::task::JoinHandle<Result<Vec<ClaimOutcome>, StoreError>>;
    let answered = |task: Claiming| async move {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("answered within 30 s")
            .expect("no panic")
            .expect("claimed, no deadlock")
    };
    let x: Vec<ClaimOutcome> = answered(x).await;
    let y: Vec<ClaimOutcome> = answered(y).await;
    assert_eq!(x, [Same(1), Claimed, Claimed]);
    assert_eq!(y, [Same(3), Same(4)]);
}

/// Another edge claims `b` after this one found none of `a`, `b`, `c`
/// held, and commits while this one's copy waits on it: the copy stores
/// nothing, and the statement claims `a` and `c` and answers `b` with the
/// other edge's id.
#[tokio::test]
async fn a_key_claimed_between_the_check_and_the_copy_is_answered_with_that_claim() {
    let db = migrated().await;
    let mut other = client(&db.url).await;
    let transaction = other.transaction().await.expect("a transaction");
    let other_claim = claim("b", 99, 45.0, 0);
    transaction
        .execute(
            "INSERT INTO ingest_key_claim (ingest_key, location_id, person_id, lon, lat, creation_time) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &other_claim.key,
                &other_claim.id,
                &other_claim.person_id,
                &other_claim.position.lon,
                &other_claim.position.lat,
                &other_claim.time.to_naive(),
            ],
        )
        .await
        .expect("claimed by the other edge");

    let store = db.store.clone();
    let racing = tokio::spawn(async move {
        store
            .claim_keys(&[
                claim("a", 1, 45.0, 0),
                claim("b", 2, 45.0, 0),
                claim("c", 3, 46.0, 0),
            ])
            .await
    });
    let watcher = client(&db.url).await;
    wait_on_a_lock(&watcher, "COPY ingest_key_claim").await;
    assert!(!racing.is_finished(), "the claims did not wait");
    transaction.commit().await.expect("committed");

    let outcomes = tokio::time::timeout(Duration::from_secs(30), racing)
        .await
        .expect("answered within 30 s")
        .expect("no panic")
        .expect("claimed");
    assert_eq!(outcomes, [Claimed, Same(99), Claimed]);
    assert_eq!(
        claims(
            &db.store,
            &[
                claim("a", 10, 45.0, 0),
                claim("b", 20, 45.0, 0),
                claim("c", 30, 45.0, 0)
            ]
        )
        .await,
        [Same(1), Same(99), Conflict(3)]
    );
}

#[tokio::test]
async fn keys_stored_before_claims_are_claimed_by_their_locations() {
    let db = migrated().await;
    let person = db
        .store
        .create_person(&NewPerson::new("Ada", "Lovelace", "Analytical").expect("valid"))
        .await
        .expect("a person");
    // The schema before migration 0007, with a keyed location stored as
    // a writer stores it.
    db.server.psql(
        "udaconnect",
        "DROP TABLE ingest_key_claim; DELETE FROM udaconnect_migrations WHERE version = 7",
    );
    let id = db.store.reserve_location_ids(1).await.expect("an id")[0];
    let record = LocationRecord {
        id,
        person_id: person.id,
        position: Position::new(54.772_360_933_540_03, -122.29).expect("valid"),
        time: june().plus_micros(123_456),
        key: Some("phone:1".to_owned()),
    };
    let report = db
        .store
        .insert_locations(std::slice::from_ref(&record))
        .await
        .expect("stored");
    assert_eq!(report.inserted, 1);
    let migrated = db.store.migrate().await.expect("migrated");
    assert_eq!(migrated.applied, [7]);

    let retry = KeyClaim {
        id: id + 100,
        ..KeyClaim::of(&record).expect("a key")
    };
    let moved = KeyClaim {
        id: id + 101,
        position: Position::new(54.0, -122.29).expect("valid"),
        ..retry.clone()
    };
    assert_eq!(
        claims(&db.store, &[retry, moved]).await,
        [Same(id), Conflict(id)]
    );
    // The embedded store counts the keys it holds alike.
    let memory = MemoryStore::from_dataset(&udaconnect_domain::conference::Dataset {
        persons: vec![person],
        locations: vec![record.clone()],
    });
    let retry = KeyClaim {
        id: id + 100,
        ..KeyClaim::of(&record).expect("a key")
    };
    assert_eq!(claims(&memory, &[retry]).await, [Same(id)]);
}
