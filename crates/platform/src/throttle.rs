//! A warning that can come thousands of times a second — every request
//! while a dependency is away — logged as one line with a count.
//!
//! The first occurrence is logged at once; after that at most one line per
//! period, saying how many times it came since the last line. An outage of
//! eighteen seconds under load is then a handful of lines, not thousands,
//! and still says how many requests it cost.

use std::{
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

/// One kind of repeated warning.
pub struct Throttled {
    every: Duration,
    /// When the last line was logged, and how many came since.
    state: Mutex<Option<(Instant, u64)>>,
}

impl Throttled {
    /// At most one line every `every`.
    pub const fn new(every: Duration) -> Self {
        Self {
            every,
            state: Mutex::new(None),
        }
    }

    /// Counts one occurrence; `Some(n)` when it is to be logged now, `n`
    /// being how many came since the last line (this one included).
    pub fn hit(&self) -> Option<u64> {
        self.hit_at(Instant::now())
    }

    /// [`Self::hit`] at `now`.
    pub fn hit_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *state {
            Some((last, count)) if now.saturating_duration_since(*last) < self.every => {
                *count += 1;
                None
            }
            Some((last, count)) => {
                let since = *count + 1;
                (*last, *count) = (now, 0);
                Some(since)
            }
            None => {
                *state = Some((now, 0));
                Some(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storm_is_one_line_a_period_with_its_count() {
        let throttled = Throttled::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(throttled.hit_at(start), Some(1), "the first is logged");
        let logged: Vec<u64> = (1..=7_312u64)
            .filter_map(|n| throttled.hit_at(start + Duration::from_millis(n * 2)))
            .collect();
        // 14.6 s of hits every 2 ms: one line after 10 s, counting them.
        assert_eq!(logged, vec![5_000]);
        assert_eq!(
            throttled.hit_at(start + Duration::from_secs(60)),
            Some(2_313),
            "the rest, at the next hit after a quiet period"
        );
    }
}
