//! The page in a real browser: headless Chromium on a receiver that a fast
//! broadcaster feeds through nats-server. What is checked is what a person
//! sees — the DOM, the connection indicator, and screenshots in
//! `target/e2e/` to look at — across a reload, a receiver restart, and an
//! outage longer than the stream's retention; and what a first look at it
//! tells a new user: the histogram of a single interval, and why rows
//! loaded with the page have no latency.
//!
//! `make e2e` runs this test alone.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use testkit::{AppProcess, Browser, NatsServer, Page, SseClient, Viewport, eventually, free_port};

use super::helpers::{BEACON, PATIENCE, fast, metric, start, wait_for_seq};

/// What messages are signed with.
const SENDER: &str = "browser-test";
/// The broadcaster's shortest wait, in milliseconds: no two messages are
/// sent closer together.
const MIN_INTERVAL_MS: f64 = 50.0;
/// How many messages the page loads when it opens (`HISTORY` in app.js).
const PAGE_HISTORY: u64 = 100;
/// The stream's size in the gap test: an outage longer than this many
/// messages loses some.
const RETAINED: u64 = 20;
/// What a row loaded with the page says instead of a latency (its title),
/// and the legend that says it for all of them (`UNMEASURED` and
/// `#latency-note` in the page).
const UNMEASURED: &str =
    "Sent before this page opened (loaded from history): its latency was not measured";
const LATENCY_NOTE: &str = " · latency —: sent before this page opened";

/// Everything the test reads off the page, in one evaluation.
const READ_PAGE: &str = r#"(() => {
  const text = (root, selector) => root.querySelector(selector)?.textContent ?? '';
  const root = document.documentElement;
  const visible = (element) => element && !element.hidden && element.getClientRects().length > 0;
  const centre = (element) => {
    const box = element.getBoundingClientRect();
    return box.left + box.width / 2;
  };
  const bars = [...document.querySelectorAll('#histogram .bar')];
  const labels = [...document.querySelectorAll('#axis span')].filter(visible);
  return {
    state: document.getElementById('state').dataset.state,
    state_text: text(document, '#state'),
    count: text(document, '#count'),
    last_seq: text(document, '#last-seq'),
    gaps: [...document.querySelectorAll('#messages li.gap-row')].map((li) => ({
      from: Number(li.dataset.gapFrom),
      to: Number(li.dataset.gapTo),
      text: li.textContent,
      above: Number(li.previousElementSibling?.dataset.seq ?? 0),
      below: Number(li.nextElementSibling?.dataset.seq ?? 0),
    })),
    bars: bars.length,
    summary: text(document, '#histogram-summary'),
    axis: labels.map((label) => label.textContent),
    // How far the one label sits from the one bar's middle, in CSS pixels.
    axis_off_centre: bars.length === 1 && labels.length === 1
      ? Math.abs(centre(bars[0]) - centre(labels[0]))
      : null,
    latency_note: visible(document.getElementById('latency-note'))
      ? text(document, '#latency-note')
      : '',
    overflows: root.scrollWidth > root.clientWidth,
    messages: [...document.querySelectorAll('#messages li.message')].map((li) => ({
      seq: Number(li.dataset.seq),
      seq_text: text(li, '.seq'),
      text: text(li, '.text'),
      sender: text(li, '.sender'),
      sent: li.querySelector('.sent')?.getAttribute('datetime') ?? '',
      sent_text: text(li, '.sent'),
      dt: text(li, '.dt'),
      latency: text(li, '.latency'),
      latency_title: li.querySelector('.latency')?.title ?? '',
    })),
  };
})()"#;

#[derive(Debug, Deserialize)]
struct View {
    state: String,
    state_text: String,
    count: String,
    last_seq: String,
    /// Rows standing for messages the stream no longer has.
    gaps: Vec<GapRow>,
    bars: usize,
    /// `N intervals · mean …` above the histogram.
    summary: String,
    /// The histogram axis's visible labels, left to right.
    axis: Vec<String>,
    /// With one bar and one label: how far apart their middles are.
    axis_off_centre: Option<f64>,
    /// The legend for rows without a latency, if shown.
    latency_note: String,
    overflows: bool,
    /// Newest first, as shown.
    messages: Vec<Shown>,
}

