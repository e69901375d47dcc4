//! Made-up conferences, deterministic by seed: the data that benchmarks,
//! tests and a first `cargo run` need before any phone has reported.
//!
//! [`scale`] makes many locations fast (venues at least 150 m apart, points
//! uniform in 50 m discs around their centres, times spread over the
//! days), to measure the stores at size; [`walking`] makes as many, of
//! attendees walking between spots of those venues through the opening
//! hours, to measure the meetings at size. [`demo`] makes a small, plausible
//! conference (attendees with names and employers walking between a dozen
//! booths over three days), so that the API has something interesting to
//! say on first run.

mod walking;

use rand::{RngExt, SeedableRng, rngs::StdRng};

pub use self::walking::walking;
use crate::{
    geodesic,
    model::{LocationRecord, Person, PersonId, Position},
    time::{MICROS_PER_DAY, Timestamp},
};

/// Persons and locations, ids assigned (persons `1..`, locations `1..` in
/// time order).
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// By id.
    pub persons: Vec<Person>,
    /// By time, then id.
    pub locations: Vec<LocationRecord>,
}

/// What [`scale`] makes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleConfig {
    /// How many persons.
    pub persons: usize,
    /// How many locations.
    pub locations: usize,
    /// How many venues.
    pub venues: usize,
    /// Radius of a venue, metres.
    pub venue_radius_m: f64,
    /// The first instant.
    pub start: Timestamp,
    /// How many days the locations span.
    pub days: u32,
    /// The random seed.
    pub seed: u64,
}

impl Default for ScaleConfig {
    /// The benchmark's size: 1,000 persons, 1,000,000 locations, 50 venues,
    /// June 2020.
    fn default() -> Self {
        Self {
            persons: 1_000,
            locations: 1_000_000,
            venues: 50,
            venue_radius_m: 50.0,
            start: Timestamp::from_micros(1_590_969_600_000_000),
            days: 30,
            seed: 2020,
        }
    }
}

/// Where venues are spread around: San Mateo, where the original's data is.
pub const ORIGIN: Position = Position {
    lat: 37.553,
    lon: -122.29,
};
/// The closest two venue centres may be, metres.
const VENUE_SPACING_M: f64 = 150.0;

/// Metres per degree of latitude and of longitude near `at`, for placing
/// points a few metres apart (not for measuring).
fn metres_per_degree(at: Position) -> (f64, f64) {
    let lat = 111_132.954 - 559.822 * (2.0 * at.lat.to_radians()).cos();
    let lon = 111_319.488 * at.lat.to_radians().cos();
    (lat, lon)
}

/// The position `north` and `east` metres from `at` (for placing points a
/// few hundred metres apart, not for measuring).
pub fn offset(at: Position, north: f64, east: f64) -> Position {
    let (per_lat, per_lon) = metres_per_degree(at);
    Position {
        lat: at.lat + north / per_lat,
        lon: at.lon + east / per_lon,
    }
}

/// A uniform point in the disc of `radius` metres around `center`.
fn in_disc(rng: &mut StdRng, center: Position, radius: f64) -> Position {
    let r = radius * rng.random::<f64>().sqrt();
    let angle = rng.random::<f64>() * std::f64::consts::TAU;
    offset(center, r * angle.cos(), r * angle.sin())
}

/// `count` venue centres, each at least [`VENUE_SPACING_M`] from the others.
fn venues(rng: &mut StdRng, count: usize) -> Vec<Position> {
    // A square big enough to fit them loosely: about 4 spacings apart.
    let side = (count as f64).sqrt().ceil() * VENUE_SPACING_M * 2.0;
    let mut venues: Vec<Position> = Vec::with_capacity(count);
    while venues.len() < count {
        let candidate = offset(
            ORIGIN,
            rng.random::<f64>() * side,
            rng.random::<f64>() * side,
        );
        if venues
            .iter()
            .all(|venue| geodesic::distance(*venue, candidate) >= VENUE_SPACING_M)
        {
            venues.push(candidate);
        }
    }
    venues
}

/// Numbered persons for the scale data set.
fn numbered_persons(count: usize) -> Vec<Person> {
    (1..=count)
        .map(|n| Person {
            id: person_id(n),
            first_name: format!("Person{n}"),
            last_name: format!("Synthetic{}", n % 97),
            company_name: format!("Company {}", n % 53),
        })
        .collect()
}

fn person_id(n: usize) -> PersonId {
    PersonId::try_from(n).unwrap_or(PersonId::MAX)
}

/// Sorts by time and numbers the locations `1..` in that order.
fn number_by_time(mut locations: Vec<LocationRecord>) -> Vec<LocationRecord> {
    locations.sort_by_key(|location| location.time);
    for (n, location) in locations.iter_mut().enumerate() {
        location.id = i64::try_from(n).unwrap_or(i64::MAX - 1) + 1;
    }
    locations
}

/// The scale data set: `config.locations` locations of random persons at
/// random venues and random times.
pub fn scale(config: &ScaleConfig) -> Dataset {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let venues = venues(&mut rng, config.venues.max(1));
    let persons = numbered_persons(config.persons.max(1));
    let span = i64::from(config.days.max(1)) * MICROS_PER_DAY;
    let locations = (0..config.locations)
        .map(|_| {
            let venue = venues[rng.random_range(0..venues.len())];
            LocationRecord {
                id: 0,
                person_id: persons[rng.random_range(0..persons.len())].id,
                position: in_disc(&mut rng, venue, config.venue_radius_m),
                time: config.start.plus_micros(rng.random_range(0..span)),
                key: None,
            }
        })
        .collect();
    Dataset {
        persons,
        locations: number_by_time(locations),
    }
}

