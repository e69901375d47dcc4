//! A query's deadline, checked inside the embedded store's loops: a
//! connection query over a wide area or a long time measures millions of
//! pairs, and must stop when its time is up rather than hold a blocking
//! thread (and the read lock) for as long as it takes.

use std::time::{Duration, Instant};

use udaconnect_domain::StoreError;

/// Calls to [`Deadline::check`] between two readings of the clock.
const CHECK_EVERY: u32 = 1024;

/// When a query must have finished, if ever.
#[derive(Debug, Clone)]
pub struct Deadline {
    at: Option<(Instant, Duration)>,
    countdown: u32,
}

impl Deadline {
    /// `timeout` from now, or never (`None`).
    pub fn after(timeout: Option<Duration>) -> Self {
        Self {
            at: timeout.map(|timeout| (Instant::now() + timeout, timeout)),
            countdown: 0,
        }
    }

    /// [`StoreError::TimedOut`] once the deadline has passed. Cheap enough
    /// for an inner loop: the clock is read every [`CHECK_EVERY`] calls.
    pub fn check(&mut self) -> Result<(), StoreError> {
        let Some((at, timeout)) = self.at else {
            return Ok(());
        };
        if self.countdown > 0 {
            self.countdown -= 1;
            return Ok(());
        }
        self.countdown = CHECK_EVERY;
        if Instant::now() >= at {
            return Err(StoreError::TimedOut(timeout));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_timeout_it_never_fires() {
        let mut deadline = Deadline::after(None);
        assert!((0..10_000).all(|_| deadline.check().is_ok()));
    }

    #[test]
    fn a_passed_deadline_fires_within_a_check_period() {
        let mut deadline = Deadline::after(Some(Duration::ZERO));
        let fired = (0..=CHECK_EVERY + 1).position(|_| deadline.check().is_err());
        assert_eq!(fired, Some(0), "the first check reads the clock");
        let mut later = Deadline::after(Some(Duration::from_secs(3600)));
        assert!((0..10_000).all(|_| later.check().is_ok()));
    }
}
