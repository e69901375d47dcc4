//! The bus on NATS JetStream: streams with file storage and retention by
//! age and count, read through ordered consumers or durable pull consumers.
//!
//! Connecting never fails: the client keeps retrying in the background, and
//! [`NatsBus::is_connected`] tells readiness probes where it stands. Publishes
//! carry `Nats-Msg-Id`, so a retry after a lost acknowledgement is stored
//! once; subscriptions are ephemeral ordered consumers starting at a given
//! stream sequence, so every replica reads the whole stream independently;
//! work queues are durable pull consumers with explicit acknowledgement.

use std::{
    fmt,
    str::FromStr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use async_nats::{
    Client, ConnectOptions, Event, ServerAddr,
    jetstream::{
        self, ErrorCode,
        consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull, push},
        context::GetStreamErrorKind,
        message::PublishMessage,
        stream::{Config, DiscardPolicy, RetentionPolicy, StorageType},
    },
};
use bytes::Bytes;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;

use super::{
    Bounds, BusError, Envelope, Published, Retention, StreamSettings, Subscription,
    queue::{Delivery, QueueLag, WorkQueue},
};

/// How long a publish waits for its acknowledgement before it is retried,
/// and any other request to the JetStream API for its answer.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a batch of history may take to arrive.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the broker is, how to log in, and where replies come back.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated (`nats://host:4222`). Unset in `all`: use the in-process bus.
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<NatsUrls>,

    /// NATS user name, when the server requires one.
    #[arg(long, env = "NATS_USER", requires = "nats_password")]
    pub nats_user: Option<String>,

    /// NATS password for `NATS_USER`.
    #[arg(
        long,
        env = "NATS_PASSWORD",
        hide_env_values = true,
        requires = "nats_user"
    )]
    pub nats_password: Option<String>,

    /// Subject prefix of this connection's inboxes, where every reply
    /// (acknowledgements, API answers, consumer deliveries) comes back.
    /// Give each NATS user its own and allow it only that, so no user can
    /// read another's replies. Default `_INBOX`.
    #[arg(long, env = "NATS_INBOX_PREFIX", value_parser = parse_inbox_prefix)]
    pub nats_inbox_prefix: Option<String>,
}

/// The inbox prefix used unless one is set: the NATS clients' own.
pub const DEFAULT_INBOX_PREFIX: &str = "_INBOX";

/// Parses an inbox prefix: a subject of one or more dot-separated tokens,
/// with no wildcards or whitespace (the client appends `.<unique id>`).
pub fn parse_inbox_prefix(input: &str) -> Result<String, String> {
    let prefix = input.trim();
    if prefix.is_empty() {
        return Err("must not be empty".to_owned());
    }
    for token in prefix.split('.') {
        if token.is_empty() {
            return Err(
                "must be dot-separated tokens, with no empty one (such as _INBOX.receiver)"
                    .to_owned(),
            );
        }
        if token.contains(['*', '>']) || token.chars().any(char::is_whitespace) {
            return Err("must not contain wildcards (* >) or whitespace".to_owned());
        }
    }
    Ok(prefix.to_owned())
}

/// One or more NATS server addresses.
#[derive(Debug, Clone)]
pub struct NatsUrls(Vec<ServerAddr>);

impl FromStr for NatsUrls {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let addrs = input
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| {
                ServerAddr::from_str(part)
                    .map_err(|err| format!("{err}; expected a URL such as nats://127.0.0.1:4222"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if addrs.is_empty() {
            return Err("expected a URL such as nats://127.0.0.1:4222".to_owned());
        }
        Ok(Self(addrs))
    }
}

impl fmt::Display for NatsUrls {
    /// The addresses without any password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<String> = self
            .0
            .iter()
            .map(|addr| format!("{}:{}", addr.host(), addr.port()))
            .collect();
        f.write_str(&hosts.join(","))
    }
}

/// A JetStream connection; cheap to clone.
#[derive(Clone)]
pub struct NatsBus {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    jetstream: jetstream::Context,
}

impl NatsBus {
    /// Starts connecting to `urls` in the background (retrying for as long
    /// as it takes) and returns at once. `name` identifies the connection in
    /// the server's monitoring.
    pub async fn connect(urls: &NatsUrls, nats: &NatsArgs, name: &str) -> Result<Self, BusError> {
        let mut options = ConnectOptions::new()
            .name(name)
            .retry_on_initial_connect()
            .ping_interval(Duration::from_secs(10))
            .connection_timeout(Duration::from_secs(3))
            .reconnect_delay_callback(reconnect_delay)
            .event_callback(|event| async move { log_event(event) });
        if let (Some(user), Some(password)) = (&nats.nats_user, &nats.nats_password) {
            options = options.user_and_password(user.clone(), password.clone());
        }
        let inbox_prefix = nats
            .nats_inbox_prefix
            .as_deref()
            .unwrap_or(DEFAULT_INBOX_PREFIX);
        options = options.custom_inbox_prefix(inbox_prefix);
        let client = options
            .connect(urls.0.as_slice())
            .await
            .map_err(|err| BusError::Request(err.to_string()))?;
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(ACK_TIMEOUT)
            .build(client.clone());
        tracing::info!(servers = %urls, "connecting to NATS");
        Ok(Self {
            inner: Arc::new(Inner { client, jetstream }),
        })
    }

