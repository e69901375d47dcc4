//! Clients: each sends batches of locations with idempotency keys to the
//! edge and sends a batch again, with the same keys, until the edge answers
//! it (a 503, a broken connection, a timeout are all "not taken yet").
//! Every location is unique by its key and by its time; about one in a
//! hundred is out of range on purpose and must be rejected.
//!
//! Every tenth batch also carries a few locations acknowledged before:
//! half sent again as they were (a retry: it must be answered with the id
//! first answered), half under their key with another latitude (it must
//! be rejected as a conflict naming that id). What the edge answered is
//! checked here; what was stored, against it, by [`crate::verify`].

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rand::RngExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A location as first acknowledged: the id answered, and what was sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Acked {
    pub id: i64,
    pub person_id: i64,
    pub lat: f64,
    pub lon: f64,
    pub time_us: i64,
}

/// What one client had acknowledged and rejected, by key.
#[derive(Debug, Default)]
pub struct ClientLog {
    /// Each key acknowledged, as first acknowledged.
    pub accepted: HashMap<String, Acked>,
    /// Keys rejected as invalid: never to be stored.
    pub rejected: HashSet<String>,
    /// Keys sent again with another location, and the id each conflict
    /// named.
    pub conflicts: Vec<(String, i64)>,
    /// Answers that broke a promise of the edge (a retry under another id,
    /// a conflict not named, or naming another id).
    pub mismatches: u64,
    pub examples: Vec<String>,
    pub retries: u64,
}

impl ClientLog {
    fn mismatch(&mut self, example: String) {
        self.mismatches += 1;
        if self.examples.len() < 10 {
            self.examples.push(example);
        }
    }
}

/// 2021-03-01T00:00:00Z, in microseconds.
const BASE_US: i64 = 1_614_556_800_000_000;
/// Every this many batches carries locations acknowledged before.
const ECHO_EVERY: u64 = 10;
/// How many of them, half retries, half conflicts.
const ECHOES: usize = 4;

/// What an item of a batch is, and what its answer must be.
#[derive(Debug, Clone)]
enum Sent {
    /// A new location.
    New(Acked),
    /// A location acknowledged before, sent again as it was.
    Retry(Acked),
    /// A key acknowledged before, with another location.
    Conflict(Acked),
}

/// One item's JSON.
fn item(key: &str, location: &Acked) -> Value {
    json!({"person_id": location.person_id, "lat": location.lat, "lon": location.lon,
           "time": udaconnect_domain::Timestamp::from_micros(location.time_us).to_string(),
           "key": key})
}

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
    let mut batches: u64 = 0;
    // The keys acknowledged, in order, to send again.
    let mut acked_keys: Vec<String> = Vec::new();
    while progress.load(Ordering::Relaxed) < target && !stop.is_cancelled() {
        batches += 1;
        let items = new_batch(number, &mut sent, batch, &persons);
        let items = with_echoes(items, batches, &log, &acked_keys);
        let body = json!({"locations": items.iter().map(|(key, sent)| match sent {
            Sent::New(location) | Sent::Retry(location) | Sent::Conflict(location) => item(key, location),
        }).collect::<Vec<_>>()});
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
                    let taken = check(&reply, &items, &mut log, &mut acked_keys);
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

/// `batch` new locations, numbered on from `sent`.
fn new_batch(number: u64, sent: &mut u64, batch: usize, persons: &[i64]) -> Vec<(String, Sent)> {
    let mut rng = rand::rng();
    (0..batch)
        .map(|_| {
            *sent += 1;
            let key = format!("c{number}-{sent}");
            // Unique times: client in the seconds, counter in the micros.
            let time_us = BASE_US + i64::try_from(number * 1_000_000_000_000 + *sent).unwrap_or(0);
            let lat = if rng.random_range(0..100) == 0 {
                95.0
            } else {
                37.55 + rng.random_range(-0.01..0.01)
            };
            let person_id = persons[rng.random_range(0..persons.len())];
            let location = Acked {
                id: 0,
                person_id,
                lat,
                lon: -122.29,
                time_us,
            };
            (key, Sent::New(location))
        })
        .collect()
}

/// `items`, and in every [`ECHO_EVERY`]th batch (the `batches`th) a few
/// locations acknowledged before: retries and conflicts.
fn with_echoes(
    mut items: Vec<(String, Sent)>,
    batches: u64,
    log: &ClientLog,
    acked_keys: &[String],
) -> Vec<(String, Sent)> {
    if !batches.is_multiple_of(ECHO_EVERY) || acked_keys.is_empty() {
        return items;
    }
    let mut rng = rand::rng();
    for n in 0..ECHOES {
        let key = &acked_keys[rng.random_range(0..acked_keys.len())];
        let Some(first) = log.accepted.get(key) else {
            continue;
        };
        let echo = if n % 2 == 0 {
            Sent::Retry(first.clone())
        } else {
            Sent::Conflict(Acked {
                lat: first.lat + 0.001,
                ..first.clone()
            })
        };
        items.push((key.clone(), echo));
    }
    items
}

/// Files the answer to `items` in `log`, checking each item's answer; how
/// many new locations were taken.
fn check(
    reply: &Value,
    items: &[(String, Sent)],
    log: &mut ClientLog,
    acked_keys: &mut Vec<String>,
) -> u64 {
    let rejected: HashMap<usize, &Value> = reply["rejected"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|r| Some((usize::try_from(r["index"].as_u64()?).ok()?, r)))
                .collect()
        })
        .unwrap_or_default();
    // The answer lists the first 100 rejections and counts them all: past
    // 100, which of the others were taken (and so which id is whose) is
    // not known, and they are checked neither way.
    let listed_all = reply["rejected_count"]
        .as_u64()
        .is_some_and(|count| usize::try_from(count).ok() == Some(rejected.len()));
    if !listed_all {
        eprintln!(
            "chaos: a batch had more rejections than its answer lists; its other locations are not checked"
        );
        return reply["accepted"].as_u64().unwrap_or(0);
    }
    let mut ids = reply["ids"]
        .as_array()
        .map(|ids| ids.iter().filter_map(Value::as_i64).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter();
    let mut taken = 0;
    for (index, (key, sent)) in items.iter().enumerate() {
        let answer = match rejected.get(&index) {
            Some(rejection) => Err((
                rejection["problem"].as_str().unwrap_or_default(),
                rejection["stored_id"].as_i64(),
            )),
            None => match ids.next() {
                Some(id) => Ok(id),
                None => {
                    log.mismatch(format!("{key}: taken, but the answer lists no id for it"));
                    continue;
                }
            },
        };
        match (sent, answer) {
            (Sent::New(location), Ok(id)) => {
                taken += 1;
                if log.accepted.contains_key(key) {
                    log.mismatch(format!("{key}: a new location acknowledged twice"));
                } else {
                    log.accepted.insert(
                        key.clone(),
                        Acked {
                            id,
                            ..location.clone()
                        },
                    );
                    acked_keys.push(key.clone());
                }
            }
            (Sent::New(_), Err((problem, _))) if problem != "conflict" => {
                log.rejected.insert(key.clone());
            }
            (Sent::Retry(first), Ok(id)) if id == first.id => {}
            (Sent::Conflict(first), Err(("conflict", Some(id)))) if id == first.id => {
                log.conflicts.push((key.clone(), id));
            }
            (sent, answer) => {
                log.mismatch(format!("{key}: sent as {sent:?}, answered {answer:?}"));
            }
        }
    }
    if ids.next().is_some() {
        log.mismatch("an answer lists more ids than items taken".to_owned());
    }
    taken
}
