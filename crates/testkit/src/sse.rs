//! A small Server-Sent Events client: reads events (id, event, data) off a
//! streaming HTTP response, skipping comments. Every wait has a deadline, so
//! a test whose stream goes silent fails saying so instead of hanging.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures::StreamExt;

/// How long [`SseClient::next_event`] waits unless told otherwise.
pub const SSE_PATIENCE: Duration = Duration::from_secs(30);

/// One event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `id:` field.
    pub id: Option<String>,
    /// The `event:` field; `None` for a plain message.
    pub event: Option<String>,
    /// The `data:` lines, joined by newlines.
    pub data: String,
}

/// A connected SSE stream.
pub struct SseClient {
    url: String,
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: BytesMut,
    patience: Duration,
}

impl SseClient {
    /// Connects to `url`, sending `Last-Event-ID` when given. Fails on a
    /// non-200 answer, returning its status and body.
    pub async fn connect(url: &str, last_event_id: Option<u64>) -> Result<Self, String> {
        Self::resume(url, last_event_id.map(|id| id.to_string()).as_deref()).await
    }

    /// Connects to `url`, sending `Last-Event-ID` as given (any text). Fails
    /// on a non-200 answer, returning its status and body.
    pub async fn resume(url: &str, last_event_id: Option<&str>) -> Result<Self, String> {
        let client = reqwest::Client::new();
        let mut request = client.get(url).header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = tokio::time::timeout(SSE_PATIENCE, request.send())
            .await
            .map_err(|_| format!("{url} did not answer within {SSE_PATIENCE:?}"))?
            .map_err(|err| err.to_string())?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(format!("{status}: {body}"));
        }
        Ok(Self {
            url: url.to_owned(),
            body: response.bytes_stream().boxed(),
            buffer: BytesMut::new(),
            patience: SSE_PATIENCE,
        })
    }

    /// Waits at most `patience` for each event from now on.
    pub fn with_patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }

    /// The next event; `None` when the stream ends or breaks. Panics, naming
    /// the URL, if none comes within the patience ([`SSE_PATIENCE`] unless
    /// set with [`Self::with_patience`]).
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        let patience = self.patience;
        match tokio::time::timeout(patience, self.read_event()).await {
            Ok(event) => event,
            Err(_) => panic!("no SSE event within {patience:?} from {}", self.url),
        }
    }

    async fn read_event(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(event) = self.parse_one() {
                if event.data.is_empty() && event.id.is_none() && event.event.is_none() {
                    continue;
                }
                return Some(event);
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                _ => return None,
            }
        }
    }

    /// Takes one complete event (up to a blank line) from the buffer.
    fn parse_one(&mut self) -> Option<SseEvent> {
        let end = self.buffer.windows(2).position(|pair| pair == b"\n\n")?;
        let block = self.buffer.split_to(end);
        self.buffer.advance(2);
        let text = String::from_utf8_lossy(&block);
        let mut event = SseEvent::default();
        let mut data = Vec::new();
        for line in text.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => event.id = Some(value.to_owned()),
                "event" => event.event = Some(value.to_owned()),
                "data" => data.push(value.to_owned()),
                _ => {}
            }
        }
        event.data = data.join("\n");
        Some(event)
    }
}
