//! A worker process: holds its share of the clients on one thread and
//! measures what each of them receives.
//!
//! One process may only open about 20,000 files, so the coordinator splits
//! the clients over several workers. Each client socket is bound to its own
//! 127.0.0.x source address: the kernel allows one connection per source
//! address, source port and destination, and one address has only ~28,000
//! ephemeral ports. SSE clients are raw sockets read into one buffer shared
//! by the whole worker, so an idle client costs little more than its socket
//! and the load generator does not become the bottleneck.

use std::{
    cell::{Cell, RefCell},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    rc::Rc,
    time::{Duration, SystemTime},
};

use anyhow::Context as _;
use futures::StreamExt;
use hdrhistogram::Histogram;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Interest},
    net::{TcpSocket, TcpStream},
    sync::{Notify, Semaphore},
    task::LocalSet,
};
use tokio_tungstenite::tungstenite::{self, protocol::WebSocketConfig};

use crate::{
    Transport,
    parse::{Item, SseReader, message_fields, micros_since_epoch},
    protocol::{Command, Report, Totals},
};

/// Connections a worker opens at the same time: enough to connect thousands
/// a second, few enough not to overflow the receiver's accept backlog.
const CONNECTING_AT_ONCE: usize = 64;
/// Bytes read from a socket at a time, into the worker's one buffer.
const READ_BUFFER: usize = 64 * 1024;
/// Source addresses used: 127.0.0.2 to 127.0.0.254 (127.0.0.1 is left to
/// the broker and the coordinator).
const SOURCE_ADDRESSES: usize = 253;
/// How long a client waits for the response head before it counts as failed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(20);
/// Slowest latency recorded exactly; anything slower is counted as this.
const MAX_LATENCY_US: u64 = 120_000_000;

/// What one worker does.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// Receivers, `IP:port`, comma-separated; client `i` goes to receiver `i % k`.
    #[arg(long, value_delimiter = ',', required = true)]
    pub targets: Vec<SocketAddr>,
    /// Clients this worker opens.
    #[arg(long)]
    pub clients: usize,
    /// Index of this worker's first client among all clients.
    #[arg(long, default_value_t = 0)]
    pub first_index: usize,
    /// `sse` or `ws`.
    #[arg(long, value_enum, default_value_t = Transport::Sse)]
    pub transport: Transport,
}

/// Runs the worker until its stdin closes.
pub fn run(args: WorkerArgs) -> anyhow::Result<()> {
    // One thread: the clients' work is reading and counting, and the
    // coordinator starts as many workers as it needs cores and files.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the worker's runtime")?;
    LocalSet::new().block_on(&runtime, serve(args))
}

/// One client's view of the run.
#[derive(Default)]
struct Slot {
    open: Cell<bool>,
    /// The newest sequence seen; 0 before the first message.
    last: Cell<u64>,
    /// The first measured sequence seen.
    first_measured: Cell<u64>,
    measured: Cell<u64>,
    out_of_order: Cell<bool>,
}

/// Everything the clients of this worker share (one thread, so no locks).
struct Shared {
    slots: Vec<Slot>,
    latency: RefCell<Histogram<u64>>,
    measure_from: Cell<u64>,
    deliveries: Cell<u64>,
    read_buffer: RefCell<Box<[u8]>>,
    /// Clients still connecting, and a wake-up for when none are.
    connecting: Cell<usize>,
    connected: Notify,
    failed: Cell<u64>,
    first_error: RefCell<Option<String>>,
    broken: Cell<u64>,
    first_break: RefCell<Option<String>>,
}

impl Shared {
    fn message(&self, index: usize, seq: u64, sent_at_us: u64, arrival_us: u64) {
        let slot = &self.slots[index];
        let last = slot.last.get();
        if last != 0 && seq != last + 1 {
            slot.out_of_order.set(true);
        }
        slot.last.set(seq);
        if seq >= self.measure_from.get() {
            if slot.first_measured.get() == 0 {
                slot.first_measured.set(seq);
            }
            slot.measured.set(slot.measured.get() + 1);
            self.deliveries.set(self.deliveries.get() + 1);
            let latency = arrival_us.saturating_sub(sent_at_us).min(MAX_LATENCY_US);
            // In range by construction; a failed record would only lose one sample.
            let _ = self.latency.borrow_mut().record(latency);
        }
    }

    fn opened(&self, index: usize) {
        self.slots[index].open.set(true);
        self.done_connecting();
    }

