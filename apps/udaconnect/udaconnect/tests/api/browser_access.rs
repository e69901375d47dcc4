//! The page under the access rules, in a real browser, on `udaconnect all`
//! with a closed API: the organiser signs in with their token (a wrong
//! one is refused), sees everyone, makes an attendee's link and a device
//! for a person and sees them once (the link; the token, Traccar Client's
//! fields and OwnTracks' setup link with its QR code, read back off the
//! screen), and revokes the device; an attendee who opens their link sees
//! their own page only: their meetings, live, and their devices, no one
//! else's name, the token gone from the address bar; a link revoked is
//! said to be no longer valid. On an open API (the embedded demo's)
//! nothing is asked, and the organiser's controls work all the same.

use reqwest::Method;
use serde_json::{Value, json};
use testkit::{Browser, Page, Viewport, eventually};

use super::{
    browser::screenshots,
    helpers::{PATIENCE, TestApp, spawn_app},
    meetings::{self, side_by_side},
};

/// The organiser's token the app is started with.
const ORGANISER: &str = "the-organisers-token-for-the-page-0123456789";

/// How soon a meeting made while the page is open shows in it (as in
/// `browser`).
const LIVE: std::time::Duration = std::time::Duration::from_secs(10);

async fn closed_app() -> TestApp {
    spawn_app(&["--open-api", "false", "--organiser-token", ORGANISER]).await
}

/// `method path` with `token` as a bearer token, and a JSON `body`:
/// status and JSON answer.
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = app
        .http
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("not JSON ({err}), status {status}: {text}"));
    (status, body)
}

/// A person, made by the organiser; their id.
async fn person(app: &TestApp, first: &str, last: &str) -> i64 {
    let (status, person) = call(
        app,
        Method::POST,
        "/api/v2/persons",
        ORGANISER,
        Some(&json!({"first_name": first, "last_name": last, "company_name": "Co"})),
    )
    .await;
    assert_eq!(status, 201, "{person}");
    person["id"].as_i64().expect("an id")
}

/// A credential of `kind` for `person`, made by the organiser: the answer
/// that shows its token.
async fn credential(app: &TestApp, person: i64, kind: &str, label: &str) -> Value {
    let (status, made) = call(
        app,
        Method::POST,
        &format!("/api/v2/persons/{person}/credentials"),
        ORGANISER,
        Some(&json!({"kind": kind, "label": label})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    made
}

/// `a` and `b` side by side (see `meetings::walk_together`), posted by the
/// organiser.
async fn walk_together(app: &TestApp, a: i64, b: i64, from: i64, count: i64) {
    let (status, reply) = call(
        app,
        Method::POST,
        "/api/v2/locations:batch",
        ORGANISER,
        Some(&side_by_side(a, b, from, count)),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
}

/// Waits until `person` has met `other` as far as the API says.
async fn met(app: &TestApp, person: i64, other: i64) {
    eventually(&format!("{person} met {other}"), PATIENCE, || async {
        let (status, page) = call(
            app,
            Method::GET,
            &format!("/api/v2/persons/{person}/meetings"),
            ORGANISER,
            None,
        )
        .await;
        let meetings = page["meetings"].as_array()?;
        (status == 200 && meetings.iter().any(|m| m["with"]["id"] == other)).then_some(())
    })
    .await;
}

/// Whether the people listed start with the two the test made, the
/// newest first (the demo conference's follow).
const NEWEST_LISTED: &str = "JSON.stringify([...document.querySelectorAll('#person-list .name')].slice(0, 2).map((n) => n.textContent)) \
     === '[\"Grace Hopper\",\"Ada Lovelace\"]'";

/// Submits the sign-in form with `token`.
async fn sign_in(page: &Page, token: &str) {
    page.eval(&format!(
        "(() => {{ document.getElementById('token-input').value = {}; \
         document.getElementById('signin-form').requestSubmit(); }})()",
        json!(token)
    ))
    .await;
}

/// The value of the field `name` in what was just made.
async fn shown_field(page: &Page, name: &str) -> String {
    let value = page
        .wait_for(
            &format!("the {name} shown"),
            PATIENCE,
            &format!(
                "(() => {{ const input = document.querySelector('#created input[data-field={name}]'); \
                 return input && input.value; }})()"
            ),
        )
        .await;
    value
        .as_str()
        .unwrap_or_else(|| panic!("{name}: {value}"))
        .to_owned()
}

/// The credentials listed: each row's kind, label, whether it is marked
/// revoked and whether it has a revoke button.
const READ_CREDENTIALS: &str = r#"[...document.querySelectorAll('#credentials tbody tr')].map((tr) => ({
  kind: tr.dataset.kind,
  label: tr.querySelector('.label').textContent,
  revoked: tr.dataset.revoked === 'true' && tr.querySelector('.revoked').textContent.startsWith('revoked '),
  revocable: tr.querySelector('.revoke') !== null,
}))"#;

