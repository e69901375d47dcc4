//! Messages older than the window, read back from the stream.
//!
//! A client resuming from further back than the window, or a history page
//! reaching past it, is served from the bus in batches. Whatever the stream
//! no longer retains is reported as a gap, never skipped silently.

use std::sync::Arc;

use beacon_platform::bus::{BusError, BusStream};

use crate::frame::{Event, Frame, Notice};

/// Reads history from the bus.
#[derive(Clone)]
pub struct History {
    bus: BusStream,
}

/// A batch of history and where the next one starts.
#[derive(Debug)]
pub struct Batch {
    /// Messages and gaps, in sequence order.
    pub events: Vec<Event>,
    /// The first sequence after this batch.
    pub next: u64,
}

impl History {
    /// History on `bus`.
    pub fn new(bus: BusStream) -> Self {
        Self { bus }
    }

    /// The bus history is read from.
    pub fn bus(&self) -> &BusStream {
        &self.bus
    }

    /// Up to `max` messages with `from <= seq < until`, with a gap for any
    /// part of that range the stream no longer has. The batch always makes
    /// progress: `next > from`.
    pub async fn read(&self, from: u64, until: u64, max: usize) -> Result<Batch, BusError> {
        let envelopes = self.bus.fetch(from, max).await?;
        let mut events = Vec::new();
        let mut expected = from;
        for envelope in envelopes.iter().take_while(|envelope| envelope.seq < until) {
            if envelope.seq > expected {
                events.push(Event::Notice(Notice::Gap {
                    from: expected,
                    to: envelope.seq - 1,
                }));
            }
            match Frame::decode(envelope) {
                Ok(frame) => events.push(Event::Message(Arc::new(frame))),
                Err(err) => {
                    tracing::debug!(seq = envelope.seq, error = %err, "skipping a malformed message in history")
                }
            }
            expected = envelope.seq + 1;
        }
        let reached_until = envelopes.iter().any(|envelope| envelope.seq >= until);
        if expected < until && (envelopes.is_empty() || reached_until) {
            // The stream holds nothing from `expected` up to `until`.
            events.push(Event::Notice(Notice::Gap {
                from: expected,
                to: until - 1,
            }));
            expected = until;
        }
        Ok(Batch {
            events,
            next: expected,
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::testing::payload;

    fn describe(batch: &Batch) -> Vec<String> {
        batch
            .events
            .iter()
            .map(|event| match event {
                Event::Message(frame) => frame.seq.to_string(),
                Event::Notice(Notice::Gap { from, to }) => format!("gap {from}-{to}"),
                Event::Notice(notice) => notice.json(),
            })
            .collect()
    }

    async fn bus_with(capacity: u64, payloads: Vec<Bytes>) -> History {
        let bus = crate::testing::bus(capacity);
        for payload in payloads {
            bus.publish("id", payload).await.expect("published");
        }
        History::new(bus)
    }

    #[tokio::test]
    async fn reads_a_range_in_batches() {
        let history = bus_with(100, (1..=10).map(payload).collect()).await;
        let batch = history.read(2, 8, 3).await.expect("read");
        assert_eq!(describe(&batch), vec!["2", "3", "4"]);
        assert_eq!(batch.next, 5);
        let batch = history.read(5, 8, 10).await.expect("read");
        assert_eq!(describe(&batch), vec!["5", "6", "7"]);
        assert_eq!(batch.next, 8);
    }

    #[tokio::test]
    async fn what_the_stream_dropped_is_a_gap() {
        let history = bus_with(4, (1..=10).map(payload).collect()).await;
        let batch = history.read(2, 9, 100).await.expect("read");
        assert_eq!(describe(&batch), vec!["gap 2-6", "7", "8"]);
        assert_eq!(batch.next, 9);
        let batch = history.read(1, 5, 100).await.expect("read");
        assert_eq!(describe(&batch), vec!["gap 1-4"]);
        assert_eq!(batch.next, 5);
    }

    #[tokio::test]
    async fn malformed_messages_are_passed_over() {
        let payloads = vec![payload(1), Bytes::from_static(b"junk"), payload(3)];
        let history = bus_with(10, payloads).await;
        let batch = history.read(1, 4, 10).await.expect("read");
        assert_eq!(describe(&batch), vec!["1", "3"]);
        assert_eq!(batch.next, 4);
    }
}
