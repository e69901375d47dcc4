"use strict";
// UdaConnect's page: search and add people; pick one to see whom they met
// (the v2 API: one row per person), where (an SVG plot drawn here, no map
// tiles), and live counts from the server over Server-Sent Events. Every
// failure is shown as a message; nothing is fetched from the internet.

const PEOPLE_PAGE = 50;
const CONTACTS_PAGE = 50;
const LOCATIONS_PAGE = 1000;
/** The most of a person's locations drawn. */
const MAX_PLOTTED = 5000;
/** The original frontend's question. */
const ORIGINAL = { start: "2020-01-01", end: "2020-12-30", distance: "5", within: "" };
/** A live refresh of the contacts is asked at most this often (ms). */
const REFRESH_EVERY = 5000;

const $ = (id) => document.getElementById(id);

const state = {
  search: "",
  peopleCursor: null,
  peopleRun: 0,
  /** Persons stored, as the live stream last said. */
  livePersons: null,
  person: null,
  query: null,
  contacts: [],
  contactsCursor: null,
  contactsRun: 0,
  own: [],
  ownTruncated: false,
  liveLocations: null,
  lastRefresh: 0,
  highlighted: null,
};

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** A JSON API call; failures become an ApiError with the server's message. */
async function api(path, options = {}) {
  const headers = { accept: "application/json" };
  if (options.body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (err) {
    throw new ApiError(0, "The API cannot be reached: is UdaConnect running? Retry in a moment.");
  }
  const text = await response.text();
  let body = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch (err) {
      body = null;
    }
  }
  if (!response.ok) {
    const message = body && typeof body.error === "string" ? body.error : `The API answered ${response.status}.`;
    throw new ApiError(response.status, message);
  }
  return body;
}

function showError(err) {
  const banner = $("error");
  banner.textContent = err instanceof ApiError || err instanceof Error ? err.message : String(err);
  banner.hidden = false;
}

function clearError() {
  $("error").hidden = true;
}

const numberFormat = new Intl.NumberFormat();
const timeFormat = new Intl.DateTimeFormat(undefined, {
  month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: "UTC",
});
const yearFormat = new Intl.DateTimeFormat(undefined, { year: "numeric", timeZone: "UTC" });

/** "Jun 8, 09:05", with the year when it is not this one. UTC. */
function formatTime(iso) {
  const date = new Date(iso);
  const year = yearFormat.format(date);
  const short = timeFormat.format(date);
  return year === yearFormat.format(new Date()) ? short : `${short}, ${year}`;
}

const rateFormat = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });

/** Locations per second: a tenth shown below ten ("4.8"), whole above. */
function formatRate(rate) {
  return rate < 10 ? rateFormat.format(rate) : numberFormat.format(Math.round(rate));
}

function formatMetres(metres) {
  return metres < 10 ? `${metres.toFixed(2)} m` : `${metres.toFixed(1)} m`;
}