/// The QR code shown, drawn on a canvas of `PIXELS` a side and read
/// back, one character a pixel: `1` dark, `0` light.
const READ_QR: &str = r#"(() => {
  const img = document.querySelector('#created img.qr');
  if (!img || !img.complete || img.naturalWidth === 0) return null;
  const side = 400;
  const canvas = document.createElement('canvas');
  canvas.width = side;
  canvas.height = side;
  const context = canvas.getContext('2d');
  context.fillStyle = '#fff';
  context.fillRect(0, 0, side, side);
  context.drawImage(img, 0, 0, side, side);
  const data = context.getImageData(0, 0, side, side).data;
  let bits = '';
  for (let i = 0; i < side * side; i++) bits += data[i * 4] < 128 ? '1' : '0';
  return bits;
})()"#;
const PIXELS: usize = 400;

/// What a QR reader finds in `bits` (as [`READ_QR`] reads them).
fn decode_qr(bits: &str) -> Vec<String> {
    let bits = bits.as_bytes();
    assert_eq!(bits.len(), PIXELS * PIXELS, "a square picture");
    let mut image = rqrr::PreparedImage::prepare_from_bitmap(PIXELS, PIXELS, |x, y| {
        bits[y * PIXELS + x] == b'1'
    });
    image
        .detect_grids()
        .iter()
        .filter_map(|grid| grid.decode().ok().map(|(_, text)| text))
        .collect()
}

