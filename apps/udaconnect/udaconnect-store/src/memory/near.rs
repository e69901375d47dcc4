//! Deciding "within d metres" and "closer than" without measuring every
//! pair exactly: the exact geodesic costs about a microsecond, a local
//! flat estimate a few nanoseconds, and a 30-day query has hundreds of
//! thousands of pairs.
//!
//! The estimate is only trusted far from where it could change an answer:
//! whenever it is within [`MARGIN`] of a threshold, the pair is measured
//! exactly with [`geodesic::distance`], so every answer is the exact one.

use udaconnect_domain::{Position, geodesic};

/// WGS 84 semi-major axis, metres.
const A: f64 = 6_378_137.0;
/// WGS 84 first eccentricity squared.
const E2: f64 = (1.0 / 298.257_223_563) * (2.0 - 1.0 / 298.257_223_563);
/// Relative error the estimate is trusted to stay far below. For the
/// kilometres a query spans, away from the poles, the estimate is good to
/// about 1e-5: a hundred times inside this.
pub const MARGIN: f64 = 0.01;
/// Absolute slack, metres, for points a hair apart.
const SLACK: f64 = 1e-6;
/// Beyond this latitude (and for far points), only exact distances.
const MAX_LAT: f64 = 80.0;
/// Farther apart than this (degrees of either), only exact distances.
const MAX_SPAN_DEG: f64 = 1.0;

/// An own location, with what estimating distances from it needs.
pub struct Origin {
    position: Position,
    /// Cosine and sine of its latitude.
    cos: f64,
    sin: f64,
    /// Radii of curvature there: in the prime vertical and in the meridian.
    n: f64,
    m: f64,
    /// Whether estimates from here are trusted at all.
    trusted: bool,
}

impl Origin {
    /// Estimates from `position`.
    pub fn new(position: Position) -> Self {
        let (sin, cos) = position.lat.to_radians().sin_cos();
        let w2 = 1.0 - E2 * sin * sin;
        let w = w2.sqrt();
        Self {
            position,
            cos,
            sin,
            n: A / w,
            m: A * (1.0 - E2) / (w2 * w),
            trusted: position.lat.abs() <= MAX_LAT,
        }
    }

    /// An estimate of the geodesic distance to `other`, metres: the plane
    /// tangent at the mid latitude (its cosine to first order from here),
    /// with the ellipsoid's radii of curvature. `None` where it is not
    /// trusted.
    pub fn estimate(&self, other: Position) -> Option<f64> {
        if !self.trusted || other.lat.abs() > MAX_LAT {
            return None;
        }
        let mut dlon = other.lon - self.position.lon;
        if dlon > 180.0 {
            dlon -= 360.0;
        } else if dlon < -180.0 {
            dlon += 360.0;
        }
        let dlat = other.lat - self.position.lat;
        if dlon.abs() > MAX_SPAN_DEG || dlat.abs() > MAX_SPAN_DEG {
            return None;
        }
        let dlat = dlat.to_radians();
        let cos_mid = self.cos - self.sin * dlat / 2.0;
        let east = self.n * cos_mid * dlon.to_radians();
        let north = self.m * dlat;
        Some((east * east + north * north).sqrt())
    }
}

/// A pair's distance, measured exactly only when needed.
pub struct Pair<'a> {
    other: Position,
    origin: &'a Origin,
    estimate: Option<f64>,
    exact: Option<f64>,
}

impl<'a> Pair<'a> {
    /// The pair of another's location and an own one.
    pub fn new(other: Position, origin: &'a Origin) -> Self {
        Self {
            other,
            origin,
            estimate: origin.estimate(other),
            exact: None,
        }
    }

    /// The exact geodesic distance (measured once), other to own, as
    /// PostGIS's `ST_Distance(other, own)`.
    pub fn exact(&mut self) -> f64 {
        *self
            .exact
            .get_or_insert_with(|| geodesic::distance(self.other, self.origin.position))
    }

    /// Whether the exact distance is at most `metres`.
    pub fn within(&mut self, metres: f64) -> bool {
        match self.estimate {
            Some(estimate) if estimate < metres * (1.0 - MARGIN) - SLACK => true,
            Some(estimate) if estimate > metres * (1.0 + MARGIN) + SLACK => false,
            _ => self.exact() <= metres,
        }
    }

    /// Whether the exact distance surely exceeds `metres` (so the pair
    /// cannot be closer than a pair at `metres`).
    pub fn surely_beyond(&self, metres: f64) -> bool {
        self.estimate
            .is_some_and(|estimate| estimate > metres * (1.0 + MARGIN) + SLACK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_is_far_inside_its_margin() {
        for lat in [-79.0, -45.0, 0.0, 37.55, 60.0, 79.9] {
            let here = Position { lat, lon: -122.29 };
            for step in 0..72 {
                let bearing = f64::from(step * 5).to_radians();
                for metres in [0.5, 5.0, 50.0, 500.0, 10_000.0] {
                    let there = Position {
                        lat: lat + metres * bearing.cos() / 111_000.0,
                        lon: -122.29
                            + metres * bearing.sin() / (111_000.0 * lat.to_radians().cos()),
                    };
                    let exact = geodesic::distance(there, here);
                    let estimate = Origin::new(here).estimate(there).expect("trusted here");
                    assert!(
                        (estimate - exact).abs() <= exact * MARGIN / 100.0 + 1e-9,
                        "{here:?} to {there:?}: {estimate} vs {exact}"
                    );
                }
            }
        }
        let pole = Position {
            lat: 89.0,
            lon: 0.0,
        };
        assert_eq!(Origin::new(pole).estimate(pole), None);
    }

    #[test]
    fn pairs_near_a_threshold_are_measured_exactly() {
        let here = Position {
            lat: 37.55,
            lon: -122.29,
        };
        let there = Position {
            lat: 37.55 + 5.0 / 111_000.0,
            lon: -122.29,
        };
        let exact = geodesic::distance(there, here);
        let origin = Origin::new(here);
        let mut pair = Pair::new(there, &origin);
        assert!(pair.within(exact));
        assert!(!Pair::new(there, &origin).within(exact - 1e-9));
        assert!(Pair::new(there, &origin).within(100.0));
        assert!(!Pair::new(there, &origin).within(1.0));
        assert!(Pair::new(there, &origin).surely_beyond(1.0));
        assert!(!Pair::new(there, &origin).surely_beyond(exact));
        let mut same = Pair::new(here, &origin);
        assert!(same.within(0.0));
        assert_eq!(same.exact(), 0.0);
    }
}
