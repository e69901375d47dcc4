//! The embedded store: everything in memory, for `cargo run` with no
//! database, and the reference the PostGIS store is tested against.
//!
//! Reads share an [`RwLock`], writes take it alone. Every call that takes
//! the lock runs on tokio's blocking threads, never on an async worker: a
//! connection query may hold a read lock for its whole deadline, and a
//! write (or a read queued behind one) waiting for it must not stall the
//! runtime, which also answers `/readyz` and `/metrics`. Rows a replica
//! adds, and persons it forgets, are queued without the lock and applied
//! by the next query.
//!
//! Locks are always taken in the same order, the data's before the
//! meetings' before the tombstones', so that an erasure, which holds all
//! three while it removes a person from each, never waits in a circle.

mod credentials;
mod data;
mod deadline;
mod erasure;
mod meetings;
mod near;

use std::{
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use udaconnect_domain::{
    ClaimOutcome, CompatConnection, CompatQuery, ConnectionQuery, Contact, Credential,
    CredentialId, Digest, Erased, Erasures, InsertReport, KeyClaim, Location, LocationId,
    LocationRange, LocationRecord, NewCredential, NewPerson, Person, PersonId, PersonSearch, Stats,
    Store, StoreError, Timestamp,
    conference::Dataset,
    meeting::{
        FeedCursor, Kept, MeetingChanges, MeetingFeed, MeetingQuery, MeetingRules, Sighting,
    },
};

use self::{
    credentials::CredentialBook, data::Data, deadline::Deadline, erasure::Tombstones,
    meetings::MeetingBook,
};

/// The in-memory store.
#[derive(Clone)]
pub struct MemoryStore {
    data: Arc<RwLock<Data>>,
    /// Rows added by [`Self::add_rows`], not applied yet.
    pending: Arc<Mutex<Pending>>,
    /// Locations held, the pending ones counted, read without the lock.
    held: Arc<AtomicU64>,
    /// Longest a connection query may run before it is stopped.
    query_timeout: Option<Duration>,
    /// The meetings, apart from the data: folding locations in never
    /// waits for a connection query.
    meetings: Arc<Mutex<MeetingBook>>,
    /// Where each publisher of the meetings' events has got to.
    event_cursors: Arc<Mutex<std::collections::HashMap<String, FeedCursor>>>,
    /// Attendees' links and phones' tokens, by digest.
    credentials: Arc<Mutex<CredentialBook>>,
    /// The persons erased.
    tombstones: Arc<Mutex<Tombstones>>,
}

/// Rows queued for the data, and persons to forget after them.
#[derive(Default)]
struct Pending {
    persons: Vec<Person>,
    locations: Vec<Location>,
    forgotten: Vec<PersonId>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.persons.is_empty() && self.locations.is_empty() && self.forgotten.is_empty()
    }
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
        Self::of(Data::with(&data.persons, &data.locations))
    }

    fn of(data: Data) -> Self {
        let held = data.stats().locations;
        Self {
            data: Arc::new(RwLock::new(data)),
            pending: Arc::default(),
            held: Arc::new(AtomicU64::new(held)),
            query_timeout: None,
            meetings: Arc::default(),
            event_cursors: Arc::default(),
            credentials: Arc::default(),
            tombstones: Arc::default(),
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
        Self::of(Data::loaded(
            persons,
            locations.into_iter().map(|location| (location, None)),
        ))
    }

    /// Adds rows read from another store since [`Self::of_rows`] (or the
    /// last call): a person replaces the one of its id, a location whose
    /// id is held is skipped. They are queued, without waiting for the
    /// data's lock (a long query may hold it), and applied before the next
    /// call reads.
    pub(crate) fn add_rows(&self, persons: Vec<Person>, locations: Vec<Location>) {
        if !persons.is_empty() || !locations.is_empty() {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            self.held
                .fetch_add(locations.len() as u64, Ordering::Relaxed);
            pending.persons.extend(persons);
            pending.locations.extend(locations);
        }
    }

    /// Forgets `persons`, erased in the other store since the last call,
    /// with their locations: queued as [`Self::add_rows`]' rows are, and
    /// applied after them (a read never brings a location of a person
    /// erased before it, so the order within the queue does not matter).
    pub(crate) fn forget_persons(&self, persons: Vec<PersonId>) {
        if !persons.is_empty() {
            self.pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .forgotten
                .extend(persons);
        }
    }

    /// How many locations are held, the queued ones counted (a queued
    /// row whose id is held already is taken off once applied).
    pub(crate) fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// Runs `work` on the data on a blocking thread, the queued rows
    /// applied first.
    async fn locked<T: Send + 'static>(
        &self,
        work: impl FnOnce(&RwLock<Data>) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let (data, pending, held) = (
            Arc::clone(&self.data),
            Arc::clone(&self.pending),
            Arc::clone(&self.held),
        );
        tokio::task::spawn_blocking(move || {
            let queued =
                std::mem::take(&mut *pending.lock().unwrap_or_else(PoisonError::into_inner));
            if !queued.is_empty() {
                let mut data = data.write().unwrap_or_else(PoisonError::into_inner);
                data.add(queued.persons, queued.locations);
                for id in queued.forgotten {
                    data.erase_person(id, &mut Erased::default());
                }
                held.store(data.stats().locations, Ordering::Relaxed);
            }
            work(&data)
        })
        .await
        .map_err(|err| StoreError::Unavailable(format!("the store's work did not finish: {err}")))
    }

    /// The credentials, locked (never for long: no call waits under it).
    fn book(&self) -> std::sync::MutexGuard<'_, CredentialBook> {
        self.credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the data on a blocking thread.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Data) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        self.locked(|data| read(&data.read().unwrap_or_else(PoisonError::into_inner)))
            .await
    }

    /// Changes the data on a blocking thread.
    async fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&mut Data) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let held = Arc::clone(&self.held);
        self.locked(move |data| {
            let mut data = data.write().unwrap_or_else(PoisonError::into_inner);
            let done = write(&mut data);
            held.store(data.stats().locations, Ordering::Relaxed);
            done
        })
        .await
    }

    /// Runs a connection query on the data on a blocking thread, under
    /// the store's query deadline (which counts from now).
    async fn blocking<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Data, &mut Deadline) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let mut deadline = Deadline::after(self.query_timeout);
        self.read(move |data| query(data, &mut deadline)).await?
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
        self.read(Data::persons).await
    }

    async fn search_persons(&self, search: &PersonSearch) -> Result<Vec<Person>, StoreError> {
        let search = search.clone();
        self.read(move |data| data.search_persons(&search)).await
    }

    async fn person(&self, id: PersonId) -> Result<Option<Person>, StoreError> {
        self.read(move |data| data.person(id)).await
    }

    async fn persons_by_id(
        &self,
        ids: &[PersonId],
    ) -> Result<std::collections::HashMap<PersonId, Person>, StoreError> {
        let ids = ids.to_vec();
        self.read(move |data| {
            ids.iter()
                .filter_map(|id| data.person(*id))
                .map(|person| (person.id, person))
                .collect()
        })
        .await
    }

    async fn person_ids_after(&self, after: PersonId) -> Result<Vec<PersonId>, StoreError> {
        self.read(move |data| data.person_ids_after(after)).await
    }

    async fn create_person(&self, person: &NewPerson) -> Result<Person, StoreError> {
        let person = person.clone();
        self.write(move |data| data.create_person(&person)).await
    }

    async fn location(&self, id: LocationId) -> Result<Option<Location>, StoreError> {
        self.read(move |data| data.location(id)).await
    }

    async fn insert_locations(&self, batch: &[LocationRecord]) -> Result<InsertReport, StoreError> {
        let (batch, tombstones) = (batch.to_vec(), Arc::clone(&self.tombstones));
        self.write(move |data| data.insert_locations(&batch, &lock(&tombstones)))
            .await
    }

    async fn reserve_location_ids(&self, count: usize) -> Result<Vec<LocationId>, StoreError> {
        self.write(move |data| data.reserve_location_ids(count))
            .await
    }

    async fn claim_keys(&self, claims: &[KeyClaim]) -> Result<Vec<ClaimOutcome>, StoreError> {
        let claims = claims.to_vec();
        self.write(move |data| data.claim_keys(&claims)).await
    }

    async fn locations_of(&self, range: &LocationRange) -> Result<Vec<Location>, StoreError> {
        let range = *range;
        self.read(move |data| data.locations_of(&range)).await
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
        self.read(Data::stats).await
    }

    async fn apply_meetings(
        &self,
        rules: &MeetingRules,
        sightings: &[Sighting],
    ) -> Result<MeetingChanges, StoreError> {
        let (book, tombstones, rules, sightings) = (
            Arc::clone(&self.meetings),
            Arc::clone(&self.tombstones),
            *rules,
            sightings.to_vec(),
        );
        tokio::task::spawn_blocking(move || {
            lock(&book).apply(&rules, &sightings, &lock(&tombstones))
        })
        .await
        .map_err(|err| StoreError::Unavailable(format!("the store's work did not finish: {err}")))
    }

    async fn meeting_feed(
        &self,
        since: Option<&FeedCursor>,
        person: Option<PersonId>,
        limit: usize,
    ) -> Result<MeetingFeed, StoreError> {
        let (book, since) = (Arc::clone(&self.meetings), since.cloned());
        tokio::task::spawn_blocking(move || {
            book.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .feed(since.as_ref(), person, limit)
        })
        .await
        .map_err(|err| StoreError::Unavailable(format!("the store's work did not finish: {err}")))
    }

    async fn event_cursor(&self, publisher: &str) -> Result<Option<FeedCursor>, StoreError> {
        Ok(self
            .event_cursors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(publisher)
            .cloned())
    }

    async fn save_event_cursor(
        &self,
        publisher: &str,
        cursor: &FeedCursor,
    ) -> Result<(), StoreError> {
        self.event_cursors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(publisher.to_owned(), cursor.clone());
        Ok(())
    }

    async fn create_credential(
        &self,
        credential: &NewCredential,
    ) -> Result<Credential, StoreError> {
        let person = credential.person_id;
        if self.person(person).await?.is_none() {
            return Err(StoreError::UnknownPerson(person));
        }
        Ok(self.book().create(credential, Timestamp::now()))
    }

    async fn credential_by_digest(
        &self,
        digest: &Digest,
    ) -> Result<Option<Credential>, StoreError> {
        Ok(self.book().by_digest(digest))
    }

    async fn credential(&self, id: CredentialId) -> Result<Option<Credential>, StoreError> {
        Ok(self.book().get(id))
    }

    async fn credentials_of(&self, person: PersonId) -> Result<Vec<Credential>, StoreError> {
        Ok(self.book().of(person))
    }

    async fn revoke_credential(&self, id: CredentialId) -> Result<Option<Credential>, StoreError> {
        Ok(self.book().revoke(id, Timestamp::now()))
    }

    async fn erase_person(&self, id: PersonId) -> Result<Option<Erased>, StoreError> {
        let (book, tombstones, credentials) = (
            Arc::clone(&self.meetings),
            Arc::clone(&self.tombstones),
            Arc::clone(&self.credentials),
        );
        self.write(move |data| {
            // Every collection holding anything of a person, all locked
            // at once: no reader sees them half erased.
            let (mut book, mut tombstones, mut credentials) =
                (lock(&book), lock(&tombstones), lock(&credentials));
            let mut erased = Erased::default();
            if !data.erase_person(id, &mut erased) {
                return None;
            }
            book.erase_person(id, &mut erased);
            credentials.remove_person(id);
            tombstones.record(id);
            Some(erased)
        })
        .await
    }

    async fn erasures(&self, since: Option<&FeedCursor>) -> Result<Erasures, StoreError> {
        Ok(lock(&self.tombstones).since(since))
    }

    async fn meetings(&self, query: &MeetingQuery) -> Result<Vec<Kept>, StoreError> {
        let (book, query) = (Arc::clone(&self.meetings), *query);
        tokio::task::spawn_blocking(move || {
            book.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .of_person(&query)
        })
        .await
        .map_err(|err| StoreError::Unavailable(format!("the store's work did not finish: {err}")))
    }
}

/// `mutex`'s guard, whether or not a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
