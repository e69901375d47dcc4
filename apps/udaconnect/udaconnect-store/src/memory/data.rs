//! The embedded store's data and its queries, synchronous: an R-tree over
//! (longitude, latitude) finds the candidates near a point, a per-person
//! index in time order gives a person's own locations, and every answer
//! follows [`udaconnect_domain::query`] exactly, in the same order as the
//! PostGIS store.

use std::{
    collections::{BTreeMap, HashMap, HashSet, hash_map},
    ops::Bound,
    sync::Arc,
};

use rstar::{AABB, RTree, primitives::GeomWithData};
use udaconnect_domain::{
    ClaimOutcome, Closest, CompatConnection, CompatQuery, ConnectionQuery, Contact, Erased,
    InsertReport, KeyClaim, Location, LocationId, LocationRange, LocationRecord, NewPerson, Person,
    PersonId, PersonOrder, PersonSearch, Position, Stats, StoreError, Timestamp,
    claim::{first_of_each_key, outcomes},
    geodesic::search_boxes,
    query::round_to_mm,
};

use super::{
    deadline::Deadline,
    erasure::Tombstones,
    near::{Origin, Pair},
};

/// A point of the R-tree: (longitude, latitude), with what the queries
/// filter on, so that candidates are sifted without reaching for their
/// locations.
type Entry = GeomWithData<[f64; 2], Point>;

/// What an R-tree entry carries.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    /// The location's slot in [`Data::locations`].
    slot: u32,
    person_id: PersonId,
    time: Timestamp,
}

/// Everything the embedded store holds.
#[derive(Default)]
pub struct Data {
    persons: BTreeMap<PersonId, Person>,
    /// The next person id: above every id ever stored.
    next_person: PersonId,
    /// Every location, in the order stored.
    locations: Vec<Location>,
    /// Slot of each location id.
    slots: HashMap<LocationId, u32>,
    /// The idempotency keys stored, with their locations' ids.
    keys: HashMap<String, LocationId>,
    /// The edges' claims of idempotency keys, each key's first.
    claims: HashMap<String, KeyClaim>,
    /// Each person's locations by (time, id).
    by_person: HashMap<PersonId, BTreeMap<(Timestamp, LocationId), u32>>,
    tree: RTree<Entry>,
    /// The next location id to give out: above every id ever stored or
    /// given out, so none is ever given twice.
    next_location: LocationId,
}

fn entry(location: &Location, slot: u32) -> Entry {
    GeomWithData::new(
        [location.position.lon, location.position.lat],
        Point {
            slot,
            person_id: location.person_id,
            time: location.time,
        },
    )
}

fn position(entry: &Entry) -> Position {
    let [lon, lat] = *entry.geom();
    Position { lat, lon }
}

impl Data {
    /// Data holding `persons` and `locations` (their ids kept), the R-tree
    /// bulk-loaded. Later duplicates of an id are dropped.
    pub fn with(persons: &[Person], locations: &[LocationRecord]) -> Self {
        Self::loaded(
            persons.iter().cloned(),
            locations
                .iter()
                .map(|record| (record.location(), record.key.clone())),
        )
    }

    /// Data holding `persons` and stored `locations` as they are (their
    /// coordinates kept, which a record would derive), with their
    /// idempotency keys; the R-tree bulk-loaded. Later duplicates of an id
    /// are dropped.
    pub fn loaded(
        persons: impl IntoIterator<Item = Person>,
        locations: impl IntoIterator<Item = (Location, Option<String>)>,
    ) -> Self {
        let mut data = Self {
            next_person: 1,
            next_location: 1,
            ..Self::default()
        };
        for person in persons {
            data.add_person(person);
        }
        let mut entries = Vec::new();
        for (location, key) in locations {
            if data.slots.contains_key(&location.id) {
                continue;
            }
            if let Some(key) = key {
                // Stored before any claim: its location claims it, as
                // migration 0007 does in PostgreSQL.
                data.claims.entry(key.clone()).or_insert_with(|| KeyClaim {
                    key: key.clone(),
                    id: location.id,
                    person_id: location.person_id,
                    position: location.position,
                    time: location.time,
                });
                data.keys.insert(key, location.id);
            }
            let slot = data.push(location);
            entries.push(entry(&data.locations[slot as usize], slot));
        }
        data.tree = RTree::bulk_load(entries);
        data
    }

    /// Adds persons and stored locations as they are, replacing a person
    /// of the same id and skipping a location whose id is already held.
    pub fn add(&mut self, persons: Vec<Person>, locations: Vec<Location>) {
        for person in persons {
            self.add_person(person);
        }
        for location in locations {
            if !self.slots.contains_key(&location.id) {
                self.store(location);
            }
        }
    }

