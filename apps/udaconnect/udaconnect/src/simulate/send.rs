//! The connections: each takes batches from the feed at its share of the
//! rate, sends them (a gRPC stream of batches; with the phones' tokens,
//! each phone's batch as a gRPC call of its own, many side by side on the
//! connection; or HTTP requests), and sends a batch the edge did not take
//! again after the wait it asks for. A batch refused for its token is not
//! sent again: a phone whose token was revoked loses what it sends. Now
//! and then one accepted location is handed to the freshness probe, which
//! reads it back through the API until it is there.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status, transport::Channel};

use super::{Batch, Feed, Tally, phones::PhoneToken, record};
use crate::proto::v1::{
    BatchReply, LocationBatch, LocationInput, ingest_service_client::IngestServiceClient,
};

/// How long to wait when the edge gives no `Retry-After`.
const DEFAULT_RETRY: Duration = Duration::from_millis(500);
/// The longest a batch may wait for its answer. When the run stops, a
/// batch in flight is still waited for (this long at most), so that every
/// location the edge accepted is counted as accepted.
pub(super) const ANSWER_DEADLINE: Duration = Duration::from_secs(30);
/// The phones' calls one gRPC connection carries at once: below the
/// streams an HTTP/2 server commonly allows a connection (100).
const CALLS_PER_CONNECTION: usize = 64;
/// The largest gRPC message sent or taken.
const MAX_MESSAGE: usize = 64 << 20;
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
    Acked {
        ids: Vec<i64>,
        rejected: usize,
    },
    RetryAfter(Duration),
    /// Refused for its token (or for want of one).
    Denied,
    Failed,
}

/// What becomes of a batch after a send.
enum Settled {
    /// Acknowledged: its ids, and when.
    Acked(Vec<i64>, Instant),
    /// To be sent again.
    Again,
    /// Done with: refused for its token, or the run stopped.
    Over,
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

    /// Counts how a send went, and waits before a resend.
    async fn settle(&self, sent: Sent, started: Instant) -> Settled {
        match sent {
            Sent::Acked { ids, rejected } => {
                let acked = Instant::now();
                self.tally.acked(ids.len(), rejected, acked - started);
                Settled::Acked(ids, acked)
            }
            Sent::Denied => {
                self.tally.denied();
                Settled::Over
            }
            Sent::RetryAfter(wait) => {
                self.tally.refused();
                self.again_after(wait).await
            }
            Sent::Failed => {
                self.tally.failed();
                self.again_after(DEFAULT_RETRY).await
            }
        }
    }

    /// Waits `wait` before a resend, unless the run stops meanwhile.
    async fn again_after(&self, wait: Duration) -> Settled {
        tokio::select! {
            () = tokio::time::sleep(wait) => Settled::Again,
            () = self.stop.cancelled() => Settled::Over,
        }
    }

    /// Hands the last of `ids`, acknowledged at `acked`, to the freshness
    /// probe if one is due.
    fn offer_probe(&self, ids: &[i64], acked: Instant, last_probe: &mut Instant) {
        if last_probe.elapsed() >= self.probe_every
            && let Some(id) = ids.last()
        {
            *last_probe = acked;
            let _ = self.probes.try_send((*id, acked));
        }
    }

    /// Sends a batch with `send` until it is acknowledged, refused for its
    /// token, or the run stops; its ids and when they were acknowledged.
    async fn deliver<F, Fut>(&self, mut send: F) -> Option<(Vec<i64>, Instant)>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Sent>,
    {
        loop {
            let started = Instant::now();
            // Not abandoned when the run stops: answered within the
            // deadline, and counted.
            let sent = send().await;
            match self.settle(sent, started).await {
                Settled::Acked(ids, acked) => return Some((ids, acked)),
                Settled::Again => {}
                Settled::Over => return None,
            }
        }
    }

    /// Batches as HTTP requests to `url`, one at a time, each with its
    /// phone's token if it has one.
    pub async fn http(self, http: reqwest::Client, url: String) {
        let mut ticker = self.ticker();
        let mut last_probe = Instant::now();
        while self.pace(&mut ticker).await {
            for Batch { phone, locations } in self.feed.next_batches() {
                if self.stop.is_cancelled() {
                    break;
                }
                let phone = phone.as_ref();
                if let Some((ids, acked)) = self
                    .deliver(|| send_http(&http, &url, phone, &locations))
                    .await
                {
                    self.offer_probe(&ids, acked, &mut last_probe);
                }
            }
        }
    }

    /// Batches on one gRPC stream to `url`, opened again when it breaks
    /// (no token: an open API).
    pub async fn grpc(self, url: String) {
        let mut ticker = self.ticker();
        let mut last_probe = Instant::now();
        let mut stream: Option<GrpcStream> = None;
        let mut batch_id = 0;
        while self.pace(&mut ticker).await {
            for Batch { locations, .. } in self.feed.next_batches() {
                loop {
                    let open = match stream.as_mut() {
                        Some(open) => open,
                        None => match GrpcStream::open(&url).await {
                            Ok(opened) => stream.insert(opened),
                            Err(err) => {
                                tracing::debug!(error = %err, "cannot open a gRPC stream");
                                match self.settle(Sent::Failed, Instant::now()).await {
                                    Settled::Over => return,
                                    Settled::Again | Settled::Acked(..) => continue,
                                }
                            }
                        },
                    };
                    batch_id += 1;
                    let started = Instant::now();
                    // Not abandoned when the run stops: answered within the
                    // deadline, and counted.
                    let sent = tokio::time::timeout(
                        ANSWER_DEADLINE,
                        open.send(batch_id, locations.clone()),
                    )
                    .await
                    .unwrap_or(Sent::Failed);
                    if !matches!(sent, Sent::Acked { .. }) {
                        // The stream ended with the error: a fresh one next.
                        stream = None;
                    }
                    match self.settle(sent, started).await {
                        Settled::Acked(ids, acked) => {
                            self.offer_probe(&ids, acked, &mut last_probe);
                            break;
                        }
                        Settled::Again => {}
                        Settled::Over => break,
                    }
                }
            }
        }
    }