const FIRST_NAMES: &[&str] = &[
    "Ada", "Alan", "Amara", "Ana", "Ben", "Carla", "Chen", "Dara", "David", "Elena", "Emeka",
    "Fatima", "Grace", "Hana", "Ian", "Ines", "Jamal", "Jonas", "Kai", "Kenji", "Lara", "Leila",
    "Luis", "Maya", "Mei", "Nadia", "Noah", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Sofia",
    "Tariq", "Uma", "Victor", "Wei", "Yara", "Zoe", "Zane",
];
const LAST_NAMES: &[&str] = &[
    "Abbott",
    "Bauer",
    "Castillo",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quispe",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Usman",
    "Varga",
    "Weber",
    "Xu",
    "Yilmaz",
    "Zhang",
];
const COMPANIES: &[&str] = &[
    "Acme Logistics",
    "Blue Harbor Analytics",
    "Cedar & Stone",
    "Delta Robotics",
    "Evergreen Health",
    "Foxglove Media",
    "Granite Bank",
    "Helix Biotech",
    "Ironwood Energy",
    "Juniper Networks Consulting",
    "Kestrel Aerospace",
    "Lumen Labs",
    "Meridian Insurance",
    "Northwind Foods",
    "Orbit Telecom",
    "Pioneer Farms",
];

/// `count` venues on a grid of four columns, `spacing` metres apart, from
/// [`ORIGIN`]: the demo's booths, and where simulated attendees walk.
pub fn venue_grid(count: usize, spacing: f64) -> Vec<Position> {
    (0..count)
        .map(|n| {
            let (row, column) = (n / 4, n % 4);
            offset(ORIGIN, row as f64 * spacing, column as f64 * spacing)
        })
        .collect()
}

/// How many booths and rooms the demo venue has.
const BOOTHS: usize = 12;
/// The demo's attendees.
const ATTENDEES: usize = 300;
/// The demo's days.
const DEMO_DAYS: i64 = 3;

/// The demo conference: [`ATTENDEES`] attendees moving between [`BOOTHS`]
/// booths (a grid 20 m apart) from 9:00 to 18:00 on three days from
/// `first_day`, reporting every 2–5 minutes while at a booth, each report
/// jittered within 3 m of the booth.
pub fn demo(first_day: Timestamp, seed: u64) -> Dataset {
    let mut rng = StdRng::seed_from_u64(seed);
    let booths = venue_grid(BOOTHS, 20.0);
    let persons: Vec<Person> = (1..=ATTENDEES)
        .map(|n| Person {
            id: person_id(n),
            first_name: FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())].to_owned(),
            last_name: LAST_NAMES[rng.random_range(0..LAST_NAMES.len())].to_owned(),
            company_name: COMPANIES[rng.random_range(0..COMPANIES.len())].to_owned(),
        })
        .collect();
    let minute = 60_000_000;
    let mut locations = Vec::new();
    for person in &persons {
        for day in 0..DEMO_DAYS {
            let opens = first_day.plus_micros(day * MICROS_PER_DAY + 9 * 60 * minute);
            let closes = opens.plus_micros(9 * 60 * minute);
            // Arrive some time in the first two hours.
            let mut now = opens.plus_micros(rng.random_range(0..120 * minute));
            while now < closes {
                let booth = booths[rng.random_range(0..booths.len())];
                let leave = now.plus_micros(rng.random_range(10..60) * minute);
                while now < leave.min(closes) {
                    locations.push(LocationRecord {
                        id: 0,
                        person_id: person.id,
                        position: in_disc(&mut rng, booth, 3.0),
                        time: now.plus_micros(rng.random_range(0..1_000_000)),
                        key: None,
                    });
                    now = now.plus_micros(rng.random_range(2..=5) * minute);
                }
                // Walk to the next booth.
                now = now.plus_micros(rng.random_range(1..5) * minute);
            }
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

    #[test]
    fn scale_is_deterministic_and_in_its_discs() {
        let config = ScaleConfig {
            persons: 10,
            locations: 2_000,
            venues: 5,
            seed: 7,
            ..ScaleConfig::default()
        };
        let one = scale(&config);
        let two = scale(&config);
        assert_eq!(one.locations, two.locations);
        assert_eq!(one.persons.len(), 10);
        assert_eq!(one.locations.len(), 2_000);
        let mut rng = StdRng::seed_from_u64(config.seed);
        let centres = venues(&mut rng, config.venues);
        for (i, a) in centres.iter().enumerate() {
            for b in &centres[i + 1..] {
                assert!(geodesic::distance(*a, *b) >= VENUE_SPACING_M);
            }
        }
        for location in &one.locations {
            let nearest = centres
                .iter()
                .map(|centre| geodesic::distance(*centre, location.position))
                .fold(f64::INFINITY, f64::min);
            assert!(nearest <= 50.5, "{location:?} is {nearest} m from a venue");
        }
        let end = config
            .start
            .plus_micros(i64::from(config.days) * MICROS_PER_DAY);
        assert!(
            one.locations
                .iter()
                .all(|l| l.time >= config.start && l.time < end)
        );
        assert!(one.locations.windows(2).all(|w| w[0].time <= w[1].time));
        assert!(one.locations.iter().zip(1..).all(|(l, id)| l.id == id));
    }

    #[test]
    fn the_demo_has_attendees_meeting_at_booths() {
        let first_day = Timestamp::from_micros(1_590_969_600_000_000);
        let data = demo(first_day, 1);
        assert_eq!(data.persons.len(), ATTENDEES);
        assert!(data.locations.len() > 50_000, "{}", data.locations.len());
        let first = &data.locations[0];
        let near = data
            .locations
            .iter()
            .filter(|other| other.person_id != first.person_id)
            .filter(|other| geodesic::distance(other.position, first.position) <= 5.0)
            .count();
        assert!(near > 0);
    }
}
