//! A conference that moves: every attendee reports at a steady pace
//! through the opening hours of each day, standing at a spot of a venue
//! for a while (a talk, a stand) and walking to a spot of another. Two
//! attendees meet when their spots are a few metres apart, for as long as
//! both stay: the meetings at volume look like a conference's, where
//! [`super::scale`]'s points, each at a random place and time, rarely
//! make one.

use rand::{RngExt, SeedableRng, rngs::StdRng};

use super::{
    Dataset, ScaleConfig, in_disc, metres_per_degree, number_by_time, numbered_persons, venues,
};
use crate::{
    model::{LocationRecord, Position},
    time::MICROS_PER_DAY,
};

/// When the venues open, from midnight UTC, and for how long.
const OPENS_MICROS: i64 = 9 * 3_600_000_000;
const OPEN_MICROS: i64 = 9 * 3_600_000_000;
/// Walking pace, metres per second.
const PACE: f64 = 1.3;
/// How long an attendee stays at a spot, seconds.
const STAY_S: (f64, f64) = (300.0, 1800.0);
/// How far a phone's fix wanders around where it stands, metres.
const WANDER_M: f64 = 1.0;

/// One attendee's day.
struct Walker {
    at: Position,
    spot: Position,
    stay_s: f64,
}

impl Walker {
    /// Arrives at a spot of a random venue, to stay a while.
    fn arrive(rng: &mut StdRng, venues: &[Position], radius: f64) -> Self {
        let venue = venues[rng.random_range(0..venues.len())];
        let spot = in_disc(rng, venue, radius);
        Self {
            at: spot,
            spot,
            stay_s: rng.random_range(STAY_S.0..STAY_S.1),
        }
    }

    /// Where it is `seconds` later.
    fn advance(&mut self, rng: &mut StdRng, venues: &[Position], radius: f64, seconds: f64) {
        let (per_lat, per_lon) = metres_per_degree(self.at);
        let north = (self.spot.lat - self.at.lat) * per_lat;
        let east = (self.spot.lon - self.at.lon) * per_lon;
        let left = north.hypot(east);
        if left < 0.01 {
            self.stay_s -= seconds;
            if self.stay_s <= 0.0 {
                let next = Self::arrive(rng, venues, radius);
                self.spot = next.spot;
                self.stay_s = next.stay_s;
            }
            return;
        }
        let fraction = (PACE * seconds / left).min(1.0);
        self.at = Position {
            lat: self.at.lat + (self.spot.lat - self.at.lat) * fraction,
            lon: self.at.lon + (self.spot.lon - self.at.lon) * fraction,
        };
        if fraction >= 1.0 {
            self.at = self.spot;
        }
    }

    /// Where its phone says it is.
    fn fix(&self, rng: &mut StdRng) -> Position {
        super::offset(
            self.at,
            rng.random_range(-WANDER_M..WANDER_M),
            rng.random_range(-WANDER_M..WANDER_M),
        )
    }
}

/// `config.locations` locations of `config.persons` attendees over
/// `config.days` days: each attendee's share, evenly spaced through the
/// opening hours (09:00 to 18:00 UTC), walking between spots of
/// `config.venues` venues.
pub fn walking(config: &ScaleConfig) -> Dataset {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let venues = venues(&mut rng, config.venues.max(1));
    let persons = numbered_persons(config.persons.max(1));
    let open = i64::from(config.days.max(1)) * OPEN_MICROS;
    let radius = config.venue_radius_m;
    let mut locations = Vec::with_capacity(config.locations);
    let each = config.locations / persons.len();
    let extra = config.locations % persons.len();
    for (n, person) in persons.iter().enumerate() {
        let count = each + usize::from(n < extra);
        if count == 0 {
            continue;
        }
        let every = open / i64::try_from(count).unwrap_or(i64::MAX);
        let phase = rng.random_range(0..every.max(1));
        let mut walker = Walker::arrive(&mut rng, &venues, radius);
        let mut today = 0;
        for k in 0..count {
            let into = phase + i64::try_from(k).unwrap_or(i64::MAX) * every;
            let (day, within) = (into / OPEN_MICROS, into % OPEN_MICROS);
            if day != today {
                today = day;
                walker = Walker::arrive(&mut rng, &venues, radius);
            } else if k > 0 {
                walker.advance(&mut rng, &venues, radius, every as f64 / 1e6);
            }
            locations.push(LocationRecord {
                id: 0,
                person_id: person.id,
                position: walker.fix(&mut rng),
                time: config
                    .start
                    .plus_micros(day * MICROS_PER_DAY + OPENS_MICROS + within),
                key: None,
            });
        }
    }
    Dataset {
        persons,
        locations: number_by_time(locations),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        geodesic,
        meeting::{MeetingRules, Sighting, reference},
    };

    fn config() -> ScaleConfig {
        ScaleConfig {
            persons: 40,
            locations: 40 * 3 * 540,
            venues: 4,
            days: 3,
            seed: 11,
            ..ScaleConfig::default()
        }
    }

    #[test]
    fn everyone_reports_steadily_through_the_opening_hours_at_walking_pace() {
        let config = config();
        let data = walking(&config);
        assert_eq!(data.locations.len(), config.locations);
        assert_eq!(data.locations.len(), walking(&config).locations.len());
        assert!(data.locations.iter().zip(1..).all(|(l, id)| l.id == id));
        for location in &data.locations {
            let into_day = (location.time.micros() - config.start.micros()) % MICROS_PER_DAY;
            assert!(
                (OPENS_MICROS..OPENS_MICROS + OPEN_MICROS).contains(&into_day),
                "{location:?}"
            );
        }
        // One attendee's reports, a minute apart (540 a day over 9 hours):
        // never farther apart than a minute's walk and the fixes' wander.
        let mut mine: Vec<&LocationRecord> =
            data.locations.iter().filter(|l| l.person_id == 1).collect();
        mine.sort_by_key(|l| l.time);
        assert_eq!(mine.len(), 3 * 540);
        for pair in mine.windows(2) {
            let seconds = (pair[1].time.micros() - pair[0].time.micros()) as f64 / 1e6;
            if seconds > 3600.0 {
                continue; // the next morning
            }
            let metres = geodesic::distance(pair[0].position, pair[1].position);
            assert!(
                metres <= PACE * seconds + 3.0 * WANDER_M,
                "{metres} m in {seconds} s"
            );
        }
    }

    #[test]
    fn attendees_standing_together_meet_for_a_while() {
        let data = walking(&ScaleConfig {
            persons: 20,
            locations: 20 * 540,
            venues: 2,
            days: 1,
            seed: 11,
            ..ScaleConfig::default()
        });
        let sightings: Vec<Sighting> = data
            .locations
            .iter()
            .map(|l| Sighting {
                id: l.id,
                person: l.person_id,
                at: l.time,
                position: l.position,
            })
            .collect();
        let meetings = reference(&MeetingRules::default(), &sightings);
        assert!(meetings.len() > 20, "{}", meetings.len());
        let longest = meetings
            .iter()
            .map(|m| m.end.micros() - m.start.micros())
            .max()
            .unwrap_or(0);
        assert!(longest >= 5 * 60_000_000, "{longest} µs");
    }
}
