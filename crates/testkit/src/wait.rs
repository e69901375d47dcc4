//! Waiting for a condition, with a deadline, instead of sleeping and hoping.

use std::{future::Future, time::Duration};

/// Polls `check` every 20 ms until it returns `Some`, and returns that value.
/// Panics naming `what` if `deadline` passes first.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= give_up {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