    fn add_person(&mut self, person: Person) {
        self.next_person = self.next_person.max(person.id.saturating_add(1));
        self.persons.insert(person.id, person);
    }

    /// Adds `location` to every index but the R-tree; returns its slot.
    fn push(&mut self, location: Location) -> u32 {
        let slot = u32::try_from(self.locations.len()).unwrap_or(u32::MAX);
        self.next_location = self.next_location.max(location.id.saturating_add(1));
        self.slots.insert(location.id, slot);
        self.by_person
            .entry(location.person_id)
            .or_default()
            .insert((location.time, location.id), slot);
        self.locations.push(location);
        slot
    }

    fn store(&mut self, location: Location) -> Location {
        let slot = self.push(location.clone());
        self.tree.insert(entry(&location, slot));
        location
    }

    pub fn persons(&self) -> Vec<Person> {
        self.persons.values().cloned().collect()
    }

    pub fn search_persons(&self, search: &PersonSearch) -> Vec<Person> {
        let needle = search.text.as_deref().map(str::to_lowercase);
        let past = search.after.map_or(Bound::Unbounded, Bound::Excluded);
        let in_order: Box<dyn Iterator<Item = (&PersonId, &Person)>> = match search.order {
            PersonOrder::Id => Box::new(self.persons.range((past, Bound::Unbounded))),
            PersonOrder::Newest => Box::new(self.persons.range((Bound::Unbounded, past)).rev()),
        };
        in_order
            .map(|(_, person)| person)
            .filter(|person| {
                needle
                    .as_deref()
                    .is_none_or(|needle| person.matches(needle))
            })
            .take(search.limit)
            .cloned()
            .collect()
    }

    pub fn person(&self, id: PersonId) -> Option<Person> {
        self.persons.get(&id).cloned()
    }

