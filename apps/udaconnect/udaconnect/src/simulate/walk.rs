//! Attendees walking between venues: each heads for a venue at walking
//! pace, stays there a while, then picks another. Their positions are
//! what the simulator reports.

use rand::{Rng, RngExt, SeedableRng, rngs::StdRng};
use udaconnect_domain::{
    PersonId, Position,
    conference::{offset, venue_grid},
    geodesic,
};

/// Walking pace, metres per second.
const PACE: f64 = 1.3;
/// How far apart the venues attendees walk between are.
const SPACING_M: f64 = 40.0;

/// One attendee.
#[derive(Debug, Clone)]
pub struct Attendee {
    /// Who.
    pub person_id: PersonId,
    /// Where now.
    pub position: Position,
    target: usize,
    /// Seconds left at the target once there.
    dwell: f64,
    /// Reports sent so far (for idempotency keys).
    pub sent: u64,
}

/// Everyone, and the venues.
pub struct Crowd {
    /// The attendees.
    pub attendees: Vec<Attendee>,
    venues: Vec<Position>,
    rng: StdRng,
}

impl Crowd {
    /// `persons` placed at random ones of `venues` venues.
    pub fn new(persons: &[PersonId], seed: u64, venues: u32) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let venues = venue_grid(usize::try_from(venues).unwrap_or(1).max(1), SPACING_M);
        let attendees = persons
            .iter()
            .map(|person_id| {
                let at = rng.random_range(0..venues.len());
                Attendee {
                    person_id: *person_id,
                    position: jitter(&mut rng, venues[at]),
                    target: rng.random_range(0..venues.len()),
                    dwell: rng.random_range(0.0..600.0),
                    sent: 0,
                }
            })
            .collect();
        Self {
            attendees,
            venues,
            rng,
        }
    }

    /// Moves attendee `index` on by `seconds` and returns where it is.
    pub fn step(&mut self, index: usize, seconds: f64) -> &mut Attendee {
        let venue = self.venues[self.attendees[index].target];
        let next_target = self.rng.random_range(0..self.venues.len());
        let dwell = self.rng.random_range(60.0..900.0);
        let attendee = &mut self.attendees[index];
        let left = geodesic::distance(attendee.position, venue);
        if left <= 3.0 {
            attendee.dwell -= seconds;
            if attendee.dwell <= 0.0 {
                attendee.target = next_target;
                attendee.dwell = dwell;
            }
            attendee.position = jitter(&mut self.rng, venue);
        } else {
            let fraction = (PACE * seconds / left).min(1.0);
            attendee.position = Position {
                lat: attendee.position.lat + (venue.lat - attendee.position.lat) * fraction,
                lon: attendee.position.lon + (venue.lon - attendee.position.lon) * fraction,
            };
        }
        &mut self.attendees[index]
    }
}

/// A point within 2 m of `at`.
fn jitter(rng: &mut impl Rng, at: Position) -> Position {
    offset(at, rng.random_range(-2.0..2.0), rng.random_range(-2.0..2.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_a_single_venue_everyone_stays_within_a_few_metres() {
        let mut crowd = Crowd::new(&[1, 2], 3, 1);
        for _ in 0..200 {
            let a = crowd.step(0, 2.0).position;
            let b = crowd.step(1, 2.0).position;
            assert!(geodesic::distance(a, b) < 6.0);
        }
    }

    #[test]
    fn attendees_walk_towards_their_venue_and_stay_near_the_grid() {
        let mut crowd = Crowd::new(&[1, 2, 3], 7, 12);
        for _ in 0..500 {
            for index in 0..3 {
                let position = crowd.step(index, 5.0).position;
                assert!(Position::new(position.lat, position.lon).is_ok());
                let nearest = crowd
                    .venues
                    .iter()
                    .map(|venue| geodesic::distance(*venue, position))
                    .fold(f64::INFINITY, f64::min);
                assert!(nearest < 200.0, "{nearest} m from every venue");
            }
        }
    }
}
