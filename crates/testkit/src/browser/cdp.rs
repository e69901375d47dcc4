//! A Chrome DevTools Protocol connection: JSON commands over the WebSocket
//! the browser opens itself, each answer matched to its command by id.
//!
//! The protocol is small for what tests need (navigate, evaluate, resize,
//! screenshot), so it is spoken directly over `tokio-tungstenite` rather than
//! through a generated binding of the whole protocol or a separate driver
//! binary that must match the browser's version. Events are fanned out to
//! whoever waits for one, and a page's uncaught exceptions are kept so a test
//! can assert there were none.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::{SinkExt, StreamExt, stream::SplitSink};
use serde_json::{Value, json};
use tokio::{
    net::TcpStream,
    sync::{broadcast, oneshot},
    task::JoinHandle,
};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

/// How long a command may take before the browser is considered stuck.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Reply = Result<Value, String>;

/// An event the browser sent: from which page session, and what happened.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub session: Option<String>,
    pub method: String,
}

/// One open DevTools connection to the browser.
pub(crate) struct Connection {
    sink: tokio::sync::Mutex<SplitSink<Socket, Message>>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    reader: JoinHandle<()>,
}

/// What the reader task and the callers share.
struct Shared {
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    events: broadcast::Sender<Event>,
    /// Uncaught exceptions, by page session.
    exceptions: Mutex<HashMap<String, Vec<String>>>,
}

impl Connection {
    /// Connects to the browser's DevTools WebSocket at `url`.
    pub async fn connect(url: &str) -> Result<Self, String> {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|err| format!("cannot open the DevTools connection {url}: {err}"))?;
        let (sink, mut stream) = socket.split();
        let (events, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            pending: Mutex::new(HashMap::new()),
            events,
            exceptions: Mutex::new(HashMap::new()),
        });
        let reader = tokio::spawn({
            let shared = Arc::clone(&shared);
            async move {
                while let Some(Ok(message)) = stream.next().await {
                    if let Message::Text(text) = message
                        && let Ok(value) = serde_json::from_str::<Value>(text.as_str())
                    {
                        shared.dispatch(value);
                    }
                }
                // Dropping the senders wakes every caller still waiting.
                lock(&shared.pending).clear();
            }
        });
        Ok(Self {
            sink: tokio::sync::Mutex::new(sink),
            shared,
            next_id: AtomicU64::new(1),
            reader,
        })
    }

    /// Sends `method` with `params`, to the browser or to a page's
    /// `session`, and returns the result or the browser's error message.
    pub async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Reply {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut command = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            command["sessionId"] = Value::from(session);
        }
        let (reply_tx, reply_rx) = oneshot::channel();
        lock(&self.shared.pending).insert(id, reply_tx);
        let sent = self
            .sink
            .lock()
            .await
            .send(Message::text(command.to_string()))
            .await;
        if let Err(err) = sent {
            lock(&self.shared.pending).remove(&id);
            return Err(format!("{method}: cannot send to the browser: {err}"));
        }
        match tokio::time::timeout(COMMAND_TIMEOUT, reply_rx).await {
            Ok(Ok(reply)) => reply.map_err(|err| format!("{method}: {err}")),
            Ok(Err(_)) => Err(format!("{method}: the browser closed the connection")),
            Err(_) => {
                lock(&self.shared.pending).remove(&id);
                Err(format!("{method}: no answer within {COMMAND_TIMEOUT:?}"))
            }
        }
    }

    /// Events from now on. Subscribe before sending the command whose
    /// consequence you wait for, so the event cannot be missed.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// The uncaught exceptions reported so far by the page `session`.
    pub fn exceptions(&self, session: &str) -> Vec<String> {
        lock(&self.shared.exceptions)
            .get(session)
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Shared {
    /// Routes one message from the browser: an answer to its caller, an
    /// event to the subscribers.
    fn dispatch(&self, message: Value) {
        if let Some(id) = message["id"].as_u64() {
            let reply = match message.get("error") {
                Some(error) => Err(error["message"]
                    .as_str()
                    .map_or_else(|| error.to_string(), str::to_owned)),
                None => Ok(message["result"].clone()),
            };
            if let Some(caller) = lock(&self.pending).remove(&id) {
                let _ = caller.send(reply);
            }
            return;
        }
        let Some(method) = message["method"].as_str() else {
            return;
        };
        let session = message["sessionId"].as_str().map(str::to_owned);
        if method == "Runtime.exceptionThrown"
            && let Some(session) = &session
        {
            let details = &message["params"]["exceptionDetails"];
            let text = details["exception"]["description"]
                .as_str()
                .or_else(|| details["text"].as_str())
                .unwrap_or("an exception")
                .to_owned();
            lock(&self.exceptions)
                .entry(session.clone())
                .or_default()
                .push(text);
        }
        // No subscriber is not an error: most events interest no one.
        let _ = self.events.send(Event {
            session,
            method: method.to_owned(),
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