    pub fn person_ids_after(&self, after: PersonId) -> Vec<PersonId> {
        self.persons
            .range((Bound::Excluded(after), Bound::Unbounded))
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn create_person(&mut self, person: &NewPerson) -> Person {
        let person = Person {
            id: self.next_person,
            first_name: person.first_name.clone(),
            last_name: person.last_name.clone(),
            company_name: person.company_name.clone(),
        };
        self.add_person(person.clone());
        person
    }

    pub fn location(&self, id: LocationId) -> Option<Location> {
        self.slots
            .get(&id)
            .map(|slot| self.locations[*slot as usize].clone())
    }

    /// Stores `batch` (see [`udaconnect_domain::Store::insert_locations`]):
    /// a record of a person `tombstones` holds is reported erased, and
    /// the claims of that person's keys (made while the edges did not know
    /// yet) are forgotten.
    pub fn insert_locations(
        &mut self,
        batch: &[LocationRecord],
        tombstones: &Tombstones,
    ) -> InsertReport {
        let mut report = InsertReport::default();
        let mut erased = HashSet::new();
        for record in batch {
            if !self.persons.contains_key(&record.person_id) {
                if tombstones.holds(record.person_id) {
                    report.erased.push(record.id);
                    erased.insert(record.person_id);
                } else {
                    report.unknown_person.push(record.id);
                }
            } else if self.slots.contains_key(&record.id)
                || record
                    .key
                    .as_ref()
                    .is_some_and(|key| self.keys.contains_key(key))
            {
                report.duplicates += 1;
            } else {
                if let Some(key) = &record.key {
                    self.keys.insert(key.clone(), record.id);
                }
                self.store(record.location());
                report.inserted += 1;
            }
        }
        if !erased.is_empty() {
            self.claims
                .retain(|_, claim| !erased.contains(&claim.person_id));
        }
        report
    }

    /// Removes person `id` and what `Data` holds of them: their locations
    /// (from every index) with their idempotency keys, and the claims of
    /// their keys; counted into `erased`. `false` if there is no such
    /// person.
    pub fn erase_person(&mut self, id: PersonId, erased: &mut Erased) -> bool {
        if self.persons.remove(&id).is_none() {
            return false;
        }
        let mut slots: Vec<u32> = self
            .by_person
            .remove(&id)
            .map(|own| own.into_values().collect())
            .unwrap_or_default();
        // From the last slot down: each removal moves the last location
        // into the slot freed, and that one is never one to remove.
        slots.sort_unstable_by(|a, b| b.cmp(a));
        let mut gone = HashSet::with_capacity(slots.len());
        for slot in slots {
            gone.insert(self.remove_location(slot));
        }
        self.keys.retain(|_, location| !gone.contains(location));
        let claims = self.claims.len();
        self.claims.retain(|_, claim| claim.person_id != id);
        erased.locations += gone.len() as u64;
        erased.key_claims += (claims - self.claims.len()) as u64;
        true
    }

    /// Removes the location in `slot` from every index but `by_person`
    /// (whose entry the caller removes), moving the last location into the
    /// slot; its id.
    fn remove_location(&mut self, slot: u32) -> LocationId {
        let index = slot as usize;
        let location = self.locations.swap_remove(index);
        self.tree.remove(&entry(&location, slot));
        self.slots.remove(&location.id);
        if let Some(moved) = self.locations.get(index) {
            let from = u32::try_from(self.locations.len()).unwrap_or(u32::MAX);
            self.tree.remove(&entry(moved, from));
            self.tree.insert(entry(moved, slot));
            self.slots.insert(moved.id, slot);
            if let Some(own) = self.by_person.get_mut(&moved.person_id) {
                own.insert((moved.time, moved.id), slot);
            }
        }
        location.id
    }

    pub fn reserve_location_ids(&mut self, count: usize) -> Vec<LocationId> {
        let first = self.next_location;
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        self.next_location = first.saturating_add(count);
        (first..self.next_location).collect()
    }

    /// Records the first claim of each key of `claims` not held yet; each
    /// claim's outcome (see [`udaconnect_domain::claim`]).
    pub fn claim_keys(&mut self, claims: &[KeyClaim]) -> Vec<ClaimOutcome> {
        let mut earlier = HashMap::new();
        for first in first_of_each_key(claims) {
            match self.claims.entry(first.key.clone()) {
                hash_map::Entry::Occupied(held) => {
                    earlier.insert(first.key.clone(), held.get().clone());
                }
                hash_map::Entry::Vacant(free) => {
                    free.insert(first.clone());
                }
            }
        }
        outcomes(claims, &earlier)
    }

    /// The person's locations with `start <= time < end`, by (time, id).
    fn own(
        &self,
        person_id: PersonId,
        start: Timestamp,
        end: Timestamp,
    ) -> impl Iterator<Item = &Location> {
        self.by_person
            .get(&person_id)
            .into_iter()
            .filter(move |_| start < end)
            .flat_map(move |locations| {
                locations.range((start, LocationId::MIN)..(end, LocationId::MIN))
            })
            .map(|(_, slot)| &self.locations[*slot as usize])
    }

    pub fn locations_of(&self, range: &LocationRange) -> Vec<Location> {
        let Some(locations) = self.by_person.get(&range.person_id) else {
            return Vec::new();
        };
        let (from, after) = match range.after {
            Some(after) => ((after.time, after.id), true),
            None => ((range.start, LocationId::MIN), false),
        };
        let to = (range.end, LocationId::MIN);
        if from >= to {
            return Vec::new();
        }
        let from = if after {
            Bound::Excluded(from)
        } else {
            Bound::Included(from)
        };
        locations
            .range((from, Bound::Excluded(to)))
            .map(|(_, slot)| &self.locations[*slot as usize])
            .filter(|location| location.time >= range.start)
            .take(range.limit)
            .cloned()
            .collect()
    }

    fn at(&self, entry: &Entry) -> &Location {
        &self.locations[entry.data.slot as usize]
    }

    /// Every other person's entry within `metres` of `own` whose time
    /// `keep`s, with the pair.
    fn near<'a>(
        &'a self,
        own: &'a Location,
        origin: &'a Origin,
        metres: f64,
        keep: impl Fn(Timestamp) -> bool + 'a,
    ) -> impl Iterator<Item = (&'a Entry, Pair<'a>)> + 'a {
        search_boxes(own.position, metres)
            .into_iter()
            .flat_map(move |area| {
                let envelope =
                    AABB::from_corners([area.min_lon, area.min_lat], [area.max_lon, area.max_lat]);
                self.tree.locate_in_envelope(&envelope)
            })
            .filter(move |entry| entry.data.person_id != own.person_id && keep(entry.data.time))
            .filter_map(move |entry| {
                let mut pair = Pair::new(position(entry), origin);
                pair.within(metres).then_some((entry, pair))
            })
    }

    pub fn compat_connections(
        &self,
        query: &CompatQuery,
        deadline: &mut Deadline,
    ) -> Result<Vec<CompatConnection>, StoreError> {
        let (start, end) = query.own_window();
        let (others_start, others_end) = query.others_window();
        let metres = query.distance.metres();
        let mut rows = Vec::new();
        let mut persons: HashMap<PersonId, Arc<Person>> = HashMap::new();
        for own in self.own(query.person_id, start, end) {
            let origin = Origin::new(own.position);
            let mut near: Vec<&Location> = Vec::new();
            for (entry, _) in self.near(own, &origin, metres, |time| {
                time >= others_start && time < others_end
            }) {
                deadline.check()?;
                near.push(self.at(entry));
            }
            near.sort_unstable_by_key(|other| other.id);
            for other in near {
                if rows.len() == query.limit {
                    return Ok(rows);
                }
                let person = match persons.entry(other.person_id) {
                    hash_map::Entry::Occupied(person) => Arc::clone(person.get()),
                    hash_map::Entry::Vacant(slot) => {
                        Arc::clone(slot.insert(Arc::new(self.person_of(other)?)))
                    }
                };
                rows.push(CompatConnection {
                    person,
                    location: other.clone(),
                });
            }
        }
        Ok(rows)
    }

    fn person_of(&self, location: &Location) -> Result<Person, StoreError> {
        self.persons
            .get(&location.person_id)
            .cloned()
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "location {} names person {}, who does not exist",
                    location.id, location.person_id
                ))
            })
    }

    pub fn connections(
        &self,
        query: &ConnectionQuery,
        deadline: &mut Deadline,
    ) -> Result<Vec<Contact>, StoreError> {
        let (start, end) = query.own_window();
        let metres = query.distance.metres();
        let mut tallies: HashMap<PersonId, Tally> = HashMap::new();
        for own in self.own(query.person_id, start, end) {
            let (lo, hi) = query.others_span(own.time);
            let origin = Origin::new(own.position);
            for (entry, pair) in self.near(own, &origin, metres, |time| time >= lo && time <= hi) {
                deadline.check()?;
                match tallies.entry(entry.data.person_id) {
                    hash_map::Entry::Occupied(mut tally) => {
                        tally
                            .get_mut()
                            .add(entry.data.time, pair, || self.at(entry));
                    }
                    hash_map::Entry::Vacant(tally) => {
                        tally.insert(Tally::new(self.at(entry), pair));
                    }
                }
            }
        }
        let mut contacts: Vec<(PersonId, Tally)> = tallies
            .into_iter()
            .filter(|(person_id, tally)| match query.after {
                None => true,
                Some(after) => {
                    tally.encounters < after.encounters
                        || (tally.encounters == after.encounters && *person_id > after.person_id)
                }
            })
            .collect();
        contacts.sort_unstable_by(|(a_id, a), (b_id, b)| {
            b.encounters.cmp(&a.encounters).then(a_id.cmp(b_id))
        });
        contacts
            .into_iter()
            .take(query.limit)
            .map(|(person_id, tally)| {
                Ok(Contact {
                    person: self.persons.get(&person_id).cloned().ok_or_else(|| {
                        StoreError::Corrupt(format!("person {person_id} does not exist"))
                    })?,
                    encounters: tally.encounters,
                    first_met: tally.first_met,
                    last_met: tally.last_met,
                    closest: Closest {
                        distance_m: round_to_mm(tally.closest.distance_m),
                        ..tally.closest
                    },
                })
            })
            .collect()
    }

    pub fn stats(&self) -> Stats {
        Stats {
            persons: self.persons.len() as u64,
            locations: self.locations.len() as u64,
        }
    }
}

