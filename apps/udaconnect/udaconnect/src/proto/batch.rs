//! `udaconnect.v1.LocationBatch`, encoded and decoded by hand so that
//! decoding one costs memory bounded by the item limit, not by the
//! message.
//!
//! The gRPC server holds a whole message before decoding it (at most
//! `UDACONNECT_INGEST_MAX_BODY` bytes), and that is bounded already; but an
//! item of the repeated `locations` field can be two bytes on the wire and
//! is some 70 once decoded, so a 16 MB message of empty items would become
//! 8 million of them, over 600 MB, before any check could count them. This
//! decoder keeps at most [`MAX_DECODED_ITEMS`] items, the most an edge may
//! be set to take plus the one that tells the batch is too large, and
//! steps over the rest without decoding them. A batch of that many
//! items is refused whatever the setting, so nothing it could take is
//! lost. Encoding is prost's, byte for byte.

use prost::{
    DecodeError, Message,
    bytes::{Buf, BufMut},
    encoding::{DecodeContext, WireType, message, skip_field, uint64},
};

use super::v1::LocationInput;
use crate::cli::INGEST_MAX_BATCH_BOUND;

/// The most items of a batch decoded: past them, a batch is too large for
/// any edge, and the others are stepped over.
pub const MAX_DECODED_ITEMS: usize = INGEST_MAX_BATCH_BOUND + 1;

/// Locations sent together, answered together.
#[derive(Clone, PartialEq, Default, Debug)]
pub struct LocationBatch {
    /// Echoed in the reply, to pair replies with batches.
    pub batch_id: u64,
    /// The locations. Decoded, at most [`MAX_DECODED_ITEMS`]: a message
    /// holding more decodes to that many.
    pub locations: Vec<LocationInput>,
}

impl Message for LocationBatch {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if self.batch_id != 0 {
            uint64::encode(1, &self.batch_id, buf);
        }
        message::encode_repeated(2, &self.locations, buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => uint64::merge(wire_type, &mut self.batch_id, buf, ctx),
            2 if self.locations.len() < MAX_DECODED_ITEMS => {
                message::merge_repeated(wire_type, &mut self.locations, buf, ctx)
            }
            _ => skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let id = if self.batch_id == 0 {
            0
        } else {
            uint64::encoded_len(1, &self.batch_id)
        };
        id + message::encoded_len_repeated(2, &self.locations)
    }

    fn clear(&mut self) {
        self.batch_id = 0;
        self.locations.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(person_id: i32) -> LocationInput {
        LocationInput {
            person_id,
            lat: 37.55,
            lon: -122.29,
            time: "2020-06-01T10:00:00Z".to_owned(),
            key: format!("phone:{person_id}"),
        }
    }

    #[test]
    fn a_batch_round_trips_as_protobuf_encodes_it() {
        let batch = LocationBatch {
            batch_id: 7,
            locations: vec![input(1), LocationInput::default(), input(3)],
        };
        let bytes = batch.encode_to_vec();
        assert_eq!(bytes.len(), batch.encoded_len());
        // Field 1 varint, then each item as field 2, length-delimited.
        assert_eq!(bytes[..4], [0x08, 7, 0x12, input(1).encoded_len() as u8]);
        assert_eq!(LocationBatch::decode(bytes.as_slice()), Ok(batch));
        assert_eq!(LocationBatch::decode(&[][..]), Ok(LocationBatch::default()));
    }

    #[test]
    fn items_past_the_bound_are_stepped_over_not_decoded() {
        let mut bytes = vec![0x08, 1];
        for _ in 0..MAX_DECODED_ITEMS + 1000 {
            bytes.extend_from_slice(&[0x12, 0x00]);
        }
        // An item past the bound, broken: stepped over as bytes all the
        // same, and an unknown field after it.
        bytes.extend_from_slice(&[0x12, 0x02, 0xff, 0xff, 0x18, 0x05]);
        let batch = LocationBatch::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(batch.batch_id, 1);
        assert_eq!(batch.locations.len(), MAX_DECODED_ITEMS);
        // A message cut short is still an error.
        assert!(LocationBatch::decode(&[0x12, 0x05, 0x00][..]).is_err());
    }
}
