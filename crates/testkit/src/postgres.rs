//! A throwaway PostgreSQL 15 (with PostGIS when installed) in a temporary
//! directory on a free port, which tests can stop and start again on the
//! same data, to take the database away from a client and bring it back.
//!
//! It never touches a PostgreSQL already running on the machine: its own
//! data directory, a free port on 127.0.0.1 only, its unix socket in the
//! temporary directory. `initdb` refuses to run as root, so as root the
//! server binaries run as the `postgres` system user.

use std::{
    fs,
    net::TcpStream,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::{Pid, User, getuid},
};
use tempfile::TempDir;

use crate::{process::free_port, reaper::Watch};

/// How long starting or stopping the server may take.
const DEADLINE: Duration = Duration::from_secs(60);

/// Settings that make a test server fast; durability is not needed.
const TEST_SETTINGS: &[(&str, &str)] = &[
    ("listen_addresses", "127.0.0.1"),
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("max_connections", "100"),
    ("shared_buffers", "256MB"),
    ("work_mem", "16MB"),
    ("maintenance_work_mem", "256MB"),
    ("max_wal_size", "4GB"),
    ("checkpoint_timeout", "1h"),
    ("autovacuum", "off"),
    ("jit", "off"),
    ("log_min_messages", "warning"),
];

/// A running (or stopped) PostgreSQL server owned by the test.
pub struct PostgresServer {
    bindir: PathBuf,
    dir: TempDir,
    port: u16,
    owner: Option<User>,
    settings: Vec<(String, String)>,
    child: Option<Child>,
    /// Stops it if this process is stopped by a signal.
    watch: Option<Watch>,
    starts: usize,
}

impl PostgresServer {
    /// Creates a cluster (`initdb`) and starts it with test settings.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Like [`Self::start`], with extra `postgres -c` settings (they win over
    /// the test defaults), such as `("shared_buffers", "2GB")`.
    pub fn start_with(settings: &[(&str, &str)]) -> Self {
        let bindir = postgres_bindir();
        let dir = tempfile::Builder::new()
            .prefix("udaconnect-pg-")
            .tempdir()
            .expect("create a directory for the test database");
        let owner = if getuid().is_root() {
            let user = User::from_name("postgres")
                .ok()
                .flatten()
                .expect("running as root, but there is no `postgres` user to run PostgreSQL as");
            std::os::unix::fs::chown(dir.path(), Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .expect("give the test database directory to the postgres user");
            Some(user)
        } else {
            None
        };
        let mut server = Self {
            bindir,
            dir,
            port: free_port(),
            owner,
            settings: TEST_SETTINGS
                .iter()
                .chain(settings)
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
            child: None,
            watch: None,
            starts: 0,
        };
        server.initdb();
        server.spawn();
        server
    }

    /// The port it listens on (the same after a restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates an empty database and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url(name)
    }

    /// Runs SQL with `psql` (stops at the first error) and returns its
    /// standard output.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        self.run_psql(database, &["-c", sql])
    }

    /// Runs a file with `psql -f`, the way a database is seeded by hand.
    pub fn psql_file(&self, database: &str, file: &Path) -> String {
        let file = file.to_str().expect("a UTF-8 path");
        self.run_psql(database, &["-f", file])
    }

    fn run_psql(&self, database: &str, args: &[&str]) -> String {
        let output = Command::new(self.bindir.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "psql {args:?} on {database} failed: {}",
            describe(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// From now on every user but `postgres` (the tests' own superuser)
    /// logs in with its password (SCRAM), as on a real server; `initdb`'s
    /// cluster trusts everyone. Restarts the server to make it so.
    pub fn require_passwords(&mut self) {
        fs::write(
            self.data().join("pg_hba.conf"),
            "local all postgres trust\n\
             host all postgres 127.0.0.1/32 trust\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("write pg_hba.conf");
        self.stop();
        self.start_again();
    }

    /// From now on the server takes TCP connections over TLS only, with
    /// `cert_pem` (and its key, `key_pem`) as its certificate, as a managed
    /// database does; the tests' own `psql` still gets in (over TLS).
    /// Restarts the server to make it so.
    pub fn require_tls(&mut self, cert_pem: &str, key_pem: &str) {
        let (cert, key) = (
            self.data().join("server.crt"),
            self.data().join("server.key"),
        );
        fs::write(&cert, cert_pem).expect("write the server's certificate");
        fs::write(&key, key_pem).expect("write the server's key");
        // PostgreSQL refuses a key others may read.
        fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("restrict the server's key");
        if let Some(user) = &self.owner {
            for file in [&cert, &key] {
                std::os::unix::fs::chown(file, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                    .expect("give the certificate to the postgres user");
            }
        }
        fs::write(
            self.data().join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 reject\n",
        )
        .expect("write pg_hba.conf");
        for (setting, value) in [
            ("ssl", "on".to_owned()),
            ("ssl_cert_file", cert.display().to_string()),
            ("ssl_key_file", key.display().to_string()),
        ] {
            self.settings.push((setting.to_owned(), value));
        }
        self.stop();
        self.start_again();
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Fast shutdown (SIGINT: clients are disconnected), waiting until the
    /// server has exited.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        self.watch = None;
        signal(&child, Signal::SIGINT);
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "PostgreSQL did not stop within {DEADLINE:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the stopped server again on the same port and data.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "PostgreSQL is already running");
        self.spawn();
    }

    /// This start's server log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir
            .path()
            .join(format!("postgres.{}.log", self.starts))
    }

    fn command(&self, binary: &str) -> Command {
        let mut command = Command::new(self.bindir.join(binary));
        if let Some(user) = &self.owner {
            command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
        command.current_dir(self.dir.path()).stdin(Stdio::null());
        command
    }

    fn initdb(&self) {
        let output = self
            .command("initdb")
            .arg("-D")
            .arg(self.data())
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8"])
            .args(["--locale=C", "--no-sync", "--no-instructions"])
            .output()
            .expect("run initdb");
        assert!(
            output.status.success(),
            "initdb failed: {}",
            describe(&output)
        );
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log = fs::File::create(self.log_path()).expect("create the server log");
        let mut command = self.command("postgres");
        command
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(self.dir.path());
        for (key, value) in &self.settings {
            command.arg("-c").arg(format!("{key}={value}"));
        }
        let stderr = log.try_clone().expect("share the server log");
        let mut child = command
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", self.bindir.display()));
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("PostgreSQL exited with {status} at start:\n{}", self.log());
            }
            let ready = self
                .log()
                .contains("database system is ready to accept connections");
            if ready && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                break;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "PostgreSQL did not accept connections on port {} within {DEADLINE:?}:\n{}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Immediate shutdown, as on drop.
        self.watch = Watch::new(child.id(), Signal::SIGQUIT, Some(self.dir.path()));
        self.child = Some(child);
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // Immediate shutdown: the data is thrown away with the directory.
        if let Some(mut child) = self.child.take() {
            signal(&child, Signal::SIGQUIT);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(child: &Child, signal: Signal) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

fn describe(output: &Output) -> String {
    format!(
        "{}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `$PG_BINDIR`, else Debian's PostgreSQL 15, else `pg_config --bindir`.
pub fn postgres_bindir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let debian = PathBuf::from("/usr/lib/postgresql/15/bin");
    if debian.join("postgres").is_file() {
        return debian;
    }
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if dir.join("postgres").is_file() {
            return dir;
        }
    }
    panic!(
        "PostgreSQL 15 is not installed: run `sudo apt-get install postgresql-15 postgresql-15-postgis-3` (or set PG_BINDIR)"
    );
}
