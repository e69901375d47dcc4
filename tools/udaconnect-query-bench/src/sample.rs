//! What one measurement holds: one timed answer per person, and the
//! figures a row of the report shows (p50, p99, rows, bytes).

use std::{collections::BTreeSet, time::Duration};

use chrono::NaiveDate;
use serde_json::{Value, json};
use udaconnect_domain::PersonId;

/// A question: the person's own locations from `start` to `end`.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    /// `1d` or `30d`.
    pub key: &'static str,
    /// For people.
    pub label: &'static str,
    /// First day.
    pub start: NaiveDate,
    /// Own locations end before this day.
    pub end: NaiveDate,
}

/// One person's answer.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Who was asked about.
    pub person: PersonId,
    /// From the request to the last byte of the answer.
    pub elapsed: Duration,
    /// Rows (the original's answers) or contacts (v2).
    pub rows: usize,
    /// The answer's size, over HTTP.
    pub bytes: Option<usize>,
    /// The other persons in the answer.
    pub persons: BTreeSet<PersonId>,
    /// The other locations of every row, sorted (the original's answers).
    pub locations: Option<Vec<i64>>,
    /// For the original's query stopped at its time budget: (statements
    /// run, own locations); its time is projected to all of them and its
    /// rows are those of the statements run.
    pub projected: Option<(usize, usize)>,
}

/// One way of asking one question, for every person picked.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// `compat`, `v2`, `v2_within_10m`, `original`, `embedded_…`.
    pub key: &'static str,
    /// The question.
    pub range: Range,
    /// How it was asked.
    pub label: &'static str,
    /// One per person, in the order asked.
    pub samples: Vec<Sample>,
}

/// The value at rank `ceil(q * n)` of `sorted` (nearest rank).
fn rank<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e5).round() / 100.0
}

impl Measurement {
    /// An empty measurement.
    pub fn new(key: &'static str, range: Range, label: &'static str) -> Self {
        Self {
            key,
            range,
            label,
            samples: Vec::new(),
        }
    }

    /// Adds one person's answer.
    pub fn push(&mut self, sample: Sample) {
        self.samples.push(sample);
    }

    fn times(&self) -> Vec<Duration> {
        let mut times: Vec<Duration> = self.samples.iter().map(|s| s.elapsed).collect();
        times.sort_unstable();
        times
    }

    /// Median time, milliseconds.
    pub fn p50_ms(&self) -> f64 {
        ms(rank(&self.times(), 0.5))
    }

    /// 99th percentile time, milliseconds (nearest rank: with 20 persons,
    /// the slowest).
    pub fn p99_ms(&self) -> f64 {
        ms(rank(&self.times(), 0.99))
    }

    /// Median and largest rows per answer.
    pub fn rows(&self) -> (usize, usize) {
        let mut rows: Vec<usize> = self.samples.iter().map(|s| s.rows).collect();
        rows.sort_unstable();
        (rank(&rows, 0.5), rows.last().copied().unwrap_or_default())
    }

    /// Median and largest bytes per answer, when sent over HTTP.
    pub fn bytes(&self) -> Option<(usize, usize)> {
        let mut bytes: Vec<usize> = self.samples.iter().filter_map(|s| s.bytes).collect();
        if bytes.is_empty() {
            return None;
        }
        bytes.sort_unstable();
        Some((rank(&bytes, 0.5), bytes.last().copied().unwrap_or_default()))
    }

    /// Whether some person got a non-empty answer.
    pub fn answered(&self) -> bool {
        self.samples.iter().any(|s| s.rows > 0)
    }

    /// Statements run and own locations, summed over the samples
    /// stopped at their time budget; `None` if every answer is whole.
    pub fn projected(&self) -> Option<(usize, usize)> {
        self.samples
            .iter()
            .filter_map(|s| s.projected)
            .reduce(|a, b| (a.0 + b.0, a.1 + b.1))
    }

    /// The sample for `person`.
    pub fn of(&self, person: PersonId) -> Option<&Sample> {
        self.samples.iter().find(|s| s.person == person)
    }

    /// For the `RESULT` line.
    pub fn json(&self) -> Value {
        let (rows_median, rows_max) = self.rows();
        json!({
            "key": self.key,
            "range": self.range.key,
            "how": self.label,
            "persons": self.samples.len(),
            "p50_ms": self.p50_ms(),
            "p99_ms": self.p99_ms(),
            "rows_median": rows_median,
            "rows_max": rows_max,
            "bytes_median": self.bytes().map(|b| b.0),
            "bytes_max": self.bytes().map(|b| b.1),
            "answered": self.answered(),
            "projected_from_statements": self.projected().map(|(run, of)| json!({"run": run, "of": of})),
        })
    }
}
