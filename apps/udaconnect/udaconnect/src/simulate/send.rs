//! The connections: each takes batches from the feed at its share of the
//! rate, sends them (a gRPC stream of batches, or HTTP requests), and
//! sends a batch the edge did not take again after the wait it asks for.
//! Now and then one accepted location is handed to the freshness probe,
//! which reads it back through the API until it is there.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Feed, Tally, record};
use crate::proto::v1::{
    BatchReply, LocationBatch, LocationInput, ingest_service_client::IngestServiceClient,
};

/// How long to wait when the edge gives no `Retry-After`.
const DEFAULT_RETRY: Duration = Duration::from_millis(500);
/// The longest a batch may wait for its answer. When the run stops, a
/// batch in flight is still waited for (this long at most), so that every
/// location the edge accepted is counted as accepted.
pub(super) const ANSWER_DEADLINE: Duration = Duration::from_secs(30);
/// The probe's shortest wait between two reads of a location. It waits a
/// tenth of the time since the acknowledgement (so a freshness is measured
/// within 10 %), from this to [`PROBE_MAX_WAIT`]: a database that is away
/// is not asked a hundred times a second.
const PROBE_FIRST_WAIT: Duration = Duration::from_millis(10);
/// The probe's longest wait between two reads.
const PROBE_MAX_WAIT: Duration = Duration::from_secs(1);
/// The longest a probe waits for a location to show.
const PROBE_PATIENCE: Duration = Duration::from_secs(60);

/// One connection's loop.
pub(super) struct Sender {
    pub feed: Arc<Feed>,
    pub tally: Arc<Tally>,
    pub probes: mpsc::Sender<(i64, Instant)>,
    pub probe_every: Duration,
    pub interval: Option<Duration>,
    pub stop: CancellationToken,
}

/// How a send went.
enum Sent {
    Acked { ids: Vec<i64>, rejected: usize },
    RetryAfter(Duration),
    Failed,
}

impl Sender {
    async fn pace(&self, ticker: &mut Option<tokio::time::Interval>) -> bool {
        if let Some(ticker) = ticker {
            tokio::select! {
                _ = ticker.tick() => true,
                () = self.stop.cancelled() => false,
            }
        } else {
            !self.stop.is_cancelled()
        }
    }

    fn ticker(&self) -> Option<tokio::time::Interval> {
        self.interval.map(|every| {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker
        })
    }

    /// Counts how a send went and waits before a resend; `true` once the
    /// batch is done with (acknowledged, or the run stopped).
    async fn settle(&self, sent: Sent, started: Instant, last_probe: &mut Instant) -> bool {
        match sent {
            Sent::Acked { ids, rejected } => {
                let acked = Instant::now();
                self.tally.acked(ids.len(), rejected, acked - started);
                if last_probe.elapsed() >= self.probe_every
                    && let Some(id) = ids.last()
                {
                    *last_probe = acked;
                    let _ = self.probes.try_send((*id, acked));
                }
                true
            }
            Sent::RetryAfter(wait) => {
                self.tally.refused();
                self.pause(wait).await
            }
            Sent::Failed => {
                self.tally.failed();
                self.pause(DEFAULT_RETRY).await
            }
        }
    }

    /// Waits `wait`; `true` if the run stopped meanwhile.
    async fn pause(&self, wait: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(wait) => false,
            () = self.stop.cancelled() => true,
        }
    }

    /// Batches as HTTP requests to `url`.
    pub async fn http(self, http: reqwest::Client, url: String) {
        let mut ticker = self.ticker();
        let mut last_probe = Instant::now();
        while self.pace(&mut ticker).await {
            let batch = self.feed.next_batch();
            loop {
                let started = Instant::now();
                // Not abandoned when the run stops: answered within the
                // client's timeout, and counted.
                let sent = send_http(&http, &url, batch.clone()).await;
                if self.settle(sent, started, &mut last_probe).await {
                    break;
                }
            }
        }
    }

    /// Batches on one gRPC stream to `url`, opened again when it breaks.
    pub async fn grpc(self, url: String) {
        let mut ticker = self.ticker();
        let mut last_probe = Instant::now();
        let mut stream: Option<GrpcStream> = None;
        let mut batch_id = 0;
        while self.pace(&mut ticker).await {
            let batch = self.feed.next_batch();
            loop {
                let open = match stream.as_mut() {
                    Some(open) => open,
                    None => match GrpcStream::open(&url).await {
                        Ok(opened) => stream.insert(opened),
                        Err(err) => {
                            tracing::debug!(error = %err, "cannot open a gRPC stream");
                            if self
                                .settle(Sent::Failed, Instant::now(), &mut last_probe)
                                .await
                                && self.stop.is_cancelled()
                            {
                                return;
                            }
                            continue;
                        }
                    },
                };
                batch_id += 1;
                let started = Instant::now();
                // Not abandoned when the run stops: answered within the
                // deadline, and counted.
                let sent =
                    tokio::time::timeout(ANSWER_DEADLINE, open.send(batch_id, batch.clone()))
                        .await
                        .unwrap_or(Sent::Failed);
                if !matches!(sent, Sent::Acked { .. }) {
                    // The stream ended with the error: a fresh one next.
                    stream = None;
                }
                if self.settle(sent, started, &mut last_probe).await {
                    break;
                }
            }
        }
    }
}

