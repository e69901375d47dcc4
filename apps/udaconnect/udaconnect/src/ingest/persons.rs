//! Who may report locations: the edge keeps the set of person ids.
//!
//! It loads every id at start and then asks the store every second for
//! ids above the largest it has (`Store::person_ids_after`): the database
//! is the source of truth, so the API that creates persons needs no rights
//! on the bus, and an edge restarted or added later catches up by itself.
//! A person created a moment ago, or whose id committed out of order
//! behind a larger one, is found on a miss: the edge asks the store once
//! before it rejects, and remembers an absent id for a short while so that
//! a flood of bad ids cannot hammer the database.
//!
//! Each refresh also reads the persons erased since the last one
//! (`Store::erasures`, by the store's cursor) and drops them from the set,
//! so that a location of a person erased is refused as of an unknown
//! person within a refresh of the erasure. The set holds the persons who
//! exist and nothing of those erased, only the cursor: its memory is the
//! persons', whatever the erasures.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, PoisonError, RwLock},
    time::{Duration, Instant},
};

use platform::health::ReadyFlag;
use tokio_util::sync::CancellationToken;
use udaconnect_domain::{PersonId, Store, StoreError, meeting::FeedCursor};

/// How long an id the store said it does not have is not asked again.
const ABSENT_FOR: Duration = Duration::from_millis(500);
/// The most absent ids remembered; beyond, the oldest are forgotten.
const MAX_ABSENT: usize = 100_000;

/// The persons an edge knows; cheap to clone.
#[derive(Clone)]
pub struct KnownPersons {
    store: Arc<dyn Store>,
    state: Arc<RwLock<State>>,
}

#[derive(Default)]
struct State {
    ids: HashSet<PersonId>,
    largest: PersonId,
    absent: HashMap<PersonId, Instant>,
    /// Where the erasures are read from next; `None` before the first
    /// load.
    erasures: Option<FeedCursor>,
    /// Refreshes that dropped persons erased, counted: an id looked up
    /// while one did is answered but not kept (the lookup may have begun
    /// before the erasure).
    forgotten: u64,
}

/// Whether a person may report locations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// Yes.
    Yes,
    /// The store does not have them.
    No,
    /// The store could not be asked.
    Unchecked,
}

impl KnownPersons {
    /// Knows nobody yet; [`Self::refresh`] loads them.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            state: Arc::default(),
        }
    }

    /// Adds the persons created since the last refresh, and drops those
    /// erased since; how many were added.
    pub async fn refresh(&self) -> Result<usize, StoreError> {
        let (after, since) = {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            (state.largest, state.erasures.clone())
        };
        // The first time, the erasures are followed from before the load:
        // one committed while it runs is read after it.
        let since = match since {
            Some(since) => since,
            None => self.store.erasures(None).await?.cursor,
        };
        let ids = self.store.person_ids_after(after).await?;
        let erased = self.store.erasures(Some(&since)).await?;
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        for id in &ids {
            state.ids.insert(*id);
            state.absent.remove(id);
            state.largest = state.largest.max(*id);
        }
        if !erased.persons.is_empty() {
            for id in &erased.persons {
                state.ids.remove(id);
            }
            state.forgotten += 1;
        }
        state.erasures = Some(erased.cursor);
        Ok(ids.len())
    }

    /// Whether `id` is a person, asking the store on a miss.
    pub async fn knows(&self, id: PersonId) -> Known {
        let forgotten = {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            if state.ids.contains(&id) {
                return Known::Yes;
            }
            if state
                .absent
                .get(&id)
                .is_some_and(|since| since.elapsed() < ABSENT_FOR)
            {
                return Known::No;
            }
            state.forgotten
        };
        match self.store.person(id).await {
            Ok(found) => {
                let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
                if found.is_some() {
                    if state.forgotten == forgotten {
                        state.ids.insert(id);
                    }
                    Known::Yes
                } else {
                    if state.absent.len() >= MAX_ABSENT {
                        state.absent.retain(|_, since| since.elapsed() < ABSENT_FOR);
                    }
                    state.absent.insert(id, Instant::now());
                    Known::No
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, person_id = id, "cannot check a person");
                Known::Unchecked
            }
        }
    }

    /// Whether the set holds `id`, without asking the store.
    pub fn holds(&self, id: PersonId) -> bool {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .ids
            .contains(&id)
    }

    /// Refreshes every `every` until `shutdown`; `loaded` turns on after
    /// the first full load.
    pub async fn keep_current(
        &self,
        every: Duration,
        loaded: &ReadyFlag,
        shutdown: &CancellationToken,
    ) {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                () = shutdown.cancelled() => return,
            }
            match self.refresh().await {
                Ok(added) => {
                    if !loaded.get() {
                        tracing::info!(persons = added, "person ids loaded");
                    }
                    loaded.set(true);
                    if failing {
                        tracing::info!("person ids current again");
                    }
                    failing = false;
                }
                Err(err) => {
                    if !failing {
                        tracing::warn!(error = %err, "cannot refresh person ids; keeping those known");
                    }
                    failing = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use udaconnect_domain::NewPerson;
    use udaconnect_store::MemoryStore;

    use super::*;

    #[tokio::test]
    async fn new_persons_are_found_by_refresh_or_on_a_miss() {
        let store = Arc::new(MemoryStore::new());
        let persons = KnownPersons::new(store.clone());
        let ada = store
            .create_person(&NewPerson::new("Ada", "L", "Co").expect("valid"))
            .await
            .expect("created");
        assert_eq!(persons.refresh().await.expect("refreshed"), 1);
        assert!(persons.holds(ada.id));
        assert_eq!(persons.knows(ada.id + 1).await, Known::No);
        let bob = store
            .create_person(&NewPerson::new("Bob", "L", "Co").expect("valid"))
            .await
            .expect("created");
        // Remembered as absent for a moment, then asked again.
        assert_eq!(persons.knows(bob.id).await, Known::No);
        persons
            .state
            .write()
            .expect("lock")
            .absent
            .insert(bob.id, Instant::now() - ABSENT_FOR);
        assert_eq!(persons.knows(bob.id).await, Known::Yes);
        assert!(persons.holds(bob.id));
        assert_eq!(persons.refresh().await.expect("refreshed"), 1);
    }

    #[tokio::test]
    async fn persons_erased_are_dropped_by_the_next_refresh_and_refused_after() {
        let store = Arc::new(MemoryStore::new());
        let persons = KnownPersons::new(store.clone());
        let mut ids = Vec::new();
        for name in ["Ada", "Bob", "Cy"] {
            let person = store
                .create_person(&NewPerson::new(name, "L", "Co").expect("valid"))
                .await
                .expect("created");
            ids.push(person.id);
        }
        // Erased before the first load: never held.
        store.erase_person(ids[0]).await.expect("erased");
        assert_eq!(persons.refresh().await.expect("loaded"), 2);
        assert!(!persons.holds(ids[0]) && persons.holds(ids[1]));
        // Erased after it: held until the next refresh, then dropped, and
        // refused when asked.
        store.erase_person(ids[1]).await.expect("erased");
        assert!(persons.holds(ids[1]));
        assert_eq!(persons.refresh().await.expect("refreshed"), 0);
        assert!(!persons.holds(ids[1]));
        assert_eq!(persons.knows(ids[1]).await, Known::No);
        assert!(persons.holds(ids[2]));
        let state = persons.state.read().expect("lock");
        assert_eq!(state.ids.len(), 1, "nothing kept of the persons erased");
    }
}
