//! The one-pass reference for a history too large for [`super::reference`]:
//! the same meetings, by the same definition, from locations read once
//! in time order, so that a benchmark can check the meetings a store
//! kept for tens of millions of locations.
//!
//! It differs from the plain reference only in which pairs it measures:
//! each location against the earlier ones at most `within` before it in
//! its own band of latitude and the two beside it (a band is at least
//! `distance` wide, so nothing closer is left out; nothing of the stores'
//! grid is used), and each pair's contacts are chained as they come, in
//! the order of their ends. Memory: the locations of the last `within`
//! and the meetings.

use std::collections::{HashMap, VecDeque};

use crate::{
    geodesic,
    model::{LocationId, PersonId},
    time::Timestamp,
};

use super::{Meeting, MeetingRules, Sighting};

/// The fewest metres a degree of latitude spans anywhere on the
/// ellipsoid (at the equator, 110,574 m), rounded down.
const MIN_METRES_PER_DEGREE_LAT: f64 = 110_000.0;
/// Locations taken between two sweeps of every band for what is too
/// old to meet anything any more.
const PRUNE_EVERY: usize = 1 << 16;

/// A location came before one taken already.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "location {id} at {at} came after location {last_id} at {last_at}: locations must come by time, then id"
)]
pub struct OutOfOrder {
    /// The location that came late.
    pub id: LocationId,
    /// Its time.
    pub at: Timestamp,
    /// The one taken before it.
    pub last_id: LocationId,
    /// That one's time.
    pub last_at: Timestamp,
}

/// [`super::reference`]'s meetings, from locations given one at a time
/// by time, then id.
pub struct TimeOrderedReference {
    rules: MeetingRules,
    band_degrees: f64,
    /// The latest locations by band of latitude, oldest first.
    bands: HashMap<i64, VecDeque<Sighting>>,
    last: Option<(Timestamp, LocationId)>,
    /// Each pair's meetings so far, by end.
    pairs: HashMap<(PersonId, PersonId), Vec<Meeting>>,
    taken: usize,
}

impl TimeOrderedReference {
    /// Nothing taken yet.
    pub fn new(rules: MeetingRules) -> Self {
        Self {
            rules,
            band_degrees: (rules.distance() / MIN_METRES_PER_DEGREE_LAT).max(f64::MIN_POSITIVE),
            bands: HashMap::new(),
            last: None,
            pairs: HashMap::new(),
            taken: 0,
        }
    }

    /// Takes the next location, which comes after every one taken by
    /// time, then id (the same one again is left out).
    pub fn push(&mut self, sighting: Sighting) -> Result<(), OutOfOrder> {
        let key = (sighting.at, sighting.id);
        if let Some(last) = self.last {
            if key == last {
                return Ok(());
            }
            if key < last {
                return Err(OutOfOrder {
                    id: sighting.id,
                    at: sighting.at,
                    last_id: last.1,
                    last_at: last.0,
                });
            }
        }
        self.last = Some(key);
        let oldest = sighting
            .at
            .micros()
            .saturating_sub(self.rules.within_micros());
        let boxes = geodesic::search_boxes(sighting.position, self.rules.distance());
        let band = self.band(&sighting);
        for near in band.saturating_sub(1)..=band.saturating_add(1) {
            let Some(earlier) = self.bands.get_mut(&near) else {
                continue;
            };
            forget_before(earlier, oldest);
            for y in earlier.iter() {
                // Every earlier one ends no later than this one: the
                // contact ends at this location's time.
                if let Some(contact) = self.rules.contact_in(&sighting, &boxes, y) {
                    chain(
                        self.pairs.entry(contact.persons).or_default(),
                        contact,
                        self.rules.gap_micros(),
                    );
                }
            }
        }
        self.bands.entry(band).or_default().push_back(sighting);
        self.taken += 1;
        if self.taken.is_multiple_of(PRUNE_EVERY) {
            self.bands.retain(|_, earlier| {
                forget_before(earlier, oldest);
                !earlier.is_empty()
            });
        }
        Ok(())
    }

    /// Every meeting, sorted as [`super::reference`] sorts them: by
    /// persons, then start.
    pub fn meetings(self) -> Vec<Meeting> {
        let mut meetings: Vec<Meeting> = self.pairs.into_values().flatten().collect();
        meetings.sort_by_key(|m| (m.persons, m.start));
        meetings
    }

    fn band(&self, sighting: &Sighting) -> i64 {
        // A latitude is at most 90 degrees: the band fits (a NaN falls
        // in band 0, and is close to nothing).
        (sighting.position.lat / self.band_degrees).floor() as i64
    }
}

/// Lets go of a band's locations from before `oldest` (microseconds).
fn forget_before(earlier: &mut VecDeque<Sighting>, oldest: i64) {
    while earlier.front().is_some_and(|y| y.at.micros() < oldest) {
        earlier.pop_front();
    }
}