#[derive(Debug, Deserialize)]
struct Shown {
    seq: u64,
    seq_text: String,
    text: String,
    sender: String,
    sent: String,
    sent_text: String,
    dt: String,
    latency: String,
    latency_title: String,
}

#[derive(Debug, Deserialize)]
struct GapRow {
    from: u64,
    to: u64,
    text: String,
    /// The sequence of the message shown above the row (0 for none).
    above: u64,
    /// The sequence of the message shown below the row (0 for none).
    below: u64,
}

impl View {
    fn seqs(&self) -> Vec<u64> {
        self.messages.iter().map(|shown| shown.seq).collect()
    }

    fn newest(&self) -> u64 {
        self.messages.first().map_or(0, |shown| shown.seq)
    }

    /// Whether the histogram's summary counts every message shown (it is
    /// drawn on the next animation frame, so it may trail by one).
    fn histogram_drawn(&self) -> bool {
        let n = self.messages.len();
        let noun = if n == 1 { "interval" } else { "intervals" };
        self.summary.starts_with(&format!("{n} {noun} · mean "))
    }

    /// Messages that arrived over the live stream (they have a latency);
    /// those loaded with the page show none.
    fn live(&self) -> usize {
        self.messages
            .iter()
            .filter(|shown| shown.latency != "—")
            .count()
    }
}

#[tokio::test]
async fn the_page_follows_the_stream_across_a_reload_and_a_receiver_restart() {
    // First, so that a missing Chromium fails the test at once, saying how
    // to install it.
    let browser = Browser::launch().await;
    let nats = NatsServer::start();
    // A fixed port, so the restarted receiver is where the page reconnects.
    let addr = ("BEACON_HTTP_ADDR", format!("127.0.0.1:{}", free_port()));
    let mut receiver = start("receiver", &nats, std::slice::from_ref(&addr));
    let mut envs = fast("50ms", "150ms");
    envs.push(("BEACON_SENDER", SENDER.to_owned()));
    let broadcaster = start("broadcaster", &nats, &envs);
    let base = receiver.base_url().to_owned();
    // Some history before the page opens, then live messages.
    wait_for_seq(&base, 3).await;

    let shots = screenshots();
    let page = browser.new_page(Viewport::DESKTOP).await;
    page.goto(&format!("{base}/")).await;

    // Live: history and live messages, newest first, every field filled.
    let view = wait_view(&page, "10 live messages", |view| {
        view.state == "live" && view.live() >= 10 && view.histogram_drawn()
    })
    .await;
    assert_eq!(view.state_text, "live");
    assert_contiguous(&view);
    assert_fields(&view);
    assert_counters(&view);
    assert_eq!(view.bars, 10, "the histogram has its bars");
    assert_histogram_spread(&view);
    assert!(view.gaps.is_empty(), "{:?}", view.gaps);
    assert!(!view.overflows, "no sideways scrolling at desktop width");
    page.screenshot(&shots.join("live.png")).await;
    page.set_color_scheme("dark").await;
    page.screenshot(&shots.join("live-dark.png")).await;
    page.set_color_scheme("light").await;

    // A phone-sized window shows the same page without sideways scrolling.
    page.set_viewport(Viewport::PHONE).await;
    let phone = wait_view(&page, "the phone layout", |view| view.live() > 0).await;
    assert!(!phone.overflows, "no sideways scrolling on a phone");
    page.screenshot(&shots.join("live-phone.png")).await;
    page.set_viewport(Viewport::DESKTOP).await;

    // Reload: the history is shown again, then live messages follow it.
    let before = view.newest();
    page.reload().await;
    let view = wait_view(&page, "live messages after the reload", |view| {
        view.state == "live" && view.live() >= 3
    })
    .await;
    assert_contiguous(&view);
    assert_fields(&view);
    let history: Vec<u64> = view.messages[view.live()..]
        .iter()
        .map(|shown| shown.seq)
        .collect();
    let loaded = history.first().copied().unwrap_or(0);
    assert!(
        loaded >= before,
        "the reloaded page shows the history up to #{before}: {history:?}"
    );
    assert_eq!(
        history.len(),
        usize::try_from(loaded.min(PAGE_HISTORY)).unwrap(),
        "the page loads the newest {PAGE_HISTORY} messages: {history:?}"
    );
    assert_eq!(view.count, view.messages.len().to_string(), "#count");
    assert_eq!(
        view.latency_note, LATENCY_NOTE,
        "the legend says why the history has no latency"
    );

    // The receiver dies: the page says it is reconnecting, and messages
    // keep being published meanwhile.
    receiver.kill();
    let view = wait_view(&page, "the indicator to read reconnecting", |view| {
        view.state == "reconnecting"
    })
    .await;
    assert_eq!(view.state_text, "reconnecting");
    // Long enough for the browser's reconnection attempts to be refused.
    let missed = view.newest() + 20;
    eventually(
        "messages published while the receiver is down",
        PATIENCE,
        || async {
            (metric(broadcaster.base_url(), "beacon_messages_published_total").await
                >= missed as f64)
                .then_some(())
        },
    )
    .await;

    // It comes back on the same address: the page resumes where it stopped.
    receiver = start("receiver", &nats, &[addr]);
    assert_eq!(receiver.base_url(), base);
    let view = wait_view(&page, "live again, past the outage", |view| {
        view.state == "live" && view.newest() >= missed + 5
    })
    .await;
    assert_eq!(view.state_text, "live");
    assert_contiguous(&view);
    assert_fields(&view);
    assert_counters(&view);
    assert!(view.gaps.is_empty(), "nothing was lost: {:?}", view.gaps);
    page.screenshot(&shots.join("reconnected.png")).await;

    assert_eq!(page.exceptions(), Vec::<String>::new(), "script errors");
}

