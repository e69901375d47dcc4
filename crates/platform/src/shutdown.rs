//! Graceful shutdown: one [`CancellationToken`] that SIGTERM or SIGINT
//! cancels, and a deadline after which whatever is still running is dropped.
//!
//! Every long-running task takes the token and ends when it is cancelled;
//! the caller owns it, so tests stop an app the way Kubernetes does.

use std::{future::Future, time::Duration};

use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGINT (Ctrl-C) or SIGTERM.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        cancel.cancel();
    });
    token
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops this process");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs `work` to completion, except that once `shutdown` is cancelled it has
/// at most `deadline` left; returns `None` if the deadline cut it short.
pub async fn with_deadline<F: Future>(
    work: F,
    shutdown: &CancellationToken,
    deadline: Duration,
) -> Option<F::Output> {
    tokio::pin!(work);
    tokio::select! {
        output = &mut work => return Some(output),
        _ = shutdown.cancelled() => {}
    }
    tokio::time::timeout(deadline, work).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn work_finishing_within_the_deadline_completes() {
        let token = CancellationToken::new();
        token.cancel();
        let out = with_deadline(
            async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                7
            },
            &token,
            Duration::from_secs(2),
        )
        .await;
        assert_eq!(out, Some(7));
    }

    #[tokio::test(start_paused = true)]
    async fn work_past_the_deadline_is_cut() {
        let token = CancellationToken::new();
        let cancel = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            cancel.cancel();
        });
        let started = tokio::time::Instant::now();
        let out = with_deadline(std::future::pending::<()>(), &token, Duration::from_secs(3)).await;
        assert_eq!(out, None);
        assert_eq!(started.elapsed(), Duration::from_secs(8));
    }
}
