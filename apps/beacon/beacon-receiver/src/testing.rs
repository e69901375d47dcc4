//! Builders shared by the unit tests.

use beacon_wire::{Broadcast, Timestamp};
use bytes::Bytes;
use platform::bus::{Bus, BusStream, MemoryBus, StreamSettings};

use crate::frame::Frame;

/// An in-process hello stream retaining the newest `capacity` messages.
pub fn bus(capacity: u64) -> BusStream {
    Bus::Memory(MemoryBus::new()).stream(StreamSettings::log("HELLO", "beacon.hello", capacity))
}

/// A frame whose JSON is just its sequence.
pub fn frame(seq: u64) -> Frame {
    Frame::from_json(seq, format!("{{\"seq\":{seq}}}"))
}

/// A valid broadcast payload, numbered `n` in its id.
pub fn payload(n: u64) -> Bytes {
    let broadcast = Broadcast {
        id: format!("i-{n}"),
        text: "Hello world".to_owned(),
        sender: "s".to_owned(),
        sent_at: Timestamp::now(),
        interval_ms: 1,
    };
    Bytes::from(broadcast.encode().expect("encodes"))
}