/// One contact, as its encounters are found.
struct Tally {
    encounters: u64,
    first_met: Timestamp,
    last_met: Timestamp,
    /// The closest so far, its distance exact and not yet rounded.
    closest: Closest,
}

impl Tally {
    fn new(other: &Location, mut pair: Pair) -> Self {
        Self {
            encounters: 1,
            first_met: other.time,
            last_met: other.time,
            closest: closest(other, pair.exact()),
        }
    }

    /// Counts an encounter at `time`; `other` gives its location, only
    /// reached for when it may be the closest.
    fn add<'a>(&mut self, time: Timestamp, mut pair: Pair, other: impl FnOnce() -> &'a Location) {
        self.encounters += 1;
        self.first_met = self.first_met.min(time);
        self.last_met = self.last_met.max(time);
        if pair.surely_beyond(self.closest.distance_m) {
            return;
        }
        let metres = pair.exact();
        if metres > self.closest.distance_m {
            return;
        }
        let other = other();
        let nearer = metres
            .total_cmp(&self.closest.distance_m)
            .then(other.time.cmp(&self.closest.time))
            .then(other.id.cmp(&self.closest.location_id))
            .is_lt();
        if nearer {
            self.closest = closest(other, metres);
        }
    }
}

fn closest(other: &Location, metres: f64) -> Closest {
    Closest {
        distance_m: metres,
        location_id: other.id,
        position: other.position,
        time: other.time,
    }
}
