//! A message ready to send: serialized once, shared by every client.
//!
//! Tens of thousands of clients get the same bytes, so the SSE event (as an
//! HTTP chunk) and the JSON text are built when the message arrives, and
//! cloning a frame only bumps reference counts.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use beacon_wire::{Broadcast, DecodeError, Message};
use bytes::Bytes;
use platform::bus::Envelope;

/// One message in its wire forms.
#[derive(Debug)]
pub struct Frame {
    /// The stream sequence.
    pub seq: u64,
    /// The message JSON: a WebSocket text frame, an element of `/api/messages`.
    pub json: Utf8Bytes,
    /// The SSE event as one HTTP/1.1 chunk, for streams written on the raw
    /// connection: each delivery is then a single write of shared bytes.
    pub sse_chunk: Bytes,
}

impl Frame {
    /// Serializes `message` into its wire forms.
    pub fn new(message: &Message) -> Result<Self, serde_json::Error> {
        Ok(Self::from_json(message.seq, message.encode()?))
    }

    /// The wire forms of a message already encoded as `json`.
    pub(crate) fn from_json(seq: u64, json: String) -> Self {
        let sse = format!("id: {seq}\ndata: {json}\n\n");
        Self {
            seq,
            json: Utf8Bytes::from(json),
            sse_chunk: http_chunk(sse.as_bytes()),
        }
    }

    /// The complete SSE event, `id: <seq>\ndata: <json>\n\n`: the chunk
    /// without its framing, sharing its bytes.
    pub fn sse(&self) -> Bytes {
        let chunk = &self.sse_chunk;
        let start = chunk
            .iter()
            .position(|byte| *byte == b'\n')
            .map_or(0, |end| end + 1);
        chunk.slice(start..chunk.len().saturating_sub(2).max(start))
    }
}

/// `bytes` framed as one chunk of an HTTP/1.1 chunked body.
pub fn http_chunk(bytes: &[u8]) -> Bytes {
    let mut chunk = Vec::with_capacity(bytes.len() + 12);
    chunk.extend_from_slice(format!("{:x}\r\n", bytes.len()).as_bytes());
    chunk.extend_from_slice(bytes);
    chunk.extend_from_slice(b"\r\n");
    Bytes::from(chunk)
}

impl Frame {
    /// Decodes a payload read from the bus into a frame.
    pub fn decode(envelope: &Envelope) -> Result<Self, FrameError> {
        Ok(Self::new(&decode_message(envelope)?)?)
    }
}

/// The message stored in `envelope`; see [`Broadcast::decode`].
pub fn decode_message(envelope: &Envelope) -> Result<Message, DecodeError> {
    Ok(Message {
        seq: envelope.seq,
        broadcast: Broadcast::decode(&envelope.payload)?,
    })
}

/// Why a payload did not become a frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Not a valid broadcast.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Could not be written back as JSON.
    #[error("cannot encode the message: {0}")]
    Encode(#[from] serde_json::Error),
}

/// What a client is sent, in order.
#[derive(Debug, Clone)]
pub enum Event {
    /// A message.
    Message(Arc<Frame>),
    /// Something about the stream itself.
    Notice(Notice),
}

/// What a client must know that is not a message. Sent as an SSE event of
/// its own type (`event: gap`, `event: reset`) or a WebSocket text frame,
/// with the same JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// Messages `from..=to` are no longer retained anywhere.
    Gap {
        /// The first missing sequence.
        from: u64,
        /// The last missing sequence.
        to: u64,
    },
    /// The client's resume point lies beyond the end of the stream: the
    /// stream was created anew and numbers from 1 again (a broker whose
    /// store was wiped, `beacon all` restarted). What follows starts at
    /// `first`, the oldest retained message; `last` is the newest.
    Reset {
        /// The oldest retained sequence.
        first: u64,
        /// The newest sequence (`first > last` if there is none).
        last: u64,
    },
}

impl Notice {
    /// The JSON body.
    pub fn json(&self) -> String {
        match self {
            Notice::Gap { from, to } => format!(r#"{{"event":"gap","from":{from},"to":{to}}}"#),
            Notice::Reset { first, last } => {
                format!(r#"{{"event":"reset","first_seq":{first},"last_seq":{last}}}"#)
            }
        }
    }

    /// The SSE event. Its id is the sequence a reconnect resumes after:
    /// past a gap, or before the first message of a reset stream.
    pub fn sse(&self) -> Bytes {
        let (name, id) = match self {
            Notice::Gap { to, .. } => ("gap", *to),
            Notice::Reset { first, .. } => ("reset", first.saturating_sub(1)),
        };
        Bytes::from(format!(
            "id: {id}\nevent: {name}\ndata: {}\n\n",
            self.json()
        ))
    }
}

#[cfg(test)]
mod tests {
    use beacon_wire::{Broadcast, Timestamp};

    use super::*;

    #[test]
    fn one_serialization_two_forms() {
        let message = Message {
            seq: 7,
            broadcast: Broadcast {
                id: "a-7".to_owned(),
                text: "Hello world".to_owned(),
                sender: "s".to_owned(),
                sent_at: Timestamp::now(),
                interval_ms: 10,
            },
        };
        let frame = Frame::new(&message).expect("encodes");
        let sse = frame.sse();
        let sse = std::str::from_utf8(&sse).expect("utf-8");
        assert_eq!(sse, format!("id: 7\ndata: {}\n\n", frame.json.as_str()));
        assert!(frame.json.as_str().starts_with(r#"{"seq":7,"#));
        let chunk = std::str::from_utf8(&frame.sse_chunk).expect("utf-8");
        assert_eq!(chunk, format!("{:x}\r\n{sse}\r\n", sse.len()));
    }

    #[test]
    fn a_gap_names_its_range_and_resumes_after_it() {
        let gap = Notice::Gap { from: 3, to: 9 };
        assert_eq!(
            gap.sse(),
            Bytes::from_static(
                b"id: 9\nevent: gap\ndata: {\"event\":\"gap\",\"from\":3,\"to\":9}\n\n"
            )
        );
    }

    #[test]
    fn a_reset_resumes_before_the_first_retained_message() {
        let reset = Notice::Reset { first: 1, last: 12 };
        assert_eq!(
            reset.sse(),
            Bytes::from_static(
                b"id: 0\nevent: reset\ndata: {\"event\":\"reset\",\"first_seq\":1,\"last_seq\":12}\n\n"
            )
        );
    }
}
