//! Location ids for the edge to give out: reserved from the database's
//! sequence in blocks (`Store::reserve_location_ids`), so they are real
//! location ids, unique across every edge and every API, known the moment
//! a location is accepted. A spare block is kept ahead so that requests do
//! not wait for the database, and so that the edge keeps accepting through
//! a short database restart.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use platform::{backoff::Backoff, health::ReadyFlag};
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;
use udaconnect_domain::{LocationId, Store, StoreError};

/// How long one reservation may take before the request is refused.
const RESERVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Reserved ids not given out yet; cheap to clone.
#[derive(Clone)]
pub struct IdPool {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    block: usize,
    ids: Mutex<VecDeque<LocationId>>,
    low: Notify,
}

impl IdPool {
    /// An empty pool reserving `block` ids at a time.
    pub fn new(store: Arc<dyn Store>, block: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                block: block.max(1),
                ids: Mutex::new(VecDeque::new()),
                low: Notify::new(),
            }),
        }
    }

    /// `count` ids, from the pool or, when it runs short, reserved now.
    pub async fn take(&self, count: usize) -> Result<Vec<LocationId>, StoreError> {
        let mut ids = self.inner.ids.lock().await;
        if ids.len() < count {
            let wanted = self.inner.block.max(count - ids.len());
            ids.extend(self.reserve(wanted).await?);
        }
        let taken: Vec<LocationId> = ids.drain(..count).collect();
        if ids.len() < self.inner.block {
            self.inner.low.notify_one();
        }
        Ok(taken)
    }

    async fn reserve(&self, count: usize) -> Result<Vec<LocationId>, StoreError> {
        tokio::time::timeout(
            RESERVE_TIMEOUT,
            self.inner.store.reserve_location_ids(count),
        )
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "reserving location ids took too long".to_owned(),
            ))
        })
    }

    /// Keeps at least two blocks in the pool until `shutdown`; `available`
    /// says whether any id is left.
    pub async fn keep_filled(&self, available: &ReadyFlag, shutdown: &CancellationToken) {
        let mut backoff = Backoff::default();
        loop {
            let held = self.inner.ids.lock().await.len();
            available.set(held > 0);
            if held < 2 * self.inner.block {
                match self.reserve(self.inner.block).await {
                    Ok(reserved) => {
                        let mut ids = self.inner.ids.lock().await;
                        ids.extend(reserved);
                        available.set(true);
                        backoff.reset();
                        continue;
                    }
                    Err(err) => {
                        let delay = backoff.next_delay();
                        tracing::warn!(error = %err, retry_in = ?delay, "cannot reserve location ids");
                        tokio::select! {
                            () = tokio::time::sleep(delay) => continue,
                            () = shutdown.cancelled() => return,
                        }
                    }
                }
            }
            tokio::select! {
                () = self.inner.low.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use udaconnect_store::MemoryStore;

    use super::*;

    #[tokio::test]
    async fn ids_are_given_once_across_blocks() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let pool = IdPool::new(Arc::clone(&store), 3);
        let mut seen = Vec::new();
        for count in [2, 2, 5, 1] {
            let ids = pool.take(count).await.expect("ids");
            assert_eq!(ids.len(), count);
            seen.extend(ids);
        }
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), seen.len(), "{seen:?}");
        let elsewhere = store.reserve_location_ids(1).await.expect("an id");
        assert!(!seen.contains(&elsewhere[0]));
    }
}