    fn ended(&self, index: usize, outcome: Result<(), String>) {
        let slot = &self.slots[index];
        if slot.open.replace(false) {
            self.broken.set(self.broken.get() + 1);
            let reason = outcome
                .err()
                .unwrap_or_else(|| "closed by the server".to_owned());
            self.first_break.borrow_mut().get_or_insert(reason);
        } else {
            self.failed.set(self.failed.get() + 1);
            let reason = outcome
                .err()
                .unwrap_or_else(|| "closed before the response".to_owned());
            self.first_error.borrow_mut().get_or_insert(reason);
            self.done_connecting();
        }
    }

    fn done_connecting(&self) {
        let left = self.connecting.get().saturating_sub(1);
        self.connecting.set(left);
        if left == 0 {
            self.connected.notify_one();
        }
    }

    fn reached(&self, seq: u64) -> (u64, u64) {
        let open = self.slots.iter().filter(|slot| slot.open.get());
        let (mut reached, mut total) = (0, 0);
        for slot in open {
            total += 1;
            if slot.last.get() >= seq {
                reached += 1;
            }
        }
        (reached, total)
    }

    fn totals(&self, first: u64, last: u64) -> Totals {
        let expected = last.saturating_sub(first) + 1;
        let complete = self
            .slots
            .iter()
            .filter(|slot| {
                slot.first_measured.get() == first
                    && slot.last.get() >= last
                    && slot.measured.get() == expected
                    && !slot.out_of_order.get()
            })
            .count();
        let latency = self.latency.borrow();
        Totals {
            latency_us: latency
                .iter_recorded()
                .map(|bucket| (bucket.value_iterated_to(), bucket.count_at_value()))
                .collect(),
            deliveries: self.deliveries.get(),
            complete: complete as u64,
            open: self.slots.iter().filter(|slot| slot.open.get()).count() as u64,
            broken: self.broken.get(),
            first_break: self.first_break.borrow().clone(),
        }
    }
}

async fn serve(args: WorkerArgs) -> anyhow::Result<()> {
    let latency = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).context("latency histogram")?;
    let shared = Rc::new(Shared {
        slots: (0..args.clients).map(|_| Slot::default()).collect(),
        latency: RefCell::new(latency),
        measure_from: Cell::new(u64::MAX),
        deliveries: Cell::new(0),
        read_buffer: RefCell::new(vec![0; READ_BUFFER].into_boxed_slice()),
        connecting: Cell::new(args.clients),
        connected: Notify::new(),
        failed: Cell::new(0),
        first_error: RefCell::new(None),
        broken: Cell::new(0),
        first_break: RefCell::new(None),
    });
    let connecting = Rc::new(Semaphore::new(CONNECTING_AT_ONCE));
    for index in 0..args.clients {
        let global = args.first_index + index;
        let source = source_address(global);
        let target = args.targets[global % args.targets.len()];
        let shared = Rc::clone(&shared);
        let connecting = Rc::clone(&connecting);
        let transport = args.transport;
        tokio::task::spawn_local(async move {
            let outcome = match transport {
                Transport::Sse => sse_client(&shared, index, source, target, &connecting).await,
                Transport::Ws => ws_client(&shared, index, source, target, &connecting).await,
            };
            shared.ended(index, outcome);
        });
    }
    if args.clients > 0 {
        shared.connected.notified().await;
    }
    let connected = Report::Connected {
        ok: shared.slots.iter().filter(|slot| slot.open.get()).count() as u64,
        failed: shared.failed.get(),
        first_error: shared.first_error.borrow().clone(),
    };
    send(&connected).await?;

    let mut commands = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = commands.next_line().await? {
        let command: Command =
            serde_json::from_str(&line).with_context(|| format!("bad command {line:?}"))?;
        match command {
            Command::Await { seq, timeout_ms } => {
                let give_up = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
                let (reached, open) = loop {
                    let (reached, open) = shared.reached(seq);
                    if reached == open || tokio::time::Instant::now() >= give_up {
                        break (reached, open);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                };
                send(&Report::Reached { seq, reached, open }).await?;
            }
            Command::MeasureFrom { seq } => shared.measure_from.set(seq),
            Command::Report { first, last } => {
                send(&Report::Final(shared.totals(first, last))).await?;
            }
        }
    }
    Ok(())
}

async fn send(report: &Report) -> anyhow::Result<()> {
    let mut line = serde_json::to_vec(report)?;
    line.push(b'\n');
    let mut stdout = tokio::io::stdout();
    stdout.write_all(&line).await?;
    stdout.flush().await?;
    Ok(())
}

