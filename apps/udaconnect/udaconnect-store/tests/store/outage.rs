//! The database goes away and comes back: calls fail fast meanwhile, and
//! the same store works again afterwards, with no restart.

use std::time::{Duration, Instant};

use testkit::eventually;
use udaconnect_domain::{Store, StoreError};
use udaconnect_store::{PgConfig, PgStore};

use crate::helpers::migrated;

#[tokio::test]
async fn calls_fail_fast_while_the_database_is_down_and_recover() {
    let mut db = migrated().await;
    let store = PgStore::new(&PgConfig {
        connect_timeout: Duration::from_secs(1),
        wait_timeout: Duration::from_secs(1),
        statement_timeout: Duration::from_secs(2),
        ..PgConfig::new(&db.url)
    })
    .expect("store");
    store.check().await.expect("up");
    assert!(store.persons().await.expect("persons").is_empty());

    db.server.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let down = store.check().await;
        assert!(matches!(down, Err(StoreError::Unavailable(_))), "{down:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(matches!(
            store.persons().await,
            Err(StoreError::Unavailable(_))
        ));
    }

    db.server.start_again();
    eventually(
        "the store to reconnect",
        Duration::from_secs(20),
        || async { store.check().await.ok() },
    )
    .await;
    assert!(store.persons().await.expect("persons again").is_empty());
}
