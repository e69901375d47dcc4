//! Locations on the bus: the protobuf message an edge publishes (one per
//! chunk of an accepted batch) and a writer reads back, checked, and the
//! dead letters a writer sets aside.
//!
//! A message's `Nats-Msg-Id` is made of its locations' ids (the first, how
//! many, and a hash of them all): an edge that publishes the same chunk
//! again (its acknowledgement was lost) is deduplicated by the broker, and
//! two chunks of different locations never share one. A retry is
//! published again under the id its key was first given, beside new
//! locations, so the first id alone would not tell two chunks apart.

use bytes::Bytes;
use prost::Message as _;
use udaconnect_domain::{LocationRecord, Position, Timestamp};

use crate::proto::bus::{DeadLetter, LocationsMessage, StoredLocation};

/// The layout version this build writes and reads.
pub const VERSION: u32 = 1;

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not a `LocationsMessage` at all.
    #[error("undecodable: {0}")]
    Undecodable(String),
    /// A layout this build does not know.
    #[error("unsupported version {0} (this build reads {VERSION})")]
    UnsupportedVersion(u32),
    /// A location that the edge would never have accepted.
    #[error("location {id}: {reason}")]
    InvalidLocation {
        /// Its id.
        id: i64,
        /// What is wrong.
        reason: String,
    },
}

impl WireError {
    /// The short code dead letters and metrics use.
    pub fn code(&self) -> &'static str {
        match self {
            WireError::Undecodable(_) => "undecodable",
            WireError::UnsupportedVersion(_) => "unsupported_version",
            WireError::InvalidLocation { .. } => "invalid_location",
        }
    }
}

/// The message carrying `records`.
pub fn encode(records: &[LocationRecord]) -> Bytes {
    let message = LocationsMessage {
        version: VERSION,
        locations: records.iter().map(stored).collect(),
    };
    Bytes::from(message.encode_to_vec())
}

fn stored(record: &LocationRecord) -> StoredLocation {
    StoredLocation {
        id: record.id,
        person_id: record.person_id,
        lat: record.position.lat,
        lon: record.position.lon,
        time_us: record.time.micros(),
        key: record.key.clone().unwrap_or_default(),
    }
}

/// The `Nats-Msg-Id` of the message carrying `records` (never empty): the
/// first id, how many, and the 64-bit FNV-1a hash of every id in order.
pub fn message_id(records: &[LocationRecord]) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = records
        .iter()
        .flat_map(|record| record.id.to_le_bytes())
        .fold(OFFSET, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(PRIME)
        });
    let first = records.first().map_or(0, |record| record.id);
    format!("loc-{first}-{}-{hash:016x}", records.len())
}

/// The records of a message, each checked as the edge checks it.
pub fn decode(payload: &[u8]) -> Result<Vec<LocationRecord>, WireError> {
    let message =
        LocationsMessage::decode(payload).map_err(|err| WireError::Undecodable(err.to_string()))?;
    if message.version != VERSION {
        return Err(WireError::UnsupportedVersion(message.version));
    }
    message
        .locations
        .into_iter()
        .map(|location| {
            let position = Position::new(location.lat, location.lon).map_err(|err| {
                WireError::InvalidLocation {
                    id: location.id,
                    reason: err.to_string(),
                }
            })?;
            if location.id <= 0 || location.person_id <= 0 {
                return Err(WireError::InvalidLocation {
                    id: location.id,
                    reason: "ids must be positive".to_owned(),
                });
            }
            Ok(LocationRecord {
                id: location.id,
                person_id: location.person_id,
                position,
                time: Timestamp::from_micros(location.time_us),
                key: (!location.key.is_empty()).then_some(location.key),
            })
        })
        .collect()
}

/// A dead letter: `reason` (a code), `detail`, where it came from, and
/// what it was.
pub fn dead_letter(reason: &str, detail: String, source_seq: u64, payload: Bytes) -> Bytes {
    let letter = DeadLetter {
        reason: reason.to_owned(),
        detail,
        source_seq,
        payload: payload.to_vec(),
    };
    Bytes::from(letter.encode_to_vec())
}

/// Reads a dead letter back (for tools and tests).
pub fn read_dead_letter(payload: &[u8]) -> Result<DeadLetter, WireError> {
    DeadLetter::decode(payload).map_err(|err| WireError::Undecodable(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: i64, key: Option<&str>) -> LocationRecord {
        LocationRecord {
            id,
            person_id: 7,
            position: Position::new(37.55, -122.29).expect("valid"),
            time: Timestamp::from_micros(1_590_969_600_123_456),
            key: key.map(str::to_owned),
        }
    }

    #[test]
    fn records_round_trip_with_and_without_keys() {
        let records = vec![record(10, Some("phone:1")), record(11, None)];
        assert_eq!(decode(&encode(&records)), Ok(records.clone()));
        assert!(message_id(&records).starts_with("loc-10-2-"));
    }

    #[test]
    fn chunks_of_other_locations_have_other_message_ids() {
        let first = vec![record(10, Some("a")), record(11, Some("b"))];
        // A retry of "a" beside a new location: the same first id, the
        // same length.
        let retry = vec![record(10, Some("a")), record(42, Some("c"))];
        assert_ne!(message_id(&first), message_id(&retry));
        assert_eq!(message_id(&first), message_id(&first.clone()));
        // FNV-1a of no bytes is its offset basis.
        assert_eq!(message_id(&[]), "loc-0-0-cbf29ce484222325");
    }

    #[test]
    fn bad_payloads_are_named_not_panicked_on() {
        assert_eq!(
            decode(b"\xff\xff\xff").map_err(|err| err.code()),
            Err("undecodable")
        );
        let future = LocationsMessage {
            version: 9,
            locations: Vec::new(),
        };
        assert_eq!(
            decode(&future.encode_to_vec()),
            Err(WireError::UnsupportedVersion(9))
        );
        let mut bad = stored(&record(12, None));
        bad.lat = 123.0;
        let message = LocationsMessage {
            version: VERSION,
            locations: vec![bad],
        };
        let err = decode(&message.encode_to_vec()).expect_err("out of range");
        assert_eq!(err.code(), "invalid_location");
        assert!(err.to_string().contains("location 12"), "{err}");
    }

    #[test]
    fn dead_letters_keep_reason_and_payload() {
        let letter = dead_letter("undecodable", "x".into(), 5, Bytes::from_static(b"junk"));
        let read = read_dead_letter(&letter).expect("reads");
        assert_eq!(
            (
                read.reason.as_str(),
                read.source_seq,
                read.payload.as_slice()
            ),
            ("undecodable", 5, b"junk".as_slice())
        );
    }
}