/// Messages the stream dropped while the page could not reach a receiver
/// are marked where they would be, and the page follows the stream after.
#[tokio::test]
async fn the_page_marks_messages_the_stream_no_longer_has() {
    let browser = Browser::launch().await;
    let nats = NatsServer::start();
    let addr = ("BEACON_HTTP_ADDR", format!("127.0.0.1:{}", free_port()));
    let retained = ("BEACON_STREAM_MAX_MESSAGES", RETAINED.to_string());
    let receiver_envs = [addr, retained.clone()];
    let mut receiver = start("receiver", &nats, &receiver_envs);
    let mut envs = fast("50ms", "150ms");
    envs.extend([("BEACON_SENDER", SENDER.to_owned()), retained]);
    let broadcaster = start("broadcaster", &nats, &envs);
    let base = receiver.base_url().to_owned();

    let page = browser.new_page(Viewport::DESKTOP).await;
    page.goto(&format!("{base}/")).await;
    wait_view(&page, "live messages", |view| {
        view.state == "live" && view.live() >= 3
    })
    .await;

    // The page is cut off while the stream moves on by more than it keeps.
    receiver.kill();
    let left_at = wait_view(&page, "the indicator to read reconnecting", |view| {
        view.state == "reconnecting"
    })
    .await
    .newest();
    let published = left_at + RETAINED + 10;
    eventually("the stream to drop messages", PATIENCE, || async {
        (metric(broadcaster.base_url(), "beacon_messages_published_total").await
            >= published as f64)
            .then_some(())
    })
    .await;
    receiver = start("receiver", &nats, &receiver_envs);
    assert_eq!(receiver.base_url(), base);

    let view = wait_view(&page, "a gap row, then live messages", |view| {
        view.gaps
            .first()
            .is_some_and(|gap| view.newest() > gap.to + 3)
    })
    .await;
    assert_eq!(view.state, "gap");
    assert_eq!(view.state_text, "gap");
    assert_eq!(view.gaps.len(), 1, "{:?}", view.gaps);
    let gap = &view.gaps[0];
    assert_eq!(gap.from, left_at + 1, "from the first message not shown");
    assert!(
        gap.to + RETAINED >= published,
        "up to the oldest the stream keeps: {gap:?}"
    );
    assert_eq!(
        gap.text,
        format!("Messages {}–{} are no longer retained.", gap.from, gap.to)
    );
    assert_contiguous(&view);
    assert_fields(&view);
    assert_eq!(view.last_seq, view.newest().to_string(), "#last-seq");
    page.eval("document.querySelector('li.gap-row').scrollIntoView({ block: 'center' })")
        .await;
    page.screenshot(&screenshots().join("gap.png")).await;

    assert_eq!(page.exceptions(), Vec::<String>::new(), "script errors");
}

