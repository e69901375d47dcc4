//! The in-process bus, for a single process without a broker.
//!
//! Each stream numbers its messages from 1, keeps the newest `max_messages`
//! of them, and fans new ones out over a broadcast channel. A subscriber
//! takes its backlog and joins the channel under the same lock a publish
//! takes, so it sees every message exactly once: retained ones from the
//! backlog, later ones live. Work queues hand each message to one fetcher,
//! hand it out again if it is not acknowledged in time, and (on a
//! work-queue stream) drop it once acknowledged; a full work-queue stream
//! refuses new messages rather than dropping unacknowledged ones.

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use futures::{StreamExt, stream};
use tokio::{
    sync::{
        Notify,
        broadcast::{self, error::RecvError},
    },
    time::Instant,
};

use super::{
    Bounds, BusError, Envelope, Published, Retention, StreamSettings, Subscription,
    queue::{Delivery, QueueLag, WorkQueue},
};

/// Live messages a subscriber may fall behind by before it must resubscribe.
const LIVE_BUFFER: usize = 1024;
/// The most messages a stream keeps in memory, whatever its settings say.
const MAX_CAPACITY: u64 = 10_000_000;

/// In-process streams; cheap to clone.
#[derive(Clone, Default)]
pub struct MemoryBus {
    streams: Arc<Mutex<HashMap<String, Arc<MemoryStream>>>>,
}

struct MemoryStream {
    name: String,
    subject: String,
    retention: Retention,
    log: Mutex<Log>,
    live: broadcast::Sender<Envelope>,
    /// Woken on every publish, for work-queue fetchers.
    published: Notify,
}

struct Log {
    last_seq: u64,
    retained: VecDeque<Entry>,
    capacity: usize,
    /// Work-queue stream: acknowledged messages not yet at the front.
    acked: HashSet<u64>,
    consumers: HashMap<String, Consumer>,
}

struct Entry {
    envelope: Envelope,
    published: SystemTime,
}

