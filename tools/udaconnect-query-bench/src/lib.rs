//! What the query benchmarks share: the made-up conference they load (its
//! size and seeds), the persons they ask about, settings from the
//! environment, and running the binary's one-shot targets.

use std::{path::Path, process::Command, time::Duration};

use anyhow::Context as _;
use testkit::output_within;
use udaconnect_domain::PersonId;

/// Metres, as the original's clients ask.
pub const DISTANCE_M: f64 = 5.0;
/// Venues of the made-up conference.
pub const VENUES: usize = 50;
/// Seed of the made-up conference.
pub const DATA_SEED: u64 = 2020;
/// Seed picking the persons asked about.
const PICK_SEED: u64 = 7;

/// The whole number in the environment variable `name`, or `default`.
pub fn setting(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value
            .trim()
            .parse()
            .with_context(|| format!("{name} must be a whole number, got {value:?}")),
        _ => Ok(default),
    }
}

/// The comma-separated items of the environment variable `name`, or of
/// `default` when it is unset or blank.
pub fn list_setting(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
        .split(',')
        .map(|item| item.trim().to_owned())
        .collect()
}

/// `count` distinct persons of `ids`, picked by a fixed seed: the same
/// persons in every benchmark and on every machine.
pub fn pick(ids: &[PersonId], count: usize) -> Vec<PersonId> {
    let mut state = PICK_SEED;
    let mut next = move || {
        // SplitMix64: a small, fixed generator, the same on every machine.
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut pool = ids.to_vec();
    let mut picked = Vec::with_capacity(count);
    while picked.len() < count && !pool.is_empty() {
        let index = usize::try_from(next() % pool.len() as u64).unwrap_or(0);
        picked.push(pool.swap_remove(index));
    }
    picked
}

/// The `q`-quantile of sorted `values` (nearest rank); NaN when there is
/// none.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs one of the binary's one-shot targets to its end, within
/// `deadline`; its standard output.
pub fn tool(
    binary: &Path,
    args: &[&str],
    database: &str,
    deadline: Duration,
) -> anyhow::Result<String> {
    let output = output_within(
        Command::new(binary)
            .args(args)
            .env("DATABASE_URL", database)
            .env("RUST_LOG", "warn"),
        deadline,
    );
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    anyhow::ensure!(
        output.status.success(),
        "udaconnect {args:?} failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(stdout)
}
