//! A real `nats-server` with JetStream, on a free port and its own store
//! directory, which tests can SIGKILL and restart on the same store.

use std::{
    fs,
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::{process::free_port, reaper::Watch};

/// A running (or killed) nats-server.
pub struct NatsServer {
    port: u16,
    store: TempDir,
    config: Option<PathBuf>,
    envs: Vec<(String, String)>,
    monitor_port: Option<u16>,
    child: Option<Child>,
    /// Stops it if this process is stopped by a signal.
    watch: Option<Watch>,
    starts: usize,
}

impl NatsServer {
    /// Starts a server with JetStream enabled.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Starts a server with JetStream and the given configuration file text
    /// (accounts, users, permissions). Port and store are set on the command
    /// line.
    pub fn start_with_config(config: &str) -> Self {
        Self::start_with(Some(config))
    }

    /// Starts a server with JetStream, the given configuration file text and
    /// env vars, which the configuration reads as `$NAME` (passwords, say).
    /// Monitoring listens on a free port of its own ([`Self::monitor_url`]),
    /// whatever port the configuration names.
    pub fn start_with_config_and_env(config: &str, envs: &[(&str, String)]) -> Self {
        let mut server = Self::prepare(Some(config));
        server.envs = envs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), value.clone()))
            .collect();
        server.monitor_port = Some(free_port());
        server.spawn();
        server
    }

    fn start_with(config: Option<&str>) -> Self {
        let mut server = Self::prepare(config);
        server.spawn();
        server
    }

    fn prepare(config: Option<&str>) -> Self {
        let store = tempfile::Builder::new()
            .prefix("testkit-nats-")
            .tempdir()
            .expect("create a store directory");
        let config = config.map(|text| {
            let path = store.path().join("nats.conf");
            fs::write(&path, text).expect("write the nats-server config");
            path
        });
        Self {
            port: free_port(),
            store,
            config,
            envs: Vec::new(),
            monitor_port: None,
            child: None,
            watch: None,
            starts: 0,
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:<port>` of the monitoring endpoints (`/healthz`, …),
    /// for a server started with [`Self::start_with_config_and_env`].
    pub fn monitor_url(&self) -> Option<String> {
        self.monitor_port
            .map(|port| format!("http://127.0.0.1:{port}"))
    }

    /// The port the server listens on (the same after a restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory (kept across restarts).
    pub fn store(&self) -> &Path {
        self.store.path()
    }

    /// SIGKILLs the server: no flush, no goodbye, like a crashed pod.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.watch = None;
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// What the server logged, over all its starts.
    pub fn log(&self) -> String {
        (1..=self.starts)
            .filter_map(|start| {
                fs::read_to_string(self.store.path().join(format!("nats-server.{start}.log"))).ok()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn spawn(&mut self) {
        let binary = nats_server_binary();
        self.starts += 1;
        // One log per start, so readiness is read from this start's log.
        let log = self
            .store
            .path()
            .join(format!("nats-server.{}.log", self.starts));
        let mut command = Command::new(&binary);
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        if let Some(monitor) = self.monitor_port {
            command.args(["-m", &monitor.to_string()]);
        }
        command.envs(self.envs.iter().map(|(key, value)| (key, value)));
        command
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js"])
            .arg("-sd")
            .arg(self.store.path().join("jetstream"))
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", binary.display()));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = fs::read_to_string(&log).unwrap_or_default();
                panic!("nats-server exited with {status} at start:\n{log}");
            }
            let ready = fs::read_to_string(&log)
                .map(|log| log.contains("Server is ready"))
                .unwrap_or(false);
            if ready && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not become ready on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.watch = Watch::new(child.id(), Signal::SIGTERM, Some(self.store.path()));
        self.child = Some(child);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `$NATS_SERVER`, else `nats-server` on the PATH, else Debian's location.
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(path);
    }
    let candidates = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")])
        .map(|dir| dir.join("nats-server"));
    for candidate in candidates {
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "nats-server is not installed: run `sudo apt-get install nats-server` (or set NATS_SERVER)"
    );
}
