//! Exponential backoff with jitter, for every "retry until it works" loop.
//!
//! Retries against the broker (connecting, creating the stream, publishing)
//! must neither hammer a server that is coming back nor wait minutes once it
//! is back, so delays double from `initial` up to `max`, with ±20 % jitter so
//! that replicas restarted together do not retry in lockstep.

use std::{fmt::Display, future::Future, time::Duration};

use rand::RngExt;
use tokio_util::sync::CancellationToken;

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

/// Calls `attempt` until it succeeds, waiting [`Backoff::default`] delays in
/// between and logging each failure as `what`; `None` if `shutdown` is
/// cancelled first.
pub async fn retry<T, E, F, Fut>(
    shutdown: &CancellationToken,
    what: &str,
    mut attempt: F,
) -> Option<T>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::default();
    loop {
        let outcome = tokio::select! {
            outcome = attempt() => outcome,
            _ = shutdown.cancelled() => return None,
        };
        match outcome {
            Ok(value) => return Some(value),
            Err(err) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %err, retry_in = ?delay, "{what}");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => return None,
                }
            }
        }
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

    #[tokio::test(start_paused = true)]
    async fn retries_until_success() {
        let mut attempts = 0;
        let value = retry(&CancellationToken::new(), "failing", || {
            attempts += 1;
            let outcome = if attempts < 4 {
                Err("not yet")
            } else {
                Ok(attempts)
            };
            std::future::ready(outcome)
        })
        .await;
        assert_eq!(value, Some(4));
    }

    #[tokio::test(start_paused = true)]
    async fn stops_retrying_on_shutdown() {
        let shutdown = CancellationToken::new();
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            stopper.cancel();
        });
        let value: Option<()> =
            retry(&shutdown, "failing", || std::future::ready(Err("never"))).await;
        assert_eq!(value, None);
    }
}
