//! The benchmark run: a broker, `k` receivers, worker processes holding the
//! clients, and messages published at a fixed rate.
//!
//! The order matters for what is measured: receiver memory is read before
//! any client connects and again once all are connected and idle; one
//! warm-up message proves every client is subscribed before timing starts;
//! CPU is read over the measured messages only; and the run waits (with a
//! deadline) until every client has the last message before it counts.

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use platform::bus::{Bus, BusStream, NatsArgs, NatsBus, StreamSettings};
use testkit::{AppProcess, NatsServer, bench};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStdin},
    sync::mpsc,
};

use crate::{
    Transport,
    protocol::{Command, Report, Totals},
    publisher,
    report::BenchResult,
};

/// Most clients one worker holds: its open-files hard limit is 20,000.
pub const MAX_CLIENTS_PER_WORKER: usize = 19_000;
/// Clients per worker unless told: a few workers share the reading.
const DEFAULT_CLIENTS_PER_WORKER: usize = 5000;

/// A run's settings; every one is also a `BENCH_*` variable.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Concurrent clients, over all receivers.
    #[arg(long, env = "BENCH_CLIENTS", default_value_t = 1000)]
    pub clients: usize,
    /// Receiver processes; clients are spread evenly over them.
    #[arg(long, env = "BENCH_RECEIVERS", default_value_t = 1)]
    pub receivers: usize,
    /// Messages published per second.
    #[arg(long, env = "BENCH_RATE", default_value_t = 10.0)]
    pub rate: f64,
    /// Seconds of publishing measured.
    #[arg(long, env = "BENCH_SECONDS", default_value_t = 10)]
    pub seconds: u64,
    /// `sse` or `ws`.
    #[arg(long, env = "BENCH_TRANSPORT", value_enum, default_value_t = Transport::Sse)]
    pub transport: Transport,
    /// Clients per worker process (at most 19,000).
    #[arg(long, env = "BENCH_CLIENTS_PER_WORKER", default_value_t = DEFAULT_CLIENTS_PER_WORKER)]
    pub clients_per_worker: usize,
    /// The `beacon` binary; by default the one beside this program.
    #[arg(long, env = "BENCH_BEACON")]
    pub beacon: Option<PathBuf>,
    /// The results table to add a row to; `-` for none.
    #[arg(long, env = "BENCH_OUTPUT", default_value = "BENCHMARKS.md")]
    pub output: PathBuf,
    /// A few words saved with the row (what was being measured).
    #[arg(long, env = "BENCH_NOTE", default_value = "")]
    pub note: String,
}

/// Runs the benchmark and prints the `RESULT` line last.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.clients > 0, "BENCH_CLIENTS must be at least 1");
    anyhow::ensure!(args.receivers > 0, "BENCH_RECEIVERS must be at least 1");
    anyhow::ensure!(
        args.rate > 0.0 && args.rate <= 1000.0,
        "BENCH_RATE must be above 0 and at most 1000"
    );
    anyhow::ensure!(args.seconds > 0, "BENCH_SECONDS must be at least 1");
    anyhow::ensure!(
        (1..=MAX_CLIENTS_PER_WORKER).contains(&args.clients_per_worker),
        "BENCH_CLIENTS_PER_WORKER must be 1 to {MAX_CLIENTS_PER_WORKER}"
    );
    let load_before = bench::load_average();
    let beacon = match &args.beacon {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("find this program")?
            .with_file_name("beacon"),
    };
    anyhow::ensure!(
        beacon.is_file(),
        "no beacon binary at {} (build it, or set BENCH_BEACON)",
        beacon.display()
    );

    progress(format_args!("starting nats-server"));
    let nats = NatsServer::start();
    let status = std::process::Command::new(&beacon)
        .arg("provision")
        .env("NATS_URL", nats.url())
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .status()
        .context("run beacon provision")?;
    anyhow::ensure!(status.success(), "beacon provision failed: {status}");

    progress(format_args!("starting {} receiver(s)", args.receivers));
    let mut envs = vec![
        ("NATS_URL", nats.url()),
        ("BEACON_SHUTDOWN_TIMEOUT", "2s".to_owned()),
    ];
    // A capacity run past the default client cap raises it.
    if let Ok(cap) = std::env::var("BEACON_MAX_CLIENTS") {
        envs.push(("BEACON_MAX_CLIENTS", cap));
    }
    let receivers: Vec<AppProcess> = (0..args.receivers)
        .map(|_| AppProcess::spawn(&beacon, "BEACON", &["receiver"], &envs))
        .collect();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("start the runtime")?;
    let result = runtime.block_on(measure(&args, &nats, &receivers, load_before))?;
    if args.output.as_os_str() != "-" {
        result
            .append_to(&args.output)
            .with_context(|| format!("append to {}", args.output.display()))?;
    }
    drop(receivers);
    drop(nats);
    println!("{}", result.line());
    Ok(())
}