async fn send_http(http: &reqwest::Client, url: &str, batch: Vec<LocationInput>) -> Sent {
    let items: Vec<serde_json::Value> = batch
        .into_iter()
        .map(|item| {
            serde_json::json!({
                "person_id": item.person_id, "lat": item.lat, "lon": item.lon,
                "time": item.time, "key": item.key,
            })
        })
        .collect();
    let response = match http
        .post(url)
        .json(&serde_json::json!({ "locations": items }))
        .send()
        .await
    {
        Ok(response) => response,
        Err(err) => {
            tracing::debug!(error = %err, "a batch was not answered");
            return Sent::Failed;
        }
    };
    let status = response.status().as_u16();
    if status == 503 {
        let wait = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok())
            .map_or(DEFAULT_RETRY, Duration::from_secs);
        return Sent::RetryAfter(wait);
    }
    let body: serde_json::Value = match response.json().await {
        Ok(body) => body,
        Err(_) => return Sent::Failed,
    };
    if !matches!(status, 200 | 207 | 400) || body["ids"].as_array().is_none() {
        tracing::debug!(status, %body, "a batch was refused");
        return Sent::Failed;
    }
    Sent::Acked {
        ids: body["ids"]
            .as_array()
            .map(|ids| ids.iter().filter_map(serde_json::Value::as_i64).collect())
            .unwrap_or_default(),
        rejected: body["rejected_count"]
            .as_u64()
            .and_then(|count| usize::try_from(count).ok())
            .unwrap_or(0),
    }
}

/// One open `IngestService.Ingest` stream.
struct GrpcStream {
    requests: mpsc::Sender<LocationBatch>,
    replies: tonic::Streaming<BatchReply>,
}

impl GrpcStream {
    async fn open(url: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let mut client = IngestServiceClient::connect(url.to_owned())
            .await?
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        let (requests, outgoing) = mpsc::channel(1);
        let replies = client
            .ingest(tokio_stream::wrappers::ReceiverStream::new(outgoing))
            .await?
            .into_inner();
        Ok(Self { requests, replies })
    }

    async fn send(&mut self, batch_id: u64, locations: Vec<LocationInput>) -> Sent {
        let batch = LocationBatch {
            batch_id,
            locations,
        };
        if self.requests.send(batch).await.is_err() {
            return Sent::Failed;
        }
        match self.replies.message().await {
            Ok(Some(reply)) if reply.batch_id == batch_id => Sent::Acked {
                rejected: usize::try_from(reply.rejected_count).unwrap_or(usize::MAX),
                ids: reply.ids,
            },
            Ok(_) => Sent::Failed,
            Err(status) if status.code() == tonic::Code::Unavailable => {
                let wait = status
                    .metadata()
                    .get("retry-after")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.parse::<u64>().ok())
                    .map_or(DEFAULT_RETRY, Duration::from_secs);
                Sent::RetryAfter(wait)
            }
            Err(status) => {
                tracing::debug!(%status, "the gRPC stream broke");
                Sent::Failed
            }
        }
    }
}

/// Reads each probed location back through the API until it shows, and
/// records how long after its acknowledgement that was.
pub(super) async fn probe_freshness(
    http: reqwest::Client,
    api: String,
    mut probes: mpsc::Receiver<(i64, Instant)>,
    tally: Arc<Tally>,
    stop: CancellationToken,
) {
    let mut running = tokio::task::JoinSet::new();
    loop {
        let next = tokio::select! {
            next = probes.recv() => next,
            () = stop.cancelled() => None,
        };
        let Some((id, acked)) = next else { break };
        let (http, url, tally) = (
            http.clone(),
            format!("{api}/api/v2/locations/{id}"),
            Arc::clone(&tally),
        );
        running.spawn(async move {
            while acked.elapsed() < PROBE_PATIENCE {
                if let Ok(response) = http.get(&url).send().await
                    && response.status().is_success()
                {
                    record(&tally.fresh_us, acked.elapsed());
                    return;
                }
                let wait = (acked.elapsed() / 10).clamp(PROBE_FIRST_WAIT, PROBE_MAX_WAIT);
                tokio::time::sleep(wait).await;
            }
            tracing::warn!(%url, "a location did not show within {PROBE_PATIENCE:?}");
        });
    }
    // Those in flight get a few seconds more, then are dropped.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while running.join_next().await.is_some() {}
    })
    .await;
}
