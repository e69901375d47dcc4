//! One client's ordered view of the stream: history from its resume point,
//! then live messages, each sequence once, and a gap wherever the sequence
//! jumps.
//!
//! A feed starts at a cursor (the first sequence the client wants) or live.
//! It takes what it can from the hub's window; if the cursor is older than
//! the window it reads batches from the stream first; if it falls behind the
//! live channel it rejoins from its cursor. A cursor beyond the end of the
//! stream (one created anew since the client last saw it) gets a reset and
//! starts again from the oldest retained message. Both SSE and WebSocket send
//! exactly what [`Feed::next`] returns.
//!
//! Whatever the source, a message whose sequence is past the next one the
//! client was told about is preceded by a gap for the sequences in between:
//! messages the stream no longer retains (read from history, or dropped by
//! retention while this receiver was behind) and payloads skipped as
//! malformed. A gap is only ever announced for sequences that were passed
//! over, never for ones still to come.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use tokio::sync::broadcast::{self, error::RecvError};

use crate::{
    frame::{Event, Frame, Notice},
    history::History,
    hub::{Hub, Join},
    metrics::Metrics,
};

/// Messages read from the stream per catch-up request.
const CATCH_UP_BATCH: usize = 500;
/// Wait before retrying a catch-up read the bus failed.
const CATCH_UP_RETRY: Duration = Duration::from_millis(500);

/// The events for one client, in order.
pub struct Feed {
    hub: Arc<Hub>,
    history: History,
    metrics: Metrics,
    /// The next sequence to take; `None` until a live-only feed has joined.
    cursor: Option<u64>,
    /// The next sequence the client has not been told about (by a message
    /// or a gap); `None` until a live-only feed has joined.
    told: Option<u64>,
    backlog: VecDeque<Event>,
    live: Option<broadcast::Receiver<Arc<Frame>>>,
}

impl Feed {
    /// A feed resuming after sequence `after`, or live-only with `None`.
    pub fn new(hub: Arc<Hub>, history: History, metrics: Metrics, after: Option<u64>) -> Self {
        let cursor = after.map(|after| after.saturating_add(1));
        Self {
            hub,
            history,
            metrics,
            cursor,
            told: cursor,
            backlog: VecDeque::new(),
            live: None,
        }
    }

    /// The next event; `None` once the hub is gone. Cancel-safe: dropping the
    /// future loses nothing.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.next_ready() {
                return Some(event);
            }
            if let Some(live) = &mut self.live {
                match live.recv().await {
                    Ok(frame) => {
                        if self.cursor.is_some_and(|cursor| frame.seq < cursor) {
                            continue;
                        }
                        self.cursor = Some(frame.seq + 1);
                        return Some(self.tell(Event::Message(frame)));
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, cursor = ?self.cursor, "client fell behind; rejoining");
                        self.metrics.lagged.inc();
                        self.live = None;
                    }
                    Err(RecvError::Closed) => return None,
                }
            } else {
                // Boxed: the rare catch-up path would otherwise make every
                // idle client's future as large as a stream read.
                Box::pin(self.join()).await;
            }
        }
    }

    /// The next event if one is ready without waiting (a catch-up backlog),
    /// so that a writer can send several at once.
    pub fn next_ready(&mut self) -> Option<Event> {
        let event = self.backlog.pop_front()?;
        Some(self.tell(event))
    }

    /// What the client is told next for `event`: a gap first if the event
    /// is a message past the next sequence it knows about (the message then
    /// comes next).
    fn tell(&mut self, event: Event) -> Event {
        match &event {
            Event::Message(frame) => {
                let seq = frame.seq;
                let told = self.told.replace(seq + 1);
                if let Some(told) = told
                    && seq > told
                {
                    self.backlog.push_front(event);
                    return Event::Notice(Notice::Gap {
                        from: told,
                        to: seq - 1,
                    });
                }
            }
            Event::Notice(Notice::Gap { to, .. }) => self.told = Some(to + 1),
            Event::Notice(Notice::Reset { first, .. }) => self.told = Some(*first),
        }
        event
    }

    /// Fills the backlog from the window or the stream, and joins the live
    /// channel once the window reaches back to the cursor.
    async fn join(&mut self) {
        let first = match self.hub.join(self.cursor).await {
            Join::Window(subscription) => {
                let cursor = *self.cursor.get_or_insert(subscription.next);
                self.told.get_or_insert(cursor);
                if cursor > subscription.next
                    && let Some(reset) = self.reset_for(cursor).await
                {
                    self.backlog.push_back(Event::Notice(reset));
                    return;
                }
                if let Some(last) = subscription.backlog.last() {
                    self.cursor = Some(last.seq + 1);
                }
                self.backlog
                    .extend(subscription.backlog.into_iter().map(Event::Message));
                self.live = Some(subscription.live);
                return;
            }
            Join::Behind { first } => first,
        };
        // Behind the window: the cursor is set (live-only feeds never are).
        let Some(cursor) = self.cursor else { return };
        match self.history.read(cursor, first, CATCH_UP_BATCH).await {
            Ok(batch) => {
                self.cursor = Some(batch.next);
                self.backlog
                    .extend(batch.frames.into_iter().map(Event::Message));
            }
            Err(err) => {
                tracing::warn!(error = %err, cursor, "cannot read history for a resuming client; retrying");
                tokio::time::sleep(CATCH_UP_RETRY).await;
            }
        }
    }

    /// A client ahead of this receiver is usually ahead of it by a few
    /// messages (it came from a faster replica) and just waits; one ahead of
    /// the stream itself resumes from a point that no longer exists. Then it
    /// restarts from the oldest retained message. Asks the bus, so only on
    /// this rare path.
    async fn reset_for(&mut self, cursor: u64) -> Option<Notice> {
        let bounds = self.history.bounds().await.ok()?;
        if cursor <= bounds.last + 1 {
            return None;
        }
        tracing::info!(
            cursor,
            last = bounds.last,
            "client resumes beyond the stream's end; resetting it"
        );
        self.cursor = Some(bounds.first);
        Some(Notice::Reset {
            first: bounds.first,
            last: bounds.last,
        })
    }
}