    /// Each phone's batch as an `IngestService.IngestBatch` call of its own
    /// with the phone's token, up to [`CALLS_PER_CONNECTION`] of them side
    /// by side on `channel`: one connection, whatever the attendees.
    pub async fn grpc_calls(self, channel: Channel) {
        let client = IngestServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let mut ticker = self.ticker();
        let mut last_probe = Instant::now();
        let this = &self;
        while this.pace(&mut ticker).await {
            let mut calls = futures::stream::iter(this.feed.next_batches())
                .take_while(|_| std::future::ready(!this.stop.is_cancelled()))
                .map(|Batch { phone, locations }| {
                    let client = client.clone();
                    async move {
                        this.deliver(|| call(client.clone(), phone.as_ref(), locations.clone()))
                            .await
                    }
                })
                .buffer_unordered(CALLS_PER_CONNECTION);
            while let Some(acked) = calls.next().await {
                if let Some((ids, acked)) = acked {
                    this.offer_probe(&ids, acked, &mut last_probe);
                }
            }
        }
    }
}

async fn send_http(
    http: &reqwest::Client,
    url: &str,
    phone: Option<&PhoneToken>,
    batch: &[LocationInput],
) -> Sent {
    let items: Vec<serde_json::Value> = batch
        .iter()
        .map(|item| {
            serde_json::json!({
                "person_id": item.person_id, "lat": item.lat, "lon": item.lon,
                "time": item.time, "key": item.key,
            })
        })
        .collect();
    let mut request = http
        .post(url)
        .json(&serde_json::json!({ "locations": items }));
    if let Some(phone) = phone {
        request = request.bearer_auth(phone.secret());
    }
    let response = match request.send().await {
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
    if matches!(status, 401 | 403) {
        tracing::debug!(status, "a batch was refused for its token");
        return Sent::Denied;
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

/// One phone's batch as an `IngestService.IngestBatch` call, with its
/// token as the call's `authorization` metadata.
async fn call(
    mut client: IngestServiceClient<Channel>,
    phone: Option<&PhoneToken>,
    locations: Vec<LocationInput>,
) -> Sent {
    let mut request = tonic::Request::new(LocationBatch {
        batch_id: 1,
        locations,
    });
    if let Some(phone) = phone {
        request
            .metadata_mut()
            .insert("authorization", phone.metadata());
    }
    match tokio::time::timeout(ANSWER_DEADLINE, client.ingest_batch(request)).await {
        Ok(Ok(reply)) => {
            let reply = reply.into_inner();
            Sent::Acked {
                rejected: usize::try_from(reply.rejected_count).unwrap_or(usize::MAX),
                ids: reply.ids,
            }
        }
        Ok(Err(status)) => refusal(&status),
        Err(_) => Sent::Failed,
    }
}

/// What a gRPC error says of a batch: retry after the wait the edge asks,
/// refused for its token, or failed.
fn refusal(status: &Status) -> Sent {
    match status.code() {
        Code::Unavailable => Sent::RetryAfter(
            status
                .metadata()
                .get("retry-after")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<u64>().ok())
                .map_or(DEFAULT_RETRY, Duration::from_secs),
        ),
        Code::Unauthenticated | Code::PermissionDenied => {
            tracing::debug!(%status, "a batch was refused for its token");
            Sent::Denied
        }
        _ => {
            tracing::debug!(%status, "a gRPC call failed");
            Sent::Failed
        }
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
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
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
            Err(status) => refusal(&status),
        }
    }
}

/// Reads each probed location back through the API (with the organiser's
/// token, if given) until it shows, and records how long after its
/// acknowledgement that was.
pub(super) async fn probe_freshness(
    http: reqwest::Client,
    api: String,
    organiser: Option<String>,
    mut probes: mpsc::Receiver<(i64, Instant)>,
    tally: Arc<Tally>,
    stop: CancellationToken,
) {
    let organiser: Option<Arc<str>> = organiser.map(Arc::from);
    let mut running = tokio::task::JoinSet::new();
    loop {
        let next = tokio::select! {
            next = probes.recv() => next,
            () = stop.cancelled() => None,
        };
        let Some((id, acked)) = next else { break };
        let (http, url, tally, organiser) = (
            http.clone(),
            format!("{api}/api/v2/locations/{id}"),
            Arc::clone(&tally),
            organiser.clone(),
        );
        running.spawn(async move {
            while acked.elapsed() < PROBE_PATIENCE {
                let mut read = http.get(&url);
                if let Some(organiser) = &organiser {
                    read = read.bearer_auth(organiser);
                }
                if let Ok(response) = read.send().await
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