/// A work queue's delivery state.
#[derive(Default)]
struct Consumer {
    /// The next sequence never delivered.
    next: u64,
    /// Delivered, not yet acknowledged: when to deliver again, and how
    /// often delivered so far.
    pending: BTreeMap<u64, (Instant, u64)>,
    /// Acknowledged by this consumer (on a log stream, where messages stay).
    done: HashSet<u64>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryBus {
    /// A bus with no streams yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates the stream `settings` describes, unless one of its name
    /// exists already.
    pub(super) fn declare(&self, settings: &StreamSettings) {
        let mut streams = lock(&self.streams);
        streams.entry(settings.name.clone()).or_insert_with(|| {
            let capacity =
                usize::try_from(settings.max_messages.clamp(1, MAX_CAPACITY)).unwrap_or(usize::MAX);
            let (live, _) = broadcast::channel(LIVE_BUFFER);
            Arc::new(MemoryStream {
                name: settings.name.clone(),
                subject: settings.subject.clone(),
                retention: settings.retention,
                log: Mutex::new(Log {
                    last_seq: 0,
                    retained: VecDeque::with_capacity(capacity.min(4096)),
                    capacity,
                    acked: HashSet::new(),
                    consumers: HashMap::new(),
                }),
                live,
                published: Notify::new(),
            })
        });
    }

    fn named(&self, name: &str) -> Result<Arc<MemoryStream>, BusError> {
        lock(&self.streams)
            .get(name)
            .cloned()
            .ok_or_else(|| BusError::Request(format!("no stream {name}")))
    }

    pub(super) fn publish(&self, subject: &str, payload: Bytes) -> Result<Published, BusError> {
        let stream = lock(&self.streams)
            .values()
            .find(|stream| stream.subject == subject)
            .cloned()
            .ok_or_else(|| BusError::Publish(format!("no stream captures subject {subject}")))?;
        stream.publish(payload)
    }

    pub(super) fn subscribe(&self, name: &str, from: u64) -> Result<Subscription, BusError> {
        Ok(self.named(name)?.subscribe(from))
    }

    pub(super) fn fetch(
        &self,
        name: &str,
        from: u64,
        max: usize,
    ) -> Result<Vec<Envelope>, BusError> {
        let stream = self.named(name)?;
        let log = lock(&stream.log);
        Ok(log
            .retained
            .iter()
            .map(|entry| &entry.envelope)
            .filter(|envelope| envelope.seq >= from && !log.acked.contains(&envelope.seq))
            .take(max)
            .cloned()
            .collect())
    }

    pub(super) fn bounds(&self, name: &str) -> Result<Bounds, BusError> {
        let stream = self.named(name)?;
        let log = lock(&stream.log);
        Ok(Bounds {
            first: log
                .retained
                .front()
                .map_or(log.last_seq + 1, |entry| entry.envelope.seq),
            last: log.last_seq,
        })
    }

    pub(super) fn messages(&self, name: &str) -> Result<u64, BusError> {
        let stream = self.named(name)?;
        let log = lock(&stream.log);
        let held = log.retained.len() - log.acked.len();
        Ok(u64::try_from(held).unwrap_or(u64::MAX))
    }

    pub(super) fn work_queue(&self, stream: &str, name: &str, ack_wait: Duration) -> WorkQueue {
        WorkQueue::memory(MemoryQueue {
            stream: self.named(stream),
            name: name.to_owned(),
            ack_wait,
        })
    }
}

impl MemoryStream {
    fn publish(&self, payload: Bytes) -> Result<Published, BusError> {
        let mut log = lock(&self.log);
        if log.retained.len() == log.capacity {
            if self.retention == Retention::WorkQueue {
                return Err(BusError::Full(self.name.clone()));
            }
            if let Some(dropped) = log.retained.pop_front() {
                log.acked.remove(&dropped.envelope.seq);
            }
        }
        log.last_seq += 1;
        let seq = log.last_seq;
        let envelope = Envelope { seq, payload };
        log.retained.push_back(Entry {
            envelope: envelope.clone(),
            published: SystemTime::now(),
        });
        // Sent under the lock, so subscribers joining concurrently see it
        // either in their backlog or live, never both or neither. No
        // subscriber at all is not an error.
        let _ = self.live.send(envelope);
        drop(log);
        self.published.notify_waiters();
        Ok(Published {
            seq,
            duplicate: false,
        })
    }

