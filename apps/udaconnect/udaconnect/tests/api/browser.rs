//! The page in a real browser: headless Chromium on the API, with the
//! edge, the writer, the meetings process, PostgreSQL and nats-server all
//! real and all started from the built binary. Persons are created through
//! the page, the simulator walks two of them around one venue, and what is
//! checked is what a person sees: the meetings the API answers, per person
//! met with the time together, for the dates asked; a point per location
//! and per meeting on the plot; a message, not a blank page, when the API
//! is gone. The other tests run the embedded app in this process, as
//! `cargo run` serves it: meetings made while the page is open appearing
//! in it, the table fitting its column at every width on the demo's
//! meetings, a person added through the API listed and counted at once,
//! and the demo feed's steady rate in the header. Screenshots go to
//! `target/e2e/`.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use chrono::{DateTime, FixedOffset};
use serde_json::{Value, json};
use testkit::{
    AppProcess, Browser, NatsServer, Page, PostgresServer, Viewport, eventually, free_port,
};

use super::{
    helpers::{PATIENCE, UDACONNECT, run, spawn_app},
    meetings::{person, walk_together},
};

/// How soon a meeting made while the page is open shows in it: the
/// meetings are read for the live streams every 500 ms, and folded in as
/// soon as they are stored; the rest is room for a loaded machine.
const LIVE: Duration = Duration::from_secs(10);

/// How long the embedded demo's meetings may take to be folded in as the
/// app starts: tens of seconds of a debug build on a busy machine.
const DEMO_FOLDED: Duration = Duration::from_secs(120);

/// `udaconnect <target>` as an operator starts it.
fn start(target: &str, envs: &[(&str, String)]) -> AppProcess {
    // The page as the original's open API serves it.
    let mut all = vec![
        ("RUST_LOG", "info".to_owned()),
        ("UDACONNECT_OPEN_API", "true".to_owned()),
    ];
    all.extend(envs.iter().cloned());
    AppProcess::spawn(UDACONNECT.as_ref(), "UDACONNECT", &[target], &all)
}

/// `udaconnect simulate` walking two attendees, from `first` on, around one
/// venue for `duration` (with `seed` if given); its summary.
async fn walk(
    api_url: &str,
    grpc_url: &str,
    first: &str,
    duration: &str,
    seed: Option<&str>,
) -> Value {
    let mut args = vec![
        "simulate",
        "--api-url",
        api_url,
        "--grpc-url",
        grpc_url,
        "--first-person",
        first,
        "--attendees",
        "2",
        "--venues",
        "1",
        "--rate",
        "60",
        "--batch",
        "10",
        "--duration",
        duration,
    ];
    if let Some(seed) = seed {
        args.extend(["--seed", seed]);
    }
    let (code, stdout, stderr) = run(&args, &[("LOG_FORMAT", "json")]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("SUMMARY "))
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_else(|| panic!("a SUMMARY line in {stdout}"))
}

async fn get(url: &str) -> Value {
    let response = reqwest::get(url).await.expect("request sent");
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.json().await.expect("JSON")
}

async fn ready(base: &str) {
    eventually(&format!("{base}/readyz"), PATIENCE, || async {
        let response = reqwest::get(format!("{base}/readyz")).await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
}

/// The table's rows, one per person met, as shown: person id and each
/// cell's text.
const READ_CONTACTS: &str = r#"[...document.querySelectorAll('#contacts tbody tr.person')].map((tr) => ({
  person: Number(tr.dataset.person),
  cells: [...tr.cells].map((td) => td.textContent),
}))"#;

/// The dates asked, as the page asks the API.
const READ_QUERY: &str = r#"new URLSearchParams({
  start: document.getElementById('start').value,
  end: document.getElementById('end').value,
}).toString()"#;

fn instant(value: &Value) -> DateTime<FixedOffset> {
    value
        .as_str()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .unwrap_or_else(|| panic!("an RFC 3339 time: {value}"))
}

