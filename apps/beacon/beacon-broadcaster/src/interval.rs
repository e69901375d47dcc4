//! The wait before each broadcast: drawn independently and uniformly from
//! `[min, max]`, to the millisecond.
//!
//! The random source is passed in, so tests draw from a fixed seed and the
//! service from a generator seeded by the OS (`ThreadRng` is `!Send` and
//! cannot live in a task across `.await`).

use std::time::Duration;

use rand::{Rng, RngExt};

/// The closed range waits are drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntervalRange {
    min_ms: u64,
    max_ms: u64,
}

impl IntervalRange {
    /// The range `[min, max]`, both whole milliseconds; `None` if `min > max`.
    pub fn new(min: Duration, max: Duration) -> Option<Self> {
        let min_ms = u64::try_from(min.as_millis()).ok()?;
        let max_ms = u64::try_from(max.as_millis()).ok()?;
        (min_ms <= max_ms).then_some(Self { min_ms, max_ms })
    }

    /// One wait, uniformly distributed over every millisecond in the range.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        Duration::from_millis(rng.random_range(self.min_ms..=self.max_ms))
    }

    /// The shortest wait.
    pub fn min(&self) -> Duration {
        Duration::from_millis(self.min_ms)
    }

    /// The longest wait.
    pub fn max(&self) -> Duration {
        Duration::from_millis(self.max_ms)
    }
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    fn range(min_ms: u64, max_ms: u64) -> IntervalRange {
        IntervalRange::new(Duration::from_millis(min_ms), Duration::from_millis(max_ms))
            .expect("min <= max")
    }

    #[test]
    fn min_above_max_is_refused() {
        assert!(IntervalRange::new(Duration::from_secs(2), Duration::from_secs(1)).is_none());
        assert_eq!(
            range(5, 5).sample(&mut StdRng::seed_from_u64(1)),
            Duration::from_millis(5)
        );
    }

    #[test]
    fn every_draw_is_inside_the_range_and_both_ends_occur() {
        let range = range(1_000, 10_000);
        let mut rng = StdRng::seed_from_u64(42);
        let draws: Vec<u64> = (0..200_000)
            .map(|_| u64::try_from(range.sample(&mut rng).as_millis()).expect("fits"))
            .collect();
        assert!(draws.iter().all(|ms| (1_000..=10_000).contains(ms)));
        assert!(draws.contains(&1_000), "the minimum is reachable");
        assert!(draws.contains(&10_000), "the maximum is reachable");
    }

    /// Pearson's chi-squared test over ten equal bins: with 9 degrees of
    /// freedom, a uniform source exceeds 27.88 once in a thousand seeds; a
    /// skewed one (e.g. drawing seconds, or an exclusive upper bound
    /// squeezing the last bin) fails it by far.
    #[test]
    fn draws_are_spread_uniformly() {
        const BINS: usize = 10;
        const DRAWS: usize = 100_000;
        let (min, max) = (1_000u64, 10_000u64);
        let values = max - min + 1;
        let range = range(min, max);
        let mut rng = StdRng::seed_from_u64(7);
        let bin_of = |ms: u64| usize::try_from((ms - min) * BINS as u64 / values).expect("fits");
        let mut observed = [0f64; BINS];
        for _ in 0..DRAWS {
            let ms = u64::try_from(range.sample(&mut rng).as_millis()).expect("fits");
            observed[bin_of(ms)] += 1.0;
        }
        let mut expected = [0f64; BINS];
        for ms in min..=max {
            expected[bin_of(ms)] += DRAWS as f64 / values as f64;
        }
        let chi_squared: f64 = observed
            .iter()
            .zip(expected)
            .map(|(o, e)| (o - e).powi(2) / e)
            .sum();
        assert!(
            chi_squared < 27.88,
            "chi² = {chi_squared:.2}, bins = {observed:?}"
        );
        let mean: f64 = observed
            .iter()
            .enumerate()
            .map(|(bin, count)| count * bin as f64)
            .sum::<f64>()
            / DRAWS as f64;
        assert!((mean - 4.5).abs() < 0.05, "mean bin {mean}");
    }
}
