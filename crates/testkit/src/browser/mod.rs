//! Headless Chromium, for tests that check what a person sees: open a page,
//! read its DOM with JavaScript, reload it, resize it, take screenshots.
//!
//! The browser is the system's Chromium (`sudo apt-get install chromium`),
//! started with a fresh profile and every background service off (on a
//! machine without internet they would stall on lookups), and driven over
//! the DevTools protocol it serves on a free port. Dropping a [`Browser`]
//! stops it and removes the profile.

mod cdp;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use base64::Engine;
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use serde_json::{Value, json};
use tempfile::TempDir;

use self::cdp::Connection;

/// How long the browser may take to start, and a page to load.
const STARTUP: Duration = Duration::from_secs(30);
/// How long the browser may take to shut down before it is killed.
const SHUTDOWN: Duration = Duration::from_secs(5);

/// The install command named when no browser is found.
pub const INSTALL_CHROMIUM: &str = "sudo apt-get install chromium";

/// The size of a page's window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Viewport {
    /// CSS pixels.
    pub width: u32,
    /// CSS pixels.
    pub height: u32,
    /// Device pixels per CSS pixel (2 for a phone's screen).
    pub scale: f64,
    /// Whether the page is laid out as on a phone (meta viewport honoured).
    pub mobile: bool,
}

impl Viewport {
    /// A laptop's browser window.
    pub const DESKTOP: Self = Self {
        width: 1280,
        height: 800,
        scale: 1.0,
        mobile: false,
    };
    /// A common phone, held upright.
    pub const PHONE: Self = Self {
        width: 390,
        height: 844,
        scale: 2.0,
        mobile: true,
    };
}

/// A running headless Chromium.
pub struct Browser {
    child: Child,
    cdp: Arc<Connection>,
    /// Removed on drop, after the browser has stopped (fields drop after
    /// `Drop::drop`).
    _profile: TempDir,
}

impl Browser {
    /// Starts Chromium (`$CHROMIUM`, else `chromium` on the PATH). Panics
    /// with the install command when there is none.
    pub async fn launch() -> Self {
        let binary = chromium_binary();
        let profile = tempfile::Builder::new()
            .prefix("testkit-chromium-")
            .tempdir()
            .expect("create a browser profile directory");
        // Its temporary files (the profile's lock socket among them) go in
        // the profile too, so that removing the profile leaves nothing.
        let tmp = profile.path().join("tmp");
        fs::create_dir(&tmp).expect("create the browser's temporary folder");
        let log_path = profile.path().join("chromium.log");
        let log = fs::File::create(&log_path).expect("create the browser log");
        let mut command = Command::new(&binary);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--disable-extensions",
                "--disable-default-apps",
                "--no-first-run",
                "--no-default-browser-check",
                "--password-store=basic",
                "--use-mock-keychain",
                "--mute-audio",
                "--hide-scrollbars",
                // A page under test runs at full speed even if the browser
                // thinks nobody is looking at it.
                "--disable-background-timer-throttling",
                "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .env("TMPDIR", &tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // It stays in the test's process group: whatever stops a hung test
        // (Ctrl-C, the runner's timeout) stops the browser too.
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", binary.display()));

        // Chromium writes the port and path it serves DevTools on into the
        // profile once it listens.
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + STARTUP;
        let url = loop {
            if let Ok(text) = fs::read_to_string(&port_file)
                && let [port, path] = text.lines().collect::<Vec<_>>()[..]
            {
                break format!("ws://127.0.0.1:{port}{path}");
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "{} exited with {status} at start:\n{}",
                    binary.display(),
                    fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                stop(&mut child);
                panic!(
                    "{} did not open its DevTools port within {STARTUP:?}:\n{}",
                    binary.display(),
                    fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let cdp = match Connection::connect(&url).await {
            Ok(cdp) => Arc::new(cdp),
            Err(err) => {
                stop(&mut child);
                panic!("{err}");
            }
        };
        Self {
            child,
            cdp,
            _profile: profile,
        }
    }

    /// Opens a new blank page of the given size.
    pub async fn new_page(&self, viewport: Viewport) -> Page {
        let target = self
            .cdp
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await
            .expect("open a page");
        let target = target["targetId"].as_str().expect("a target id").to_owned();
        let session = self
            .cdp
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target, "flatten": true }),
            )
            .await
            .expect("attach to the page");
        let session = session["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        let page = Page {
            cdp: Arc::clone(&self.cdp),
            session,
        };
        for method in ["Page.enable", "Runtime.enable", "Page.bringToFront"] {
            page.call(method, json!({})).await;
        }
        page.set_viewport(viewport).await;
        page
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// One page (tab) of a [`Browser`].
pub struct Page {
    cdp: Arc<Connection>,
    session: String,
}

impl Page {
    /// Loads `url` and waits for its `load` event.
    pub async fn goto(&self, url: &str) {
        let mut events = self.cdp.events();
        let navigated = self.call("Page.navigate", json!({ "url": url })).await;
        if let Some(error) = navigated["errorText"].as_str() {
            panic!("cannot load {url}: {error}");
        }
        self.wait_for_load(&mut events, url).await;
    }

    /// Reloads the page, bypassing the cache, and waits for its `load` event.
    pub async fn reload(&self) {
        let mut events = self.cdp.events();
        self.call("Page.reload", json!({ "ignoreCache": true }))
            .await;
        self.wait_for_load(&mut events, "the reloaded page").await;
    }

    /// Resizes the page's window.
    pub async fn set_viewport(&self, viewport: Viewport) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({
                "width": viewport.width,
                "height": viewport.height,
                "deviceScaleFactor": viewport.scale,
                "mobile": viewport.mobile,
            }),
        )
        .await;
    }