/// Takes `contact` into a pair's `meetings` (kept by end, none touching
/// another), `contact` ending no earlier than any of them: it joins
/// every one it touches, the latest ones.
fn chain(meetings: &mut Vec<Meeting>, contact: Meeting, gap: i64) {
    let mut joined = contact;
    while let Some(last) = meetings.last() {
        if last.end.micros().saturating_add(gap) < joined.start.micros() {
            break;
        }
        if let Some(last) = meetings.pop() {
            joined.absorb(&last);
        }
    }
    meetings.push(joined);
}

#[cfg(test)]
mod tests {
    use rand::{RngExt, SeedableRng, rngs::StdRng};

    use super::*;
    use crate::model::Position;

    const MINUTE: i64 = 60 * 1_000_000;

    /// `persons` walking about three spots a few metres across, some
    /// at the same instant, a few of them reported twice.
    fn crowd(rng: &mut StdRng, persons: i32, per_person: usize) -> Vec<Sighting> {
        let mut sightings = Vec::new();
        for person in 1..=persons {
            for _ in 0..per_person {
                let id = sightings.len() as LocationId + 1;
                let spot = f64::from(rng.random_range(0..3_u8)) * 20.0;
                let north_m = spot + rng.random_range(-4.0..4.0);
                let east_m: f64 = rng.random_range(-3.0..3.0);
                // Whole seconds, so that times tie.
                let at = Timestamp::from_micros(rng.random_range(0..7_200) * 1_000_000);
                sightings.push(Sighting {
                    id,
                    person,
                    at,
                    position: Position {
                        lat: 51.5 + north_m / 111_250.0,
                        lon: -0.12 + east_m / 69_400.0,
                    },
                });
            }
        }
        sightings
    }

    fn in_time_order(rules: MeetingRules, sightings: &[Sighting]) -> Vec<Meeting> {
        let mut sorted = sightings.to_vec();
        sorted.sort_by_key(|s| (s.at, s.id));
        let mut reference = TimeOrderedReference::new(rules);
        for sighting in sorted {
            reference.push(sighting).expect("in order");
        }
        reference.meetings()
    }

    #[test]
    fn it_gives_the_plain_references_meetings() {
        let mut met = 0;
        for seed in 0..30 {
            let mut rng = StdRng::seed_from_u64(seed);
            let rules = MeetingRules::new(
                rng.random_range(1.0..10.0),
                rng.random_range(0..3 * MINUTE),
                rng.random_range(0..5 * MINUTE),
            )
            .expect("rules");
            let (persons, per_person) = (rng.random_range(2..8), rng.random_range(20..200));
            let mut sightings = crowd(&mut rng, persons, per_person);
            let again: Vec<Sighting> = sightings
                .iter()
                .filter(|_| rng.random_bool(0.05))
                .copied()
                .collect();
            sightings.extend(again);
            let expected = super::super::reference(&rules, &sightings);
            assert_eq!(in_time_order(rules, &sightings), expected, "seed {seed}");
            met += expected.len();
        }
        assert!(met > 300, "{met} meetings");
    }

    #[test]
    fn a_meeting_across_a_band_border_is_found() {
        let rules = MeetingRules::default();
        let reference = TimeOrderedReference::new(rules);
        let lat = 51.5;
        let band = (lat / reference.band_degrees).floor() + 1.0;
        let border = band * reference.band_degrees;
        let at = |lat: f64, id: LocationId, person: PersonId| Sighting {
            id,
            person,
            at: Timestamp::from_micros(0),
            position: Position { lat, lon: -0.12 },
        };
        let pair = [at(border - 1e-6, 1, 1), at(border + 1e-6, 2, 2)];
        assert_eq!(in_time_order(rules, &pair).len(), 1);
        assert_eq!(super::super::reference(&rules, &pair).len(), 1);
    }

    #[test]
    fn a_location_out_of_order_is_refused_and_one_again_left_out() {
        let mut reference = TimeOrderedReference::new(MeetingRules::default());
        let at = |id: LocationId, micros: i64| Sighting {
            id,
            person: 1,
            at: Timestamp::from_micros(micros),
            position: Position {
                lat: 51.5,
                lon: -0.12,
            },
        };
        assert_eq!(reference.push(at(5, 1_000)), Ok(()));
        assert_eq!(reference.push(at(5, 1_000)), Ok(()));
        let late = reference.push(at(4, 1_000)).expect_err("an earlier id");
        assert_eq!((late.id, late.last_id), (4, 5));
        assert!(reference.push(at(9, 999)).is_err());
        assert_eq!(reference.push(at(6, 1_000)), Ok(()));
    }

    #[test]
    fn old_bands_are_let_go() {
        let rules = MeetingRules::default();
        let mut reference = TimeOrderedReference::new(rules);
        for i in 0..(PRUNE_EVERY as i64 + 10) {
            // Each in a band of its own, a minute apart.
            reference
                .push(Sighting {
                    id: i,
                    person: 1,
                    at: Timestamp::from_micros(i * MINUTE),
                    position: Position {
                        lat: (i % 80_000) as f64 / 1_000.0,
                        lon: 0.0,
                    },
                })
                .expect("in order");
        }
        let held: usize = reference.bands.values().map(VecDeque::len).sum();
        assert!(held < 20, "{held} locations held");
    }
}
