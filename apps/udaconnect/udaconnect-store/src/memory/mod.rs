//! The embedded store: everything in memory, for `cargo run` with no
//! database, and the reference the PostGIS store is tested against.
//!
//! Reads share an [`RwLock`], writes take it alone; the two connection
//! queries, which may measure hundreds of thousands of pairs, run on
//! tokio's blocking threads so that they never stall the async workers.

mod data;
mod deadline;
mod near;

use std::{
    sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard},
    time::Duration,
};

use async_trait::async_trait;
use udaconnect_domain::{
    CompatConnection, CompatQuery, ConnectionQuery, Contact, InsertReport, Location, LocationId,
    LocationRange, LocationRecord, NewPerson, Person, PersonId, PersonSearch, Stats, Store,
    StoreError, conference::Dataset,
};

use self::{data::Data, deadline::Deadline};

/// The in-memory store.
#[derive(Clone)]
pub struct MemoryStore {
    data: Arc<RwLock<Data>>,
    /// Longest a connection query may run before it is stopped.
    query_timeout: Option<Duration>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::from_dataset(&Dataset::default())
    }

    /// A store holding `data`, ids kept (as [`Store::insert_locations`]
    /// would, but in one go).
    pub fn from_dataset(data: &Dataset) -> Self {
        Self {
            data: Arc::new(RwLock::new(Data::with(&data.persons, &data.locations))),
            query_timeout: None,
        }
    }

    /// The same store, its connection queries stopped with
    /// [`StoreError::TimedOut`] once they have run for `timeout`.
    pub fn with_query_timeout(self, timeout: Duration) -> Self {
        Self {
            query_timeout: Some(timeout),
            ..self
        }
    }

    /// A store holding rows read from another store as they are (their
    /// ids and coordinates kept): the PostGIS store's connections index.
    pub(crate) fn of_rows(persons: Vec<Person>, locations: Vec<Location>) -> Self {
        Self {
            data: Arc::new(RwLock::new(Data::loaded(
                persons,
                locations.into_iter().map(|location| (location, None)),
            ))),
            query_timeout: None,
        }
    }

    /// Adds rows read from another store since [`Self::of_rows`] (or the
    /// last call): a person replaces the one of its id, a location whose
    /// id is held is skipped.
    pub(crate) fn add_rows(&self, persons: Vec<Person>, locations: Vec<Location>) {
        if !persons.is_empty() || !locations.is_empty() {
            self.write().add(persons, locations);
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Data> {
        self.data.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Data> {
        self.data.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `query` on the data on a blocking thread, under the store's
    /// query deadline (which counts from now).
    async fn blocking<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Data, &mut Deadline) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let data = Arc::clone(&self.data);
        let mut deadline = Deadline::after(self.query_timeout);
        tokio::task::spawn_blocking(move || {
            query(
                &data.read().unwrap_or_else(PoisonError::into_inner),
                &mut deadline,
            )
        })
        .await
        .map_err(|err| StoreError::Unavailable(format!("the query did not finish: {err}")))?
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn persons(&self) -> Result<Vec<Person>, StoreError> {
        Ok(self.read().persons())
    }

    async fn search_persons(&self, search: &PersonSearch) -> Result<Vec<Person>, StoreError> {
        Ok(self.read().search_persons(search))
    }

    async fn person(&self, id: PersonId) -> Result<Option<Person>, StoreError> {
        Ok(self.read().person(id))
    }

    async fn person_ids_after(&self, after: PersonId) -> Result<Vec<PersonId>, StoreError> {
        Ok(self.read().person_ids_after(after))
    }

    async fn create_person(&self, person: &NewPerson) -> Result<Person, StoreError> {
        Ok(self.write().create_person(person))
    }

    async fn location(&self, id: LocationId) -> Result<Option<Location>, StoreError> {
        Ok(self.read().location(id))
    }

    async fn insert_locations(&self, batch: &[LocationRecord]) -> Result<InsertReport, StoreError> {
        Ok(self.write().insert_locations(batch))
    }

    async fn reserve_location_ids(&self, count: usize) -> Result<Vec<LocationId>, StoreError> {
        Ok(self.write().reserve_location_ids(count))
    }

    async fn locations_of(&self, range: &LocationRange) -> Result<Vec<Location>, StoreError> {
        Ok(self.read().locations_of(range))
    }

    async fn compat_connections(
        &self,
        query: &CompatQuery,
    ) -> Result<Vec<CompatConnection>, StoreError> {
        let query = *query;
        self.blocking(move |data, deadline| data.compat_connections(&query, deadline))
            .await
    }

    async fn connections(&self, query: &ConnectionQuery) -> Result<Vec<Contact>, StoreError> {
        let query = *query;
        self.blocking(move |data, deadline| data.connections(&query, deadline))
            .await
    }

    async fn stats(&self) -> Result<Stats, StoreError> {
        Ok(self.read().stats())
    }
}