/// The source address of client `global`: spread round-robin so that each
/// address holds a few hundred connections at most.
fn source_address(global: usize) -> IpAddr {
    let host = 2 + (global % SOURCE_ADDRESSES) as u8;
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, host))
}

async fn connect(source: IpAddr, target: SocketAddr) -> Result<TcpStream, String> {
    let socket = TcpSocket::new_v4().map_err(|err| format!("socket: {err}"))?;
    socket
        .bind(SocketAddr::new(source, 0))
        .map_err(|err| format!("bind {source}: {err}"))?;
    socket
        .connect(target)
        .await
        .map_err(|err| format!("connect {target} from {source}: {err}"))
}

async fn sse_client(
    shared: &Shared,
    index: usize,
    source: IpAddr,
    target: SocketAddr,
    connecting: &Semaphore,
) -> Result<(), String> {
    let permit = connecting.acquire().await.map_err(|err| err.to_string())?;
    let mut stream = connect(source, target).await?;
    let request = format!(
        "GET /events HTTP/1.1\r\nHost: {target}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|err| format!("send the request: {err}"))?;
    let mut permit = Some(permit);
    let mut reader = SseReader::default();
    let respond_by = tokio::time::Instant::now() + RESPONSE_TIMEOUT;
    loop {
        let readable = stream.readable();
        if permit.is_some() {
            // Not answered yet: a receiver out of file descriptors leaves
            // connections unanswered in its backlog.
            tokio::time::timeout_at(respond_by, readable)
                .await
                .map_err(|_| format!("no response within {RESPONSE_TIMEOUT:?}"))?
        } else {
            readable.await
        }
        .map_err(|err| format!("read: {err}"))?;
        let arrival_us = micros_since_epoch(SystemTime::now());
        // Borrowed only between awaits: every client on this thread shares it.
        let mut buffer = shared.read_buffer.borrow_mut();
        let read = match read_draining(&stream, &mut buffer) {
            Ok(0) => return Ok(()),
            Ok(read) => read,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(err) => return Err(format!("read: {err}")),
        };
        let mut ended = false;
        reader
            .feed(&buffer[..read], &mut |item| match item {
                Item::Open => {
                    permit = None;
                    shared.opened(index);
                }
                Item::Message { seq, sent_at_us } => {
                    shared.message(index, seq, sent_at_us, arrival_us);
                }
                Item::Other => {}
                Item::End => ended = true,
            })
            .map_err(|err| err.to_string())?;
        if ended {
            return Ok(());
        }
    }
}

/// Reads what `stream` holds. A read shorter than `buffer` emptied the
/// socket, so its readiness is cleared right away (by answering
/// `WouldBlock` to `try_io`, which is how tokio learns it): otherwise the
/// next `readable()` returns at once and costs a second `recv` per message
/// that can only say `WouldBlock`.
fn read_draining(stream: &TcpStream, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut drained = None;
    let result = stream.try_io(Interest::READABLE, || {
        let read = stream.try_read(buffer)?;
        if read > 0 && read < buffer.len() {
            drained = Some(read);
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        Ok(read)
    });
    match (result, drained) {
        (_, Some(read)) => Ok(read),
        (result, None) => result,
    }
}

async fn ws_client(
    shared: &Shared,
    index: usize,
    source: IpAddr,
    target: SocketAddr,
    connecting: &Semaphore,
) -> Result<(), String> {
    let permit = connecting.acquire().await.map_err(|err| err.to_string())?;
    let stream = connect(source, target).await?;
    // Small buffers: tungstenite's defaults (128 KiB each) would make the
    // load generator, not the receiver, run out of memory first.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let handshake = tokio_tungstenite::client_async_with_config(
        format!("ws://{target}/ws"),
        stream,
        Some(config),
    );
    let (mut socket, _) = tokio::time::timeout(RESPONSE_TIMEOUT, handshake)
        .await
        .map_err(|_| format!("no response within {RESPONSE_TIMEOUT:?}"))?
        .map_err(|err| format!("websocket handshake: {err}"))?;
    drop(permit);
    shared.opened(index);
    while let Some(message) = socket.next().await {
        let arrival_us = micros_since_epoch(SystemTime::now());
        match message.map_err(|err| format!("read: {err}"))? {
            tungstenite::Message::Text(text) => {
                if let Some((seq, sent_at_us)) = message_fields(text.as_bytes()) {
                    shared.message(index, seq, sent_at_us, arrival_us);
                }
            }
            tungstenite::Message::Close(_) => return Ok(()),
            _ => {}
        }
    }
    Ok(())
}
