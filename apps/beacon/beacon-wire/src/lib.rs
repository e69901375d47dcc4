//! The wire format of the hello pipeline.
//!
//! The broadcaster publishes a [`Broadcast`] as JSON; the bus numbers it; the
//! receiver turns each stored payload into a [`Message`] (the broadcast plus
//! its stream sequence), which is what browsers receive:
//!
//! ```json
//! {"seq":42,"id":"6f1c0a9e2b7d4c38-42","text":"Hello world","sender":"broadcaster-7d9f",
//!  "sent_at":"2026-11-25T10:15:30.123Z","interval_ms":3456}
//! ```
//!
//! Anyone who can publish on the subject can put bytes there, so decoding is
//! strict: a payload that is not a valid broadcast is refused with a reason.
//! Unknown fields are ignored, so a newer broadcaster can add some.

use std::{fmt, time::SystemTime};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

/// Largest payload accepted from the bus.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;
/// Longest message text.
pub const MAX_TEXT_BYTES: usize = 1024;
/// Longest sender name (a DNS host name).
pub const MAX_SENDER_BYTES: usize = 253;
/// Longest message id.
pub const MAX_ID_BYTES: usize = 128;

/// Histogram buckets, in seconds, for the waits between broadcasts: fine
/// below a second for fast test settings, one per second across the default
/// 1–10 s range, so a uniform draw shows as an even staircase.
pub const INTERVAL_BUCKETS_SECONDS: [f64; 19] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0,
    30.0, 60.0,
];

/// What a broadcaster publishes; the bus assigns its sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broadcast {
    /// Unique per message: `<instance>-<counter>`; the bus deduplicates on it.
    pub id: String,
    /// The text shown to people.
    pub text: String,
    /// Which broadcaster sent it (its host or pod name).
    pub sender: String,
    /// When it was generated.
    pub sent_at: Timestamp,
    /// How long the broadcaster waited before sending it.
    pub interval_ms: u64,
}

/// A broadcast as stored on the bus, under its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// The stream sequence: the resume point for clients.
    pub seq: u64,
    /// The broadcast itself.
    #[serde(flatten)]
    pub broadcast: Broadcast,
}

/// Why a payload is not a valid broadcast.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Larger than [`MAX_PAYLOAD_BYTES`].
    #[error("payload of {0} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not JSON of the right shape.
    #[error("not a broadcast: {0}")]
    Json(#[from] serde_json::Error),
    /// A field outside its limits.
    #[error("invalid {field}: {reason}")]
    Field {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl Broadcast {
    /// The JSON published on the bus.
    pub fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Parses and checks a payload read from the bus.
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(DecodeError::TooLarge(payload.len()));
        }
        let broadcast: Broadcast = serde_json::from_slice(payload)?;
        check_len("id", &broadcast.id, MAX_ID_BYTES)?;
        check_len("text", &broadcast.text, MAX_TEXT_BYTES)?;
        check_len("sender", &broadcast.sender, MAX_SENDER_BYTES)?;
        Ok(broadcast)
    }
}

fn check_len(field: &'static str, value: &str, max: usize) -> Result<(), DecodeError> {
    let reason = if value.is_empty() {
        "must not be empty".to_owned()
    } else if value.len() > max {
        format!("{} bytes exceeds the {max}-byte limit", value.len())
    } else {
        return Ok(());
    };
    Err(DecodeError::Field { field, reason })
}

impl Message {
    /// The JSON sent to browsers.
    pub fn encode(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

/// A UTC instant written as RFC 3339 with milliseconds (`2026-11-25T10:15:30.123Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(SystemTime);

impl Timestamp {
    /// The current time, truncated to the millisecond it is written with.
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Self {
        let since_epoch = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let millis = std::time::Duration::from_millis(
            u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX),
        );
        Self(SystemTime::UNIX_EPOCH + millis)
    }
}

impl From<Timestamp> for SystemTime {
    fn from(timestamp: Timestamp) -> Self {
        timestamp.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_rfc3339_millis(self.0).fmt(f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_rfc3339(&text)
            .map(Timestamp::from)
            .map_err(|err| D::Error::custom(format!("sent_at {text:?} is not RFC 3339 UTC: {err}")))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn broadcast() -> Broadcast {
        Broadcast {
            id: "6f1c0a9e2b7d4c38-42".to_owned(),
            text: "Hello world".to_owned(),
            sender: "pod-1".to_owned(),
            sent_at: Timestamp::from(
                SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_065_730_123),
            ),
            interval_ms: 3456,
        }
    }

    #[test]
    fn a_message_is_the_broadcast_with_its_sequence_first() {
        let message = Message {
            seq: 42,
            broadcast: broadcast(),
        };
        assert_eq!(
            message.encode().expect("encodes"),
            r#"{"seq":42,"id":"6f1c0a9e2b7d4c38-42","text":"Hello world","sender":"pod-1","sent_at":"2025-11-25T10:15:30.123Z","interval_ms":3456}"#
        );
    }

    #[test]
    fn a_broadcast_survives_the_bus() {
        let original = broadcast();
        let payload = original.encode().expect("encodes");
        assert_eq!(Broadcast::decode(&payload).expect("decodes"), original);
    }

    #[test]
    fn timestamps_keep_milliseconds_only() {
        let time = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_500_123_456_789);
        assert_eq!(
            Timestamp::from(time).to_string(),
            "1970-01-01T00:25:00.123Z"
        );
    }

    #[test]
    fn bad_payloads_are_refused_with_a_reason() {
        let cases: [(&[u8], &str); 6] = [
            (b"not json", "not a broadcast"),
            (br#"{"id":"a","text":"t","sender":"s","interval_ms":1}"#, "sent_at"),
            (
                br#"{"id":"a","text":"t","sender":"s","sent_at":"yesterday","interval_ms":1}"#,
                "RFC 3339",
            ),
            (
                br#"{"id":"a","text":"t","sender":"s","sent_at":"2026-01-01T00:00:00.000Z","interval_ms":-5}"#,
                "not a broadcast",
            ),
            (
                br#"{"id":"","text":"t","sender":"s","sent_at":"2026-01-01T00:00:00.000Z","interval_ms":5}"#,
                "invalid id",
            ),
            (&[b' '; MAX_PAYLOAD_BYTES + 1], "exceeds"),
        ];
        for (payload, expected) in cases {
            let err = Broadcast::decode(payload).expect_err("refused");
            assert!(
                err.to_string().contains(expected),
                "{err} should mention {expected}"
            );
        }
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let payload = br#"{"id":"a","text":"t","sender":"s","sent_at":"2026-01-01T00:00:00.000Z","interval_ms":5,"extra":true}"#;
        assert!(Broadcast::decode(payload).is_ok());
    }
}