    fn subscribe(&self, from: u64) -> Subscription {
        let (backlog, live) = {
            let log = lock(&self.log);
            let backlog: Vec<Envelope> = log
                .retained
                .iter()
                .map(|entry| &entry.envelope)
                .filter(|envelope| envelope.seq >= from)
                .cloned()
                .collect();
            (backlog, self.live.subscribe())
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
}

impl Log {
    /// Takes up to `max` messages for consumer `name`: those whose
    /// acknowledgement is overdue first, then new ones.
    fn take(&mut self, name: &str, max: usize, ack_wait: Duration) -> Vec<(Envelope, u64)> {
        let now = Instant::now();
        let first = self
            .retained
            .front()
            .map_or(self.last_seq + 1, |entry| entry.envelope.seq);
        let consumer = self.consumers.entry(name.to_owned()).or_default();
        consumer.next = consumer.next.max(first);
        // Messages that left the stream meanwhile (a log stream's limits)
        // are not owed any more.
        consumer.pending = consumer.pending.split_off(&first);
        let overdue: Vec<u64> = consumer
            .pending
            .iter()
            .filter(|(_, (due, _))| *due <= now)
            .map(|(seq, _)| *seq)
            .take(max)
            .collect();
        let mut taken = Vec::new();
        for seq in overdue {
            if let Some((due, deliveries)) = consumer.pending.get_mut(&seq) {
                *due = now + ack_wait;
                *deliveries += 1;
                taken.push((seq, *deliveries));
            }
        }
        while taken.len() < max && consumer.next <= self.last_seq {
            let seq = consumer.next;
            consumer.next += 1;
            if self.acked.contains(&seq) || consumer.done.contains(&seq) {
                continue;
            }
            consumer.pending.insert(seq, (now + ack_wait, 1));
            taken.push((seq, 1));
        }
        taken
            .into_iter()
            .filter_map(|(seq, deliveries)| {
                let index = usize::try_from(seq.checked_sub(first)?).ok()?;
                let entry = self.retained.get(index)?;
                Some((entry.envelope.clone(), deliveries))
            })
            .collect()
    }

    fn ack(&mut self, name: &str, seq: u64, retention: Retention) {
        let Some(consumer) = self.consumers.get_mut(name) else {
            return;
        };
        if consumer.pending.remove(&seq).is_none() {
            return;
        }
        match retention {
            Retention::Log => {
                consumer.done.insert(seq);
            }
            Retention::WorkQueue => {
                self.acked.insert(seq);
                while let Some(front) = self.retained.front() {
                    if !self.acked.remove(&front.envelope.seq) {
                        break;
                    }
                    self.retained.pop_front();
                }
            }
        }
    }
}

/// A work queue on an in-process stream.
pub(super) struct MemoryQueue {
    stream: Result<Arc<MemoryStream>, BusError>,
    name: String,
    ack_wait: Duration,
}

impl MemoryQueue {
    fn stream(&self) -> Result<&Arc<MemoryStream>, BusError> {
        self.stream.as_ref().map_err(Clone::clone)
    }

    pub(super) async fn fetch(
        &mut self,
        max: usize,
        linger: Duration,
    ) -> Result<Vec<Delivery>, BusError> {
        let stream = Arc::clone(self.stream()?);
        let mut taken: Vec<(Envelope, u64)> = Vec::new();
        let mut linger_until = None;
        loop {
            // Registered before looking, so a publish in between wakes us.
            let published = stream.published.notified();
            tokio::pin!(published);
            published.as_mut().enable();
            let more = lock(&stream.log).take(&self.name, max - taken.len(), self.ack_wait);
            taken.extend(more);
            if taken.len() >= max {
                break;
            }
            let next_due = lock(&stream.log)
                .consumers
                .get(&self.name)
                .and_then(|consumer| consumer.pending.values().map(|(due, _)| *due).min());
            if !taken.is_empty() {
                let until = *linger_until.get_or_insert_with(|| Instant::now() + linger);
                tokio::select! {
                    () = &mut published => {}
                    () = tokio::time::sleep_until(until) => break,
                }
            } else {
                match next_due {
                    Some(due) => tokio::select! {
                        () = &mut published => {}
                        () = tokio::time::sleep_until(due) => {}
                    },
                    None => published.await,
                }
            }
        }
        Ok(taken
            .into_iter()
            .map(|(envelope, deliveries)| {
                Delivery::memory(
                    envelope,
                    deliveries,
                    MemoryAck {
                        stream: Arc::clone(&stream),
                        name: self.name.clone(),
                        ack_wait: self.ack_wait,
                    },
                )
            })
            .collect())
    }

    pub(super) fn lag(&self) -> Result<QueueLag, BusError> {
        let stream = self.stream()?;
        let log = lock(&stream.log);
        let consumer = log.consumers.get(&self.name);
        // Waiting or in flight: not acknowledged by this consumer yet.
        let mut unacked = log.retained.iter().filter(|entry| {
            let seq = entry.envelope.seq;
            !log.acked.contains(&seq)
                && consumer.is_none_or(|consumer| !consumer.done.contains(&seq))
        });
        let oldest = unacked.next().map(|entry| entry.published);
        let pending = unacked.count() + usize::from(oldest.is_some());
        Ok(QueueLag {
            pending: u64::try_from(pending).unwrap_or(u64::MAX),
            oldest,
        })
    }
}

/// Acknowledges one delivery of an in-process work queue.
pub(super) struct MemoryAck {
    stream: Arc<MemoryStream>,
    name: String,
    ack_wait: Duration,
}

impl MemoryAck {
    pub(super) fn ack(&self, seq: u64) {
        lock(&self.stream.log).ack(&self.name, seq, self.stream.retention);
    }

    pub(super) fn nak(&self, seq: u64) {
        let mut log = lock(&self.stream.log);
        if let Some((due, _)) = log
            .consumers
            .get_mut(&self.name)
            .and_then(|consumer| consumer.pending.get_mut(&seq))
        {
            *due = Instant::now();
        }
        drop(log);
        self.stream.published.notify_waiters();
    }

    pub(super) fn in_progress(&self, seq: u64) {
        if let Some((due, _)) = lock(&self.stream.log)
            .consumers
            .get_mut(&self.name)
            .and_then(|consumer| consumer.pending.get_mut(&seq))
        {
            *due = Instant::now() + self.ack_wait;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Bus;

    fn payload(n: u64) -> Bytes {
        Bytes::from(n.to_string())
    }

    fn log_stream(bus: &MemoryBus, capacity: u64) -> crate::bus::BusStream {
        Bus::Memory(bus.clone()).stream(StreamSettings::log("LOG", "demo.log", capacity))
    }

    fn queue_stream(bus: &MemoryBus, capacity: u64) -> crate::bus::BusStream {
        Bus::Memory(bus.clone()).stream(StreamSettings {
            retention: Retention::WorkQueue,
            ..StreamSettings::log("JOBS", "demo.jobs", capacity)
        })
    }

    #[tokio::test]
    async fn numbers_from_one_and_keeps_the_newest() {
        let stream = log_stream(&MemoryBus::new(), 3);
        assert!(stream.bounds().await.expect("bounds").is_empty());
        for n in 1..=5 {
            assert_eq!(
                stream.publish("id", payload(n)).await.expect("stored").seq,
                n
            );
        }
        assert_eq!(
            stream.bounds().await.expect("bounds"),
            Bounds { first: 3, last: 5 }
        );
        let seqs: Vec<u64> = stream
            .fetch(0, 10)
            .await
            .expect("fetched")
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, vec![3, 4, 5]);
        assert_eq!(stream.fetch(4, 1).await.expect("fetched").len(), 1);
    }

    #[tokio::test]
    async fn a_publish_goes_to_the_stream_capturing_its_subject() {
        let bus = MemoryBus::new();
        let log = log_stream(&bus, 10);
        let jobs = queue_stream(&bus, 10);
        let bus = Bus::Memory(bus);
        bus.publish("demo.jobs", "a", payload(1))
            .await
            .expect("stored");
        bus.publish("demo.jobs", "b", payload(2))
            .await
            .expect("stored");
        bus.publish("demo.log", "c", payload(3))
            .await
            .expect("stored");
        assert_eq!(jobs.bounds().await.expect("bounds").last, 2);
        assert_eq!(log.bounds().await.expect("bounds").last, 1);
        let refused = bus.publish("demo.other", "d", payload(4)).await;
        assert!(matches!(refused, Err(BusError::Publish(_))), "{refused:?}");
    }

    #[tokio::test]
    async fn a_subscription_gets_the_backlog_then_live_messages_once() {
        let stream = log_stream(&MemoryBus::new(), 10);
        for n in 1..=3 {
            stream.publish("id", payload(n)).await.expect("stored");
        }
        let mut subscription = stream.subscribe(2).await.expect("subscribed");
        stream.publish("id", payload(4)).await.expect("stored");
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
        let stream = log_stream(&MemoryBus::new(), 10);
        let mut subscription = stream.subscribe(1).await.expect("subscribed");
        for n in 0..(LIVE_BUFFER as u64 + 10) {
            stream.publish("id", payload(n)).await.expect("stored");
        }
        let outcome = subscription.next().await.expect("stream open");
        assert!(matches!(outcome, Err(BusError::Lagged(_))), "{outcome:?}");
        assert!(subscription.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_work_queue_hands_each_message_to_one_fetcher_until_acknowledged() {
        let bus = MemoryBus::new();
        let stream = queue_stream(&bus, 100);
        let wait = Duration::from_secs(30);
        let mut first = stream.work_queue("writer", wait).await.expect("queue");
        let mut second = stream.work_queue("writer", wait).await.expect("queue");
        for n in 1..=10 {
            stream.publish("id", payload(n)).await.expect("stored");
        }
        let a = first.fetch(4, Duration::ZERO).await.expect("fetched");
        let b = second.fetch(100, Duration::ZERO).await.expect("fetched");
        let seqs = |batch: &[Delivery]| batch.iter().map(Delivery::seq).collect::<Vec<_>>();
        assert_eq!(seqs(&a), vec![1, 2, 3, 4]);
        assert_eq!(seqs(&b), vec![5, 6, 7, 8, 9, 10]);
        for delivery in &b {
            delivery.ack().await.expect("acked");
        }
        // The first fetcher dies without acknowledging: its messages come
        // back once the wait is over, marked as delivered twice.
        drop(a);
        let lag = second.lag().await.expect("lag");
        assert_eq!(lag.pending, 4);
        tokio::time::advance(wait).await;
        let again = second.fetch(100, Duration::ZERO).await.expect("fetched");
        assert_eq!(seqs(&again), vec![1, 2, 3, 4]);
        assert!(again.iter().all(|delivery| delivery.deliveries == 2));
        for delivery in &again {
            delivery.ack().await.expect("acked");
        }
        assert!(stream.bounds().await.expect("bounds").is_empty());
        assert_eq!(second.lag().await.expect("lag"), QueueLag::default());
    }

    #[tokio::test(start_paused = true)]
    async fn a_fetch_waits_for_a_message_then_lingers_for_more() {
        let stream = queue_stream(&MemoryBus::new(), 100);
        let mut queue = stream
            .work_queue("writer", Duration::from_secs(30))
            .await
            .expect("queue");
        let publisher = stream.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            publisher.publish("id", payload(1)).await.expect("stored");
            tokio::time::sleep(Duration::from_millis(10)).await;
            publisher.publish("id", payload(2)).await.expect("stored");
            tokio::time::sleep(Duration::from_secs(1)).await;
            publisher.publish("id", payload(3)).await.expect("stored");
        });
        let started = Instant::now();
        let batch = queue
            .fetch(10, Duration::from_millis(50))
            .await
            .expect("fetched");
        assert_eq!(
            batch.iter().map(Delivery::seq).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(started.elapsed(), Duration::from_millis(5050));
    }

    #[tokio::test]
    async fn a_nak_delivers_again_at_once_and_a_full_queue_refuses() {
        let stream = queue_stream(&MemoryBus::new(), 2);
        stream.publish("id", payload(1)).await.expect("stored");
        stream.publish("id", payload(2)).await.expect("stored");
        let refused = stream.publish("id", payload(3)).await;
        assert!(matches!(refused, Err(BusError::Full(_))), "{refused:?}");
        assert_eq!(stream.messages().await.expect("count"), 2);
        let mut queue = stream
            .work_queue("writer", Duration::from_secs(30))
            .await
            .expect("queue");
        let batch = queue.fetch(1, Duration::ZERO).await.expect("fetched");
        batch[0].nak().await.expect("refused");
        let again = queue.fetch(1, Duration::ZERO).await.expect("fetched");
        assert_eq!((again[0].seq(), again[0].deliveries), (1, 2));
        again[0].ack().await.expect("acked");
        assert_eq!(stream.messages().await.expect("count"), 1);
        stream.publish("id", payload(3)).await.expect("room again");
    }
}