/// `beacon all` restarted while the page is open: the new in-process stream
/// numbers from 1 again, below where the page stopped. The page must drop
/// the old stream's messages and follow the new one, not wait for its
/// sequences to catch up.
#[tokio::test]
async fn the_page_starts_over_when_the_stream_is_new() {
    let browser = Browser::launch().await;
    let addr = ("BEACON_HTTP_ADDR", format!("127.0.0.1:{}", free_port()));
    let run = |sender: &str| {
        let mut envs = fast("50ms", "150ms");
        envs.extend([addr.clone(), ("BEACON_SENDER", sender.to_owned())]);
        AppProcess::spawn(BEACON.as_ref(), "BEACON", &["all"], &envs)
    };
    let mut first = run("first-run");
    let page = browser.new_page(Viewport::DESKTOP).await;
    page.goto(&format!("{}/", first.base_url())).await;
    wait_view(&page, "messages of the first run", |view| {
        view.state == "live" && view.newest() >= 15
    })
    .await;

    first.kill();
    let second = run("second-run");
    let view = wait_view(&page, "the second run's stream from its start", |view| {
        view.state == "live"
            && !view.messages.is_empty()
            && view
                .messages
                .iter()
                .all(|shown| shown.sender == "second-run")
            && view.seqs().last() == Some(&1)
    })
    .await;
    assert_contiguous(&view);
    assert_counters(&view);
    drop(second);
    assert_eq!(page.exceptions(), Vec::<String>::new(), "script errors");
}

/// A receiver at its client cap refuses the page's stream: the page says
/// it is busy and retries, and once a slot frees it follows the stream
/// from where its history ended, with nothing missing.
#[tokio::test]
async fn the_page_says_busy_at_the_client_cap_and_retries() {
    let browser = Browser::launch().await;
    let mut envs = fast("50ms", "150ms");
    envs.extend([
        ("BEACON_SENDER", SENDER.to_owned()),
        ("BEACON_MAX_CLIENTS", "1".to_owned()),
    ]);
    let app = AppProcess::spawn(BEACON.as_ref(), "BEACON", &["all"], &envs);
    let base = app.base_url().to_owned();
    wait_for_seq(&base, 3).await;
    let holder = SseClient::connect(&format!("{base}/events"), None)
        .await
        .expect("the one slot");

    let page = browser.new_page(Viewport::DESKTOP).await;
    page.goto(&format!("{base}/")).await;
    let view = wait_view(&page, "the indicator to read busy", |view| {
        view.state == "busy"
    })
    .await;
    assert_eq!(view.state_text, "busy, retrying");
    assert!(
        metric(&base, "beacon_clients_refused_total{transport=\"sse\"}").await >= 1.0,
        "refused at the cap"
    );

    drop(holder);
    let view = wait_view(&page, "live once a slot is free", |view| {
        view.state == "live" && view.live() >= 3
    })
    .await;
    assert_contiguous(&view);
    assert_fields(&view);
    assert_counters(&view);
    assert!(view.gaps.is_empty(), "{:?}", view.gaps);
    assert_eq!(page.exceptions(), Vec::<String>::new(), "script errors");
}

