//! The faults, each fired when the acknowledged count passes its
//! threshold, so that they spread over the run whatever the machine's
//! speed: SIGKILL a writer and start it again, SIGKILL the broker and
//! restart it on the same store, stop PostgreSQL and start it again.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use rand::RngExt;
use testkit::{AppProcess, NatsServer, PostgresServer};

/// `count` thresholds spread over 5–90 % of `total`, jittered.
pub fn thresholds(count: u32, total: u64) -> Vec<u64> {
    let mut rng = rand::rng();
    let step = total as f64 * 0.85 / f64::from(count.max(1));
    (0..count)
        .map(|i| (total as f64 * 0.05 + step * (f64::from(i) + rng.random_range(0.0..1.0))) as u64)
        .collect()
}

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A writer process and how to start it again.
pub struct Writer {
    pub process: AppProcess,
    pub binary: PathBuf,
    pub envs: Vec<(&'static str, String)>,
}

pub async fn blocking(work: impl FnOnce() + Send + 'static) {
    if let Err(err) = tokio::task::spawn_blocking(work).await
        && err.is_panic()
    {
        std::panic::resume_unwind(err.into_panic());
    }
}

/// SIGKILLs a writer and starts it again.
pub async fn crash_writer(writer: &Arc<Mutex<Writer>>) {
    let writer = Arc::clone(writer);
    blocking(move || {
        let mut writer = lock(&writer);
        writer.process.kill();
        writer.process = AppProcess::spawn(&writer.binary, "UDACONNECT", &["writer"], &writer.envs);
    })
    .await;
}

/// SIGKILLs the broker, keeps it down 0.1–1.5 s, restarts it on its store.
pub async fn crash_broker(broker: &Arc<Mutex<NatsServer>>) {
    let down = Duration::from_millis(rand::rng().random_range(100..1500));
    let killed = Arc::clone(broker);
    blocking(move || lock(&killed).kill()).await;
    tokio::time::sleep(down).await;
    let restarted = Arc::clone(broker);
    blocking(move || lock(&restarted).restart()).await;
}

/// Stops PostgreSQL (fast shutdown), keeps it down 0.5–2 s, starts it again.
pub async fn restart_database(db: &Arc<Mutex<PostgresServer>>) {
    let down = Duration::from_millis(rand::rng().random_range(500..2000));
    let stopped = Arc::clone(db);
    blocking(move || lock(&stopped).stop()).await;
    tokio::time::sleep(down).await;
    let started = Arc::clone(db);
    blocking(move || lock(&started).start_again()).await;
}
