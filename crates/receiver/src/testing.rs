//! Builders shared by the unit tests.

use axum::extract::ws::Utf8Bytes;
use beacon_hello::{Broadcast, Timestamp};
use bytes::Bytes;

use crate::frame::Frame;

/// A frame whose JSON is just its sequence.
pub fn frame(seq: u64) -> Frame {
    let sse = format!("id: {seq}\ndata: {{\"seq\":{seq}}}\n\n");
    Frame {
        seq,
        json: Utf8Bytes::from(format!("{{\"seq\":{seq}}}")),
        sse_chunk: crate::frame::http_chunk(sse.as_bytes()),
        sse: Bytes::from(sse),
    }
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