fn progress(message: std::fmt::Arguments<'_>) {
    eprintln!("beacon-fanout-bench: {message}");
}

async fn measure(
    args: &BenchArgs,
    nats: &NatsServer,
    receivers: &[AppProcess],
    load_before: String,
) -> anyhow::Result<BenchResult> {
    let http = reqwest::Client::new();
    for receiver in receivers {
        wait_ready(&http, receiver.base_url()).await?;
    }
    let pids: Vec<u32> = receivers.iter().map(AppProcess::pid).collect();
    let rss_before_kb = total(&pids, bench::rss_kb)?;

    let bus = connect_bus(nats).await?;
    let targets: Vec<String> = receivers
        .iter()
        .map(|receiver| format!("127.0.0.1:{}", receiver.port()))
        .collect();
    let mut workers = Workers::spawn(args, &targets.join(","))?;
    progress(format_args!(
        "connecting {} {} clients from {} worker(s)",
        args.clients,
        args.transport.name(),
        workers.len()
    ));
    let connected = workers
        .gather(Duration::from_secs(600), |report| match report {
            Report::Connected {
                ok,
                failed,
                first_error,
            } => Some((ok, failed, first_error)),
            _ => None,
        })
        .await?;
    let ok: u64 = connected.iter().map(|(ok, _, _)| ok).sum();
    let failed: u64 = connected.iter().map(|(_, failed, _)| failed).sum();
    let first_error = connected.iter().find_map(|(_, _, error)| error.clone());
    progress(format_args!(
        "{ok} connected, {failed} failed {first_error:?}"
    ));
    anyhow::ensure!(ok > 0, "no client connected: {first_error:?}");
    wait_for_clients(&http, receivers, ok, args.transport).await?;

    let rss_idle_kb = total(&pids, bench::rss_kb)?;
    progress(format_args!(
        "receiver RSS {} MB before the clients, {} MB with them",
        rss_before_kb / 1024,
        rss_idle_kb / 1024
    ));

    // Warm-up: proves every client is subscribed before anything is timed.
    let warm_up = publisher::publish_now(&bus, "warm-up").await?;
    let reached = workers.await_seq(warm_up, Duration::from_secs(60)).await?;
    anyhow::ensure!(
        reached.0 == reached.1,
        "only {} of {} clients got the warm-up message",
        reached.0,
        reached.1
    );
    workers
        .command(&Command::MeasureFrom { seq: warm_up + 1 })
        .await?;

    let count = (args.rate * args.seconds as f64).round().max(1.0) as u64;
    progress(format_args!(
        "publishing {count} messages at {}/s",
        args.rate
    ));
    let cpu_start = total_cpu(&pids)?;
    let loadgen_cpu_start = total_cpu(&workers.pids)?;
    let started = Instant::now();
    let run = format!("bench-{}", std::process::id());
    let published = publisher::publish_at_rate(&bus, &run, args.rate, count).await?;
    let (first, last) = (*published.start(), *published.end());
    let reached = workers.await_seq(last, Duration::from_secs(60)).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = total_cpu(&pids)? - cpu_start;
    let loadgen_cpu = total_cpu(&workers.pids)? - loadgen_cpu_start;
    let rss_end_kb = total(&pids, bench::rss_kb)?;
    progress(format_args!(
        "{} of {} open clients got message {last}",
        reached.0, reached.1
    ));

    workers.command(&Command::Report { first, last }).await?;
    let totals = workers
        .gather(Duration::from_secs(60), |report| match report {
            Report::Final(totals) => Some(totals),
            _ => None,
        })
        .await?;
    workers.stop().await;
    let totals = merge(totals)?;
    let open = totals.open;
    let latency = totals.histogram;
    let ms = |quantile: f64| latency.value_at_quantile(quantile) as f64 / 1000.0;

    Ok(BenchResult {
        transport: args.transport.name(),
        clients: open,
        receivers: args.receivers,
        rate_per_s: args.rate,
        // Per second of the nominal publishing time (count / rate).
        deliveries_per_s: totals.deliveries as f64 * args.rate / count as f64,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        max_ms: latency.max() as f64 / 1000.0,
        receiver_rss_mb: rss_idle_kb as f64 / 1024.0,
        rss_per_client_kb: rss_idle_kb.saturating_sub(rss_before_kb) as f64 / ok as f64,
        receiver_cpu_pct: cpu / elapsed * 100.0,
        clients_requested: args.clients as u64,
        connect_failures: failed,
        first_connect_error: first_error,
        messages: count,
        complete_clients: totals.complete,
        broken_clients: totals.broken,
        first_break: totals.first_break,
        receiver_rss_mb_end: rss_end_kb as f64 / 1024.0,
        loadgen_cpu_pct: loadgen_cpu / elapsed * 100.0,
        load_before,
        machine: bench::machine(),
        command: command_line(args),
        note: args.note.clone(),
    })
}