#[tokio::test]
async fn the_organiser_signs_in_and_hands_out_a_link_and_a_device() {
    let browser = Browser::launch().await;
    let app = closed_app().await;
    let ada = person(&app, "Ada", "Lovelace").await;
    person(&app, "Grace", "Hopper").await;

    let page = browser.new_page(Viewport::DESKTOP).await;
    page.goto(&format!("{}/", app.base)).await;
    page.wait_for(
        "the sign-in form",
        PATIENCE,
        "!document.getElementById('signin').hidden && document.getElementById('main').hidden",
    )
    .await;
    assert_eq!(
        page.eval("document.body.innerText.includes('Lovelace')")
            .await,
        json!(false),
        "nobody shown before signing in"
    );

    // A wrong token is refused, and not kept.
    sign_in(&page, "not-the-organisers-token").await;
    page.wait_for(
        "the refusal",
        PATIENCE,
        "document.getElementById('signin-error').textContent.includes('unknown or was revoked')",
    )
    .await;
    assert_eq!(
        page.eval("localStorage.getItem('udaconnect.token')").await,
        Value::Null
    );
    page.screenshot(&screenshots().join("udaconnect-sign-in.png"))
        .await;

    // The organiser's: everyone listed, the token kept for next time.
    sign_in(&page, ORGANISER).await;
    page.wait_for("everyone listed", PATIENCE, NEWEST_LISTED)
        .await;
    assert_eq!(
        page.eval("document.getElementById('sign-out').checkVisibility()")
            .await,
        json!(true)
    );
    assert_eq!(
        page.eval("localStorage.getItem('udaconnect.token')").await,
        json!(ORGANISER)
    );
    page.reload().await;
    page.wait_for("still signed in after a reload", PATIENCE, NEWEST_LISTED)
        .await;

    // Ada's links and devices: none yet.
    page.eval(&format!(
        "document.querySelector('#person-list li[data-id=\"{ada}\"] button').click()"
    ))
    .await;
    page.wait_for(
        "Ada's links and devices",
        PATIENCE,
        "!document.getElementById('person-view').hidden && !document.getElementById('credentials-empty').hidden",
    )
    .await;
    page.eval("document.querySelector('#access summary').click()")
        .await;
    page.wait_for(
        "the buttons that make them",
        PATIENCE,
        "document.getElementById('make-link').checkVisibility()",
    )
    .await;

    // An attendee's link, shown once.
    page.eval("document.getElementById('make-link').click()")
        .await;
    let link = shown_field(&page, "link").await;
    let token = link
        .strip_prefix(&format!("{}/#token=", app.base))
        .unwrap_or_else(|| panic!("a link to the page: {link}"));
    assert!(token.starts_with("uca_"), "{link}");
    let (status, me) = call(&app, Method::GET, "/api/v2/me", token, None).await;
    assert_eq!(
        (status, &me["caller"], &me["person_id"]),
        (200, &json!("attendee"), &json!(ada)),
        "{me}"
    );

    // A device: its token, Traccar Client's fields, OwnTracks' link and
    // its QR code.
    page.eval(
        "(() => { const form = document.getElementById('device-form'); \
         form.elements.label.value = \"Ada's phone\"; form.requestSubmit(); })()",
    )
    .await;
    page.wait_for(
        "the device made",
        PATIENCE,
        "document.getElementById('created').dataset.kind === 'device'",
    )
    .await;
    let device = shown_field(&page, "token").await;
    assert!(device.starts_with("ucd_"), "{device}");
    assert_eq!(
        shown_field(&page, "traccar-url").await,
        format!("{}/api/v2/osmand", app.base)
    );
    assert_eq!(shown_field(&page, "traccar-id").await, device);
    let setup = shown_field(&page, "owntracks-link").await;
    assert!(setup.starts_with("owntracks:///config?inline="), "{setup}");
    let bits = page.wait_for("the QR code drawn", PATIENCE, READ_QR).await;
    assert_eq!(
        decode_qr(bits.as_str().expect("pixels")),
        vec![setup.clone()],
        "the QR code on the screen reads as the setup link"
    );
    page.screenshot(&screenshots().join("udaconnect-device-made.png"))
        .await;

    // The token shown works: the phone posts a position with it.
    let (status, posted) = call(
        &app,
        Method::POST,
        "/api/v2/locations",
        &device,
        Some(&json!({"person_id": ada, "lat": 48.0, "lon": 11.0, "time": "2022-05-02T09:00:00Z"})),
    )
    .await;
    assert_eq!(status, 201, "{posted}");
    let listed = page
        .wait_for(
            "both listed, the newest first",
            PATIENCE,
            &format!(
                "(() => {{ const rows = {READ_CREDENTIALS}; return rows.length === 2 ? rows : null; }})()"
            ),
        )
        .await;
    assert_eq!(listed[0]["kind"], "device", "{listed}");
    assert_eq!(listed[0]["label"], "Ada's phone", "{listed}");
    assert_eq!(listed[1]["kind"], "attendee", "{listed}");
    assert!(
        listed.as_array().is_some_and(|rows| rows
            .iter()
            .all(|row| row["revoked"] == false && row["revocable"] == true)),
        "{listed}"
    );

    // What was shown once goes when done, and is not listed.
    page.eval("document.querySelector('#created .done').click()")
        .await;
    assert_eq!(
        page.eval(&format!(
            "document.body.innerHTML.includes({})",
            json!(device)
        ))
        .await,
        json!(false),
        "the token is gone from the page"
    );

    // Revoking the device: marked revoked, its token refused.
    page.eval("document.querySelector('#credentials tr[data-kind=device] .revoke').click()")
        .await;
    let revoked = page
        .wait_for(
            "the device revoked",
            PATIENCE,
            &format!(
                "(() => {{ const rows = {READ_CREDENTIALS}; return rows.length === 2 && rows[0].revoked ? rows : null; }})()"
            ),
        )
        .await;
    assert_eq!(revoked[0]["revocable"], false, "{revoked}");
    assert_eq!(revoked[1]["revoked"], false, "the link stays: {revoked}");
    let (status, refused) = call(&app, Method::GET, "/api/v2/me", &device, None).await;
    assert_eq!(status, 401, "{refused}");

    // Signing out forgets the token; a bad one kept is refused and
    // forgotten, and the page asks again.
    page.eval("document.getElementById('sign-out').click()")
        .await;
    page.wait_for(
        "the sign-in form again",
        PATIENCE,
        "!document.getElementById('signin').hidden && localStorage.getItem('udaconnect.token') === null",
    )
    .await;
    page.eval(
        "localStorage.setItem('udaconnect.token', 'an-organisers-token-no-longer-set-0123456789')",
    )
    .await;
    page.reload().await;
    page.wait_for(
        "the bad token refused",
        PATIENCE,
        "!document.getElementById('signin').hidden \
         && document.getElementById('signin-error').textContent.includes('unknown or was revoked') \
         && localStorage.getItem('udaconnect.token') === null",
    )
    .await;
    assert!(page.exceptions().is_empty(), "{:?}", page.exceptions());
    app.stop().await;
}