/** A colour per person, spread around the wheel. */
function colour(id) {
  return `hsl(${(id * 137.508) % 360} 65% 45%)`;
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

function svg(tag, attributes = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}

// ---- People ----------------------------------------------------------

/** A page of people: newest first, so that whoever was just added is on
 *  top; only those matching the search, if any. */
function peopleParams() {
  const params = new URLSearchParams({ limit: String(PEOPLE_PAGE), order: "newest" });
  if (state.search) params.set("q", state.search);
  return params;
}

async function loadPeople(reset) {
  const run = ++state.peopleRun;
  const params = peopleParams();
  if (!reset && state.peopleCursor) params.set("cursor", state.peopleCursor);
  let page;
  try {
    page = await api(`/api/v2/persons?${params}`);
  } catch (err) {
    showError(err);
    return;
  }
  if (run !== state.peopleRun) return;
  clearError();
  const list = $("person-list");
  if (reset) list.replaceChildren();
  for (const person of page.persons) list.append(personItem(person));
  state.peopleCursor = page.next_cursor;
  showPeopleCount();
  markCurrent();
}

/** Someone was added (the live count grew): the newest page again, and
 *  whoever is not listed yet on top of the list. */
async function refreshNewestPeople() {
  const run = state.peopleRun;
  let page;
  try {
    page = await api(`/api/v2/persons?${peopleParams()}`);
  } catch (err) {
    showError(err);
    return;
  }
  // A search or a page asked for meanwhile answers for itself.
  if (run !== state.peopleRun) return;
  const list = $("person-list");
  const top = list.firstElementChild ? Number(list.firstElementChild.dataset.id) : 0;
  const fresh = page.persons.filter((person) => person.id > top);
  if (fresh.length === page.persons.length && page.next_cursor && list.firstElementChild) {
    // More were added than a page holds: start the list again.
    loadPeople(true);
    return;
  }
  if (list.children.length === 0) state.peopleCursor = page.next_cursor;
  list.prepend(...fresh.map(personItem));
  showPeopleCount();
  markCurrent();
}

/** How many people: everyone, as the live stream counts them; for a
 *  search, those found, or "more than" those listed while there are more
 *  to list. */
function showPeopleCount() {
  const listed = $("person-list").children.length;
  const more = state.peopleCursor !== null;
  $("people-more").hidden = !more;
  $("people-empty").hidden = listed > 0;
  let text;
  if (!state.search && state.livePersons !== null) {
    text = numberFormat.format(Math.max(state.livePersons, listed));
  } else if (more) {
    text = `more than ${numberFormat.format(listed)}`;
  } else {
    text = numberFormat.format(listed);
  }
  $("people-count").textContent = text;
}

function personItem(person) {
  const button = el("button", { type: "button" },
    el("span", { class: "name" }, `${person.first_name} ${person.last_name}`),
    el("span", { class: "company" }, person.company_name));
  button.addEventListener("click", () => selectPerson(person));
  return el("li", { "data-id": String(person.id) }, button);
}

function markCurrent() {
  for (const item of $("person-list").children) {
    item.setAttribute("aria-current", String(state.person !== null && item.dataset.id === String(state.person.id)));
  }
}

let searchTimer = null;
function onSearch() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    state.search = $("search").value.trim();
    state.peopleCursor = null;
    loadPeople(true);
  }, 250);
}

// ---- Adding a person -------------------------------------------------

const FIELDS = ["first_name", "last_name", "company_name"];

function fieldError(name, message) {
  const form = $("create-form");
  form.querySelector(`[data-for="${name}"]`).textContent = message;
  form.elements[name].setAttribute("aria-invalid", message ? "true" : "false");
}

async function createPerson(event) {
  event.preventDefault();
  const form = $("create-form");
  $("create-status").textContent = "";
  const body = {};
  let valid = true;
  for (const name of FIELDS) {
    const value = form.elements[name].value.trim();
    body[name] = value;
    if (!value) {
      fieldError(name, "Required.");
      valid = false;
    } else if (value.length > 200) {
      fieldError(name, "At most 200 characters.");
      valid = false;
    } else {
      fieldError(name, "");
    }
  }
  if (!valid) return;
  try {
    const person = await api("/api/v2/persons", { method: "POST", body: JSON.stringify(body) });
    form.reset();
    $("create-status").textContent = `Added ${person.first_name} ${person.last_name}.`;
    state.search = "";
    $("search").value = "";
    await loadPeople(true);
    selectPerson(person);
  } catch (err) {
    const field = FIELDS.find((name) => err.message.startsWith(`${name}:`));
    if (err.status === 400 && field) {
      fieldError(field, err.message.slice(field.length + 1).trim());
    } else {
      showError(err);
    }
  }
}

// ---- A person's connections -------------------------------------------

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

/** The original's question if the person was seen in 2020 or not lately;
 *  otherwise their last day and true co-location (10 minutes). */
async function defaultQuery(person) {
  const since = new Date(Date.now() - 24 * 3600 * 1000);
  try {
    const recent = await api(`/api/v2/persons/${person.id}/locations?start=${encodeURIComponent(since.toISOString())}&limit=1`);
    if (recent.locations.length > 0) {
      return { start: isoDay(since), end: isoDay(new Date(Date.now() + 24 * 3600 * 1000)), distance: "5", within: "10m" };
    }
  } catch (err) {
    showError(err);
  }
  return { ...ORIGINAL };
}