/// A broadcaster with a fixed wait: every interval is the same, from the
/// first message on. The summary counts in the singular, then the plural;
/// the histogram is one bar with its value centred under it, not an axis
/// whose two ends read alike. After a reload, the rows loaded with the page
/// say why they have no latency.
#[tokio::test]
async fn the_page_reads_well_with_one_interval_and_after_a_reload() {
    let browser = Browser::launch().await;
    let mut envs = fast("3s", "3s");
    envs.push(("BEACON_SENDER", SENDER.to_owned()));
    let app = AppProcess::spawn(BEACON.as_ref(), "BEACON", &["all"], &envs);
    let page = browser.new_page(Viewport::DESKTOP).await;
    page.goto(&format!("{}/", app.base_url())).await;

    let one = wait_view(&page, "one message, its interval drawn", |view| {
        view.messages.len() == 1 && view.histogram_drawn()
    })
    .await;
    assert_eq!(one.summary, "1 interval · mean 3.00 s");
    assert_one_value(&one, "3.00 s");
    assert_fields(&one);
    page.screenshot(&screenshots().join("one-interval.png"))
        .await;

    let two = wait_view(&page, "two messages, their intervals drawn", |view| {
        view.messages.len() == 2 && view.histogram_drawn()
    })
    .await;
    assert_eq!(two.summary, "2 intervals · mean 3.00 s");
    assert_one_value(&two, "3.00 s");
    assert_fields(&two);

    page.reload().await;
    let reloaded = wait_view(&page, "a live message above the history", |view| {
        view.state == "live" && view.live() >= 1 && view.live() < view.messages.len()
    })
    .await;
    assert_contiguous(&reloaded);
    assert_fields(&reloaded);
    assert_eq!(reloaded.latency_note, LATENCY_NOTE);
    for shown in &reloaded.messages[reloaded.live()..] {
        assert_eq!(
            (shown.latency.as_str(), shown.latency_title.as_str()),
            ("—", UNMEASURED),
            "{shown:?}"
        );
    }
    page.screenshot(&screenshots().join("reloaded.png")).await;
    // The legend fits a phone too.
    page.set_viewport(Viewport::PHONE).await;
    let phone = wait_view(&page, "the phone layout", |view| {
        view.latency_note == LATENCY_NOTE
    })
    .await;
    assert!(!phone.overflows, "no sideways scrolling on a phone");
    page.screenshot(&screenshots().join("reloaded-phone.png"))
        .await;
    assert_eq!(page.exceptions(), Vec::<String>::new(), "script errors");
}

/// Every interval the same: one bar, and `value` once, centred under it.
fn assert_one_value(view: &View, value: &str) {
    assert_eq!(view.bars, 1, "one bar: {view:?}");
    assert_eq!(view.axis, vec![value.to_owned()], "one label: {view:?}");
    let off = view.axis_off_centre.expect("one bar, one label");
    assert!(off < 1.0, "the label {off} px off the bar's middle");
}

/// Intervals that differ: the axis runs from the shortest to the longest,
/// two labels that read differently.
fn assert_histogram_spread(view: &View) {
    let [low, high] = view.axis.as_slice() else {
        panic!("two axis labels: {:?}", view.axis);
    };
    let (low, high) = (
        duration_ms(low).unwrap_or_else(|| panic!("a duration: {low}")),
        duration_ms(high).unwrap_or_else(|| panic!("a duration: {high}")),
    );
    assert!(
        MIN_INTERVAL_MS <= low && low < high,
        "from the shortest to the longest: {:?}",
        view.axis
    );
}

