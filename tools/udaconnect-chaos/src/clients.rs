//! Clients: each sends batches of locations with idempotency keys to the
//! edge and sends a batch again, with the same keys, until the edge answers
//! it (a 503, a broken connection, a timeout are all "not taken yet").
//! Every location is unique by its key and by its time; about one in a
//! hundred is out of range on purpose and must be rejected.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rand::RngExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// What one client had acknowledged and rejected, by key.
#[derive(Debug, Default)]
pub struct ClientLog {
    pub accepted: HashSet<String>,
    pub rejected: HashSet<String>,
    pub retries: u64,
}

/// 2021-03-01T00:00:00Z, in microseconds.
const BASE_US: i64 = 1_614_556_800_000_000;

/// Sends until `progress` reaches `target` or `stop` is cancelled.
#[allow(clippy::too_many_arguments)]
pub async fn client(
    number: u64,
    url: String,
    persons: Arc<Vec<i64>>,
    batch: usize,
    target: u64,
    progress: Arc<AtomicU64>,
    stop: CancellationToken,
) -> ClientLog {
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(http) => http,
        Err(err) => {
            eprintln!("chaos: client {number}: {err}");
            return ClientLog::default();
        }
    };
    let mut log = ClientLog::default();
    let mut sent: u64 = 0;
    while progress.load(Ordering::Relaxed) < target && !stop.is_cancelled() {
        let items: Vec<(String, Value)> = (0..batch)
            .map(|_| {
                sent += 1;
                let key = format!("c{number}-{sent}");
                // Unique times: client in the seconds, counter in the micros.
                let time_us = BASE_US + i64::try_from(number * 1_000_000_000_000 + sent).unwrap_or(0);
                let time = udaconnect_domain::Timestamp::from_micros(time_us).to_string();
                let mut rng = rand::rng();
                let lat = if rng.random_range(0..100) == 0 { 95.0 } else { 37.55 + rng.random_range(-0.01..0.01) };
                let person = persons[rng.random_range(0..persons.len())];
                let item = json!({"person_id": person, "lat": lat, "lon": -122.29, "time": time, "key": key});
                (key, item)
            })
            .collect();
        let body = json!({"locations": items.iter().map(|(_, item)| item).collect::<Vec<_>>()});
        loop {
            if stop.is_cancelled() {
                return log;
            }
            match http.post(&url).json(&body).send().await {
                Ok(response) if matches!(response.status().as_u16(), 200 | 207 | 400) => {
                    let Ok(reply) = response.json::<Value>().await else {
                        log.retries += 1;
                        continue;
                    };
                    let rejected: HashSet<usize> = reply["rejected"]
                        .as_array()
                        .map(|list| {
                            list.iter()
                                .filter_map(|r| r["index"].as_u64())
                                .filter_map(|index| usize::try_from(index).ok())
                                .collect()
                        })
                        .unwrap_or_default();
                    // The answer lists the first 100 rejections and
                    // counts them all: past 100, which of the others were
                    // taken is not known, and they are checked neither way.
                    let listed_all = reply["rejected_count"]
                        .as_u64()
                        .is_some_and(|count| usize::try_from(count).ok() == Some(rejected.len()));
                    let mut taken = 0;
                    for (index, (key, _)) in items.iter().enumerate() {
                        if rejected.contains(&index) {
                            log.rejected.insert(key.clone());
                        } else if listed_all {
                            log.accepted.insert(key.clone());
                            taken += 1;
                        }
                    }
                    if !listed_all {
                        eprintln!(
                            "chaos: a batch had more rejections than its answer lists; its other locations are not checked"
                        );
                        taken = reply["accepted"].as_u64().unwrap_or(0);
                    }
                    progress.fetch_add(taken, Ordering::Relaxed);
                    break;
                }
                Ok(response) => {
                    log.retries += 1;
                    let wait = response
                        .headers()
                        .get("retry-after")
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| value.parse::<u64>().ok())
                        .map_or(Duration::from_millis(200), Duration::from_secs);
                    tokio::time::sleep(wait).await;
                }
                Err(_) => {
                    log.retries += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    log
}