#[cfg(test)]
mod tests {
    use platform::metrics::registry;

    use super::*;
    use crate::testing::{frame, payload};

    /// A bus holding 1..=`published` (the newest `retained`), and a hub
    /// whose window holds `window_from..=published`.
    async fn setup(published: u64, retained: u64, window_from: u64) -> (Arc<Hub>, History) {
        let bus = crate::testing::bus(retained);
        for n in 1..=published {
            bus.publish("id", payload(n)).await.expect("published");
        }
        let hub = Arc::new(Hub::new(10_000));
        hub.start_at(window_from);
        for seq in window_from..=published {
            hub.push(frame(seq));
        }
        (hub, History::new(bus))
    }

    async fn take(feed: &mut Feed, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..n {
            let event = tokio::time::timeout(Duration::from_secs(5), feed.next())
                .await
                .expect("an event in time")
                .expect("feed open");
            out.push(match event {
                Event::Message(frame) => frame.seq.to_string(),
                Event::Notice(Notice::Gap { from, to }) => format!("gap {from}-{to}"),
                Event::Notice(Notice::Reset { first, last }) => format!("reset {first}-{last}"),
            });
        }
        out
    }

    fn metrics() -> Metrics {
        Metrics::register(&mut registry("beacon"))
    }

    #[tokio::test]
    async fn resumes_from_the_window_then_goes_live() {
        let (hub, history) = setup(10, 100, 1).await;
        let mut feed = Feed::new(Arc::clone(&hub), history, metrics(), Some(7));
        assert_eq!(take(&mut feed, 3).await, vec!["8", "9", "10"]);
        hub.push(frame(11));
        assert_eq!(take(&mut feed, 1).await, vec!["11"]);
    }

    #[tokio::test]
    async fn resumes_from_the_stream_when_older_than_the_window() {
        let (hub, history) = setup(10, 100, 6).await;
        let mut feed = Feed::new(Arc::clone(&hub), history, metrics(), Some(2));
        assert_eq!(
            take(&mut feed, 8).await,
            vec!["3", "4", "5", "6", "7", "8", "9", "10"]
        );
    }

    #[tokio::test]
    async fn reports_what_the_stream_no_longer_has() {
        let (hub, history) = setup(10, 5, 8).await;
        let mut feed = Feed::new(Arc::clone(&hub), history, metrics(), Some(2));
        assert_eq!(
            take(&mut feed, 5).await,
            vec!["gap 3-5", "6", "7", "8", "9"]
        );
    }