    /// Creates the stream if it does not exist yet. A stream that exists is
    /// used as it is: services may lack the right to change it.
    pub(super) async fn ensure_stream(&self, settings: &StreamSettings) -> Result<(), BusError> {
        let stream = self
            .inner
            .jetstream
            .get_or_create_stream(stream_config(settings))
            .await
            .map_err(|err| BusError::Request(err.to_string()))?;
        captures(&stream.cached_info().config, settings)
    }

    /// Waits until the stream exists, only looking it up (the stream info
    /// request), never creating it: for a user that may not manage streams.
    /// Says once what it waits for; `false` if `shutdown` came first.
    pub(super) async fn await_stream(
        &self,
        settings: &StreamSettings,
        shutdown: &CancellationToken,
    ) -> bool {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut waiting = false;
        loop {
            let found = tokio::select! {
                found = self.inner.jetstream.get_stream(&settings.name) => found,
                () = shutdown.cancelled() => return false,
            };
            let delay = backoff.next_delay();
            match found {
                Ok(stream) => match captures(&stream.cached_info().config, settings) {
                    Ok(()) => {
                        if waiting {
                            tracing::info!(stream = %settings.name, "the stream is there");
                        }
                        return true;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, retry_in = ?delay, "stream not usable yet")
                    }
                },
                Err(err)
                    if matches!(
                        err.kind(),
                        GetStreamErrorKind::JetStream(ref js) if js.error_code() == ErrorCode::STREAM_NOT_FOUND
                    ) =>
                {
                    if !waiting {
                        waiting = true;
                        tracing::info!(
                            stream = %settings.name,
                            subject = %settings.subject,
                            "waiting for stream {} to be created; this process only looks it up (it is provisioned separately)",
                            settings.name
                        );
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, retry_in = ?delay, "cannot look the stream up yet");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => return false,
            }
        }
    }

    /// Creates the stream, or updates its subject, retention and replicas to
    /// the configured ones. Needs a user allowed to manage streams.
    pub(super) async fn provision(&self, settings: &StreamSettings) -> Result<(), BusError> {
        self.inner
            .jetstream
            .create_or_update_stream(stream_config(settings))
            .await
            .map(|_| ())
            .map_err(|err| BusError::Request(err.to_string()))
    }

