//! SSE clients that record every sequence they see, drop their connection
//! on command, and resume with `Last-Event-ID` on a random receiver, as a
//! browser's `EventSource` does.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rand::RngExt;
use testkit::{SseClient, SseEvent};
use tokio::{sync::Notify, task::JoinHandle};
use tokio_util::sync::CancellationToken;

/// What one client saw.
#[derive(Debug, Default)]
pub struct ClientLog {
    /// Message sequences, in arrival order.
    pub seqs: Vec<u64>,
    /// Ranges announced as gone.
    pub gaps: Vec<(u64, u64)>,
    /// Events whose data did not match their id.
    pub mismatched: u64,
    /// Successful reconnections.
    pub reconnects: u64,
}

/// The running clients.
pub struct Fleet {
    clients: Vec<Client>,
    progress: Arc<AtomicU64>,
    stop: CancellationToken,
}

struct Client {
    drop: Arc<Notify>,
    last: Arc<AtomicU64>,
    task: JoinHandle<ClientLog>,
}

impl Fleet {
    /// Starts `count` clients spread over `receivers` (base URLs), live from
    /// their first connection.
    pub fn spawn(count: usize, receivers: Arc<Vec<String>>) -> Self {
        let progress = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let clients = (0..count)
            .map(|_| {
                let drop = Arc::new(Notify::new());
                let last = Arc::new(AtomicU64::new(0));
                let task = tokio::spawn(follow(
                    Arc::clone(&receivers),
                    Arc::clone(&drop),
                    Arc::clone(&last),
                    Arc::clone(&progress),
                    stop.clone(),
                ));
                Client { drop, last, task }
            })
            .collect();
        Self {
            clients,
            progress,
            stop,
        }
    }

    /// The highest sequence any client has seen.
    pub fn progress(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    /// The shared counter behind [`Fleet::progress`].
    pub fn progress_handle(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.progress)
    }

    /// The lowest of the clients' last sequences.
    pub fn slowest(&self) -> u64 {
        self.clients
            .iter()
            .map(|client| client.last.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }

    /// Drops one client's connection, chosen at random.
    pub fn drop_one(&self) {
        let index = rand::rng().random_range(0..self.clients.len());
        self.clients[index].drop.notify_one();
    }

    /// Stops every client and returns what each saw.
    pub async fn stop(self) -> Vec<ClientLog> {
        self.stop.cancel();
        let mut logs = Vec::with_capacity(self.clients.len());
        for client in self.clients {
            logs.push(client.task.await.unwrap_or_default());
        }
        logs
    }
}

async fn follow(
    receivers: Arc<Vec<String>>,
    drop: Arc<Notify>,
    last: Arc<AtomicU64>,
    progress: Arc<AtomicU64>,
    stop: CancellationToken,
) -> ClientLog {
    let mut log = ClientLog::default();
    let mut resume: Option<u64> = None;
    let mut connected_before = false;
    loop {
        let base = &receivers[rand::rng().random_range(0..receivers.len())];
        let url = format!("{base}/events");
        let connected = tokio::select! {
            connected = SseClient::connect(&url, resume) => connected,
            _ = stop.cancelled() => break,
        };
        // The stream may go quiet while the broker is down; `stop` bounds
        // the wait, not the client.
        let connected = connected.map(|sse| sse.with_patience(Duration::from_secs(3600)));
        let Ok(mut sse) = connected else {
            // The receiver is restarting: try again soon, maybe elsewhere.
            let pause = Duration::from_millis(rand::rng().random_range(20..200));
            tokio::select! {
                _ = tokio::time::sleep(pause) => continue,
                _ = stop.cancelled() => break,
            }
        };
        if connected_before {
            log.reconnects += 1;
        }
        connected_before = true;
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return log,
                _ = drop.notified() => break,
                event = sse.next_event() => match event {
                    Some(event) => {
                        if let Some(seq) = record(&mut log, &event) {
                            resume = Some(seq);
                            last.store(seq, Ordering::Relaxed);
                            progress.fetch_max(seq, Ordering::Relaxed);
                        }
                    }
                    None => break,
                },
            }
        }
    }
    log
}

/// Records one event; returns the sequence to resume after.
fn record(log: &mut ClientLog, event: &SseEvent) -> Option<u64> {
    let id: u64 = event.id.as_deref()?.parse().ok()?;
    match event.event.as_deref() {
        None => {
            if !event.data.starts_with(&format!("{{\"seq\":{id},")) {
                log.mismatched += 1;
            }
            log.seqs.push(id);
        }
        Some("gap") => {
            let gap: serde_json::Value = serde_json::from_str(&event.data).ok()?;
            log.gaps.push((
                gap["from"].as_u64().unwrap_or(0),
                gap["to"].as_u64().unwrap_or(id),
            ));
        }
        Some(_) => return None,
    }
    Some(id)
}
