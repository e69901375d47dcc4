//! Exponential backoff with jitter, for every "retry until it works" loop.
//!
//! Retries against the broker (connecting, creating the stream, publishing)
//! must neither hammer a server that is coming back nor wait minutes once it
//! is back, so delays double from `initial` up to `max`, with ±20 % jitter so
//! that replicas restarted together do not retry in lockstep.

use std::time::Duration;

use rand::RngExt;

/// The delays of one retry sequence; [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// A sequence starting at `initial` and never exceeding `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay before the next attempt; each call doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter = rand::rng().random_range(0.8..=1.2);
        base.mul_f64(jitter).min(self.max)
    }

    /// Starts again from the initial delay.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

impl Default for Backoff {
    /// 100 ms doubling to 5 s: quick to notice a broker that is back, gentle
    /// on one that is not.
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_reset() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(80) && delays[0] <= Duration::from_millis(120));
        assert!(delays[2] >= Duration::from_millis(320) && delays[2] <= Duration::from_millis(480));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(1)));
        assert!(delays[7] >= Duration::from_millis(800));
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(120));
    }
}