/// The API's `meetings` (most recent first) per other person: their total
/// time together (seconds, added up in the API's order), how many, the
/// last one's end and the closest distance; most time together first,
/// then the most recently met, then by id.
fn per_person(meetings: &[Value]) -> Vec<Value> {
    let mut people: Vec<(i64, Value, f64, u64, Value, f64)> = Vec::new();
    for meeting in meetings {
        let id = meeting["with"]["id"].as_i64().expect("an id");
        let seconds = meeting["duration_s"].as_f64().expect("a duration");
        let closest = meeting["closest"]["distance_m"].as_f64().expect("metres");
        match people.iter_mut().find(|p| p.0 == id) {
            Some(person) => {
                person.2 += seconds;
                person.3 += 1;
                if instant(&meeting["end"]) > instant(&person.4) {
                    person.4 = meeting["end"].clone();
                }
                person.5 = person.5.min(closest);
            }
            None => people.push((
                id,
                meeting["with"].clone(),
                seconds,
                1,
                meeting["end"].clone(),
                closest,
            )),
        }
    }
    people.sort_by(|a, b| {
        b.2.total_cmp(&a.2)
            .then_with(|| instant(&b.4).cmp(&instant(&a.4)))
            .then_with(|| a.0.cmp(&b.0))
    });
    people
        .into_iter()
        .map(|(_, with, seconds, count, last, closest)| {
            json!({"person": with, "seconds": seconds, "count": count, "last": last, "closest": closest})
        })
        .collect()
}

/// What the table must show for the API's `meetings`: a row per person
/// met, in order, with the times and distances as the page writes them
/// (its own formatters, so the test checks values, not a locale).
async fn expected_rows(page: &Page, meetings: &[Value]) -> Value {
    let people = serde_json::to_string(&per_person(meetings)).expect("JSON");
    page.eval(&format!(
        r#"({people}).map((p) => ({{
            person: p.person.id,
            cells: [`${{p.person.first_name}} ${{p.person.last_name}}`, p.person.company_name,
                    formatDuration(p.seconds), numberFormat.format(p.count), formatTime(p.last),
                    formatMetres(p.closest)],
        }}))"#
    ))
    .await
}

/// Every item under `key` of a paged v2 answer at `url`, walking its
/// `next_cursor`.
async fn every_page(url: &str, key: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = get(&format!("{url}{cursor}")).await;
        items.extend(page[key].as_array().expect("a list").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return items,
        }
    }
}

/// Every meeting the API answers for `query`.
async fn api_meetings(api: &str, person: i64, query: &str) -> Vec<Value> {
    every_page(
        &format!("{api}/api/v2/persons/{person}/meetings?{query}&limit=1000"),
        "meetings",
    )
    .await
}

/// Waits until the page shows for its current dates exactly what the API
/// answers for them; returns the API's meetings.
async fn shows_what_the_api_answers(page: &Page, api: &str, person: i64, what: &str) -> Vec<Value> {
    let give_up = tokio::time::Instant::now() + PATIENCE;
    loop {
        let query = page.eval(READ_QUERY).await;
        let query = query.as_str().expect("a query string").to_owned();
        let meetings = api_meetings(api, person, &query).await;
        let expected = expected_rows(page, &meetings).await;
        let shown = page.eval(READ_CONTACTS).await;
        if shown == expected {
            return meetings;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "{what}: the page shows {shown}\nthe API answers {expected} for {query}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts recording which persons' rows stand out as just changed
/// (`fresh`), however briefly: read with [`FRESH_SEEN`].
const WATCH_FRESH: &str = r#"(() => {
  window.freshSeen = new Set();
  const note = () => {
    for (const row of document.querySelectorAll('#contacts tr.person.fresh')) window.freshSeen.add(Number(row.dataset.person));
  };
  new MutationObserver(note).observe(document.getElementById('contacts'), { subtree: true, childList: true, attributes: true, attributeFilter: ['class'] });
  note();
})()"#;

/// The persons whose rows stood out since [`WATCH_FRESH`], in id order.
const FRESH_SEEN: &str = "[...window.freshSeen].sort((a, b) => a - b)";

/// Submits the page's "add a person" form with these values.
async fn submit_person(page: &Page, first: &str, last: &str, company: &str) {
    let fields = json!({"first_name": first, "last_name": last, "company_name": company});
    page.eval(&format!(
        r#"(() => {{
            document.getElementById('create').open = true;
            const form = document.getElementById('create-form');
            for (const [name, value] of Object.entries({fields})) form.elements[name].value = value;
            form.requestSubmit();
        }})()"#
    ))
    .await;
}

