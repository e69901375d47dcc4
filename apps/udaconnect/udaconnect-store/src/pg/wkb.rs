//! Points as PostGIS sends and takes `geometry` and `geography` in binary:
//! (E)WKB. Reading a location's two points this way costs no PostGIS
//! function call per row (`ST_X`, `ST_Y`, a cast), which at a few hundred
//! thousand rows is most of the time spent after the join.

use std::error::Error;

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};
use udaconnect_domain::Coordinate;

/// A point: X and Y.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wkb {
    /// X (the longitude of a `geography`).
    pub x: f64,
    /// Y (its latitude).
    pub y: f64,
}

/// EWKB flag: an SRID follows the type.
const EWKB_SRID: u32 = 0x2000_0000;
/// EWKB flags for Z and M, and the bits of the geometry type.
const EWKB_Z: u32 = 0x8000_0000;
const EWKB_M: u32 = 0x4000_0000;
const WKB_POINT: u32 = 1;

impl<'a> FromSql<'a> for Wkb {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let little = match raw.first() {
            Some(1) => true,
            Some(0) => false,
            _ => return Err("not WKB: bad byte order".into()),
        };
        let word = |at: usize| -> Result<[u8; 4], Box<dyn Error + Sync + Send>> {
            raw.get(at..at + 4)
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| "not WKB: too short".into())
        };
        let float = |at: usize| -> Result<f64, Box<dyn Error + Sync + Send>> {
            let bytes: [u8; 8] = raw
                .get(at..at + 8)
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or("not WKB: too short")?;
            Ok(if little {
                f64::from_le_bytes(bytes)
            } else {
                f64::from_be_bytes(bytes)
            })
        };
        let kind = word(1)?;
        let kind = if little {
            u32::from_le_bytes(kind)
        } else {
            u32::from_be_bytes(kind)
        };
        let shape = kind & !(EWKB_SRID | EWKB_Z | EWKB_M);
        if shape != WKB_POINT {
            return Err(format!("not a point (WKB type {shape})").into());
        }
        let at = if kind & EWKB_SRID != 0 { 9 } else { 5 };
        Ok(Self {
            x: float(at)?,
            y: float(at + 8)?,
        })
    }

    fn accepts(ty: &Type) -> bool {
        matches!(ty.name(), "geometry" | "geography")
    }
}

/// PostGIS's `geometry` type, for a binary `COPY` (which names its column
/// types): `oid` is what `'geometry'::regtype::oid` answers in the database.
pub fn geometry_type(oid: u32) -> Type {
    Type::new("geometry".into(), oid, Kind::Simple, "public".into())
}

impl From<Coordinate> for Wkb {
    fn from(coordinate: Coordinate) -> Self {
        Self {
            x: coordinate.x,
            y: coordinate.y,
        }
    }
}

impl ToSql for Wkb {
    /// Little-endian WKB without an SRID, as the original's `coordinate`
    /// column (SRID 0) holds its points.
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.put_u8(1);
        out.put_u32_le(WKB_POINT);
        out.put_f64_le(self.x);
        out.put_f64_le(self.y);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        ty.name() == "geometry"
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ewkb_points_are_read_in_either_byte_order_with_or_without_srid() {
        // SELECT ST_AsEWKB('SRID=4326;POINT(-122.29 37.55)'::geometry), little-endian.
        let mut little = vec![1];
        little.extend((WKB_POINT | EWKB_SRID).to_le_bytes());
        little.extend(4326_u32.to_le_bytes());
        little.extend((-122.29_f64).to_le_bytes());
        little.extend(37.55_f64.to_le_bytes());
        let point = Wkb::from_sql(&Type::BYTEA, &little).expect("a point");
        assert_eq!((point.x, point.y), (-122.29, 37.55));
        let mut big = vec![0];
        big.extend(WKB_POINT.to_be_bytes());
        big.extend(1.5_f64.to_be_bytes());
        big.extend((-2.0_f64).to_be_bytes());
        let point = Wkb::from_sql(&Type::BYTEA, &big).expect("a point");
        assert_eq!((point.x, point.y), (1.5, -2.0));
        let mut line = vec![1];
        line.extend(2_u32.to_le_bytes());
        assert!(Wkb::from_sql(&Type::BYTEA, &line).is_err());
        assert!(Wkb::from_sql(&Type::BYTEA, &little[..12]).is_err());
        let mut written = BytesMut::new();
        Wkb {
            x: -122.29,
            y: 37.55,
        }
        .to_sql(&Type::BYTEA, &mut written)
        .expect("written");
        let back = Wkb::from_sql(&Type::BYTEA, &written).expect("read back");
        assert_eq!((back.x, back.y), (-122.29, 37.55));
    }
}
