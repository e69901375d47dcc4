//! `loopback-floor`: the fastest this machine can fan one small message out
//! to N local TCP sockets, with nothing but the kernel in the way.
//!
//! Writer threads send a 300-byte event (the size of a Beacon SSE frame) to
//! every one of N loopback connections, and one thread reads them all with
//! epoll, as a load generator does. Latency is from the moment writing
//! starts to each read. No HTTP, no runtime, no broker: the figures are a
//! lower bound for `make bench-fanout` on the same machine, and show how much of a
//! receiver's latency is the machine's own.
//!
//! `loopback-floor [clients] [writer threads]` (default 1000 and 2);
//! `make bench-floor BENCH_CLIENTS=…`.

use std::{
    io::{ErrorKind, Read, Write},
    net::{TcpListener, TcpStream},
    os::fd::AsFd,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

/// The size of one SSE frame of a hello message.
const EVENT_BYTES: usize = 300;
/// Messages sent, 100 ms apart.
const MESSAGES: usize = 20;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let clients: usize = args
        .next()
        .map_or(Ok(1000), |n| n.parse())
        .context("clients")?;
    let writers: usize = args
        .next()
        .map_or(Ok(2), |n| n.parse())
        .context("writer threads")?;
    platform::limits::raise_open_files_limit().context("open-files limit")?;

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut readers = Vec::with_capacity(clients);
    let mut senders = Vec::with_capacity(clients);
    for _ in 0..clients {
        let reader = TcpStream::connect(addr).context("connect (open-files limit?)")?;
        let (sender, _) = listener.accept()?;
        reader.set_nonblocking(true)?;
        sender.set_nodelay(true)?;
        readers.push(reader);
        senders.push(sender);
    }

    let epoch = Instant::now();
    let started_ns = Arc::new(AtomicU64::new(0));
    let read_all = {
        let started_ns = Arc::clone(&started_ns);
        std::thread::spawn(move || read_all(&readers, &started_ns, epoch))
    };
    let event = [b'x'; EVENT_BYTES];
    let chunk = clients.div_ceil(writers.max(1));
    for _ in 0..MESSAGES {
        std::thread::sleep(Duration::from_millis(100));
        started_ns.store(nanos_since(epoch), Ordering::Relaxed);
        std::thread::scope(|scope| {
            for part in senders.chunks_mut(chunk) {
                scope.spawn(|| {
                    for sender in part {
                        // A full socket buffer cannot happen: one event at a time.
                        let _ = sender.write_all(&event);
                    }
                });
            }
        });
    }
    let mut latencies = read_all
        .join()
        .map_err(|_| anyhow::anyhow!("the reader failed"))??;
    latencies.sort_unstable();
    let at = |q: f64| {
        let index = ((latencies.len() as f64 * q) as usize).min(latencies.len() - 1);
        latencies[index] as f64 / 1e6
    };
    println!(
        "RESULT {{\"clients\": {clients}, \"writer_threads\": {writers}, \"p50_ms\": {:.2}, \"p99_ms\": {:.2}, \"max_ms\": {:.2}}}",
        at(0.5),
        at(0.99),
        at(1.0)
    );
    Ok(())
}

/// Reads every message on every socket; returns each read's latency (ns).
fn read_all(
    readers: &[TcpStream],
    started_ns: &AtomicU64,
    epoch: Instant,
) -> anyhow::Result<Vec<u64>> {
    let epoll = Epoll::new(EpollCreateFlags::empty())?;
    for (index, reader) in readers.iter().enumerate() {
        epoll.add(
            reader.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, index as u64),
        )?;
    }
    let expected = readers.len() * MESSAGES * EVENT_BYTES;
    let mut received = 0;
    let mut latencies = Vec::with_capacity(readers.len() * MESSAGES);
    let mut events = vec![EpollEvent::empty(); 1024];
    let mut buffer = [0u8; 4096];
    while received < expected {
        let ready = epoll.wait(&mut events, EpollTimeout::from(5000u16))?;
        anyhow::ensure!(ready > 0, "no data for 5 s");
        for event in &events[..ready] {
            let index = usize::try_from(event.data())?;
            let mut reader = &readers[index];
            loop {
                match reader.read(&mut buffer) {
                    Ok(0) => anyhow::bail!("a connection closed"),
                    Ok(read) => {
                        received += read;
                        latencies.push(
                            nanos_since(epoch).saturating_sub(started_ns.load(Ordering::Relaxed)),
                        );
                    }
                    Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                    Err(err) => return Err(err.into()),
                }
            }
        }
    }
    Ok(latencies)
}

fn nanos_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}
