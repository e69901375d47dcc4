//! Messages older than the window, read back from the stream.
//!
//! A client resuming from further back than the window, or a history page
//! reaching past it, is served from the bus in blocks of [`BLOCK`]
//! sequences. Clients resuming from an old point together (a thousand
//! browsers after a receiver restart) want the same blocks, so:
//!
//! - at most [`CONCURRENT_READS`] reads go to the bus at once (each is a
//!   short-lived consumer on JetStream), however many clients wait;
//! - a block being read is read once, for everyone who wants it, and a
//!   complete block is kept (at most [`CACHED_BLOCKS`], for at most
//!   [`CACHE_FOR`]) with its messages decoded into frames, so each message
//!   is decoded once, not once per client.
//!
//! What the stream no longer retains is skipped over (the feed announces
//! the jump as a gap). An answer with nothing where the stream's bounds say
//! messages exist is a failed read, retried, never a gap: a transient empty
//! fetch must not skip a client past messages that exist.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures::future::BoxFuture;
use platform::bus::{Bounds, BusError, BusStream, Envelope};
use tokio::{
    sync::{OnceCell, Semaphore},
    time::Instant,
};

use crate::frame::Frame;

/// Sequences per block: block `k` starts at `k * BLOCK + 1`.
pub const BLOCK: u64 = 500;
/// Reads of the bus at once, for all clients together.
pub const CONCURRENT_READS: usize = 4;
/// Complete blocks kept: 20,000 messages.
pub const CACHED_BLOCKS: usize = 40;
/// How long a kept block is used.
pub const CACHE_FOR: Duration = Duration::from_secs(30);

/// Where history is read from: the stream, or a stand-in in tests.
pub trait Source: Send + Sync + 'static {
    /// Up to `max` retained messages with `seq >= from`, oldest first.
    fn fetch(&self, from: u64, max: usize) -> BoxFuture<'_, Result<Vec<Envelope>, BusError>>;
    /// The retained range.
    fn bounds(&self) -> BoxFuture<'_, Result<Bounds, BusError>>;
}

impl Source for BusStream {
    fn fetch(&self, from: u64, max: usize) -> BoxFuture<'_, Result<Vec<Envelope>, BusError>> {
        Box::pin(BusStream::fetch(self, from, max))
    }

    fn bounds(&self) -> BoxFuture<'_, Result<Bounds, BusError>> {
        Box::pin(BusStream::bounds(self))
    }
}

/// Reads history from the bus; cheap to clone, shared by all clients.
#[derive(Clone)]
pub struct History {
    bus: BusStream,
    source: Arc<dyn Source>,
    blocks: Arc<Blocks>,
}

/// A batch of history and where the next one starts.
#[derive(Debug)]
pub struct Batch {
    /// Messages in sequence order; sequences the stream no longer has (or
    /// that held no valid message) are simply absent.
    pub frames: Vec<Arc<Frame>>,
    /// The first sequence after this batch: everything before it was
    /// returned or is not retained.
    pub next: u64,
}

/// One block as read: every retained message with `seq >= start` up to the
/// block's last, decoded (`None` for a malformed payload).
struct Block {
    entries: Vec<(u64, Option<Arc<Frame>>)>,
    /// The read returned all it was asked for: the block covers
    /// `start..=last` for good and can be kept.
    full: bool,
}

struct Blocks {
    reads: Semaphore,
    cache: Mutex<HashMap<u64, Cached>>,
}

struct Cached {
    block: Arc<OnceCell<Arc<Block>>>,
    since: Instant,
}

impl History {
    /// History on `bus`.
    pub fn new(bus: BusStream) -> Self {
        Self::with_source(bus.clone(), Arc::new(bus))
    }