async function selectPerson(person) {
  state.person = person;
  markCurrent();
  history.replaceState(null, "", `#person=${person.id}`);
  $("no-person").hidden = true;
  $("person-view").hidden = false;
  $("person-name").textContent = `${person.first_name} ${person.last_name}`;
  $("person-company").textContent = person.company_name;
  const query = await defaultQuery(person);
  if (state.person !== person) return;
  $("start").value = query.start;
  $("end").value = query.end;
  $("distance").value = query.distance;
  $("within").value = query.within;
  runQuery();
}

function readQuery() {
  const error = $("query-error");
  const start = $("start").value;
  const end = $("end").value;
  const distance = Number($("distance").value);
  if (!start || !end) {
    error.textContent = "Pick both dates.";
    return null;
  }
  if (start > end) {
    error.textContent = "The first day must not be after the last.";
    return null;
  }
  if ($("distance").value === "" || !Number.isFinite(distance) || distance < 0 || distance > 10000) {
    error.textContent = "The distance is a number of metres from 0 to 10000.";
    return null;
  }
  error.textContent = "";
  return { start, end, distance: String(distance), within: $("within").value };
}

function queryParams(query) {
  const params = new URLSearchParams({ start: query.start, end: query.end, distance: query.distance });
  if (query.within) params.set("within", query.within);
  return params;
}

async function runQuery() {
  const query = readQuery();
  if (!query || !state.person) return;
  state.query = query;
  state.contacts = [];
  state.contactsCursor = null;
  state.highlighted = null;
  $("contacts").tBodies[0].replaceChildren();
  $("contacts-summary").textContent = "searching…";
  await Promise.all([loadContacts(false), loadOwn()]);
  drawPlot();
}

/** The next page of contacts (or, with `refresh`, the first ones again). */
async function loadContacts(more, refresh = false) {
  const person = state.person;
  const query = state.query;
  const run = ++state.contactsRun;
  const params = queryParams(query);
  params.set("limit", String(refresh ? Math.max(CONTACTS_PAGE, state.contacts.length) : CONTACTS_PAGE));
  if (more && state.contactsCursor) params.set("cursor", state.contactsCursor);
  let page;
  try {
    page = await api(`/api/v2/persons/${person.id}/connections?${params}`);
  } catch (err) {
    $("contacts-summary").textContent = "";
    if (err.status === 400) {
      $("query-error").textContent = err.message;
    } else {
      showError(err);
    }
    return;
  }
  if (run !== state.contactsRun || state.person !== person || state.query !== query) return;
  clearError();
  const before = new Map(state.contacts.map((contact) => [contact.person.id, contact.encounters]));
  state.contacts = more ? state.contacts.concat(page.contacts) : page.contacts;
  state.contactsCursor = page.next_cursor;
  const fresh = refresh
    ? new Set(page.contacts.filter((c) => before.get(c.person.id) !== c.encounters).map((c) => c.person.id))
    : new Set();
  renderContacts(fresh);
}

function renderContacts(fresh) {
  const body = $("contacts").tBodies[0];
  body.replaceChildren();
  for (const contact of state.contacts) {
    const person = contact.person;
    const row = el("tr", { "data-person": String(person.id) },
      el("td", { class: "name" }, el("span", { class: "swatch", style: `background:${colour(person.id)}` }), `${person.first_name} ${person.last_name}`),
      el("td", { class: "company" }, person.company_name),
      el("td", { class: "num encounters" }, numberFormat.format(contact.encounters)),
      el("td", { class: "first" }, formatTime(contact.first_met)),
      el("td", { class: "last" }, formatTime(contact.last_met)),
      el("td", { class: "num closest" }, formatMetres(contact.closest.distance_m)));
    if (fresh.has(person.id)) row.classList.add("fresh");
    row.addEventListener("click", () => highlight(person.id));
    body.append(row);
  }
  const count = state.contacts.length;
  $("contacts-empty").hidden = count > 0;
  $("contacts-more").hidden = !state.contactsCursor;
  $("contacts-summary").textContent = count === 0 ? "" : `${count}${state.contactsCursor ? "+" : ""} ${count === 1 ? "person" : "people"}`;
  drawPlot();
}