#[tokio::test]
async fn an_attendees_link_shows_their_own_page_only() {
    let app = closed_app().await;
    let ada = person(&app, "Ada", "Lovelace").await;
    let grace = person(&app, "Grace", "Hopper").await;
    let alan = person(&app, "Alan", "Turing").await;
    let zed = person(&app, "Zed", "Zimmermann").await;
    let link = credential(&app, ada, "attendee", "Ada's link").await;
    let link = link["link"].as_str().expect("a link").to_owned();
    credential(&app, ada, "device", "Ada's phone").await;
    credential(&app, grace, "attendee", "Grace's link").await;
    credential(&app, grace, "device", "Grace's phone").await;
    // Ada meets Grace; Grace meets Zed (not Ada's business).
    walk_together(&app, ada, grace, 0, 16).await;
    walk_together(&app, grace, zed, 60, 4).await;
    met(&app, ada, grace).await;
    met(&app, grace, zed).await;

    // Ada's phone, not the organiser's browser.
    let browser = Browser::launch().await;
    let page = browser.new_page(Viewport::PHONE).await;
    page.goto(&link).await;
    page.wait_for(
        "Ada's page with her meeting with Grace",
        PATIENCE,
        &format!(
            "document.getElementById('person-name').textContent === 'Ada Lovelace' \
             && document.querySelector('#contacts tr.person[data-person=\"{grace}\"]') !== null"
        ),
    )
    .await;
    assert_eq!(
        page.eval("location.href").await,
        json!(format!("{}/", app.base)),
        "the token is out of the address bar"
    );
    let token = link.split_once("#token=").map(|(_, token)| token);
    assert_eq!(
        page.eval("localStorage.getItem('udaconnect.token')").await,
        json!(token)
    );
    let shown = page
        .eval(
            "({ people: !document.getElementById('people').hidden, \
                listed: document.querySelectorAll('#person-list li').length, \
                search: document.getElementById('search').checkVisibility(), \
                actions: document.getElementById('access-actions').checkVisibility(), \
                who: document.getElementById('who').textContent })",
        )
        .await;
    assert_eq!(
        shown,
        json!({"people": false, "listed": 0, "search": false, "actions": false, "who": "Ada Lovelace"})
    );
    // Her devices, not her link nor anyone else's.
    let devices = page
        .wait_for(
            "Ada's devices",
            PATIENCE,
            &format!(
                "(() => {{ const rows = {READ_CREDENTIALS}; return rows.length > 0 ? rows : null; }})()"
            ),
        )
        .await;
    assert_eq!(
        devices,
        json!([{"kind": "device", "label": "Ada's phone", "revoked": false, "revocable": true}])
    );
    let strangers = "['Turing', 'Zimmermann', 'Zed', 'Grace\\'s'].filter((name) => document.documentElement.outerHTML.includes(name))";
    assert_eq!(page.eval(strangers).await, json!([]), "no one else's name");

    // Ada meets Alan while the page is open: his row appears.
    walk_together(&app, ada, alan, 30, 4).await;
    page.wait_for(
        "Alan's row",
        LIVE,
        &format!("document.querySelector('#contacts tr.person[data-person=\"{alan}\"]') !== null"),
    )
    .await;
    assert_eq!(
        page.eval("['Zimmermann', 'Zed'].filter((name) => document.documentElement.outerHTML.includes(name))")
            .await,
        json!([]),
        "still no one she did not meet"
    );
    page.screenshot(&screenshots().join("udaconnect-attendee-phone.png"))
        .await;

    // A lost phone: Ada revokes it herself.
    page.eval("document.querySelector('#credentials tr[data-kind=device] .revoke').click()")
        .await;
    page.wait_for(
        "the phone revoked",
        PATIENCE,
        "document.querySelector('#credentials tr[data-kind=device]').dataset.revoked === 'true'",
    )
    .await;

    // The organiser revokes her link: the page says it is no longer valid.
    let (status, listed) = call(
        &app,
        Method::GET,
        &format!("/api/v2/persons/{ada}/credentials"),
        ORGANISER,
        None,
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    let id = listed["credentials"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["kind"] == "attendee"))
        .map(|c| c["id"].clone())
        .unwrap_or_else(|| panic!("her link: {listed}"));
    let (status, revoked) = call(
        &app,
        Method::DELETE,
        &format!("/api/v2/credentials/{id}"),
        ORGANISER,
        None,
    )
    .await;
    assert_eq!(status, 200, "{revoked}");
    // The page's next call is refused: picking other dates.
    page.eval(
        "(() => { const start = document.getElementById('start'); start.value = '2022-04-20'; \
         start.dispatchEvent(new Event('change', { bubbles: true })); })()",
    )
    .await;
    let invalid = "!document.getElementById('link-invalid').hidden && document.getElementById('main').hidden \
                   && localStorage.getItem('udaconnect.token') === null";
    page.wait_for("the link no longer valid", PATIENCE, invalid)
        .await;
    // And still when she comes back to the page.
    page.reload().await;
    page.wait_for("the link still no longer valid", PATIENCE, invalid)
        .await;
    // Whoever is the organiser there signs in instead.
    page.eval("document.getElementById('organiser-instead').click()")
        .await;
    page.wait_for(
        "the sign-in form",
        PATIENCE,
        "!document.getElementById('signin').hidden && document.getElementById('link-invalid').hidden",
    )
    .await;
    assert_eq!(
        page.eval("document.body.innerText.includes('Lovelace')")
            .await,
        json!(false)
    );
    page.screenshot(&screenshots().join("udaconnect-link-invalid.png"))
        .await;
    assert!(page.exceptions().is_empty(), "{:?}", page.exceptions());
    // A link that never was one says the same.
    let page = browser.new_page(Viewport::PHONE).await;
    page.goto(&format!("{}/#token=uca_madeup", app.base)).await;
    page.wait_for(
        "a made-up link refused",
        PATIENCE,
        "!document.getElementById('link-invalid').hidden",
    )
    .await;
    assert!(page.exceptions().is_empty(), "{:?}", page.exceptions());
    app.stop().await;
}