    /// Makes the page see `prefers-color-scheme: <scheme>` (`light` or `dark`).
    pub async fn set_color_scheme(&self, scheme: &str) {
        self.call(
            "Emulation.setEmulatedMedia",
            json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme }] }),
        )
        .await;
    }

    /// Evaluates a JavaScript expression (awaiting it if it is a promise)
    /// and returns its value as JSON (`null` for `undefined`), or the
    /// exception it threw.
    pub async fn try_eval(&self, expression: &str) -> Result<Value, String> {
        let reply = self
            .cdp
            .call(
                Some(&self.session),
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await?;
        if let Some(details) = reply.get("exceptionDetails") {
            return Err(details["exception"]["description"]
                .as_str()
                .or_else(|| details["text"].as_str())
                .unwrap_or("an exception")
                .to_owned());
        }
        Ok(reply["result"]["value"].clone())
    }

    /// [`Page::try_eval`], panicking on an exception.
    pub async fn eval(&self, expression: &str) -> Value {
        self.try_eval(expression)
            .await
            .unwrap_or_else(|err| panic!("{expression}\nthrew: {err}"))
    }

    /// Evaluates `expression` every 20 ms until it returns something other
    /// than `null`, `undefined` or `false`, and returns that. Panics naming
    /// `what`, with the last answer, if `deadline` passes first.
    pub async fn wait_for(&self, what: &str, deadline: Duration, expression: &str) -> Value {
        let give_up = Instant::now() + deadline;
        loop {
            let answer = self.try_eval(expression).await;
            match &answer {
                Ok(Value::Null | Value::Bool(false)) | Err(_) => {}
                Ok(value) => return value.clone(),
            }
            if Instant::now() > give_up {
                panic!("timed out after {deadline:?} waiting for {what}; last answer: {answer:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Saves what the window shows as a PNG at `path`, creating its folder.
    pub async fn screenshot(&self, path: &Path) {
        let shot = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 screenshot data");
        if let Some(folder) = path.parent() {
            fs::create_dir_all(folder)
                .unwrap_or_else(|err| panic!("cannot create {}: {err}", folder.display()));
        }
        fs::write(path, png).unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
    }

    /// The uncaught exceptions (and unhandled rejections) the page's scripts
    /// raised so far.
    pub fn exceptions(&self) -> Vec<String> {
        self.cdp.exceptions(&self.session)
    }

    async fn call(&self, method: &str, params: Value) -> Value {
        self.cdp
            .call(Some(&self.session), method, params)
            .await
            .unwrap_or_else(|err| panic!("{err}"))
    }

    async fn wait_for_load(
        &self,
        events: &mut tokio::sync::broadcast::Receiver<cdp::Event>,
        what: &str,
    ) {
        let loaded = async {
            loop {
                match events.recv().await {
                    Ok(event)
                        if event.method == "Page.loadEventFired"
                            && event.session.as_deref() == Some(&self.session) =>
                    {
                        return;
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        panic!("the browser closed the connection while loading {what}")
                    }
                }
            }
        };
        if tokio::time::timeout(STARTUP, loaded).await.is_err() {
            panic!("{what} did not finish loading within {STARTUP:?}");
        }
    }
}

/// `$CHROMIUM`, else the first Chromium on the PATH or in Debian's place.
/// Panics with the install command when there is none.
fn chromium_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "CHROMIUM={} is not a file: unset it, or run `{INSTALL_CHROMIUM}`",
            path.display()
        );
        return path;
    }
    let dirs = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin")]);
    for dir in dirs {
        for name in ["chromium", "chromium-browser"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "Chromium is not installed: run `{INSTALL_CHROMIUM}` (or set CHROMIUM to a Chromium or Chrome binary)"
    );
}

/// Stops the browser with SIGTERM, so that it takes its helper processes
/// down before it exits (killed outright, they outlive it for a moment and
/// write into the profile being removed); SIGKILL if it takes too long.
fn stop(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        let give_up = Instant::now() + SHUTDOWN;
        while Instant::now() < give_up {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