    pub(super) async fn publish(
        &self,
        subject: &str,
        id: &str,
        payload: Bytes,
    ) -> Result<Published, BusError> {
        let publish = PublishMessage::build().message_id(id).payload(payload);
        let ack = self
            .inner
            .jetstream
            .send_publish(subject.to_owned(), publish)
            .await
            .map_err(|err| BusError::Publish(err.to_string()))?
            .await
            .map_err(|err| publish_error(subject, &err.to_string()))?;
        Ok(Published {
            seq: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    pub(super) async fn subscribe(&self, name: &str, from: u64) -> Result<Subscription, BusError> {
        let stream = self.stream(name).await.map_err(BusError::Subscribe)?;
        // Start one message early: the ordered consumer resumes after the last
        // sequence it delivered when it recreates itself, and before its first
        // delivery it would fall back to the very start of the stream. The
        // extra message is filtered out below.
        let deliver_policy = match from {
            0..=2 => DeliverPolicy::All,
            _ => DeliverPolicy::ByStartSequence {
                start_sequence: from - 1,
            },
        };
        let consumer = stream
            .create_consumer(push::OrderedConfig {
                deliver_subject: self.inner.client.new_inbox(),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|err| BusError::Subscribe(err.to_string()))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|err| BusError::Subscribe(err.to_string()))?;
        let envelopes = messages.filter_map(move |message| {
            let item = match message {
                Ok(message) => match message.info() {
                    Ok(info) if info.stream_sequence < from => None,
                    Ok(info) => Some(Ok(Envelope {
                        seq: info.stream_sequence,
                        payload: message.payload.clone(),
                    })),
                    Err(err) => Some(Err(BusError::Subscribe(err.to_string()))),
                },
                Err(err) => Some(Err(BusError::Subscribe(err.to_string()))),
            };
            std::future::ready(item)
        });
        Ok(envelopes.boxed())
    }

    pub(super) async fn fetch(
        &self,
        name: &str,
        from: u64,
        max: usize,
    ) -> Result<Vec<Envelope>, BusError> {
        let stream = self.stream(name).await.map_err(BusError::Request)?;
        let consumer = stream
            .create_consumer(pull::Config {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: from.max(1),
                },
                ack_policy: AckPolicy::None,
                inactive_threshold: Duration::from_secs(30),
                memory_storage: true,
                ..Default::default()
            })
            .await
            .map_err(|err| BusError::Request(err.to_string()))?;
        let fetched = async {
            let mut batch = consumer
                .fetch()
                .max_messages(max)
                .messages()
                .await
                .map_err(|err| BusError::Request(err.to_string()))?;
            let mut envelopes = Vec::with_capacity(max.min(1024));
            while let Some(message) = batch.next().await {
                let message = message.map_err(|err| BusError::Request(err.to_string()))?;
                let info = message
                    .info()
                    .map_err(|err| BusError::Request(err.to_string()))?;
                envelopes.push(Envelope {
                    seq: info.stream_sequence,
                    payload: message.payload.clone(),
                });
            }
            Ok(envelopes)
        };
        // A batch the server never answers (a broker going away mid-read)
        // must not hold a client or an API request forever.
        let fetched = tokio::time::timeout(FETCH_TIMEOUT, fetched)
            .await
            .unwrap_or_else(|_| Err(BusError::Request("history read timed out".to_owned())));
        let consumer_name = consumer.cached_info().name.clone();
        // The server also removes it after `inactive_threshold`.
        if let Err(err) = stream.delete_consumer(&consumer_name).await {
            tracing::debug!(error = %err, consumer = %consumer_name, "could not delete a history consumer");
        }
        fetched
    }

    pub(super) async fn bounds(&self, name: &str) -> Result<Bounds, BusError> {
        let info = self
            .inner
            .jetstream
            .get_stream(name)
            .await
            .map_err(|err| BusError::Request(err.to_string()))?
            .cached_info()
            .state
            .clone();
        Ok(if info.messages == 0 {
            Bounds {
                first: info.last_sequence + 1,
                last: info.last_sequence,
            }
        } else {
            Bounds {
                first: info.first_sequence,
                last: info.last_sequence,
            }
        })
    }

    pub(super) async fn messages(&self, name: &str) -> Result<u64, BusError> {
        let stream = self
            .inner
            .jetstream
            .get_stream(name)
            .await
            .map_err(|err| BusError::Request(err.to_string()))?;
        Ok(stream.cached_info().state.messages)
    }

    pub(super) async fn work_queue(
        &self,
        settings: &StreamSettings,
        name: &str,
        family: Option<&str>,
        ack_wait: Duration,
    ) -> Result<WorkQueue, BusError> {
        let stream = self
            .stream(&settings.name)
            .await
            .map_err(BusError::Request)?;
        let deliver_policy = match family {
            Some(family) => family_floor(&stream, name, family).await?,
            None => DeliverPolicy::All,
        };
        let consumer = stream
            .get_or_create_consumer(
                name,
                pull::Config {
                    durable_name: Some(name.to_owned()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait,
                    filter_subject: settings.subject.clone(),
                    max_ack_pending: MAX_ACK_PENDING,
                    deliver_policy,
                    ..Default::default()
                },
            )
            .await
            .map_err(|err| BusError::Request(err.to_string()))?;
        Ok(WorkQueue::nats(NatsQueue {
            consumer,
            stream,
            subject: settings.subject.clone(),
            messages: None,
            client: self.inner.client.clone(),
        }))
    }

    pub(super) fn is_connected(&self) -> bool {
        self.inner.client.connection_state() == async_nats::connection::State::Connected
    }

    async fn stream(&self, name: &str) -> Result<jetstream::stream::Stream<()>, String> {
        self.inner
            .jetstream
            .get_stream_no_info(name)
            .await
            .map_err(|err| err.to_string())
    }
}

/// Where the consumer `name`, one of the consumers whose names start with
/// `family`, starts if it does not exist yet: after what every other
/// member has acknowledged (the lowest ack floor), or at the stream's
/// start when there is none. (For one that exists, the server keeps its
/// own position and ignores this.)
async fn family_floor(
    stream: &jetstream::stream::Stream<()>,
    name: &str,
    family: &str,
) -> Result<DeliverPolicy, BusError> {
    let request = |err: &dyn std::fmt::Display| BusError::Request(err.to_string());
    let mut lowest: Option<u64> = None;
    let mut consumers = stream.consumers();
    while let Some(info) = consumers.next().await {
        let info = info.map_err(|err| request(&err))?;
        if info.name == name {
            return Ok(DeliverPolicy::All);
        }
        if info.name.starts_with(family) {
            // A member that started past the stream's start and has
            // acknowledged nothing yet is as far as where it started.
            let started = match info.config.deliver_policy {
                DeliverPolicy::ByStartSequence { start_sequence } => {
                    start_sequence.saturating_sub(1)
                }
                _ => 0,
            };
            let floor = info.ack_floor.stream_sequence.max(started);
            lowest = Some(lowest.map_or(floor, |low| low.min(floor)));
        }
    }
    Ok(match lowest {
        Some(floor) => DeliverPolicy::ByStartSequence {
            start_sequence: floor + 1,
        },
        None => DeliverPolicy::All,
    })
}

/// Whether an existing stream captures the subject it is used for.
fn captures(config: &Config, settings: &StreamSettings) -> Result<(), BusError> {
    let subjects = &config.subjects;
    if subjects.contains(&settings.subject) {
        Ok(())
    } else {
        Err(BusError::Request(format!(
            "stream {} exists but does not capture subject {} (it captures {subjects:?})",
            settings.name, settings.subject
        )))
    }
}

/// The JetStream configuration of a stream.
fn stream_config(settings: &StreamSettings) -> Config {
    let (retention, discard) = match settings.retention {
        Retention::Log => (RetentionPolicy::Limits, DiscardPolicy::Old),
        Retention::WorkQueue => (RetentionPolicy::WorkQueue, DiscardPolicy::New),
    };
    Config {
        name: settings.name.clone(),
        subjects: vec![settings.subject.clone()],
        storage: StorageType::File,
        retention,
        discard,
        max_age: settings.max_age,
        max_messages: i64::try_from(settings.max_messages).unwrap_or(i64::MAX),
        num_replicas: settings.replicas,
        // Long enough to cover a broker restart: a publish retried after
        // it is still recognised as a duplicate.
        duplicate_window: Duration::from_secs(120),
        allow_direct: true,
        ..Config::default()
    }
}

/// A refused publish: a full work-queue stream is told apart, so that the
/// caller can say "retry later" instead of "failed".
fn publish_error(subject: &str, reason: &str) -> BusError {
    if reason.contains("maximum messages") || reason.contains("maximum bytes") {
        BusError::Full(subject.to_owned())
    } else {
        BusError::Publish(reason.to_owned())
    }
}

/// The most messages a work-queue consumer has delivered and not yet seen
/// acknowledged; beyond, the server waits. Bounds what dead workers hold.
const MAX_ACK_PENDING: i64 = 50_000;
/// How long a pull request waits before it is renewed.
const PULL_EXPIRES: Duration = Duration::from_secs(5);

/// A durable pull consumer, fetched from in batches.
pub(super) struct NatsQueue {
    consumer: PullConsumer,
    stream: jetstream::stream::Stream<()>,
    subject: String,
    messages: Option<pull::Stream>,
    /// The connection, flushed when the worker stops so that its last
    /// acknowledgements reach the server.
    client: Client,
}

impl NatsQueue {
    /// Sends what the connection still holds (the last acknowledgements),
    /// waiting at most `deadline`.
    pub(super) async fn flush(&self, deadline: Duration) {
        match tokio::time::timeout(deadline, self.client.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::debug!(error = %err, "cannot flush the last acknowledgements"),
            Err(_) => tracing::debug!("the last acknowledgements not flushed in time"),
        }
    }

    pub(super) async fn fetch(
        &mut self,
        max: usize,
        linger: Duration,
    ) -> Result<Vec<Delivery>, BusError> {
        let messages = match &mut self.messages {
            Some(messages) => messages,
            None => {
                let messages = self
                    .consumer
                    .stream()
                    .max_messages_per_batch(max)
                    .expires(PULL_EXPIRES)
                    .heartbeat(PULL_EXPIRES / 2)
                    .messages()
                    .await
                    .map_err(|err| BusError::Request(err.to_string()))?;
                self.messages.insert(messages)
            }
        };
        let mut batch = Vec::with_capacity(max.min(4096));
        let Some(first) = messages.next().await else {
            self.messages = None;
            return Err(BusError::Request("the pull subscription ended".to_owned()));
        };
        let mut next = Some(first);
        let until = tokio::time::Instant::now() + linger;
        loop {
            match next {
                Some(Ok(message)) => batch.push(delivery(message)?),
                Some(Err(err)) => {
                    self.messages = None;
                    if batch.is_empty() {
                        return Err(BusError::Request(err.to_string()));
                    }
                    // What was taken is handed out; the error shows again on
                    // the next fetch, from a new subscription.
                    break;
                }
                None => {
                    self.messages = None;
                    break;
                }
            }
            if batch.len() >= max {
                break;
            }
            let Some(messages) = &mut self.messages else {
                break;
            };
            next = match tokio::time::timeout_at(until, messages.next()).await {
                Ok(next) => next,
                Err(_) => break,
            };
        }
        Ok(batch)
    }

    pub(super) async fn lag(&self) -> Result<QueueLag, BusError> {
        let mut consumer = self.consumer.clone();
        let info = consumer
            .info()
            .await
            .map_err(|err| BusError::Request(err.to_string()))?;
        let pending = info.num_pending + u64::try_from(info.num_ack_pending).unwrap_or(0);
        if pending == 0 {
            return Ok(QueueLag::default());
        }
        let oldest = self
            .stream
            .direct_get_next_for_subject(&self.subject, Some(info.ack_floor.stream_sequence + 1))
            .await
            .ok()
            .map(|message| SystemTime::from(message.time));
        Ok(QueueLag { pending, oldest })
    }
}

fn delivery(message: async_nats::jetstream::Message) -> Result<Delivery, BusError> {
    let info = message
        .info()
        .map_err(|err| BusError::Request(err.to_string()))?;
    let envelope = Envelope {
        seq: info.stream_sequence,
        payload: message.payload.clone(),
    };
    let deliveries = u64::try_from(info.delivered).unwrap_or(1);
    Ok(Delivery::nats(envelope, deliveries, message))
}

/// Reconnect at once, then after 50 ms doubling to 2 s: a restarted broker is
/// back within a second or two, and every client should notice quickly.
fn reconnect_delay(attempts: usize) -> Duration {
    match attempts {
        0 | 1 => Duration::ZERO,
        n => {
            let exponent = u32::try_from(n - 2).unwrap_or(u32::MAX).min(6);
            (Duration::from_millis(50) * 2u32.pow(exponent)).min(Duration::from_secs(2))
        }
    }
}

fn log_event(event: Event) {
    match event {
        Event::Connected => tracing::info!("connected to NATS"),
        Event::Disconnected => tracing::warn!("disconnected from NATS; reconnecting"),
        Event::ClientError(err) => tracing::warn!(error = %err, "NATS client error"),
        Event::ServerError(err) => tracing::warn!(error = %err, "NATS server error"),
        other => tracing::info!(event = %other, "NATS connection event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_comma_separated_and_never_show_passwords() {
        let urls: NatsUrls = "nats://a:4222, nats://user:secret@b:4223"
            .parse()
            .expect("valid urls");
        assert_eq!(urls.to_string(), "a:4222,b:4223");
        assert!("".parse::<NatsUrls>().is_err());
        assert!("http://a:4222".parse::<NatsUrls>().is_err());
    }

    #[test]
    fn inbox_prefixes_are_plain_subjects() {
        assert_eq!(
            parse_inbox_prefix(" _INBOX.receiver "),
            Ok("_INBOX.receiver".to_owned())
        );
        assert_eq!(parse_inbox_prefix("_INBOX"), Ok("_INBOX".to_owned()));
        for bad in ["", "_INBOX.", ".x", "a..b", "_INBOX.*", "_INBOX.>", "a b"] {
            assert!(parse_inbox_prefix(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reconnects_quickly_then_every_two_seconds() {
        assert_eq!(reconnect_delay(1), Duration::ZERO);
        assert_eq!(reconnect_delay(2), Duration::from_millis(50));
        assert_eq!(reconnect_delay(3), Duration::from_millis(100));
        assert_eq!(reconnect_delay(50), Duration::from_secs(2));
    }
}
