//! Meetings kept in memory, for the embedded store: the locations folded
//! in so far, in a grid of cells each ordered by time (what a new location
//! is matched against), and the meetings under ids. It grows with the
//! history, as the embedded store's locations do; the PostGIS store keeps
//! the same in tables. A person erased goes from both, and their
//! sightings that come later are passed over.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use udaconnect_domain::{
    Erased, LocationId, PersonId, Timestamp,
    meeting::{
        FeedCursor, Kept, MeetingChanges, MeetingFeed, MeetingQuery, MeetingRules, Sighting, Sweep,
        cell_of, cells_near, contacts_by_pair,
    },
};

use super::erasure::Tombstones;

/// The meetings and what they were made of.
#[derive(Default)]
pub struct MeetingBook {
    applied: HashSet<LocationId>,
    /// Cell → (time, id) → the location.
    grid: HashMap<i64, BTreeMap<(Timestamp, LocationId), Sighting>>,
    meetings: HashMap<i64, Kept>,
    /// Pair → ids of its meetings.
    pairs: HashMap<(PersonId, PersonId), BTreeSet<i64>>,
    /// Person → ids of their meetings.
    persons: HashMap<PersonId, BTreeSet<i64>>,
    last_id: i64,
    /// Meetings written, counted; each meeting's count when last written.
    writes: u64,
    written: HashMap<i64, u64>,
}

impl MeetingBook {
    /// Folds `sightings` in, but for those of the persons `tombstones`
    /// holds; see [`udaconnect_domain::Store::apply_meetings`].
    pub fn apply(
        &mut self,
        rules: &MeetingRules,
        sightings: &[Sighting],
        tombstones: &Tombstones,
    ) -> MeetingChanges {
        let mut changes = MeetingChanges::default();
        let mut new = Vec::new();
        let mut fresh = HashSet::new();
        for sighting in sightings {
            if self.applied.contains(&sighting.id) || !fresh.insert(sighting.id) {
                changes.already += 1;
            } else if tombstones.holds(sighting.person) {
                changes.erased += 1;
            } else {
                new.push(*sighting);
            }
        }
        changes.applied = new.len();
        let candidates = self.candidates(rules, &new);
        for (pair, contacts) in contacts_by_pair(rules, &new, &candidates) {
            let Some((low, high)) = Sweep::span(rules, &contacts) else {
                continue;
            };
            let kept: Vec<Kept> = self
                .pairs
                .get(&pair)
                .into_iter()
                .flatten()
                .filter_map(|id| self.meetings.get(id))
                .filter(|k| k.meeting.end >= low && k.meeting.start <= high)
                .copied()
                .collect();
            let fold = Sweep::fold(rules, &kept, &contacts);
            for id in &fold.joined {
                self.remove(*id);
            }
            for grown in &fold.grown {
                self.meetings.insert(grown.id, *grown);
                self.writes += 1;
                self.written.insert(grown.id, self.writes);
            }
            for meeting in fold.started {
                self.last_id += 1;
                let kept = Kept {
                    id: self.last_id,
                    meeting,
                };
                self.meetings.insert(kept.id, kept);
                self.writes += 1;
                self.written.insert(kept.id, self.writes);
                self.pairs.entry(pair).or_default().insert(kept.id);
                for person in [pair.0, pair.1] {
                    self.persons.entry(person).or_default().insert(kept.id);
                }
                changes.started.push(kept);
            }
            changes.grown.extend(fold.grown);
            changes.joined.extend(fold.joined);
        }
        for sighting in new {
            self.applied.insert(sighting.id);
            self.grid
                .entry(cell_of(sighting.position))
                .or_default()
                .insert((sighting.at, sighting.id), sighting);
        }
        changes
    }

    /// The applied locations that may be contacts of `new` ones.
    fn candidates(&self, rules: &MeetingRules, new: &[Sighting]) -> Vec<Sighting> {
        let within = rules.within_micros();
        let mut seen = HashSet::new();
        let mut candidates = Vec::new();
        for sighting in new {
            let low = (
                Timestamp::from_micros(sighting.at.micros().saturating_sub(within)),
                i64::MIN,
            );
            let high = (
                Timestamp::from_micros(sighting.at.micros().saturating_add(within)),
                i64::MAX,
            );
            for cell in cells_near(sighting.position, rules.distance()) {
                let Some(times) = self.grid.get(&cell) else {
                    continue;
                };
                for other in times.range(low..=high).map(|(_, s)| s) {
                    if seen.insert(other.id) {
                        candidates.push(*other);
                    }
                }
            }
        }
        candidates
    }

    /// Removes what the book holds of person `id`: their sightings folded
    /// in and every meeting they were either side of; counted into
    /// `erased`.
    pub fn erase_person(&mut self, id: PersonId, erased: &mut Erased) {
        let mut positions = 0;
        self.grid.retain(|_, times| {
            times.retain(|_, sighting| {
                let theirs = sighting.person == id;
                if theirs {
                    self.applied.remove(&sighting.id);
                    positions += 1;
                }
                !theirs
            });
            !times.is_empty()
        });
        let meetings: Vec<i64> = self
            .persons
            .remove(&id)
            .map(|ids| ids.into_iter().collect())
            .unwrap_or_default();
        for meeting in &meetings {
            self.remove(*meeting);
        }
        self.pairs.retain(|_, ids| !ids.is_empty());
        erased.meeting_positions += positions;
        erased.meetings += meetings.len() as u64;
    }

    fn remove(&mut self, id: i64) {
        self.written.remove(&id);
        if let Some(kept) = self.meetings.remove(&id) {
            let (a, b) = kept.meeting.persons;
            if let Some(ids) = self.pairs.get_mut(&(a, b)) {
                ids.remove(&id);
            }
            for person in [a, b] {
                if let Some(ids) = self.persons.get_mut(&person) {
                    ids.remove(&id);
                }
            }
        }
    }

    /// The meetings written since `since`; see
    /// [`udaconnect_domain::Store::meeting_feed`].
    pub fn feed(
        &self,
        since: Option<&FeedCursor>,
        person: Option<PersonId>,
        limit: usize,
    ) -> MeetingFeed {
        let cursor = FeedCursor::counted(self.writes);
        let Some(since) = since else {
            return MeetingFeed {
                cursor,
                meetings: Vec::new(),
                complete: true,
            };
        };
        let after = since.count();
        let mut changed: Vec<(u64, Kept)> = self
            .written
            .iter()
            .filter(|(_, written)| **written > after)
            .filter_map(|(id, written)| self.meetings.get(id).map(|kept| (*written, *kept)))
            .filter(|(_, kept)| {
                person.is_none_or(|p| kept.meeting.persons.0 == p || kept.meeting.persons.1 == p)
            })
            .collect();
        changed.sort_by_key(|(written, _)| *written);
        let complete = changed.len() <= limit;
        changed.truncate(limit);
        MeetingFeed {
            cursor,
            meetings: changed.into_iter().map(|(_, kept)| kept).collect(),
            complete,
        }
    }

    /// A page of one person's meetings, most recent first.
    pub fn of_person(&self, query: &MeetingQuery) -> Vec<Kept> {
        let mut page: Vec<Kept> = self
            .persons
            .get(&query.person)
            .into_iter()
            .flatten()
            .filter_map(|id| self.meetings.get(id))
            .filter(|k| query.matches(k) && query.is_after_cursor(k))
            .copied()
            .collect();
        page.sort_by_key(|k| std::cmp::Reverse((k.meeting.start, k.id)));
        page.truncate(query.limit);
        page
    }
}
