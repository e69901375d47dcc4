//! The in-process bus behind `beacon all` when no broker is configured.
//!
//! It numbers messages from 1, keeps the newest `capacity` of them, and fans
//! new ones out over a broadcast channel. A subscriber takes its backlog and
//! joins the channel under the same lock a publish takes, so it sees every
//! message exactly once: retained ones from the backlog, later ones live.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError},
};

use bytes::Bytes;
use futures::{StreamExt, stream};
use tokio::sync::broadcast::{self, error::RecvError};

use super::{Bounds, BusError, Envelope, Published, Subscription};

/// Live messages a subscriber may fall behind by before it must resubscribe.
const LIVE_BUFFER: usize = 1024;

/// An in-process log of the newest `capacity` messages; cheap to clone.
#[derive(Clone)]
pub struct MemoryBus {
    inner: Arc<Inner>,
}

struct Inner {
    log: Mutex<Log>,
    live: broadcast::Sender<Envelope>,
}

struct Log {
    last_seq: u64,
    retained: VecDeque<Envelope>,
    capacity: usize,
}

impl MemoryBus {
    /// A bus retaining at most `capacity` messages (at least one).
    pub fn new(capacity: usize) -> Self {
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        Self {
            inner: Arc::new(Inner {
                log: Mutex::new(Log {
                    last_seq: 0,
                    retained: VecDeque::with_capacity(capacity.clamp(1, 4096)),
                    capacity: capacity.max(1),
                }),
                live,
            }),
        }
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.inner
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn publish(&self, payload: Bytes) -> Published {
        let mut log = self.log();
        log.last_seq += 1;
        let envelope = Envelope {
            seq: log.last_seq,
            payload,
        };
        if log.retained.len() == log.capacity {
            log.retained.pop_front();
        }
        log.retained.push_back(envelope.clone());
        // Sent under the lock, so subscribers joining concurrently see it
        // either in their backlog or live, never both or neither. No
        // subscriber at all is not an error.
        let _ = self.inner.live.send(envelope);
        Published {
            seq: log.last_seq,
            duplicate: false,
        }
    }

    pub(super) fn subscribe(&self, from: u64) -> Subscription {
        let (backlog, live) = {
            let log = self.log();
            let backlog: Vec<Envelope> = log
                .retained
                .iter()
                .filter(|envelope| envelope.seq >= from)
                .cloned()
                .collect();
            (backlog, self.inner.live.subscribe())
        };
        let live = stream::unfold(Some(live), move |receiver| async move {
            let mut receiver = receiver?;
            loop {
                match receiver.recv().await {
                    Ok(envelope) if envelope.seq < from => continue,
                    Ok(envelope) => return Some((Ok(envelope), Some(receiver))),
                    Err(RecvError::Lagged(missed)) => {
                        return Some((Err(BusError::Lagged(missed)), None));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        });
        stream::iter(backlog).map(Ok).chain(live).boxed()
    }

    pub(super) fn fetch(&self, from: u64, max: usize) -> Vec<Envelope> {
        self.log()
            .retained
            .iter()
            .filter(|envelope| envelope.seq >= from)
            .take(max)
            .cloned()
            .collect()
    }

    pub(super) fn bounds(&self) -> Bounds {
        let log = self.log();
        Bounds {
            first: log
                .retained
                .front()
                .map_or(log.last_seq + 1, |envelope| envelope.seq),
            last: log.last_seq,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(n: u64) -> Bytes {
        Bytes::from(n.to_string())
    }

    #[test]
    fn numbers_from_one_and_keeps_the_newest() {
        let bus = MemoryBus::new(3);
        assert!(bus.bounds().first > bus.bounds().last);
        for n in 1..=5 {
            assert_eq!(bus.publish(payload(n)).seq, n);
        }
        assert_eq!(bus.bounds(), Bounds { first: 3, last: 5 });
        let seqs: Vec<u64> = bus.fetch(0, 10).iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![3, 4, 5]);
        assert_eq!(bus.fetch(4, 1).len(), 1);
    }

    #[tokio::test]
    async fn a_subscription_gets_the_backlog_then_live_messages_once() {
        let bus = MemoryBus::new(10);
        for n in 1..=3 {
            bus.publish(payload(n));
        }
        let mut subscription = bus.subscribe(2);
        bus.publish(payload(4));
        let mut seqs = Vec::new();
        for _ in 0..3 {
            let envelope = subscription
                .next()
                .await
                .expect("stream open")
                .expect("no error");
            seqs.push(envelope.seq);
        }
        assert_eq!(seqs, vec![2, 3, 4]);
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told() {
        let bus = MemoryBus::new(10);
        let mut subscription = bus.subscribe(1);
        for n in 0..(LIVE_BUFFER as u64 + 10) {
            bus.publish(payload(n));
        }
        let outcome = subscription.next().await.expect("stream open");
        assert!(matches!(outcome, Err(BusError::Lagged(_))), "{outcome:?}");
        assert!(subscription.next().await.is_none());
    }
}