    #[tokio::test]
    async fn without_a_resume_point_only_new_messages_arrive() {
        let (hub, history) = setup(5, 100, 1).await;
        let mut feed = Feed::new(Arc::clone(&hub), history, metrics(), None);
        let next = tokio::spawn(async move { take(&mut feed, 1).await });
        tokio::task::yield_now().await;
        hub.push(frame(6));
        assert_eq!(next.await.expect("task"), vec!["6"]);
    }

    #[tokio::test]
    async fn a_resume_point_past_the_end_of_the_stream_resets_the_client() {
        let (hub, history) = setup(5, 100, 1).await;
        let mut feed = Feed::new(Arc::clone(&hub), history, metrics(), Some(900));
        assert_eq!(
            take(&mut feed, 6).await,
            vec!["reset 1-5", "1", "2", "3", "4", "5"]
        );
    }

    #[tokio::test]
    async fn a_client_slightly_ahead_of_this_receiver_waits_for_it() {
        // The stream has 1..=8, this receiver's window only 1..=5 so far.
        let (hub, history) = setup(5, 100, 1).await;
        for n in 6..=8 {
            history
                .bus()
                .publish("id", payload(n))
                .await
                .expect("published");
        }
        let mut feed = Feed::new(Arc::clone(&hub), history, metrics(), Some(7));
        let next = tokio::spawn(async move { take(&mut feed, 1).await });
        for seq in 6..=8 {
            hub.push(frame(seq));
        }
        assert_eq!(next.await.expect("task"), vec!["8"]);
    }

    #[tokio::test]
    async fn a_jump_in_the_live_feed_is_announced_as_a_gap() {
        // 1..=5 in the window; then 6 is skipped as malformed and 7..=9
        // were dropped by the stream while this receiver was behind.
        let (hub, history) = setup(5, 100, 1).await;
        let mut feed = Feed::new(Arc::clone(&hub), history, metrics(), Some(3));
        assert_eq!(take(&mut feed, 2).await, vec!["4", "5"]);
        hub.skip(6);
        hub.push(frame(7));
        hub.push(frame(10));
        hub.push(frame(11));
        assert_eq!(
            take(&mut feed, 5).await,
            vec!["gap 6-6", "7", "gap 8-9", "10", "11"]
        );
    }

    #[tokio::test]
    async fn a_live_only_client_is_told_of_jumps_after_it_joined() {
        let (hub, history) = setup(5, 100, 1).await;
        let mut feed = Feed::new(Arc::clone(&hub), history, metrics(), None);
        let next = tokio::spawn(async move { take(&mut feed, 3).await });
        tokio::task::yield_now().await;
        hub.push(frame(6));
        hub.skip(7);
        hub.push(frame(8));
        assert_eq!(next.await.expect("task"), vec!["6", "gap 7-7", "8"]);
    }

    #[tokio::test]
    async fn a_malformed_message_in_history_is_a_gap() {
        let bus = crate::testing::bus(100);
        for payload in [payload(1), bytes::Bytes::from_static(b"junk"), payload(3)] {
            bus.publish("id", payload).await.expect("published");
        }
        let hub = Arc::new(Hub::new(10_000));
        hub.start_at(4);
        hub.push(frame(4));
        let mut feed = Feed::new(Arc::clone(&hub), History::new(bus), metrics(), Some(0));
        assert_eq!(take(&mut feed, 4).await, vec!["1", "gap 2-2", "3", "4"]);
    }

    #[tokio::test]
    async fn a_client_that_falls_behind_rejoins_without_loss() {
        let (hub, history) = setup(1, 100, 1).await;
        let metrics = metrics();
        let mut feed = Feed::new(Arc::clone(&hub), history, metrics.clone(), Some(0));
        assert_eq!(take(&mut feed, 1).await, vec!["1"]);
        // Far more than the live channel holds, with a small window: the
        // feed must rejoin and read the rest from the window.
        let last = 1 + crate::hub::LIVE_BUFFER as u64 + 100;
        for seq in 2..=last {
            hub.push(frame(seq));
        }
        let seen = take(&mut feed, usize::try_from(last - 1).expect("fits")).await;
        let expected: Vec<String> = (2..=last).map(|seq| seq.to_string()).collect();
        assert_eq!(seen, expected);
        assert_eq!(metrics.lagged.get(), 1);
    }
}
