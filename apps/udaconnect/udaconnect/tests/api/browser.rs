//! The page in a real browser: headless Chromium on the API, with the
//! edge, the writer, PostgreSQL and nats-server all real and all started
//! from the built binary. Persons are created through the page, the
//! simulator walks two of them around one venue, and what is checked is
//! what a person sees: the contacts the API answers, with its counts and
//! times, for each setting of the controls; a point per location on the
//! plot; a message, not a blank page, when the API is gone. The other
//! tests run the embedded demo in this process, as `cargo run` serves it:
//! the contacts table fitting its column at every width, a person added
//! through the API listed and counted at once, and the demo feed's steady
//! rate in the header. Screenshots go to `target/e2e/`.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::{Value, json};
use testkit::{
    AppProcess, Browser, NatsServer, Page, PostgresServer, Viewport, eventually, free_port,
};

use super::helpers::{PATIENCE, UDACONNECT, run, spawn_app};

/// `udaconnect <target>` as an operator starts it.
fn start(target: &str, envs: &[(&str, String)]) -> AppProcess {
    let mut all = vec![("RUST_LOG", "info".to_owned())];
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

/// The contacts table as shown: person id and each cell's text.
const READ_CONTACTS: &str = r#"[...document.querySelectorAll('#contacts tbody tr')].map((tr) => ({
  person: Number(tr.dataset.person),
  cells: [...tr.cells].map((td) => td.textContent),
}))"#;

/// The controls' values, as the page asks the API.
const READ_QUERY: &str = r#"(() => {
  const params = new URLSearchParams({
    start: document.getElementById('start').value,
    end: document.getElementById('end').value,
    distance: document.getElementById('distance').value,
  });
  const within = document.getElementById('within').value;
  if (within) params.set('within', within);
  return params.toString();
})()"#;

