//! Waiting for a condition, with a deadline, instead of sleeping and hoping.

use std::{future::Future, time::Duration};

/// Polls `check` every 20 ms until it returns `Some`, and returns that value.
/// Panics naming `what` if `deadline` passes first, also when one check is
/// still running then (a request to a server that never answers).
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        match tokio::time::timeout_at(give_up, check()).await {
            Ok(Some(value)) => return value,
            Ok(None) if tokio::time::Instant::now() < give_up => {}
            Ok(None) | Err(_) => panic!("timed out after {deadline:?} waiting for {what}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn returns_the_first_value() {
        let mut calls = 0;
        let value = eventually("the third call", Duration::from_secs(1), || {
            calls += 1;
            let done = calls == 3;
            async move { done.then_some(calls) }
        })
        .await;
        assert_eq!(value, 3);
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "timed out after 1s waiting for a check that never ends")]
    async fn a_check_that_never_ends_times_out() {
        eventually("a check that never ends", Duration::from_secs(1), || {
            std::future::pending::<Option<()>>()
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "timed out after 1s waiting for nothing")]
    async fn a_check_that_keeps_failing_times_out() {
        eventually("nothing", Duration::from_secs(1), || async { None::<()> }).await;
    }
}
