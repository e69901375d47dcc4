//! The faults: SIGKILL the broker and restart it on the same store, SIGKILL
//! a receiver and restart it on the same port. Each fires when the run has
//! reached its threshold sequence, so faults spread over the whole run
//! whatever the machine's speed.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use rand::RngExt;
use testkit::{AppProcess, NatsServer};

/// `count` thresholds spread over `5%..90%` of `messages`, each jittered.
pub fn thresholds(count: u32, messages: u64) -> Vec<u64> {
    let mut rng = rand::rng();
    let span = messages as f64 * 0.85;
    let step = span / f64::from(count.max(1));
    (0..count)
        .map(|i| {
            let at = messages as f64 * 0.05 + step * (f64::from(i) + rng.random_range(0.0..1.0));
            at as u64
        })
        .collect()
}

/// The broker, shared with the blocking tasks that kill and restart it.
pub type Broker = Arc<Mutex<NatsServer>>;

/// SIGKILLs the broker, keeps it down for 0.1–1.5 s (while broadcasters
/// retry), and restarts it on the same store.
pub async fn crash_broker(broker: &Broker) {
    let down = Duration::from_millis(rand::rng().random_range(100..1500));
    let killed = Arc::clone(broker);
    run_blocking(move || lock(&killed).kill()).await;
    tokio::time::sleep(down).await;
    let restarted = Arc::clone(broker);
    run_blocking(move || lock(&restarted).restart()).await;
}

/// A receiver process and how to start it again.
pub struct Receiver {
    /// The running process.
    pub process: AppProcess,
    /// The binary.
    pub binary: PathBuf,
    /// Its env vars (with a fixed listen address, so clients find it again).
    pub envs: Vec<(&'static str, String)>,
}

/// SIGKILLs a receiver and starts it again on the same port.
pub async fn crash_receiver(receiver: &Arc<Mutex<Receiver>>) {
    let receiver = Arc::clone(receiver);
    run_blocking(move || {
        let mut receiver = lock(&receiver);
        receiver.process.kill();
        receiver.process =
            AppProcess::spawn(&receiver.binary, "BEACON", &["receiver"], &receiver.envs);
    })
    .await;
}

async fn run_blocking(work: impl FnOnce() + Send + 'static) {
    if let Err(err) = tokio::task::spawn_blocking(work).await
        && err.is_panic()
    {
        std::panic::resume_unwind(err.into_panic());
    }
}

/// Locks `mutex`, even if a panicking holder poisoned it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