#[tokio::test]
async fn on_an_open_api_nothing_is_asked_and_the_organisers_controls_work() {
    let browser = Browser::launch().await;
    let app = spawn_app(&[]).await;
    let ada = meetings::person(&app, "Ada").await;
    let page = browser.new_page(Viewport::DESKTOP).await;
    page.goto(&format!("{}/#person={ada}", app.base)).await;
    page.wait_for(
        "Ada's page, nothing asked",
        PATIENCE,
        "document.getElementById('person-name').textContent === 'Ada Live' \
         && document.getElementById('signin').hidden",
    )
    .await;
    assert_eq!(
        page.eval("[document.getElementById('sign-out').checkVisibility(), localStorage.length]")
            .await,
        json!([false, 0]),
        "no token to forget"
    );
    page.eval("document.querySelector('#access summary').click()")
        .await;
    page.eval("document.getElementById('device-form').requestSubmit()")
        .await;
    let device = shown_field(&page, "token").await;
    let (status, me) = call(&app, Method::GET, "/api/v2/me", &device, None).await;
    assert_eq!(
        (status, &me["caller"], &me["person_id"]),
        (200, &json!("device"), &json!(ada)),
        "{me}"
    );
    page.wait_for(
        "the device listed",
        PATIENCE,
        &format!(
            "(() => {{ const rows = {READ_CREDENTIALS}; return rows.length === 1 && rows[0].label === 'phone'; }})()"
        ),
    )
    .await;
    assert!(page.exceptions().is_empty(), "{:?}", page.exceptions());
    app.stop().await;
}
