//! Stops what a test or a benchmark started when it is itself stopped by
//! a signal. Its servers and processes are stopped when they are dropped,
//! and a signal drops nothing: a benchmark stopped with SIGTERM left its
//! PostgreSQL running, with its data (gigabytes at volume) in a temporary
//! directory, and its nats-server and app processes beside it.
//!
//! Each one started is watched ([`Watch`]) until it is stopped. On the
//! first watch, a thread starts listening for SIGINT, SIGTERM and SIGHUP;
//! on one, it signals every process watched to stop, waits for them (at
//! most [`PATIENCE`], then SIGKILL), removes their directories and exits
//! as the signal would have (128 + its number).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        Mutex, Once,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use nix::{
    sys::{
        signal::{Signal, kill},
        wait::{WaitPidFlag, WaitStatus, waitpid},
    },
    unistd::Pid,
};

/// How long the processes watched have to stop before they are killed.
pub const PATIENCE: Duration = Duration::from_secs(10);

struct Watched {
    pid: Pid,
    stop: Signal,
    dir: Option<PathBuf>,
}

static WATCHED: Mutex<BTreeMap<u64, Watched>> = Mutex::new(BTreeMap::new());
static NEXT: AtomicU64 = AtomicU64::new(0);
static LISTEN: Once = Once::new();

/// A process watched until this is dropped: stopped with `stop` on a
/// signal, and `dir` removed once it has.
pub(crate) struct Watch(u64);

impl Watch {
    pub(crate) fn new(pid: u32, stop: Signal, dir: Option<&Path>) -> Option<Self> {
        let pid = Pid::from_raw(i32::try_from(pid).ok()?);
        // Listening before the first process watched is running.
        LISTEN.call_once(|| {
            let (listening, ready) = std::sync::mpsc::channel();
            let started = std::thread::Builder::new()
                .name("testkit-reaper".into())
                .spawn(move || listen(&listening));
            if started.is_ok() {
                let _ = ready.recv_timeout(Duration::from_secs(5));
            }
        });
        let key = NEXT.fetch_add(1, Ordering::Relaxed);
        let watched = Watched {
            pid,
            stop,
            dir: dir.map(Path::to_path_buf),
        };
        lock().insert(key, watched);
        Some(Self(key))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        lock().remove(&self.0);
    }
}

fn lock() -> std::sync::MutexGuard<'static, BTreeMap<u64, Watched>> {
    // A thread that panicked holding it left the map whole.
    WATCHED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Says on `listening` once it listens; waits for a signal that ends the
/// process, then stops what is watched and exits.
fn listen(listening: &std::sync::mpsc::Sender<()>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let code = runtime.block_on(async {
        let (Ok(mut interrupt), Ok(mut terminate), Ok(mut hangup)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return None;
        };
        let _ = listening.send(());
        Some(tokio::select! {
            _ = interrupt.recv() => 128 + Signal::SIGINT as i32,
            _ = terminate.recv() => 128 + Signal::SIGTERM as i32,
            _ = hangup.recv() => 128 + Signal::SIGHUP as i32,
        })
    });
    if let Some(code) = code {
        stop_all(PATIENCE);
        std::process::exit(code);
    }
}

/// Signals every process watched, waits at most `patience` for them all,
/// kills those left, and removes their directories.
fn stop_all(patience: Duration) {
    let watched = std::mem::take(&mut *lock());
    for process in watched.values() {
        let _ = kill(process.pid, process.stop);
    }
    let deadline = Instant::now() + patience;
    let mut left: Vec<&Watched> = watched.values().collect();
    while !left.is_empty() && Instant::now() < deadline {
        left.retain(|process| running(process.pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    for process in left {
        let _ = kill(process.pid, Signal::SIGKILL);
        let _ = waitpid(process.pid, None);
    }
    for dir in watched.values().filter_map(|process| process.dir.as_ref()) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Whether `pid`, a child of this process, has not exited (an exited one
/// is reaped here: the process ends right after).
fn running(pid: Pid) -> bool {
    matches!(
        waitpid(pid, Some(WaitPidFlag::WNOHANG)),
        Ok(WaitStatus::StillAlive)
    )
}

#[cfg(test)]
mod tests {
    use std::{
        io::{BufRead, BufReader},
        process::{Command, Stdio},
    };

    use super::*;
    use crate::{NatsServer, PostgresServer};

    /// Set in the copy of this test binary that plays the stopped one.
    const ROLE: &str = "TESTKIT_REAPER_STOPPED";

    /// A process that started a nats-server and a PostgreSQL and is then
    /// stopped with SIGTERM takes both servers and their directories with
    /// it, and exits as SIGTERM would have.
    #[test]
    fn a_process_stopped_by_a_signal_stops_what_it_started() {
        if std::env::var_os(ROLE).is_some() {
            let _nats = NatsServer::start();
            let _postgres = PostgresServer::start();
            let started: Vec<String> = lock()
                .values()
                .filter_map(|watched| {
                    let dir = watched.dir.as_ref()?;
                    Some(format!("{}={}", watched.pid.as_raw(), dir.display()))
                })
                .collect();
            println!("STARTED {}", started.join(" "));
            // Waits to be stopped; gives up in a minute.
            std::thread::sleep(Duration::from_secs(60));
            return;
        }
        let exe = std::env::current_exe().expect("this test binary");
        let mut stopped = Command::new(exe)
            .args([
                "--exact",
                "reaper::tests::a_process_stopped_by_a_signal_stops_what_it_started",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the copy");
        let stdout = stopped.stdout.take().expect("its stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // After libtest's "test ... " on the same line.
                if let Some((_, rest)) = line.split_once("STARTED ") {
                    let _ = tx.send(rest.to_owned());
                }
            }
        });
        let started = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the copy started its servers");
        let servers: Vec<(Pid, PathBuf)> = started
            .split(' ')
            .filter_map(|server| {
                let (pid, dir) = server.split_once('=')?;
                Some((Pid::from_raw(pid.parse().ok()?), PathBuf::from(dir)))
            })
            .collect();
        assert_eq!(servers.len(), 2, "{started}");
        for (pid, dir) in &servers {
            assert!(kill(*pid, None).is_ok() && dir.exists(), "{started}");
        }

        let copy = Pid::from_raw(i32::try_from(stopped.id()).expect("a pid"));
        kill(copy, Signal::SIGTERM).expect("SIGTERM");
        let deadline = Instant::now() + PATIENCE + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = stopped.try_wait().expect("its status") {
                break status;
            }
            assert!(Instant::now() < deadline, "the copy did not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(128 + Signal::SIGTERM as i32));
        // The servers were the copy's children, and the copy reaped them.
        for (pid, dir) in &servers {
            assert!(kill(*pid, None).is_err(), "{pid} still runs");
            assert!(!dir.exists(), "{} is still there", dir.display());
        }
    }
}