/// Sets a control and tells the page it changed, as a person would.
async fn set_control(page: &Page, id: &str, value: &str) {
    page.eval(&format!(
        r#"(() => {{
            const control = document.getElementById({id});
            control.value = {value};
            control.dispatchEvent(new Event('change', {{ bubbles: true }}));
        }})()"#,
        id = json!(id),
        value = json!(value)
    ))
    .await;
}

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("e2e")
}

#[tokio::test]
async fn the_page_shows_whom_a_person_met_as_the_simulator_walks_them() {
    // First, so that a missing Chromium fails the test at once, saying how
    // to install it.
    let browser = Browser::launch().await;
    let (nats, pg) = tokio::task::spawn_blocking(|| (NatsServer::start(), PostgresServer::start()))
        .await
        .expect("servers start");
    let database = ("DATABASE_URL", pg.create_database("page"));
    let broker = ("NATS_URL", nats.url());
    let grpc_port = free_port();
    let mut api = start("api", std::slice::from_ref(&database));
    let ingest = start(
        "ingest",
        &[
            database.clone(),
            broker.clone(),
            ("UDACONNECT_GRPC_ADDR", format!("127.0.0.1:{grpc_port}")),
        ],
    );
    let writer = start("writer", &[database.clone(), broker.clone()]);
    let meetings = start("meetings", &[database.clone(), broker.clone()]);
    let base = api.base_url().to_owned();
    for process in [&api, &ingest, &writer, &meetings] {
        ready(process.base_url()).await;
    }

    let page = browser.new_page(Viewport::DESKTOP).await;
    page.goto(&format!("{base}/")).await;
    page.wait_for(
        "the live header",
        PATIENCE,
        "document.getElementById('live-state').dataset.state === 'live' && document.getElementById('locations-total').textContent === '0'",
    )
    .await;

    // Adding people through the page, mistakes shown beside their field:
    // one the page catches, one only the API does.
    submit_person(&page, "", "Lovelace", "Analytical Engines").await;
    page.wait_for(
        "the page's own check",
        PATIENCE,
        "document.querySelector('[data-for=first_name]').textContent === 'Required.'",
    )
    .await;
    submit_person(&page, "Ada", "Lovelace", "Analytical\u{7} Engines").await;
    let said = page
        .wait_for(
            "the API's check",
            PATIENCE,
            "document.querySelector('[data-for=company_name]').textContent || null",
        )
        .await;
    assert!(
        said.as_str().is_some_and(|text| text.contains("control")),
        "{said}"
    );
    for (first, last, company) in [
        ("Ada", "Lovelace", "Analytical Engines"),
        ("Grace", "Hopper", "US Navy"),
    ] {
        submit_person(&page, first, last, company).await;
        page.wait_for(
            &format!("{first} added"),
            PATIENCE,
            &format!(
                "document.getElementById('create-status').textContent === 'Added {first} {last}.'"
            ),
        )
        .await;
    }
    let found = get(&format!("{base}/api/v2/persons?q=lovelace")).await;
    let ada = found["persons"][0]["id"].as_i64().expect("Ada's id");
    let found = get(&format!("{base}/api/v2/persons?q=hopper")).await;
    assert_eq!(
        found["persons"][0]["id"].as_i64(),
        Some(ada + 1),
        "consecutive ids"
    );
    // The list is read again after the status line says "Added": wait for
    // that reload, not only for the status.
    page.wait_for(
        "the list shows them",
        PATIENCE,
        "JSON.stringify([...document.querySelectorAll('#person-list .name')]\
         .map((n) => n.textContent)) === '[\"Grace Hopper\",\"Ada Lovelace\"]'",
    )
    .await;

    // The simulator walks the two around a single venue: they meet.
    let ada_text = ada.to_string();
    let api_url = base.clone();
    let grpc_url = format!("http://127.0.0.1:{grpc_port}");
    let summary = walk(&api_url, &grpc_url, &ada_text, "4s", None).await;
    let accepted = summary["accepted"].as_u64().expect("a count");
    assert!(accepted > 50, "{summary}");
    eventually("every location stored", PATIENCE, || async {
        let stats = get(&format!("{base}/api/v2/stats")).await;
        (stats["locations"].as_u64() == Some(accepted)).then_some(())
    })
    .await;
    // The header follows the live stream, a second at a time; on failure,
    // what it showed and the stream's state say which side stopped.
    let header = "[document.getElementById('locations-total').textContent, \
                  document.getElementById('live-state').textContent]";
    let expected = page.eval(&format!("numberFormat.format({accepted})")).await;
    let give_up = tokio::time::Instant::now() + PATIENCE;
    loop {
        let shown = page.eval(header).await;
        if shown[0] == expected {
            break;
        }
        if tokio::time::Instant::now() >= give_up {
            let stats = get(&format!("{base}/api/v2/stats")).await;
            let log = api.output();
            panic!(
                "after {PATIENCE:?} the live header shows {shown} (count, stream), not {expected}; \
                 /api/v2/stats answers {stats}; the api logged:\n{}",
                log[log.len().saturating_sub(20)..].join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Ada met Grace: the page shows what the API answers.
    page.eval(&format!(
        "document.querySelector('#person-list li[data-id=\"{ada}\"] button').click()"
    ))
    .await;
    page.wait_for(
        "the meetings",
        PATIENCE,
        "document.querySelectorAll('#contacts tbody tr.person').length > 0",
    )
    .await;
    let today = shows_what_the_api_answers(&page, &base, ada, "the default dates").await;
    assert!(
        !today.is_empty()
            && today
                .iter()
                .all(|m| m["with"]["id"].as_i64() == Some(ada + 1)),
        "Grace, and only her: {today:?}"
    );
    let query = page.eval(READ_QUERY).await;
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("start=%Y-%m-%d")
        .to_string();
    assert!(
        query.as_str().is_some_and(|q| q.starts_with(&yesterday)),
        "someone seen today: their last day by default, {query}"
    );
    let together = |meetings: &[Value]| -> f64 {
        meetings
            .iter()
            .map(|m| m["duration_s"].as_f64().unwrap_or(0.0))
            .sum()
    };

    // Live: they walk on together, and the meeting grows (or another
    // starts) on the open page, its row standing out for a moment.
    page.eval(WATCH_FRESH).await;
    walk(&api_url, &grpc_url, &ada_text, "1s", Some("2")).await;
    page.wait_for(
        "Grace's row standing out",
        PATIENCE,
        &format!("JSON.stringify({FRESH_SEEN}) === '[{}]'", ada + 1),
    )
    .await;
    let later = shows_what_the_api_answers(&page, &base, ada, "after they walked on").await;
    assert!(
        together(&later) > together(&today),
        "more time together: {later:?}"
    );

    // Picking Grace opens her meetings: when, how long, where.
    page.eval("document.querySelector('#contacts tbody tr.person').click()")
        .await;
    let listed = page
        .wait_for(
            "Grace's meetings",
            PATIENCE,
            "(() => { const items = document.querySelectorAll('#contacts tr.meetings li'); \
             return items.length > 0 ? [...items].map((li) => [Number(li.dataset.meeting), li.querySelector('.duration').textContent]) : null; })()",
        )
        .await;
    let mut expected = Vec::new();
    for meeting in &later {
        let duration = page
            .eval(&format!("formatDuration({})", meeting["duration_s"]))
            .await;
        expected.push(json!([meeting["id"], duration]));
    }
    assert_eq!(listed, json!(expected), "most recent first");

    // Days when they did not meet: nobody.
    set_control(&page, "start", "2020-01-01").await;
    set_control(&page, "end", "2020-01-02").await;
    page.wait_for(
        "nobody met",
        PATIENCE,
        "!document.getElementById('contacts-empty').hidden && document.querySelectorAll('#contacts tbody tr').length === 0",
    )
    .await;
    let today_range = query.as_str().expect("a query").to_owned();
    let range: Vec<&str> = today_range
        .split('&')
        .filter_map(|p| p.split_once('=').map(|(_, v)| v))
        .collect();
    set_control(&page, "start", range[0]).await;
    set_control(&page, "end", range[1]).await;
    shows_what_the_api_answers(&page, &base, ada, "the last day again").await;

    // A point per location of Ada's in the range, and one per meeting.
    let own = every_page(
        &format!("{base}/api/v2/persons/{ada}/locations?{today_range}&limit=1000"),
        "locations",
    )
    .await
    .len();
    assert!(own > 10, "{own} locations of Ada's");
    let plotted = page
        .wait_for(
            "the plot",
            PATIENCE,
            &format!("(() => {{ const own = document.querySelectorAll('#plot circle[data-kind=own]').length; return own === {own} ? {{ own, met: document.querySelectorAll('#plot circle[data-kind=met]').length }} : null; }})()"),
        )
        .await;
    let met = api_meetings(&base, ada, &today_range).await.len();
    assert_eq!(plotted["met"], json!(met), "a point per meeting: {plotted}");
    assert!(page.exceptions().is_empty(), "{:?}", page.exceptions());

    let shots = screenshots();
    page.screenshot(&shots.join("udaconnect.png")).await;
    page.set_color_scheme("dark").await;
    page.screenshot(&shots.join("udaconnect-dark.png")).await;
    page.set_color_scheme("light").await;
    page.set_viewport(Viewport::PHONE).await;
    let overflows = page
        .eval("document.documentElement.scrollWidth > document.documentElement.clientWidth")
        .await;
    assert_eq!(overflows, json!(false), "nothing wider than a phone");
    page.screenshot(&shots.join("udaconnect-phone.png")).await;
    page.set_viewport(Viewport::DESKTOP).await;

    // The API gone: a message, not a blank page.
    api.kill();
    set_control(&page, "start", range[0]).await;
    let banner = page
        .wait_for(
            "a message that the API is unreachable",
            PATIENCE,
            "(() => { const e = document.getElementById('error'); return !e.hidden && e.textContent; })()",
        )
        .await;
    assert!(
        banner
            .as_str()
            .is_some_and(|text| text.contains("cannot be reached")),
        "{banner}"
    );
    page.wait_for(
        "the live header noticing",
        PATIENCE,
        "document.getElementById('live-state').dataset.state === 'reconnecting'",
    )
    .await;
    page.screenshot(&shots.join("udaconnect-api-down.png"))
        .await;

    // The API back where it was: the open page takes up the live header
    // again by itself.
    let addr = base
        .strip_prefix("http://")
        .map(|addr| addr.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| panic!("{base} is an http:// URL"));
    let api = start("api", &[database.clone(), ("UDACONNECT_HTTP_ADDR", addr)]);
    ready(api.base_url()).await;
    page.wait_for(
        "the live header back",
        PATIENCE,
        "document.getElementById('live-state').dataset.state === 'live'",
    )
    .await;
    assert!(page.exceptions().is_empty(), "{:?}", page.exceptions());
    drop((ingest, writer, meetings));
}

/// The table's width against its box's, where its Closest header
/// is in the window once scrolled to, and whether that is what shows there
/// (not hidden under something else).
const TABLE_FIT: &str = r#"(() => {
  const table = document.getElementById('contacts');
  const header = table.querySelector('th.closest');
  header.scrollIntoView({ block: 'center', inline: 'nearest' });
  const box = header.getBoundingClientRect();
  const seen = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
  return {
    table: table.scrollWidth,
    column: table.parentElement.clientWidth,
    scrolled: table.parentElement.scrollLeft,
    page: document.documentElement.scrollWidth,
    window: [window.innerWidth, window.innerHeight],
    closest: [box.left, box.top, box.right, box.bottom],
    shown: seen !== null && header.contains(seen),
  };
})()"#;

/// Asserts that the table fits its column and its Closest header
/// is in the window, at the page's current size.
async fn table_fits(page: &Page, what: &str) {
    let fit = page.eval(TABLE_FIT).await;
    let number = |value: &Value| value.as_f64().unwrap_or(f64::NAN);
    let (width, height) = (number(&fit["window"][0]), number(&fit["window"][1]));
    assert!(
        number(&fit["table"]) <= number(&fit["column"]),
        "{what}: the table is wider than its column: {fit}"
    );
    assert!(
        number(&fit["page"]) <= width,
        "{what}: the page is wider than the window: {fit}"
    );
    let closest: Vec<f64> = (0..4).map(|i| number(&fit["closest"][i])).collect();
    assert!(
        closest[2] > closest[0]
            && closest[0] >= 0.0
            && closest[1] >= 0.0
            && closest[2] <= width
            && closest[3] <= height
            && fit["shown"] == json!(true)
            && fit["scrolled"] == json!(0),
        "{what}: the Closest header is not in the window: {fit}"
    );
}

#[tokio::test]
async fn the_meetings_table_fits_its_column_at_every_width() {
    let browser = Browser::launch().await;
    let app = spawn_app(&["--demo-meetings", "true"]).await;
    // A day of the demo, where attendee 1 met many, some of them from
    // companies with long names; folded in as the app starts.
    let day = "start=2020-06-08&end=2020-06-09";
    eventually("the demo's first day folded in", DEMO_FOLDED, || async {
        let met = every_page(
            &format!("{}/api/v2/persons/1/meetings?{day}&limit=1000", app.base),
            "meetings",
        )
        .await;
        (per_person(&met).len() >= 10).then_some(())
    })
    .await;
    let page = browser.new_page(Viewport::DESKTOP).await;
    page.goto(&format!("{}/#person=1", app.base)).await;
    page.wait_for(
        "the person shown",
        PATIENCE,
        "!document.getElementById('person-view').hidden && document.getElementById('start').value !== ''",
    )
    .await;
    set_control(&page, "start", "2020-06-08").await;
    set_control(&page, "end", "2020-06-09").await;
    page.wait_for(
        "the meetings",
        PATIENCE,
        "document.querySelectorAll('#contacts tbody tr.person').length >= 10 \
         && document.getElementById('end').value === '2020-06-09'",
    )
    .await;
    // One person's meetings open below their row.
    page.eval("document.querySelector('#contacts tbody tr.person').click()")
        .await;
    page.wait_for(
        "their meetings",
        PATIENCE,
        "document.querySelectorAll('#contacts tr.meetings li').length > 0",
    )
    .await;
    let companies = page
        .eval("Math.max(...[...document.querySelectorAll('#contacts td.company')].map((td) => td.textContent.length))")
        .await;
    assert!(
        companies.as_u64().is_some_and(|longest| longest >= 20),
        "a long company name among those met: {companies}"
    );
    table_fits(&page, "1280 x 800").await;
    page.screenshot(&screenshots().join("udaconnect-table-1280.png"))
        .await;
    for (width, height, mobile) in [(1024, 768, false), (900, 800, false), (700, 900, false)] {
        page.set_viewport(Viewport {
            width,
            height,
            scale: 1.0,
            mobile,
        })
        .await;
        table_fits(&page, &format!("{width} x {height}")).await;
    }
    page.set_viewport(Viewport::PHONE).await;
    table_fits(&page, "a phone").await;
    page.screenshot(&screenshots().join("udaconnect-table-phone.png"))
        .await;
    assert!(page.exceptions().is_empty(), "{:?}", page.exceptions());
    app.stop().await;
}

#[tokio::test]
async fn meetings_made_while_the_page_is_open_appear_in_it() {
    let browser = Browser::launch().await;
    let app = spawn_app(&[]).await;
    let (ada, grace, alan) = (
        person(&app, "Ada").await,
        person(&app, "Grace").await,
        person(&app, "Alan").await,
    );
    // Ada and Grace side by side from 09:00 to 09:05: one meeting.
    walk_together(&app, ada, grace, 0, 16).await;
    eventually("Ada's meeting with Grace", PATIENCE, || async {
        let (status, page) = app.get(&format!("/api/v2/persons/{ada}/meetings")).await;
        (status == 200 && page["meetings"][0]["end"] == "2022-05-02T09:05:00Z").then_some(())
    })
    .await;

    let page = browser.new_page(Viewport::DESKTOP).await;
    page.goto(&format!("{}/#person={ada}", app.base)).await;
    // Not seen lately: the 30 days up to the last meeting.
    page.wait_for(
        "the dates of Ada's last meeting",
        PATIENCE,
        "document.getElementById('start').value === '2022-04-03' && document.getElementById('end').value === '2022-05-03'",
    )
    .await;
    let grace_row = page
        .eval(&format!(
            "[{{ person: {grace}, cells: ['Grace Live', 'Co', formatDuration(300), numberFormat.format(1), formatTime('2022-05-02T09:05:00Z'), formatMetres(1.112)] }}]"
        ))
        .await;
    let shown = page
        .wait_for(
            "Grace met for 5 minutes",
            PATIENCE,
            &format!("(() => {{ const shown = {READ_CONTACTS}; return shown.length > 0 ? shown : null; }})()"),
        )
        .await;
    assert_eq!(shown, grace_row);
    assert_eq!(page.eval("formatDuration(300)").await, json!("5 min"));
    shows_what_the_api_answers(&page, &app.base, ada, "Ada's meetings").await;

    // Picking Grace: her meeting, when and how long.
    page.eval(&format!(
        "document.querySelector('#contacts tr.person[data-person=\"{grace}\"]').click()"
    ))
    .await;
    let listed = page
        .wait_for(
            "Grace's meeting",
            PATIENCE,
            "(() => { const li = document.querySelector('#contacts tr.meetings li'); return li && [li.querySelector('.when').textContent, li.querySelector('.duration').textContent]; })()",
        )
        .await;
    let expected = page
        .eval("[formatPeriod('2022-05-02T09:00:00Z', '2022-05-02T09:05:00Z') + ' UTC', formatDuration(300)]")
        .await;
    assert_eq!(listed, expected);

    // While the page is open, Ada meets Alan at 09:30 for a minute: a new
    // row, standing out, without reloading the page.
    page.eval("window.stillHere = true").await;
    page.eval(WATCH_FRESH).await;
    let posted = tokio::time::Instant::now();
    walk_together(&app, ada, alan, 30, 4).await;
    page.wait_for(
        "Alan's row, standing out",
        LIVE,
        &format!("window.freshSeen.has({alan})"),
    )
    .await;
    let took = posted.elapsed();
    let order = page
        .eval("[...document.querySelectorAll('#contacts tr.person')].map((tr) => Number(tr.dataset.person))")
        .await;
    assert_eq!(order, json!([grace, alan]), "most time together first");
    assert_eq!(page.eval("window.stillHere === true").await, json!(true));
    shows_what_the_api_answers(&page, &app.base, ada, "with Alan").await;

    // The meeting with Grace grows to 09:06: her open list says so.
    walk_together(&app, ada, grace, 5, 4).await;
    page.wait_for(
        "Grace's meeting grown, standing out",
        LIVE,
        "(() => { const li = document.querySelector('#contacts tr.meetings li.fresh'); return li !== null && li.querySelector('.duration').textContent === formatDuration(360); })()",
    )
    .await;
    assert_eq!(
        page.eval(&format!("document.querySelectorAll('#plot circle[data-kind=met][data-person=\"{grace}\"]').length")).await,
        json!(1),
        "the grown meeting replaces the one it was"
    );
    assert!(
        page.eval(&format!("document.querySelector('#plot circle[data-kind=met][data-person=\"{grace}\"]').classList.contains('highlight')")).await == json!(true),
        "Grace picked, her meeting point stands out"
    );
    shows_what_the_api_answers(&page, &app.base, ada, "the meeting grown").await;
    assert!(page.exceptions().is_empty(), "{:?}", page.exceptions());
    page.screenshot(&screenshots().join("udaconnect-meetings-live.png"))
        .await;
    eprintln!("a new meeting shown {took:?} after its locations were posted");
    app.stop().await;
}

/// The people listed (their ids, in order), whether there are more to
/// list, and the count shown.
const READ_PEOPLE: &str = r#"({
  ids: [...document.querySelectorAll('#person-list li')].map((li) => Number(li.dataset.id)),
  more: !document.getElementById('people-more').hidden,
  count: document.getElementById('people-count').textContent,
})"#;