    /// History on `bus`, read through `source`.
    pub fn with_source(bus: BusStream, source: Arc<dyn Source>) -> Self {
        Self {
            bus,
            source,
            blocks: Arc::new(Blocks {
                reads: Semaphore::new(CONCURRENT_READS),
                cache: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The bus history is read from.
    pub fn bus(&self) -> &BusStream {
        &self.bus
    }

    /// The range the stream retains.
    pub async fn bounds(&self) -> Result<Bounds, BusError> {
        self.source.bounds().await
    }

    /// Up to `max` messages with `from <= seq < until`. The batch always
    /// makes progress (`next > from`) or fails: a read that returns nothing
    /// where the stream holds messages is an error to retry.
    pub async fn read(&self, from: u64, until: u64, max: usize) -> Result<Batch, BusError> {
        let from = from.max(1);
        if from >= until {
            return Ok(Batch {
                frames: Vec::new(),
                next: from,
            });
        }
        let block = self.block(block_start(from)).await?;
        let mut frames = Vec::new();
        let mut next = None;
        for (seq, frame) in block.entries.iter().filter(|(seq, _)| *seq >= from) {
            if *seq >= until {
                // Nothing retained between the last one taken and `until`.
                next = Some(until);
                break;
            }
            if frames.len() >= max {
                break;
            }
            if let Some(frame) = frame {
                frames.push(Arc::clone(frame));
            }
            next = Some(seq + 1);
        }
        if let Some(next) = next {
            return Ok(Batch { frames, next });
        }
        // The read holds nothing from `from` on: the stream's bounds say
        // whether that is because nothing is retained there.
        let bounds = self.source.bounds().await?;
        let next = if bounds.first > from {
            bounds.first.min(until)
        } else if from > bounds.last {
            // The stream ends before `from` (it was created anew): nothing
            // older than the window is left to read.
            until
        } else {
            return Err(BusError::Request(format!(
                "a history read from {from} returned nothing, though the stream holds {}..={}",
                bounds.first, bounds.last
            )));
        };
        Ok(Batch {
            frames: Vec::new(),
            next,
        })
    }

    /// The block starting at `start`: kept, being read by someone else, or
    /// read now (within the bound on reads at once).
    async fn block(&self, start: u64) -> Result<Arc<Block>, BusError> {
        let cell = {
            let mut cache = self
                .blocks
                .cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            cache.retain(|_, cached| now.duration_since(cached.since) < CACHE_FOR);
            if !cache.contains_key(&start) && cache.len() >= CACHED_BLOCKS {
                // Make room: the oldest goes.
                if let Some(oldest) = cache
                    .iter()
                    .min_by_key(|(_, cached)| cached.since)
                    .map(|(start, _)| *start)
                {
                    cache.remove(&oldest);
                }
            }
            let cached = cache.entry(start).or_insert_with(|| Cached {
                block: Arc::new(OnceCell::new()),
                since: now,
            });
            Arc::clone(&cached.block)
        };
        let block = cell
            .get_or_try_init(|| async {
                let _permit = self
                    .blocks
                    .reads
                    .acquire()
                    .await
                    .map_err(|_| BusError::Request("history reads are closed".to_owned()))?;
                let max = usize::try_from(BLOCK).unwrap_or(usize::MAX);
                let envelopes = self.source.fetch(start, max).await?;
                let full = envelopes.len() >= max;
                let entries = envelopes
                    .iter()
                    .map(|envelope| (envelope.seq, decode(envelope)))
                    .collect();
                Ok::<_, BusError>(Arc::new(Block { entries, full }))
            })
            .await
            .cloned();
        let keep = block.as_ref().is_ok_and(|block| block.full);
        if !keep {
            // A block read short (the stream had less at the time) or not
            // at all is read again by the next client that wants it.
            let mut cache = self
                .blocks
                .cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if cache
                .get(&start)
                .is_some_and(|cached| Arc::ptr_eq(&cached.block, &cell))
            {
                cache.remove(&start);
            }
        }
        block
    }
}

/// The first sequence of the block holding `seq` (from 1).
fn block_start(seq: u64) -> u64 {
    (seq.max(1) - 1) / BLOCK * BLOCK + 1
}

fn decode(envelope: &Envelope) -> Option<Arc<Frame>> {
    match Frame::decode(envelope) {
        Ok(frame) => Some(Arc::new(frame)),
        Err(err) => {
            tracing::debug!(seq = envelope.seq, error = %err, "skipping a malformed message in history");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;

    use super::*;
    use crate::testing::payload;

    fn seqs(batch: &Batch) -> Vec<u64> {
        batch.frames.iter().map(|frame| frame.seq).collect()
    }

    async fn bus_with(capacity: u64, payloads: Vec<Bytes>) -> History {
        let bus = crate::testing::bus(capacity);
        for payload in payloads {
            bus.publish("id", payload).await.expect("published");
        }
        History::new(bus)
    }

    #[test]
    fn blocks_are_aligned() {
        assert_eq!(block_start(0), 1);
        assert_eq!(block_start(1), 1);
        assert_eq!(block_start(500), 1);
        assert_eq!(block_start(501), 501);
        assert_eq!(block_start(1234), 1001);
    }

    #[tokio::test]
    async fn reads_a_range_in_batches() {
        let history = bus_with(100, (1..=10).map(payload).collect()).await;
        let batch = history.read(2, 8, 3).await.expect("read");
        assert_eq!((seqs(&batch), batch.next), (vec![2, 3, 4], 5));
        let batch = history.read(5, 8, 10).await.expect("read");
        assert_eq!((seqs(&batch), batch.next), (vec![5, 6, 7], 8));
    }

    #[tokio::test]
    async fn what_the_stream_dropped_is_skipped() {
        let history = bus_with(4, (1..=10).map(payload).collect()).await;
        let batch = history.read(2, 9, 100).await.expect("read");
        assert_eq!((seqs(&batch), batch.next), (vec![7, 8], 9));
        let batch = history.read(1, 5, 100).await.expect("read");
        assert_eq!((seqs(&batch), batch.next), (vec![], 5));
    }

    #[tokio::test]
    async fn malformed_messages_are_passed_over() {
        let payloads = vec![payload(1), Bytes::from_static(b"junk"), payload(3)];
        let history = bus_with(10, payloads).await;
        let batch = history.read(1, 4, 10).await.expect("read");
        assert_eq!((seqs(&batch), batch.next), (vec![1, 3], 4));
    }

    /// A stream holding `1..=last`, whose first `empty_reads` fetches
    /// answer nothing (as a JetStream fetch may, transiently), counting
    /// its fetches.
    struct Flaky {
        last: u64,
        empty_reads: AtomicUsize,
        fetches: AtomicUsize,
    }

    impl Source for Flaky {
        fn fetch(&self, from: u64, max: usize) -> BoxFuture<'_, Result<Vec<Envelope>, BusError>> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let empty = self
                .empty_reads
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            let envelopes = if empty {
                Vec::new()
            } else {
                (from..=self.last)
                    .take(max)
                    .map(|seq| Envelope {
                        seq,
                        payload: payload(seq),
                    })
                    .collect()
            };
            Box::pin(std::future::ready(Ok(envelopes)))
        }

        fn bounds(&self) -> BoxFuture<'_, Result<Bounds, BusError>> {
            let bounds = Bounds {
                first: 1,
                last: self.last,
            };
            Box::pin(std::future::ready(Ok(bounds)))
        }
    }

    fn flaky(last: u64, empty_reads: usize) -> (History, Arc<Flaky>) {
        let source = Arc::new(Flaky {
            last,
            empty_reads: AtomicUsize::new(empty_reads),
            fetches: AtomicUsize::new(0),
        });
        let history = History::with_source(crate::testing::bus(10), source.clone());
        (history, source)
    }

    #[tokio::test]
    async fn an_empty_answer_for_messages_that_exist_is_an_error_not_a_gap() {
        let (history, _) = flaky(50, 1);
        let failed = history.read(3, 40, 100).await;
        assert!(matches!(failed, Err(BusError::Request(_))), "{failed:?}");
        let batch = history.read(3, 40, 100).await.expect("read");
        assert_eq!(seqs(&batch), (3..40).collect::<Vec<_>>());
        assert_eq!(batch.next, 40);
    }

    #[tokio::test]
    async fn clients_reading_the_same_blocks_read_the_bus_once() {
        let (history, source) = flaky(2000, 0);
        let mut readers = Vec::new();
        for _ in 0..50 {
            let history = history.clone();
            readers.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut cursor = 1;
                while cursor < 1800 {
                    let batch = history.read(cursor, 1800, 500).await.expect("read");
                    seen.extend(seqs(&batch));
                    cursor = batch.next;
                }
                seen
            }));
        }
        for reader in readers {
            assert_eq!(reader.await.expect("reader"), (1..1800).collect::<Vec<_>>());
        }
        assert_eq!(
            source.fetches.load(Ordering::SeqCst),
            4,
            "one fetch per block of 500"
        );
    }
}