/// What the contacts table must show for the API's `contacts`: each
/// person's row, in order, with the numbers and times as the page writes
/// them (its own formatters, so the test checks values, not a locale).
async fn expected_rows(page: &Page, contacts: &[Value]) -> Value {
    let contacts = serde_json::to_string(contacts).expect("JSON");
    page.eval(&format!(
        r#"({contacts}).map((c) => ({{
            person: c.person.id,
            cells: [`${{c.person.first_name}} ${{c.person.last_name}}`, c.person.company_name,
                    numberFormat.format(c.encounters), formatTime(c.first_met), formatTime(c.last_met),
                    formatMetres(c.closest.distance_m)],
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

/// Every contact the API answers for `query`.
async fn api_contacts(api: &str, person: i64, query: &str) -> Vec<Value> {
    every_page(
        &format!("{api}/api/v2/persons/{person}/connections?{query}&limit=50"),
        "contacts",
    )
    .await
}

/// Waits until the page shows for its current controls exactly what the
/// API answers for them; returns the API's contacts.
async fn shows_what_the_api_answers(page: &Page, api: &str, person: i64, what: &str) -> Vec<Value> {
    let give_up = tokio::time::Instant::now() + PATIENCE;
    loop {
        let query = page.eval(READ_QUERY).await;
        let query = query.as_str().expect("a query string").to_owned();
        let contacts = api_contacts(api, person, &query).await;
        let expected = expected_rows(page, &contacts).await;
        let shown = page.eval(READ_CONTACTS).await;
        if shown == expected {
            return contacts;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "{what}: the page shows {shown}\nthe API answers {expected} for {query}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

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
    let base = api.base_url().to_owned();
    for process in [&api, &ingest, &writer] {
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

    // Ada met Grace: the page shows what the API answers, for each setting.
    page.eval(&format!(
        "document.querySelector('#person-list li[data-id=\"{ada}\"] button').click()"
    ))
    .await;
    page.wait_for(
        "the contacts",
        PATIENCE,
        "document.querySelectorAll('#contacts tbody tr').length > 0",
    )
    .await;
    let within_10m = shows_what_the_api_answers(&page, &base, ada, "the default question").await;
    assert_eq!(within_10m.len(), 1, "Grace, once: {within_10m:?}");
    assert_eq!(within_10m[0]["person"]["id"].as_i64(), Some(ada + 1));
    let query = page.eval(READ_QUERY).await;
    assert!(
        query
            .as_str()
            .is_some_and(|q| q.contains("within=10m") && q.contains("distance=5")),
        "someone seen today: true co-location by default, {query}"
    );
    let encounters = |contacts: &[Value]| -> u64 {
        contacts
            .iter()
            .map(|c| c["encounters"].as_u64().unwrap_or(0))
            .sum()
    };

    // Live: more positions arrive, and the open question is asked again.
    walk(&api_url, &grpc_url, &ada_text, "1s", Some("2")).await;
    let refreshed = page
        .wait_for(
            "the contacts refreshed with new encounters",
            PATIENCE,
            &format!(
                "(() => {{ const row = document.querySelector('#contacts tbody tr.fresh'); return row && row.querySelector('.encounters').textContent !== numberFormat.format({}) ? row.dataset.person : null; }})()",
                encounters(&within_10m)
            ),
        )
        .await;
    assert_eq!(refreshed, json!((ada + 1).to_string()));
    let within_10m = shows_what_the_api_answers(&page, &base, ada, "after the refresh").await;

    set_control(&page, "distance", "0.5").await;
    let closer = shows_what_the_api_answers(&page, &base, ada, "distance 0.5 m").await;
    assert!(
        encounters(&closer) < encounters(&within_10m),
        "a shorter distance, fewer encounters"
    );
    set_control(&page, "distance", "5").await;
    set_control(&page, "within", "").await;
    let any_time = shows_what_the_api_answers(&page, &base, ada, "at any time").await;
    assert!(
        encounters(&any_time) >= encounters(&within_10m),
        "any time, at least as many"
    );
    set_control(&page, "within", "1m").await;
    shows_what_the_api_answers(&page, &base, ada, "within a minute").await;

    // A point per location of Ada's in the range, and one per contact.
    let query = page.eval(READ_QUERY).await;
    let query = query.as_str().expect("a query").to_owned();
    let range: String = query
        .split('&')
        .filter(|p| p.starts_with("start=") || p.starts_with("end="))
        .collect::<Vec<_>>()
        .join("&");
    let own = every_page(
        &format!("{base}/api/v2/persons/{ada}/locations?{range}&limit=1000"),
        "locations",
    )
    .await
    .len();
    assert!(own > 10, "{own} locations of Ada's");
    let plotted = page
        .wait_for(
            "the plot",
            PATIENCE,
            &format!("(() => {{ const own = document.querySelectorAll('#plot circle[data-kind=own]').length; return own === {own} ? {{ own, met: document.querySelectorAll('#plot circle[data-kind=met]').length, rows: document.querySelectorAll('#contacts tbody tr').length }} : null; }})()"),
        )
        .await;
    assert_eq!(
        plotted["met"], plotted["rows"],
        "a meeting point per contact: {plotted}"
    );
    assert!(page.exceptions().is_empty(), "{:?}", page.exceptions());

    let shots = screenshots();
    set_control(&page, "within", "10m").await;
    shows_what_the_api_answers(&page, &base, ada, "back to ten minutes").await;
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
    set_control(&page, "distance", "4").await;
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
    drop((ingest, writer));
}

/// The contacts table's width against its box's, where its Closest header
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

/// Asserts that the contacts table fits its column and its Closest header
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
async fn the_contacts_table_fits_its_column_at_every_width() {
    let browser = Browser::launch().await;
    let app = spawn_app(&[]).await;
    let page = browser.new_page(Viewport::DESKTOP).await;
    page.goto(&format!("{}/#person=1", app.base)).await;
    page.wait_for(
        "the person shown",
        PATIENCE,
        "!document.getElementById('person-view').hidden && document.getElementById('start').value !== ''",
    )
    .await;
    // A day of the demo, where attendee 1 met many, some of them from
    // companies with long names.
    set_control(&page, "start", "2020-06-08").await;
    set_control(&page, "end", "2020-06-09").await;
    set_control(&page, "distance", "2").await;
    page.wait_for(
        "the contacts",
        PATIENCE,
        "document.querySelectorAll('#contacts tbody tr').length >= 10 \
         && document.getElementById('end').value === '2020-06-09'",
    )
    .await;
    let companies = page
        .eval("Math.max(...[...document.querySelectorAll('#contacts td.company')].map((td) => td.textContent.length))")
        .await;
    assert!(
        companies.as_u64().is_some_and(|longest| longest >= 20),
        "a long company name among the contacts: {companies}"
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