/** The person's locations in the range, for the plot (at most MAX_PLOTTED). */
async function loadOwn() {
  const person = state.person;
  const query = state.query;
  const own = [];
  let cursor = null;
  let truncated = false;
  try {
    do {
      const params = new URLSearchParams({ start: query.start, end: query.end, limit: String(LOCATIONS_PAGE) });
      if (cursor) params.set("cursor", cursor);
      const page = await api(`/api/v2/persons/${person.id}/locations?${params}`);
      own.push(...page.locations);
      cursor = page.next_cursor;
      if (own.length >= MAX_PLOTTED && cursor) {
        truncated = true;
        break;
      }
    } while (cursor);
  } catch (err) {
    showError(err);
    return;
  }
  if (state.person !== person || state.query !== query) return;
  state.own = own.slice(0, MAX_PLOTTED);
  state.ownTruncated = truncated;
  $("own-count").textContent = truncated ? `first ${numberFormat.format(state.own.length)}` : numberFormat.format(state.own.length);
}

// ---- The plot ----------------------------------------------------------

const WIDTH = 600;
const HEIGHT = 360;
const PAD = 24;

function drawPlot() {
  const plot = $("plot");
  plot.replaceChildren();
  const met = state.contacts.map((contact) => ({ contact, lat: contact.closest.lat, lon: contact.closest.lon }));
  const points = state.own.concat(met);
  if (points.length === 0) {
    const text = svg("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle" });
    text.textContent = state.person ? "No locations in this range." : "";
    plot.append(text);
    return;
  }
  // Metres east and north of the points' centre: flat at a venue's scale.
  const lat0 = points.reduce((sum, p) => sum + p.lat, 0) / points.length;
  const lon0 = points.reduce((sum, p) => sum + p.lon, 0) / points.length;
  const east = Math.cos((lat0 * Math.PI) / 180) * 111320;
  const project = (p) => [(p.lon - lon0) * east, (p.lat - lat0) * 110574];
  const xy = points.map(project);
  const xs = xy.map((p) => p[0]);
  const ys = xy.map((p) => p[1]);
  const [minX, maxX, minY, maxY] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const span = Math.max(maxX - minX, (maxY - minY) * (WIDTH - 2 * PAD) / (HEIGHT - 2 * PAD), 1);
  const scale = (WIDTH - 2 * PAD) / span;
  const cx = (minX + maxX) / 2;
  const cy = (minY + maxY) / 2;
  const toScreen = ([x, y]) => [WIDTH / 2 + (x - cx) * scale, HEIGHT / 2 - (y - cy) * scale];

  const ownGroup = svg("g");
  state.own.forEach((location, index) => {
    const [x, y] = toScreen(xy[index]);
    const dot = svg("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 3, class: "own", "data-kind": "own" });
    dot.dataset.tip = `${state.person.first_name} ${state.person.last_name} · ${formatTime(location.time)} UTC`;
    ownGroup.append(dot);
  });
  const metGroup = svg("g");
  met.forEach(({ contact }, index) => {
    const [x, y] = toScreen(xy[state.own.length + index]);
    const person = contact.person;
    const dot = svg("circle", {
      cx: x.toFixed(1), cy: y.toFixed(1), r: 5.5, class: "met", "data-kind": "met",
      "data-person": String(person.id), fill: colour(person.id),
    });
    if (state.highlighted === person.id) dot.classList.add("highlight");
    dot.dataset.tip = `${person.first_name} ${person.last_name} · ${formatTime(contact.closest.time)} UTC · ${formatMetres(contact.closest.distance_m)} apart`;
    dot.addEventListener("click", () => highlight(person.id));
    metGroup.append(dot);
  });
  plot.append(ownGroup, metGroup, scaleBar(scale));
}

/** A round-numbered distance bar in the corner. */
function scaleBar(scale) {
  const target = (WIDTH - 2 * PAD) / 5 / scale;
  const magnitude = 10 ** Math.floor(Math.log10(target));
  const metres = [1, 2, 5, 10].map((step) => step * magnitude).filter((m) => m <= target).pop() || magnitude;
  const length = metres * scale;
  const group = svg("g");
  const y = HEIGHT - 12;
  group.append(svg("line", { x1: PAD, y1: y, x2: PAD + length, y2: y, class: "scale" }));
  const label = svg("text", { x: PAD + length + 6, y: y + 4 });
  label.textContent = metres >= 1000 ? `${metres / 1000} km` : `${metres} m`;
  group.append(label);
  return group;
}

