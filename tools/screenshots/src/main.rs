//! `make screenshots`: the README's two pictures, made from what a newcomer
//! sees right after the quick start, not from the tests' made-up data.
//!
//! It starts `beacon` and `udaconnect` as `cargo run --release` starts
//! them (no settings but a free port and JSON logs, which is where the
//! port is read from), opens each page in headless Chromium at a laptop's
//! window size, waits until it shows what a user would look at (a few
//! messages; whom a person met on the demo conference), and saves
//! `docs/beacon.png` and `docs/udaconnect.png` (or into
//! `$SCREENSHOTS_DIR`). Every wait has a deadline.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use testkit::{AppProcess, Browser, Viewport};

/// How long a page may take to show what it is photographed with.
const PATIENCE: Duration = Duration::from_secs(90);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let here = std::env::current_exe().context("find this program")?;
    let dir = PathBuf::from(std::env::var("SCREENSHOTS_DIR").unwrap_or_else(|_| "docs".into()));
    let browser = Browser::launch().await;
    beacon(
        &browser,
        &here.with_file_name("beacon"),
        &dir.join("beacon.png"),
    )
    .await;
    udaconnect(
        &browser,
        &here.with_file_name("udaconnect"),
        &dir.join("udaconnect.png"),
    )
    .await;
    Ok(())
}

/// Beacon's page once five messages have arrived (one every 1–10 s).
async fn beacon(browser: &Browser, binary: &Path, shot: &Path) {
    let app = AppProcess::spawn(binary, "BEACON", &["all"], &[]);
    let page = browser.new_page(Viewport::DESKTOP).await;
    page.goto(app.base_url()).await;
    page.wait_for(
        "five messages",
        PATIENCE,
        "document.querySelectorAll('#messages li').length >= 5",
    )
    .await;
    page.screenshot(shot).await;
    println!("saved {}", shot.display());
}

/// UdaConnect's page on the demo conference, the first person clicked and
/// whom they met shown.
async fn udaconnect(browser: &Browser, binary: &Path, shot: &Path) {
    let app = AppProcess::spawn(binary, "UDACONNECT", &["all"], &[]);
    let page = browser.new_page(Viewport::DESKTOP).await;
    page.goto(app.base_url()).await;
    page.wait_for(
        "the people and the live header",
        PATIENCE,
        "document.querySelector('#person-list li button') !== null \
         && document.getElementById('live-state').dataset.state === 'live'",
    )
    .await;
    page.eval("document.querySelector('#person-list li button').click()")
        .await;
    page.wait_for(
        "whom they met",
        PATIENCE,
        "document.querySelectorAll('#contacts tbody tr').length > 0",
    )
    .await;
    page.screenshot(shot).await;
    println!("saved {}", shot.display());
}