/// Reads the page every 20 ms until `done` holds; panics with the last
/// reading after [`PATIENCE`].
async fn wait_view(page: &Page, what: &str, done: impl Fn(&View) -> bool) -> View {
    let give_up = tokio::time::Instant::now() + PATIENCE;
    loop {
        let view: View = serde_json::from_value(page.eval(READ_PAGE).await).unwrap();
        if done(&view) {
            return view;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out after {PATIENCE:?} waiting for {what}; the page shows {view:#?}\nscript errors: {:?}",
            page.exceptions()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Newest first, each sequence once, none missing except where a gap row
/// stands for the missing ones, between its neighbours.
fn assert_contiguous(view: &View) {
    let seqs = view.seqs();
    assert!(!seqs.is_empty(), "no messages shown");
    let unique: HashSet<u64> = seqs.iter().copied().collect();
    assert_eq!(unique.len(), seqs.len(), "a sequence shown twice: {seqs:?}");
    for gap in &view.gaps {
        assert!(gap.from <= gap.to, "{gap:?}");
        assert_eq!(
            gap.above,
            gap.to + 1,
            "the gap row sits in its place: {gap:?}"
        );
        assert_eq!(
            gap.below + 1,
            gap.from,
            "the gap row sits in its place: {gap:?}"
        );
    }
    let missing = |seq: u64| {
        view.gaps
            .iter()
            .any(|gap| (gap.from..=gap.to).contains(&seq))
    };
    let expected: Vec<u64> = (seqs[seqs.len() - 1]..=seqs[0])
        .rev()
        .filter(|&seq| !missing(seq))
        .collect();
    assert_eq!(seqs, expected, "contiguous, newest first");
}

/// The header counts the messages shown and names the newest.
fn assert_counters(view: &View) {
    assert_eq!(view.count, view.messages.len().to_string(), "#count");
    assert_eq!(view.last_seq, view.newest().to_string(), "#last-seq");
}

/// Every message shows its text, sender, sequence, send time and Δt; those
/// that arrived live (all above those loaded with the page) their latency.
fn assert_fields(view: &View) {
    let live = view.live();
    for (index, shown) in view.messages.iter().enumerate() {
        assert_eq!(shown.text, "Hello world", "{shown:?}");
        assert_eq!(shown.sender, SENDER, "{shown:?}");
        assert_eq!(shown.seq_text, shown.seq.to_string(), "{shown:?}");
        assert!(
            shown.sent.ends_with('Z') && shown.sent.len() == "2026-11-25T10:15:30.123Z".len(),
            "an RFC 3339 send time: {shown:?}"
        );
        assert!(is_clock_time(&shown.sent_text), "HH:MM:SS.mmm: {shown:?}");
        let oldest = index + 1 == view.messages.len();
        let after_gap = view.gaps.iter().any(|gap| gap.to + 1 == shown.seq);
        if after_gap {
            assert_eq!(shown.dt, "—", "no Δt across a gap: {shown:?}");
        } else if !oldest {
            let dt = duration_ms(&shown.dt).unwrap_or_else(|| panic!("a Δt: {shown:?}"));
            assert!(
                (MIN_INTERVAL_MS..30_000.0).contains(&dt),
                "Δt within the broadcaster's bounds: {shown:?}"
            );
        }
        if index < live {
            let latency =
                duration_ms(&shown.latency).unwrap_or_else(|| panic!("a latency: {shown:?}"));
            assert!(
                (0.0..10_000.0).contains(&latency),
                "a plausible latency: {shown:?}"
            );
            assert_eq!(shown.latency_title, "", "{shown:?}");
        } else {
            assert_eq!(shown.latency, "—", "history shows no latency: {shown:?}");
            assert_eq!(shown.latency_title, UNMEASURED, "and says why: {shown:?}");
        }
    }
    let legend = if live < view.messages.len() {
        LATENCY_NOTE
    } else {
        ""
    };
    assert_eq!(
        view.latency_note, legend,
        "the legend is shown while rows without a latency are"
    );
}

/// `12 ms` or `1.25 s` in milliseconds.
fn duration_ms(text: &str) -> Option<f64> {
    if let Some(ms) = text.strip_suffix(" ms") {
        return ms.parse().ok();
    }
    text.strip_suffix(" s")?
        .parse::<f64>()
        .ok()
        .map(|s| s * 1000.0)
}

/// `HH:MM:SS.mmm`.
fn is_clock_time(text: &str) -> bool {
    text.len() == 12
        && text.char_indices().all(|(i, c)| match i {
            2 | 5 => c == ':',
            8 => c == '.',
            _ => c.is_ascii_digit(),
        })
}

/// `target/e2e/`, next to the build.
fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("e2e")
}
