//! The hub: the window of recent frames and the live fan-out to clients.
//!
//! The follower appends frames in sequence order; each append goes into the window
//! and out on a broadcast channel under one write lock. A client joins by
//! taking, under the read lock, the frames it has not seen and a receiver
//! for later ones, so every frame reaches it exactly once: either in that
//! backlog or live. The lock is never held across an `.await`.
//!
//! The broadcast channel is shared and bounded: a client that falls more than
//! [`LIVE_BUFFER`] frames behind is told so and rejoins from its last
//! sequence, from the window or the stream, instead of slowing anyone else.

use std::{
    collections::VecDeque,
    sync::{Arc, PoisonError, RwLock},
};

use tokio::sync::{broadcast, watch};

use crate::frame::Frame;

/// Frames a client may fall behind the newest before it must rejoin.
pub const LIVE_BUFFER: usize = 4096;

/// The window and the live channel.
pub struct Hub {
    window: RwLock<Window>,
    live: broadcast::Sender<Arc<Frame>>,
    started: watch::Sender<bool>,
}

struct Window {
    frames: VecDeque<Arc<Frame>>,
    capacity: usize,
    /// The sequence the next frame will have at least; 0 until started.
    next: u64,
}

/// What a client finds when it joins.
pub enum Join {
    /// The window reaches back to the cursor: the backlog and the live
    /// channel.
    Window(Subscription),
    /// The cursor is older than the window, whose oldest sequence is
    /// `first`: what lies before must come from the stream first. Nothing
    /// was copied or subscribed to.
    Behind {
        /// The oldest sequence the window holds.
        first: u64,
    },
}

/// What a client gets when it joins.
pub struct Subscription {
    /// Frames in the window from the requested sequence on, oldest first.
    pub backlog: Vec<Arc<Frame>>,
    /// The sequence of the next frame to arrive.
    pub next: u64,
    /// Frames appended after the backlog was taken.
    pub live: broadcast::Receiver<Arc<Frame>>,
}

impl Hub {
    /// A hub keeping the newest `capacity` frames.
    pub fn new(capacity: usize) -> Self {
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        Self {
            window: RwLock::new(Window {
                frames: VecDeque::with_capacity(capacity.clamp(1, 4096)),
                capacity: capacity.max(1),
                next: 0,
            }),
            live,
            started: watch::Sender::new(false),
        }
    }

    /// Fixes the first sequence this hub will hold; until then clients wait.
    /// Later calls (a resubscribing follower) change nothing.
    pub fn start_at(&self, seq: u64) {
        let mut window = self.write();
        if window.next == 0 {
            window.next = seq.max(1);
        }
        drop(window);
        self.started.send_replace(true);
    }

    /// Appends a frame newer than every frame so far; an older or repeated
    /// one is ignored and `false` returned.
    pub fn push(&self, frame: Frame) -> bool {
        let frame = Arc::new(frame);
        let mut window = self.write();
        if frame.seq < window.next {
            return false;
        }
        window.next = frame.seq + 1;
        if window.frames.len() == window.capacity {
            window.frames.pop_front();
        }
        window.frames.push_back(Arc::clone(&frame));
        // Sent under the lock: see the module documentation. Having no
        // client connected is not an error.
        let _ = self.live.send(frame);
        true
    }

    /// Records that `seq` was consumed without producing a frame (a
    /// malformed payload), so clients are not sent looking for it.
    pub fn skip(&self, seq: u64) {
        let mut window = self.write();
        window.next = window.next.max(seq + 1);
    }

    /// Joins from `cursor` (the first sequence wanted), or live-only with
    /// `None`. Waits until the hub has started. A cursor older than the
    /// window gets [`Join::Behind`], without the window being copied.
    pub async fn join(&self, cursor: Option<u64>) -> Join {
        let mut started = self.started.subscribe();
        // The sender lives in `self`, so this cannot fail while we borrow it.
        let _ = started.wait_for(|started| *started).await;
        let window = self.window.read().unwrap_or_else(PoisonError::into_inner);
        let first = window.first();
        let backlog = match cursor {
            Some(cursor) if cursor < first => return Join::Behind { first },
            Some(cursor) => window.frames_from(cursor).cloned().collect(),
            None => Vec::new(),
        };
        Join::Window(Subscription {
            backlog,
            next: window.next,
            live: self.live.subscribe(),
        })
    }

    /// Up to `limit` frames with `from <= seq < until`, oldest first, and the
    /// oldest sequence the window holds.
    pub fn range(&self, from: u64, until: u64, limit: usize) -> (Vec<Arc<Frame>>, u64) {
        let window = self.window.read().unwrap_or_else(PoisonError::into_inner);
        let frames = window
            .frames_from(from)
            .take_while(|frame| frame.seq < until)
            .take(limit)
            .cloned()
            .collect();
        (frames, window.first())
    }

    /// The oldest sequence the window can serve and the next one expected.
    pub fn bounds(&self) -> (u64, u64) {
        let window = self.window.read().unwrap_or_else(PoisonError::into_inner);
        (window.first(), window.next)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Window> {
        self.window.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Window {
    fn first(&self) -> u64 {
        self.frames.front().map_or(self.next, |frame| frame.seq)
    }

    fn frames_from(&self, seq: u64) -> impl Iterator<Item = &Arc<Frame>> {
        let start = self.frames.partition_point(|frame| frame.seq < seq);
        self.frames.range(start..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::frame;

    fn seqs(frames: &[Arc<Frame>]) -> Vec<u64> {
        frames.iter().map(|frame| frame.seq).collect()
    }

    #[tokio::test]
    async fn the_window_keeps_the_newest_frames() {
        let hub = Hub::new(3);
        hub.start_at(1);
        for seq in 1..=5 {
            assert!(hub.push(frame(seq)));
        }
        assert!(!hub.push(frame(4)), "an old frame is ignored");
        assert_eq!(hub.bounds(), (3, 6));
        let Join::Window(subscription) = hub.join(Some(4)).await else {
            panic!("4 is in the window");
        };
        assert_eq!(seqs(&subscription.backlog), vec![4, 5]);
        assert!(matches!(hub.join(Some(2)).await, Join::Behind { first: 3 }));
        let (frames, first) = hub.range(0, 5, 10);
        assert_eq!((seqs(&frames), first), (vec![3, 4], 3));
    }

    #[tokio::test]
    async fn a_joining_client_gets_each_frame_once() {
        let hub = Hub::new(10);
        hub.start_at(1);
        hub.push(frame(1));
        hub.push(frame(2));
        let Join::Window(mut subscription) = hub.join(Some(2)).await else {
            panic!("2 is in the window");
        };
        hub.push(frame(3));
        assert_eq!(seqs(&subscription.backlog), vec![2]);
        let live = subscription.live.recv().await.expect("live frame");
        assert_eq!(live.seq, 3);
        assert!(subscription.live.try_recv().is_err());
    }

    #[tokio::test]
    async fn clients_wait_for_the_start_and_skips_move_it() {
        let hub = Arc::new(Hub::new(10));
        let waiting = tokio::spawn({
            let hub = Arc::clone(&hub);
            async move {
                match hub.join(None).await {
                    Join::Window(subscription) => subscription.next,
                    Join::Behind { .. } => panic!("live-only is never behind"),
                }
            }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        hub.start_at(40);
        hub.skip(40);
        assert!(waiting.await.expect("joined") >= 40);
        assert_eq!(hub.bounds(), (41, 41));
    }
}
