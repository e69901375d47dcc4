//! Sharing the meetings' work by space: the world is cut into square
//! regions (about `region` metres a side) and each region belongs to one
//! of `count` shards, spread by a fixed hash so that neighbouring regions
//! mostly belong to different ones. A meetings process folds in only the
//! locations of its shard's regions. Two persons at a border are still
//! matched once: a location is matched against every location stored
//! near it, whichever shard folded that one in, and only the later of the
//! two finds the contact.
//!
//! The hash is the same in every process and every build: which shard a
//! location belongs to is a pure function of its position and the
//! settings.

use super::Sighting;
use crate::model::{Invalid, Position, Problem};

/// The most shards the work can be cut into.
pub const MAX_SHARDS: u32 = 1024;
/// The smallest and largest sides of a region, metres.
pub const REGION_RANGE_M: (f64, f64) = (10.0, 100_000.0);
/// Metres per degree of latitude, near enough for cutting regions.
const METRES_PER_DEGREE: f64 = 111_320.0;

/// One shard of the meetings' work, and how the world is cut.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shard {
    index: u32,
    count: u32,
    region_deg: f64,
}

impl Shard {
    /// Shard `index` (from 0) of `count`, in regions about `region_m`
    /// metres a side.
    pub fn new(index: u32, count: u32, region_m: f64) -> Result<Self, Invalid> {
        if !(1..=MAX_SHARDS).contains(&count) {
            return Err(Invalid::new(
                "shards",
                Problem::OutOfRange,
                format!("must be from 1 to {MAX_SHARDS}, got {count}"),
            ));
        }
        if index >= count {
            return Err(Invalid::new(
                "shard",
                Problem::OutOfRange,
                format!(
                    "must be from 0 to {} (one less than the shards), got {index}",
                    count - 1
                ),
            ));
        }
        let (low, high) = REGION_RANGE_M;
        if !(low..=high).contains(&region_m) {
            return Err(Invalid::new(
                "region",
                Problem::OutOfRange,
                format!("must be from {low} to {high} metres, got {region_m}"),
            ));
        }
        Ok(Self {
            index,
            count,
            region_deg: region_m / METRES_PER_DEGREE,
        })
    }

    /// The whole world in one shard.
    pub fn whole() -> Self {
        Self {
            index: 0,
            count: 1,
            region_deg: 1.0,
        }
    }

    /// This shard's number, from 0.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How many shards share the work.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether this is the only shard.
    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// The shard `position`'s region belongs to.
    pub fn of(&self, position: Position) -> u32 {
        if self.count == 1 {
            return 0;
        }
        let row = ((position.lat + 90.0) / self.region_deg).floor() as i64;
        let column = ((position.lon + 180.0) / self.region_deg).floor() as i64;
        let key = (row as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (column as u64);
        (mix(key) % u64::from(self.count)) as u32
    }

    /// Whether `position` is this shard's to fold in.
    pub fn owns(&self, position: Position) -> bool {
        self.of(position) == self.index
    }

    /// Keeps of `sightings` those this shard folds in; how many it
    /// passed over.
    pub fn keep_own(&self, sightings: &mut Vec<Sighting>) -> usize {
        let before = sightings.len();
        sightings.retain(|s| self.owns(s.position));
        before - sightings.len()
    }
}

/// SplitMix64's finaliser: every bit of `key` moves every bit out.
fn mix(mut key: u64) -> u64 {
    key = (key ^ (key >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    key = (key ^ (key >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    key ^ (key >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(lat: f64, lon: f64) -> Position {
        Position { lat, lon }
    }

    #[test]
    fn every_position_belongs_to_exactly_one_shard() {
        let shards: Vec<Shard> = (0..3)
            .map(|i| Shard::new(i, 3, 200.0).expect("a shard"))
            .collect();
        for step in 0..2_000 {
            let p = at(
                -89.9 + f64::from(step) * 0.0899,
                -179.9 + f64::from(step) * 0.1799,
            );
            let owners = shards.iter().filter(|s| s.owns(p)).count();
            assert_eq!(owners, 1, "{p:?}");
        }
    }

    #[test]
    fn a_region_is_one_shards_and_its_neighbours_spread_over_all() {
        let shard = Shard::new(0, 4, 500.0).expect("a shard");
        let corner = at(37.55, -122.29);
        // Points a few metres apart inside one region share its shard.
        let deg = 500.0 / METRES_PER_DEGREE;
        let inside = at(
            ((corner.lat + 90.0) / deg).floor() * deg - 90.0 + deg / 2.0,
            ((corner.lon + 180.0) / deg).floor() * deg - 180.0 + deg / 2.0,
        );
        assert_eq!(
            shard.of(at(inside.lat + 0.0001, inside.lon)),
            shard.of(inside)
        );
        // A conference's worth of regions lands on every shard, none with
        // more than half of them.
        let mut counts = [0_u32; 4];
        for row in 0..10 {
            for column in 0..10 {
                let p = at(
                    corner.lat + f64::from(row) * deg,
                    corner.lon + f64::from(column) * deg,
                );
                counts[shard.of(p) as usize] += 1;
            }
        }
        assert!(counts.iter().all(|&n| (10..=50).contains(&n)), "{counts:?}");
    }

    #[test]
    fn a_shard_keeps_its_own_sightings_and_counts_the_rest() {
        let shards: Vec<Shard> = (0..2)
            .map(|i| Shard::new(i, 2, 10.0).expect("a shard"))
            .collect();
        let all: Vec<Sighting> = (0..200)
            .map(|n| Sighting {
                id: n,
                person: 1,
                at: crate::time::Timestamp::from_micros(0),
                position: at(45.0 + n as f64 * 0.0001, 7.0),
            })
            .collect();
        let mut kept = 0;
        for shard in &shards {
            let mut mine = all.clone();
            let passed = shard.keep_own(&mut mine);
            assert!(mine.iter().all(|s| shard.owns(s.position)));
            assert_eq!(mine.len() + passed, all.len());
            kept += mine.len();
        }
        assert_eq!(kept, all.len());
    }

    #[test]
    fn one_shard_owns_everything() {
        let whole = Shard::whole();
        assert!(whole.is_whole());
        assert!(whole.owns(at(0.0, 0.0)) && whole.owns(at(89.0, -179.0)));
        assert!(
            Shard::new(0, 1, 500.0)
                .expect("a shard")
                .owns(at(10.0, 10.0))
        );
    }

    #[test]
    fn out_of_range_settings_are_refused() {
        assert_eq!(Shard::new(0, 0, 500.0).expect_err("none").field, "shards");
        assert_eq!(Shard::new(2, 2, 500.0).expect_err("past").field, "shard");
        assert_eq!(
            Shard::new(0, MAX_SHARDS + 1, 500.0)
                .expect_err("many")
                .field,
            "shards"
        );
        assert_eq!(Shard::new(0, 2, 1.0).expect_err("tiny").field, "region");
        assert_eq!(Shard::new(0, 2, f64::NAN).expect_err("nan").field, "region");
    }
}