/// Types `text` into the people search, as a person would.
async fn search_people(page: &Page, text: &str) {
    page.eval(&format!(
        r#"(() => {{
            const search = document.getElementById('search');
            search.value = {text};
            search.dispatchEvent(new Event('input', {{ bubbles: true }}));
        }})()"#,
        text = json!(text)
    ))
    .await;
}

#[tokio::test]
async fn a_person_added_through_the_api_is_listed_and_counted_at_once() {
    let browser = Browser::launch().await;
    let app = spawn_app(&[]).await;
    let (_, stats) = app.get("/api/v2/stats").await;
    let everyone = stats["persons"].as_u64().expect("a count");
    let page = browser.new_page(Viewport::DESKTOP).await;
    page.goto(&format!("{}/", app.base)).await;
    // Newest first, everyone counted (not "50+").
    let listed = page
        .wait_for(
            "the people and their count",
            PATIENCE,
            &format!(
                "(() => {{ const shown = {READ_PEOPLE}; \
                 return shown.ids.length === 50 && shown.count === numberFormat.format({everyone}) ? shown : null; }})()"
            ),
        )
        .await;
    let ids: Vec<u64> = serde_json::from_value(listed["ids"].clone()).expect("ids");
    assert_eq!(ids[0], everyone, "the newest first: {listed}");
    assert!(ids.windows(2).all(|pair| pair[0] > pair[1]), "{listed}");

    // Someone else adds a person while the page is open.
    let (status, person) = app
        .post(
            "/api/v2/persons",
            &json!({"first_name": "Zelda", "last_name": "Quartermain", "company_name": "Late Arrivals"}),
        )
        .await;
    assert_eq!(status, 201, "{person}");
    let id = person["id"].as_u64().expect("an id");
    let listed = page
        .wait_for(
            "the new person on top, counted",
            PATIENCE,
            &format!(
                "(() => {{ const shown = {READ_PEOPLE}; \
                 return shown.ids[0] === {id} && shown.count === numberFormat.format({}) ? shown : null; }})()",
                everyone + 1
            ),
        )
        .await;
    assert_eq!(listed["ids"].as_array().map(Vec::len), Some(51), "{listed}");
    let name = page
        .eval("document.querySelector('#person-list li .name').textContent")
        .await;
    assert_eq!(name, json!("Zelda Quartermain"));

    // Found by a search, alone, and counted.
    search_people(&page, "quartermain").await;
    page.wait_for(
        "the search's answer",
        PATIENCE,
        &format!(
            "(() => {{ const shown = {READ_PEOPLE}; \
             return JSON.stringify(shown.ids) === '[{id}]' && shown.count === '1' && !shown.more; }})()"
        ),
    )
    .await;

    // A search that finds more than a page: "more than" those listed
    // until every one is, then how many.
    search_people(&page, "a").await;
    let found = every_page(
        &format!("{}/api/v2/persons?q=a&limit=1000", app.base),
        "persons",
    )
    .await
    .len();
    assert!(found > 100, "{found} persons with an a");
    page.wait_for(
        "more than a page found",
        PATIENCE,
        &format!(
            "(() => {{ const shown = {READ_PEOPLE}; \
             return shown.ids.length === 50 && shown.more && shown.count === 'more than ' + numberFormat.format(50); }})()"
        ),
    )
    .await;
    let give_up = tokio::time::Instant::now() + PATIENCE;
    loop {
        let shown = page.eval(READ_PEOPLE).await;
        if shown["more"] == json!(false) {
            assert_eq!(
                shown["ids"].as_array().map(Vec::len),
                Some(found),
                "{shown}"
            );
            let count = page.eval(&format!("numberFormat.format({found})")).await;
            assert_eq!(shown["count"], count, "{shown}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "every match listed within {PATIENCE:?}: {shown}"
        );
        page.eval("document.getElementById('people-more').click()")
            .await;
        page.wait_for(
            "the next page",
            PATIENCE,
            &format!(
                "document.querySelectorAll('#person-list li').length > {}",
                shown["ids"].as_array().map_or(0, Vec::len)
            ),
        )
        .await;
    }
    assert!(page.exceptions().is_empty(), "{:?}", page.exceptions());
    app.stop().await;
}

/// Whether the header's rate reads from `low` to `high` locations a
/// second, as the page writes rates (its own formatter, whatever the
/// locale).
fn rate_between(low: f64, high: f64) -> String {
    format!(
        "(() => {{ const shown = document.getElementById('rate').textContent; \
         for (let tenths = {}; tenths <= {}; tenths++) if (formatRate(tenths / 10) === shown) return shown; \
         return null; }})()",
        (low * 10.0).round(),
        (high * 10.0).round()
    )
}

#[tokio::test]
async fn the_demo_feed_shows_a_steady_rate_in_the_header() {
    let browser = Browser::launch().await;
    let app = spawn_app(&["--demo-feed", "5"]).await;
    let page = browser.new_page(Viewport::DESKTOP).await;
    page.goto(&format!("{}/", app.base)).await;
    page.wait_for("five a second shown", PATIENCE, &rate_between(4.5, 5.5))
        .await;
    // Every second after, the count grows and the rate stays near five:
    // never 0 between batches, never twice the rate.
    let total = "document.getElementById('locations-total').textContent";
    let mut counted = page.eval(total).await;
    for second in 0..8 {
        counted = page
            .wait_for(
                "the next count",
                PATIENCE,
                &format!(
                    "(() => {{ const now = {total}; return now !== {counted} ? now : null; }})()"
                ),
            )
            .await;
        let rate = page
            .eval("document.getElementById('rate').textContent")
            .await;
        let steady = page.eval(&rate_between(4.5, 5.5)).await;
        assert_ne!(
            steady,
            Value::Null,
            "{rate} locations/s shown {second} s on"
        );
    }
    assert!(page.exceptions().is_empty(), "{:?}", page.exceptions());
    app.stop().await;
}