function highlight(personId) {
  state.highlighted = state.highlighted === personId ? null : personId;
  for (const row of $("contacts").tBodies[0].rows) {
    row.classList.toggle("highlight", row.dataset.person === String(state.highlighted));
  }
  for (const dot of $("plot").querySelectorAll("circle.met")) {
    dot.classList.toggle("highlight", dot.dataset.person === String(state.highlighted));
  }
}

function onPlotHover(event) {
  const tooltip = $("tooltip");
  const target = event.target;
  if (!(target instanceof SVGElement) || !target.dataset.tip) {
    tooltip.hidden = true;
    return;
  }
  const frame = $("plot").getBoundingClientRect();
  const box = target.getBoundingClientRect();
  tooltip.textContent = target.dataset.tip;
  tooltip.style.left = `${box.left + box.width / 2 - frame.left}px`;
  tooltip.style.top = `${box.top - frame.top}px`;
  tooltip.hidden = false;
}

// ---- Live counts -------------------------------------------------------

function setLive(status, text = status) {
  const badge = $("live-state");
  badge.dataset.state = status;
  badge.textContent = text;
}

/** How long before opening the live stream again after the server refused
 *  it (ms): doubling from the first to the last, with jitter. */
const LIVE_RETRY_FIRST = 1000;
const LIVE_RETRY_LAST = 30000;

function connectLive(retry = LIVE_RETRY_FIRST) {
  const source = new EventSource("/api/v2/live");
  source.addEventListener("open", () => setLive("live"));
  source.addEventListener("error", () => {
    if (source.readyState !== EventSource.CLOSED) {
      // The browser reconnects by itself.
      setLive("reconnecting");
      return;
    }
    // An answer that is not a stream (a 503 while the database is away,
    // say) ends an EventSource for good: open a new one, later.
    source.close();
    setLive("reconnecting", "offline, retrying");
    const wait = retry / 2 + Math.random() * (retry / 2);
    setTimeout(() => connectLive(Math.min(retry * 2, LIVE_RETRY_LAST)), wait);
  });
  source.addEventListener("stats", (event) => {
    let stats;
    try {
      stats = JSON.parse(event.data);
    } catch (err) {
      return;
    }
    setLive("live");
    $("rate").textContent = formatRate(stats.rate);
    $("locations-total").textContent = numberFormat.format(stats.locations);
    $("persons-total").textContent = numberFormat.format(stats.persons);
    const grew = state.liveLocations !== null && stats.locations > state.liveLocations;
    state.liveLocations = stats.locations;
    const added = state.livePersons !== null && stats.persons > state.livePersons;
    state.livePersons = stats.persons;
    showPeopleCount();
    if (added) refreshNewestPeople();
    if (grew) refreshIfOpen();
  });
}

let refreshTimer = null;

/** New locations arrived: if the question reaches up to now, ask again
 *  (at most every REFRESH_EVERY, and once more after the last arrival) and
 *  mark the rows whose encounters changed. */
async function refreshIfOpen() {
  if (!state.person || !state.query) return;
  if (state.query.end < isoDay(new Date())) return;
  const wait = REFRESH_EVERY - (Date.now() - state.lastRefresh);
  if (wait > 0) {
    if (refreshTimer === null) {
      refreshTimer = setTimeout(() => {
        refreshTimer = null;
        refreshIfOpen();
      }, wait);
    }
    return;
  }
  state.lastRefresh = Date.now();
  await Promise.all([loadContacts(false, true), loadOwn()]);
  drawPlot();
}

// ---- Start -------------------------------------------------------------

async function start() {
  $("search").addEventListener("input", onSearch);
  $("people-more").addEventListener("click", () => loadPeople(false));
  $("create-form").addEventListener("submit", createPerson);
  $("query").addEventListener("change", runQuery);
  $("query").addEventListener("submit", (event) => {
    event.preventDefault();
    runQuery();
  });
  $("contacts-more").addEventListener("click", () => loadContacts(true));
  $("plot").addEventListener("mouseover", onPlotHover);
  $("plot").addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
  connectLive();
  await loadPeople(true);
  const match = /^#person=(\d+)$/.exec(location.hash);
  if (match) {
    try {
      selectPerson(await api(`/api/v2/persons/${match[1]}`));
    } catch (err) {
      showError(err);
    }
  }
}

start();