/// The `make bench-fanout` invocation that repeats this run.
fn command_line(args: &BenchArgs) -> String {
    let mut command = format!(
        "make bench-fanout BENCH_CLIENTS={} BENCH_RECEIVERS={} BENCH_RATE={} BENCH_SECONDS={} BENCH_TRANSPORT={}",
        args.clients,
        args.receivers,
        args.rate,
        args.seconds,
        args.transport.name()
    );
    if args.clients_per_worker != DEFAULT_CLIENTS_PER_WORKER {
        command.push_str(&format!(
            " BENCH_CLIENTS_PER_WORKER={}",
            args.clients_per_worker
        ));
    }
    if let Some(beacon) = &args.beacon {
        command.push_str(&format!(" BENCH_BEACON={}", beacon.display()));
    }
    command
}

async fn connect_bus(nats: &NatsServer) -> anyhow::Result<BusStream> {
    let urls = nats.url().parse().map_err(anyhow::Error::msg)?;
    let nats_args = NatsArgs::default();
    let bus = NatsBus::connect(&urls, &nats_args, "beacon-fanout-bench").await?;
    Ok(Bus::Nats(bus).stream(StreamSettings::log("HELLO", "beacon.hello", 1_000_000)))
}

async fn wait_ready(http: &reqwest::Client, base_url: &str) -> anyhow::Result<()> {
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = http
            .get(format!("{base_url}/readyz"))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());
        if ready {
            return Ok(());
        }
        if Instant::now() >= give_up {
            bail!("receiver at {base_url} not ready after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the receivers count `expected` clients themselves, so that
/// the memory read next includes every connection.
async fn wait_for_clients(
    http: &reqwest::Client,
    receivers: &[AppProcess],
    expected: u64,
    transport: Transport,
) -> anyhow::Result<()> {
    let series = format!(
        "beacon_clients_connected{{transport=\"{}\"}} ",
        transport.name()
    );
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        let mut connected = 0;
        for receiver in receivers {
            let text = http
                .get(format!("{}/metrics", receiver.base_url()))
                .send()
                .await?
                .text()
                .await?;
            connected += text
                .lines()
                .find_map(|line| line.strip_prefix(&series))
                .and_then(|value| value.trim().parse::<f64>().ok())
                .unwrap_or(0.0) as u64;
        }
        if connected >= expected {
            return Ok(());
        }
        if Instant::now() >= give_up {
            bail!("receivers count {connected} clients, expected {expected}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn total(pids: &[u32], read: fn(u32) -> std::io::Result<u64>) -> anyhow::Result<u64> {
    pids.iter()
        .map(|&pid| read(pid).with_context(|| format!("read /proc/{pid}")))
        .sum()
}

fn total_cpu(pids: &[u32]) -> anyhow::Result<f64> {
    pids.iter()
        .map(|&pid| bench::cpu_seconds(pid).with_context(|| format!("read /proc/{pid}/stat")))
        .sum()
}

struct Merged {
    histogram: Histogram<u64>,
    deliveries: u64,
    complete: u64,
    open: u64,
    broken: u64,
    first_break: Option<String>,
}

fn merge(totals: Vec<Totals>) -> anyhow::Result<Merged> {
    let mut merged = Merged {
        histogram: Histogram::new(3).context("histogram")?,
        deliveries: 0,
        complete: 0,
        open: 0,
        broken: 0,
        first_break: None,
    };
    for part in totals {
        for (value, count) in part.latency_us {
            merged
                .histogram
                .record_n(value, count)
                .context("merge latencies")?;
        }
        merged.deliveries += part.deliveries;
        merged.complete += part.complete;
        merged.open += part.open;
        merged.broken += part.broken;
        merged.first_break = merged.first_break.or(part.first_break);
    }
    Ok(merged)
}

/// The worker processes and what they report.
struct Workers {
    children: Vec<Child>,
    stdins: Vec<ChildStdin>,
    pids: Vec<u32>,
    reports: mpsc::UnboundedReceiver<(usize, Report)>,
}

impl Workers {
    fn spawn(args: &BenchArgs, targets: &str) -> anyhow::Result<Self> {
        let count = args.clients.div_ceil(args.clients_per_worker);
        let program = std::env::current_exe().context("find this program")?;
        let (sender, reports) = mpsc::unbounded_channel();
        let mut workers = Self {
            children: Vec::new(),
            stdins: Vec::new(),
            pids: Vec::new(),
            reports,
        };
        let mut first_index = 0;
        for worker in 0..count {
            // Even shares: the first `clients % count` workers take one more.
            let clients = args.clients / count + usize::from(worker < args.clients % count);
            let mut child = tokio::process::Command::new(&program)
                .arg("worker")
                .args(["--targets", targets])
                .args(["--clients", &clients.to_string()])
                .args(["--first-index", &first_index.to_string()])
                .args(["--transport", args.transport.name()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .context("start a worker")?;
            first_index += clients;
            let (Some(stdin), Some(stdout), Some(pid)) =
                (child.stdin.take(), child.stdout.take(), child.id())
            else {
                bail!("worker {worker} started without pipes");
            };
            let sender = sender.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    match serde_json::from_str::<Report>(&line) {
                        Ok(report) => {
                            let _ = sender.send((worker, report));
                        }
                        Err(err) => progress(format_args!("worker {worker}: {err}: {line}")),
                    }
                }
            });
            workers.children.push(child);
            workers.stdins.push(stdin);
            workers.pids.push(pid);
        }
        Ok(workers)
    }

    fn len(&self) -> usize {
        self.children.len()
    }

    async fn command(&mut self, command: &Command) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(command)?;
        line.push(b'\n');
        for stdin in &mut self.stdins {
            stdin.write_all(&line).await.context("command a worker")?;
            stdin.flush().await?;
        }
        Ok(())
    }

    /// One report of the kind `pick` accepts from every worker.
    async fn gather<T>(
        &mut self,
        deadline: Duration,
        pick: impl Fn(Report) -> Option<T>,
    ) -> anyhow::Result<Vec<T>> {
        let mut got: Vec<Option<T>> = (0..self.len()).map(|_| None).collect();
        let give_up = tokio::time::Instant::now() + deadline;
        while got.iter().any(Option::is_none) {
            match tokio::time::timeout_at(give_up, self.reports.recv()).await {
                Ok(Some((worker, report))) => {
                    if let Some(value) = pick(report) {
                        got[worker] = Some(value);
                    }
                }
                Ok(None) => bail!("a worker exited early"),
                Err(_) => bail!("workers did not answer within {deadline:?}"),
            }
        }
        Ok(got.into_iter().flatten().collect())
    }

    /// Waits until every open client has seen `seq`; returns (reached, open).
    async fn await_seq(&mut self, seq: u64, deadline: Duration) -> anyhow::Result<(u64, u64)> {
        let timeout_ms = u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX);
        self.command(&Command::Await { seq, timeout_ms }).await?;
        let answers = self
            .gather(deadline + Duration::from_secs(10), |report| match report {
                Report::Reached {
                    seq: at,
                    reached,
                    open,
                } if at == seq => Some((reached, open)),
                _ => None,
            })
            .await?;
        Ok(answers
            .into_iter()
            .fold((0, 0), |(reached, open), (r, o)| (reached + r, open + o)))
    }

    /// Closes the workers' stdin, which ends them, and reaps them.
    async fn stop(&mut self) {
        self.stdins.clear();
        for child in &mut self.children {
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
    }
}
