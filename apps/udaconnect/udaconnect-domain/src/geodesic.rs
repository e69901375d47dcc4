//! Distances on the WGS 84 ellipsoid, as PostGIS measures `geography`.
//!
//! PostGIS computes `ST_DWithin`/`ST_Distance` on `geography` with
//! GeographicLib's geodesic inverse (Karney, 2013), accurate to a few
//! nanometres; [`distance`] is the same algorithm (the `geo` crate's
//! `Geodesic`), so the embedded store and PostGIS agree on every pair
//! except within a hair of a threshold. Haversine (a sphere) would be off
//! by up to half a percent: a 5 m question answered at 4.98 m.
//!
//! [`search_boxes`] gives the latitude/longitude boxes that surely contain
//! every point within a distance, for a spatial index to narrow the pairs
//! that are then measured exactly.

use geo::{Distance as _, Geodesic, Point};

use crate::model::Position;

/// WGS 84 semi-major axis, metres.
const A: f64 = 6_378_137.0;
/// WGS 84 flattening.
const F: f64 = 1.0 / 298.257_223_563;
/// Safety factor on the box half-widths, far above any rounding.
const MARGIN: f64 = 1.001;

/// The geodesic distance between two positions, in metres.
pub fn distance(a: Position, b: Position) -> f64 {
    Geodesic.distance(Point::new(a.lon, a.lat), Point::new(b.lon, b.lat))
}

/// A latitude/longitude box, bounds included.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoBox {
    /// Southern edge.
    pub min_lat: f64,
    /// Northern edge.
    pub max_lat: f64,
    /// Western edge.
    pub min_lon: f64,
    /// Eastern edge.
    pub max_lon: f64,
}

impl GeoBox {
    /// Whether `position` lies in the box.
    pub fn contains(&self, position: Position) -> bool {
        (self.min_lat..=self.max_lat).contains(&position.lat)
            && (self.min_lon..=self.max_lon).contains(&position.lon)
    }
}

/// Boxes (one, or two across the antimeridian) holding every position
/// within `metres` of `center`.
///
/// Along a meridian a degree is at least `a(1 − e²)·π/180` metres (at the
/// equator), along a parallel at least `a·cos φ·π/180`, with φ the
/// latitude in the band farthest from the equator; a geodesic can only be
/// longer than either component of its path.
pub fn search_boxes(center: Position, metres: f64) -> Vec<GeoBox> {
    let e2 = F * (2.0 - F);
    let metres_per_degree_lat = A * (1.0 - e2) * std::f64::consts::PI / 180.0;
    let dlat = metres / metres_per_degree_lat * MARGIN;
    let min_lat = (center.lat - dlat).max(-90.0);
    let max_lat = (center.lat + dlat).min(90.0);
    let farthest = min_lat.abs().max(max_lat.abs());
    let cos = farthest.to_radians().cos();
    let metres_per_degree_lon = A * cos * std::f64::consts::PI / 180.0;
    let dlon = if metres_per_degree_lon <= 0.0 {
        f64::INFINITY
    } else {
        metres / metres_per_degree_lon * MARGIN
    };
    if !dlon.is_finite() || dlon >= 180.0 {
        return vec![GeoBox {
            min_lat,
            max_lat,
            min_lon: -180.0,
            max_lon: 180.0,
        }];
    }
    let (west, east) = (center.lon - dlon, center.lon + dlon);
    let band = |min_lon: f64, max_lon: f64| GeoBox {
        min_lat,
        max_lat,
        min_lon,
        max_lon,
    };
    if west < -180.0 {
        vec![band(-180.0, east), band(west + 360.0, 180.0)]
    } else if east > 180.0 {
        vec![band(west, 180.0), band(-180.0, east - 360.0)]
    } else {
        vec![band(west, east)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(lat: f64, lon: f64) -> Position {
        Position::new(lat, lon).expect("valid")
    }

    #[test]
    fn measures_on_the_ellipsoid() {
        // A degree along the equator is a·π/180; a degree of meridian from
        // the equator is 110,574.389 m on WGS 84 (a sphere says 111,195).
        let equator = distance(at(0.0, 0.0), at(0.0, 1.0));
        assert!((equator - 111_319.491).abs() < 0.001, "{equator}");
        let meridian = distance(at(0.0, 0.0), at(1.0, 0.0));
        assert!((meridian - 110_574.389).abs() < 0.001, "{meridian}");
        let here = at(37.55, -122.29);
        assert_eq!(distance(here, here), 0.0);
    }

    #[test]
    fn boxes_hold_every_point_within_the_distance() {
        for center in [
            at(37.55, -122.29),
            at(0.0, 0.0),
            at(-33.9, 18.4),
            at(89.99995, 10.0),
            at(10.0, 179.99999),
            at(-10.0, -179.99999),
        ] {
            let boxes = search_boxes(center, 5.0);
            for step in 0..360 {
                let bearing = f64::from(step);
                let rad = bearing.to_radians();
                // A point about 4.99 m away in every direction.
                let dlat = 4.99 * rad.cos() / 110_574.0;
                let dlon = 4.99 * rad.sin() / (111_320.0 * center.lat.to_radians().cos().max(1e-9));
                let mut lon = center.lon + dlon;
                if lon > 180.0 {
                    lon -= 360.0;
                }
                if lon < -180.0 {
                    lon += 360.0;
                }
                let lat = (center.lat + dlat).clamp(-90.0, 90.0);
                let point = at(lat, lon);
                if distance(center, point) <= 5.0 {
                    assert!(
                        boxes.iter().any(|b| b.contains(point)),
                        "{point:?} near {center:?} outside {boxes:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_box_is_split_at_the_antimeridian() {
        assert_eq!(search_boxes(at(10.0, 179.99999), 5.0).len(), 2);
        assert_eq!(search_boxes(at(10.0, 0.0), 5.0).len(), 1);
        let polar = search_boxes(at(90.0, 0.0), 5.0);
        assert_eq!((polar[0].min_lon, polar[0].max_lon), (-180.0, 180.0));
    }
}
