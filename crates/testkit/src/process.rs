//! The workspace's binaries started the way an operator starts them: a target, env
//! vars, JSON logs on stdout. The port (usually 0, picked by the OS) is read
//! back from the process's own "listening" log line.

use std::{
    io::{BufRead, BufReader, Read},
    net::TcpListener,
    path::Path,
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::{Arc, Mutex, PoisonError, mpsc},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

use crate::reaper::Watch;

/// Runs `command` to its end and returns what it printed, like
/// [`Command::output`], except that it gives up after `deadline`: the
/// process is killed and the test fails saying so, instead of hanging.
pub fn output_within(command: &mut Command, deadline: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {command:?}: {err}"));
    let read_all = |stream: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut stream) = stream {
                let _ = stream.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = read_all(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let stderr = read_all(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let give_up = Instant::now() + deadline;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() >= give_up {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind an ephemeral port")
}

/// A running process of one of the workspace's binaries.
pub struct AppProcess {
    child: Child,
    url: String,
    output: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    /// Kills it if this process is stopped by a signal.
    watch: Option<Watch>,
}

impl AppProcess {
    /// Starts `binary` with `args` and only the env vars given (plus
    /// `LOG_FORMAT=json` and `<env_prefix>_HTTP_ADDR=127.0.0.1:0` unless
    /// given, for an application whose env vars start with `env_prefix`),
    /// and waits until it logs the address it listens on.
    pub fn spawn(binary: &Path, env_prefix: &str, args: &[&str], envs: &[(&str, String)]) -> Self {
        let mut command = Command::new(binary);
        command
            .args(args)
            .env_clear()
            .env("LOG_FORMAT", "json")
            .env(format!("{env_prefix}_HTTP_ADDR"), "127.0.0.1:0")
            .envs(envs.iter().map(|(key, value)| (*key, value.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", binary.display()));
        let output = Arc::new(Mutex::new(Vec::new()));
        let (url_tx, url_rx) = mpsc::channel();
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(collect(stdout, Arc::clone(&output), Some(url_tx)));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(collect(stderr, Arc::clone(&output), None));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            if let Ok(url) = url_rx.recv_timeout(Duration::from_millis(50)) {
                break url;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "{} {args:?} exited with {status} before listening:\n{}",
                    binary.display(),
                    lines(&output).join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} {args:?} did not log its address:\n{}",
                binary.display(),
                lines(&output).join("\n")
            );
        };
        let watch = Watch::new(child.id(), Signal::SIGKILL, None);
        Self {
            child,
            url,
            output,
            readers,
            watch,
        }
    }

    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub fn base_url(&self) -> &str {
        self.url.trim_end_matches('/')
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.base_url()
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .expect("a port in the logged URL")
    }

    /// Everything it wrote to stdout and stderr so far.
    pub fn output(&self) -> Vec<String> {
        lines(&self.output)
    }

    /// Sends SIGTERM and waits for the exit (at most `deadline`). Once it
    /// has exited, [`Self::output`] holds everything it wrote.
    pub fn terminate(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).ok()?);
        let _ = kill(pid, Signal::SIGTERM);
        let give_up = Instant::now() + deadline;
        while Instant::now() < give_up {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.watch = None;
                // The readers end at the pipes' EOF, now that it is gone.
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// SIGKILLs the process, like a crashed pod.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.watch = None;
    }

    /// The operating system's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for AppProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads lines in a thread into `output`; sends the URL of the first
/// "listening" JSON log line on `url`.
fn collect(
    stream: impl Read + Send + 'static,
    output: Arc<Mutex<Vec<String>>>,
    url: Option<mpsc::Sender<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Some(sender) = &url
                && let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                && event["message"]
                    .as_str()
                    .is_some_and(|message| message.starts_with("listening"))
                && let Some(found) = event["url"].as_str()
            {
                let _ = sender.send(found.to_owned());
            }
            output
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(line);
        }
    })
}

fn lines(output: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    output
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}
