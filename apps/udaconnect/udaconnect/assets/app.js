"use strict";
// UdaConnect's page: search and add people; pick one to see whom they met
// as meetings (the v2 API: periods two persons spent together, grouped per
// person, most time together first), where (an SVG plot drawn here, no map
// tiles), and live counts and meetings from the server over Server-Sent
// Events. The organiser also hands out and revokes each person's links
// and devices' tokens; an attendee who opens their link sees their own
// page only: their meetings and their devices. On a closed API the page
// asks for the organiser's token once and keeps it in this browser. Every
// failure is shown as a message; nothing is fetched from the internet.

const PEOPLE_PAGE = 50;
/** Meetings read per request (the API's most). */
const MEETINGS_PAGE = 1000;
/** The most of a person's meetings read for a range: the most recent. */
const MAX_MEETINGS = 5000;
const LOCATIONS_PAGE = 1000;
/** The most of a person's locations drawn. */
const MAX_PLOTTED = 5000;
/** The original frontend's date range. */
const ORIGINAL = { start: "2020-01-01", end: "2020-12-30" };
/** A live refresh of the person's locations is asked at most this often (ms). */
const REFRESH_EVERY = 5000;
/** How long a row that just changed stands out (ms; the `fresh` animation's). */
const FRESH_FOR = 2000;

const $ = (id) => document.getElementById(id);

const state = {
  /** Whether the server needs no token (`/api/v2/me`'s `open_api`). */
  openApi: false,
  /** The live counts' stream, and its retry's timer. */
  liveSource: null,
  liveRetry: null,
  search: "",
  peopleCursor: null,
  peopleRun: 0,
  /** Persons stored, as the live stream last said. */
  livePersons: null,
  person: null,
  query: null,
  /** The person's meetings in the range, by id. */
  meetings: new Map(),
  /** Whether there were more than MAX_MEETINGS. */
  meetingsCapped: false,
  meetingsRun: 0,
  /** Meetings streamed while the list is read, or null. */
  pending: null,
  meetingsSource: null,
  meetingsRetry: null,
  /** When each row ("p" and a person's id, "m" and a meeting's) last changed. */
  fresh: new Map(),
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

/** A JSON API call with the page's token (or `token`, to try one);
 *  failures become an ApiError with the server's message. The page's own
 *  token refused (revoked meanwhile) stops the page: see `refuse`. */
async function api(path, { token, ...options } = {}) {
  const own = token === undefined;
  if (own && auth.refused) throw new ApiError(401, BAD_TOKEN);
  const sent = own ? auth.token : token;
  const headers = { accept: "application/json" };
  if (options.body !== undefined) headers["content-type"] = "application/json";
  if (sent) headers.authorization = `Bearer ${sent}`;
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
    if (response.status === 401 && own && sent && auth.view !== null) refuse();
    throw new ApiError(response.status, message);
  }
  return body;
}

// ---- Access --------------------------------------------------------------

/** Where this browser keeps the token, and whose it was. */
const TOKEN_KEY = "udaconnect.token";
const CALLER_KEY = "udaconnect.caller";
const BAD_TOKEN = "That token is unknown or was revoked.";
const DEVICE_TOKEN = "That is a device's token: it is for a phone's app, not for this page.";

const auth = {
  /** Sent with every call (and as `access_token` on the streams), or null. */
  token: null,
  /** The view shown: "organiser" or "attendee", once the server said. */
  view: null,
  /** Whether the server refused the token the page ran on. */
  refused: false,
};

/** localStorage, which a browser may refuse: then the token lasts as long
 *  as the page. */
function stored(key) {
  try {
    return localStorage.getItem(key);
  } catch (err) {
    return null;
  }
}

function store(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch (err) {
    // Kept for this page only.
  }
}

function remember(token, caller) {
  auth.token = token;
  store(TOKEN_KEY, token);
  store(CALLER_KEY, caller);
}

/** Forgets the token; an attendee's is remembered as having been one
 *  (`wasAttendee`), so that coming back says their link is no longer
 *  valid rather than asking for the organiser's token. */
function forget(wasAttendee = false) {
  auth.token = null;
  store(TOKEN_KEY, null);
  store(CALLER_KEY, wasAttendee ? "attendee" : null);
}

/** `path` with the token as `access_token`: an EventSource sends no
 *  headers. */
function withToken(path) {
  if (!auth.token) return path;
  return `${path}${path.includes("?") ? "&" : "?"}access_token=${encodeURIComponent(auth.token)}`;
}

/** Shows one of the gates ("signin", "link-invalid") in place of the page. */
function showGate(id) {
  document.body.dataset.view = id;
  $("main").hidden = true;
  $("live-stats").hidden = true;
  $("who").hidden = true;
  $("sign-out").hidden = true;
  $("signin").hidden = id !== "signin";
  $("link-invalid").hidden = id !== "link-invalid";
}

function showSignIn(message) {
  showGate("signin");
  $("signin-error").textContent = message;
  $("token-input").focus();
}

/** The page's token was refused (revoked while the page was open, or
 *  unknown): its streams stop, the token is forgotten, and the page says
 *  so: an attendee's link is no longer valid; the organiser is asked again
 *  (on an open API, which needs no token, the page starts again without
 *  it). */
function refuse() {
  if (auth.refused) return;
  auth.refused = true;
  const view = auth.view;
  forget(view === "attendee");
  stopStreams();
  clearError();
  if (view === "attendee") {
    showGate("link-invalid");
  } else if (state.openApi) {
    location.reload();
  } else {
    showSignIn(BAD_TOKEN);
  }
}

/** Whether the server still takes the page's token: a stream refused for
 *  it says no more than that it failed. A refusal stops the page. */
async function tokenAccepted() {
  if (!auth.token) return true;
  try {
    await api("/api/v2/me");
  } catch (err) {
    return err.status !== 401;
  }
  return !auth.refused;
}

function stopStreams() {
  for (const source of [state.liveSource, state.meetingsSource]) {
    if (source) source.close();
  }
  state.liveSource = null;
  state.meetingsSource = null;
  clearTimeout(state.liveRetry);
  clearTimeout(state.meetingsRetry);
}

/** The organiser's token typed in: kept if the server takes it, and the
 *  page starts again with it. */
async function signIn(event) {
  event.preventDefault();
  const token = $("token-input").value.trim();
  const error = $("signin-error");
  if (!token) {
    error.textContent = "Enter the organiser's token.";
    return;
  }
  error.textContent = "";
  let me;
  try {
    me = await api("/api/v2/me", { token });
  } catch (err) {
    error.textContent = err.status === 401 ? BAD_TOKEN : err.message;
    return;
  }
  if (me.caller === "device") {
    error.textContent = DEVICE_TOKEN;
    return;
  }
  remember(token, me.caller);
  location.reload();
}

function signOut() {
  forget();
  location.reload();
}

/** Not an attendee whose link went: the organiser, who signs in. */
function organiserInstead() {
  store(CALLER_KEY, null);
  showSignIn("");
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

const dayFormat = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
const clockFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: "UTC" });

/** "Jun 8, 09:05–09:30" within a day (with the year when it is not this
 *  one), "Jun 8, 23:50 – Jun 9, 00:20" across days. UTC. */
function formatPeriod(start, end) {
  const [from, until] = [new Date(start), new Date(end)];
  if (from.toISOString().slice(0, 10) !== until.toISOString().slice(0, 10)) {
    return `${formatTime(start)} – ${formatTime(end)}`;
  }
  const year = yearFormat.format(from);
  const day = year === yearFormat.format(new Date()) ? dayFormat.format(from) : `${dayFormat.format(from)}, ${year}`;
  return `${day}, ${clockFormat.format(from)}–${clockFormat.format(until)}`;
}

/** "40 s", "25 min", "3 h 05 min": time spent together. */
function formatDuration(seconds) {
  if (seconds < 59.5) return `${Math.round(seconds)} s`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const rest = minutes % 60;
  const hours = numberFormat.format(Math.floor(minutes / 60));
  return rest === 0 ? `${hours} h` : `${hours} h ${String(rest).padStart(2, "0")} min`;
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

// ---- Whom a person met -------------------------------------------------

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

const DAY = 24 * 3600 * 1000;

/** Their last day if they were seen today; otherwise the 30 days up to
 *  their last meeting; the original frontend's year for someone who never
 *  met anyone. */
async function defaultQuery(person) {
  const since = new Date(Date.now() - DAY);
  try {
    const recent = await api(`/api/v2/persons/${person.id}/locations?start=${encodeURIComponent(since.toISOString())}&limit=1`);
    if (recent.locations.length > 0) {
      return { start: isoDay(since), end: isoDay(new Date(Date.now() + DAY)) };
    }
    const last = await api(`/api/v2/persons/${person.id}/meetings?limit=1`);
    if (last.meetings.length > 0) {
      const end = new Date(last.meetings[0].end);
      return { start: isoDay(new Date(end.getTime() - 29 * DAY)), end: isoDay(new Date(end.getTime() + DAY)) };
    }
  } catch (err) {
    showError(err);
  }
  return { ...ORIGINAL };
}

async function selectPerson(person) {
  state.person = person;
  markCurrent();
  if (auth.view === "organiser") history.replaceState(null, "", `#person=${person.id}`);
  $("no-person").hidden = true;
  $("person-view").hidden = false;
  $("person-name").textContent = `${person.first_name} ${person.last_name}`;
  $("person-company").textContent = person.company_name;
  hideCreated();
  $("access-error").textContent = "";
  $("credentials").tBodies[0].replaceChildren();
  $("credentials-count").textContent = "";
  loadCredentials(person);
  followMeetings(person);
  const query = await defaultQuery(person);
  if (state.person !== person) return;
  $("start").value = query.start;
  $("end").value = query.end;
  runQuery();
}

function readQuery() {
  const error = $("query-error");
  const start = $("start").value;
  const end = $("end").value;
  if (!start || !end) {
    error.textContent = "Pick both dates.";
    return null;
  }
  if (start >= end) {
    error.textContent = "The first day must be before the last.";
    return null;
  }
  error.textContent = "";
  return { start, end };
}

async function runQuery() {
  const query = readQuery();
  if (!query || !state.person) return;
  state.query = query;
  state.meetings = new Map();
  state.meetingsCapped = false;
  state.highlighted = null;
  state.fresh = new Map();
  $("contacts").tBodies[0].replaceChildren();
  $("contacts-summary").textContent = "searching…";
  await Promise.all([loadMeetings(), loadOwn()]);
  drawPlot();
}

/** The person's meetings in the range, most recent first, a page at a time
 *  up to MAX_MEETINGS. Meetings streamed meanwhile are applied on top. */
async function loadMeetings() {
  const person = state.person;
  const query = state.query;
  const run = ++state.meetingsRun;
  state.pending = [];
  const found = [];
  let cursor = null;
  let capped = false;
  try {
    do {
      const params = new URLSearchParams({ start: query.start, end: query.end, limit: String(MEETINGS_PAGE) });
      if (cursor) params.set("cursor", cursor);
      const page = await api(`/api/v2/persons/${person.id}/meetings?${params}`);
      found.push(...page.meetings);
      cursor = page.next_cursor;
      if (found.length >= MAX_MEETINGS && cursor) {
        capped = true;
        break;
      }
    } while (cursor);
  } catch (err) {
    if (run !== state.meetingsRun) return;
    state.pending = null;
    $("contacts-summary").textContent = "";
    if (err.status === 400) {
      $("query-error").textContent = err.message;
    } else {
      showError(err);
    }
    return;
  }
  if (run !== state.meetingsRun || state.person !== person || state.query !== query) return;
  clearError();
  state.meetings = new Map(found.slice(0, MAX_MEETINGS).map((meeting) => [meeting.id, meeting]));
  state.meetingsCapped = capped;
  const pending = state.pending;
  state.pending = null;
  for (const meeting of pending) {
    if (applyMeeting(meeting)) markChanged(meeting);
  }
  renderMeetings();
}

/** An RFC 3339 time as milliseconds, to compare (the text does not sort:
 *  fractions of a second are written only when there are some). */
const ms = (iso) => Date.parse(iso);

/** Whether `meeting` overlaps the range asked (dates are midnight UTC). */
function inRange(meeting, query) {
  return ms(meeting.end) >= ms(`${query.start}T00:00:00Z`) && ms(meeting.start) < ms(`${query.end}T00:00:00Z`);
}

/** Whether `outer`'s period holds `inner`'s. */
function within(inner, outer) {
  return ms(inner.start) >= ms(outer.start) && ms(inner.end) <= ms(outer.end);
}

/** A meeting as it is now, from the live stream: it replaces its earlier
 *  state and any meeting of the same two it took in (those lie within its
 *  period). Returns whether anything changed. */
function applyMeeting(meeting) {
  if (!state.query || !inRange(meeting, state.query)) return false;
  const known = state.meetings.get(meeting.id);
  if (known && known.contacts >= meeting.contacts && within(meeting, known)) {
    // Older news than what was read.
    return false;
  }
  for (const [id, other] of state.meetings) {
    if (other.with.id === meeting.with.id && within(other, meeting)) {
      state.meetings.delete(id);
    }
  }
  state.meetings.set(meeting.id, meeting);
  return true;
}

/** The rows of a meeting that started or grew stand out for a moment. */
function markChanged(meeting) {
  const now = Date.now();
  state.fresh.set(`p${meeting.with.id}`, now);
  state.fresh.set(`m${meeting.id}`, now);
}

/** The meetings per other person: their total time together, most first. */
function groupMeetings() {
  const groups = new Map();
  for (const meeting of state.meetings.values()) {
    let group = groups.get(meeting.with.id);
    if (!group) {
      group = { person: meeting.with, meetings: [], seconds: 0, last: meeting.end, closest: meeting };
      groups.set(meeting.with.id, group);
    }
    group.person = meeting.with;
    group.meetings.push(meeting);
    group.seconds += meeting.duration_s;
    if (ms(meeting.end) > ms(group.last)) group.last = meeting.end;
    if (meeting.closest.distance_m < group.closest.closest.distance_m) group.closest = meeting;
  }
  for (const group of groups.values()) {
    group.meetings.sort((a, b) => ms(b.start) - ms(a.start) || b.id - a.id);
  }
  return [...groups.values()].sort((a, b) =>
    b.seconds - a.seconds || ms(b.last) - ms(a.last) || a.person.id - b.person.id);
}

/** Marks a row as just changed: it flashes once (FRESH_FOR ms), even when
 *  drawn again meanwhile. */
function markFresh(row, key) {
  const since = state.fresh.get(key);
  if (since === undefined) return;
  const elapsed = Date.now() - since;
  if (elapsed >= FRESH_FOR) {
    state.fresh.delete(key);
    return;
  }
  row.classList.add("fresh");
  row.style.animationDelay = `-${elapsed}ms`;
  row.addEventListener("animationend", () => row.classList.remove("fresh"), { once: true });
}

function renderMeetings() {
  const body = $("contacts").tBodies[0];
  const groups = groupMeetings();
  const rows = [];
  for (const group of groups) {
    const person = group.person;
    const open = state.highlighted === person.id;
    const count = group.meetings.length;
    const row = el("tr", { class: "person", "data-person": String(person.id), "aria-expanded": String(open) },
      el("td", { class: "name" }, el("span", { class: "swatch", style: `background:${colour(person.id)}` }), `${person.first_name} ${person.last_name}`),
      el("td", { class: "company" }, person.company_name),
      el("td", { class: "num together" }, formatDuration(group.seconds)),
      el("td", { class: "num count" }, numberFormat.format(count)),
      el("td", { class: "last" }, formatTime(group.last)),
      el("td", { class: "num closest" }, formatMetres(group.closest.closest.distance_m)));
    if (open) row.classList.add("highlight");
    markFresh(row, `p${person.id}`);
    row.addEventListener("click", () => highlight(person.id));
    rows.push(row);
    if (open) rows.push(meetingsRow(group));
  }
  body.replaceChildren(...rows);
  const people = groups.length;
  const meetings = state.meetings.size;
  $("contacts-empty").hidden = people > 0;
  $("meetings-capped").hidden = !state.meetingsCapped;
  $("meetings-capped").textContent = `The ${numberFormat.format(MAX_MEETINGS)} most recent meetings in this range are shown: pick fewer days to see the earlier ones.`;
  $("contacts-summary").textContent = people === 0 ? "" :
    `${numberFormat.format(people)} ${people === 1 ? "person" : "people"} · ${numberFormat.format(meetings)}${state.meetingsCapped ? "+" : ""} ${meetings === 1 ? "meeting" : "meetings"}`;
  drawPlot();
}

/** One person's meetings, below their row: when, how long, where. */
function meetingsRow(group) {
  const list = el("ol", { class: "meeting-list" });
  for (const meeting of group.meetings) {
    const item = el("li", { "data-meeting": String(meeting.id) },
      el("span", { class: "when" }, `${formatPeriod(meeting.start, meeting.end)} UTC`),
      el("span", { class: "duration" }, formatDuration(meeting.duration_s)),
      el("span", { class: "where" }, `${formatMetres(meeting.closest.distance_m)} apart at ${meeting.closest.lat.toFixed(5)}, ${meeting.closest.lon.toFixed(5)}`));
    markFresh(item, `m${meeting.id}`);
    list.append(item);
  }
  return el("tr", { class: "meetings", "data-person": String(group.person.id) },
    el("td", { colspan: "6" }, list));
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
  const met = [...state.meetings.values()].map((meeting) => ({ meeting, lat: meeting.closest.lat, lon: meeting.closest.lon }));
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
  let [minX, maxX, minY, maxY] = [Infinity, -Infinity, Infinity, -Infinity];
  for (const [x, y] of xy) {
    minX = Math.min(minX, x);
    maxX = Math.max(maxX, x);
    minY = Math.min(minY, y);
    maxY = Math.max(maxY, y);
  }
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
  const metGroup = svg("g", { class: state.highlighted === null ? "met-points" : "met-points focused" });
  const highlighted = [];
  met.forEach(({ meeting }, index) => {
    const [x, y] = toScreen(xy[state.own.length + index]);
    const person = meeting.with;
    const dot = svg("circle", {
      cx: x.toFixed(1), cy: y.toFixed(1), r: 5.5, class: "met", "data-kind": "met",
      "data-person": String(person.id), "data-meeting": String(meeting.id), fill: colour(person.id),
    });
    dot.dataset.tip = `${person.first_name} ${person.last_name} · ${formatPeriod(meeting.start, meeting.end)} UTC · ${formatDuration(meeting.duration_s)} · ${formatMetres(meeting.closest.distance_m)} apart`;
    dot.addEventListener("click", () => highlight(person.id));
    if (state.highlighted === person.id) {
      dot.classList.add("highlight");
      highlighted.push(dot);
    } else {
      metGroup.append(dot);
    }
  });
  // The highlighted person's points drawn last, on top.
  metGroup.append(...highlighted);
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

/** Picks a person met (or lets them go): their row opens on their meetings
 *  and their meeting points stand out on the plot. */
function highlight(personId) {
  state.highlighted = state.highlighted === personId ? null : personId;
  renderMeetings();
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

// ---- Live meetings -----------------------------------------------------

/** Follows the person's meetings as they start and grow. The browser
 *  reconnects by itself, resending the last event's id, and is sent what
 *  it missed; a stream opened anew (after a refusal) reads the list again. */
function followMeetings(person, retry = LIVE_RETRY_FIRST, again = false) {
  if (state.meetingsSource) state.meetingsSource.close();
  clearTimeout(state.meetingsRetry);
  const source = new EventSource(withToken(`/api/v2/persons/${person.id}/meetings/live`));
  state.meetingsSource = source;
  source.addEventListener("open", () => {
    if (again && state.person === person && state.query) loadMeetings();
    again = false;
  });
  source.addEventListener("error", () => {
    if (source.readyState !== EventSource.CLOSED || state.meetingsSource !== source) return;
    const wait = retry / 2 + Math.random() * (retry / 2);
    state.meetingsRetry = setTimeout(async () => {
      if (!(await tokenAccepted())) return;
      if (state.person === person) followMeetings(person, Math.min(retry * 2, LIVE_RETRY_LAST), true);
    }, wait);
  });
  source.addEventListener("meeting", (event) => {
    if (state.meetingsSource !== source) return;
    let meeting;
    try {
      meeting = JSON.parse(event.data);
    } catch (err) {
      return;
    }
    if (state.pending) {
      // The list is being read: applied once it is.
      state.pending.push(meeting);
      return;
    }
    if (!applyMeeting(meeting)) return;
    markChanged(meeting);
    scheduleRender();
    refreshIfOpen(true);
  });
  source.addEventListener("reset", () => {
    if (state.meetingsSource === source && state.query) loadMeetings();
  });
}

let renderPending = false;

/** Draws the table and the plot once for the events of one read. */
function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => {
    renderPending = false;
    renderMeetings();
  });
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
  const source = new EventSource(withToken("/api/v2/live"));
  state.liveSource = source;
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
    state.liveRetry = setTimeout(async () => {
      if (await tokenAccepted()) connectLive(Math.min(retry * 2, LIVE_RETRY_LAST));
    }, wait);
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
    if (auth.view === "organiser") {
      showPeopleCount();
      if (added) refreshNewestPeople();
    }
    if (grew) refreshIfOpen();
  });
}

let refreshTimer = null;

/** New locations arrived: if the range reaches up to now, or one of the
 *  person's meetings changed (`theirs`), the person's locations are read
 *  again for the plot (at most every REFRESH_EVERY, and once more after
 *  the last arrival); their meetings come on their own stream. */
async function refreshIfOpen(theirs = false) {
  if (!state.person || !state.query) return;
  if (!theirs && state.query.end <= isoDay(new Date())) return;
  const wait = REFRESH_EVERY - (Date.now() - state.lastRefresh);
  if (wait > 0) {
    if (refreshTimer === null) {
      refreshTimer = setTimeout(() => {
        refreshTimer = null;
        refreshIfOpen(true);
      }, wait);
    }
    return;
  }
  state.lastRefresh = Date.now();
  await loadOwn();
  drawPlot();
}

// ---- Links and devices ---------------------------------------------------

/** The person's credentials (never a token): for the organiser, every
 *  link and device; for the attendee, their devices. */
async function loadCredentials(person) {
  let answer;
  try {
    answer = await api(`/api/v2/persons/${person.id}/credentials`);
  } catch (err) {
    if (state.person === person) $("access-error").textContent = err.message;
    return;
  }
  if (state.person !== person) return;
  const shown = auth.view === "attendee"
    ? answer.credentials.filter((credential) => credential.kind === "device")
    : answer.credentials;
  renderCredentials(shown.slice().reverse());
}

const KINDS = { attendee: "attendee link", device: "device" };

/** A row per credential, the newest first: a revoke button while active. */
function renderCredentials(credentials) {
  const rows = credentials.map((credential) => {
    const status = el("td", { class: "status" });
    if (credential.revoked) {
      status.append(el("span", { class: "revoked" }, `revoked ${formatTime(credential.revoked)}`));
    } else {
      const button = el("button", { type: "button", class: "revoke" }, "Revoke");
      button.addEventListener("click", () => revokeCredential(credential, button));
      status.append(el("span", { class: "active" }, "active"), button);
    }
    return el("tr", {
      "data-credential": String(credential.id),
      "data-kind": credential.kind,
      "data-revoked": String(Boolean(credential.revoked)),
    },
    el("td", { class: "label" }, credential.label),
    el("td", { class: "kind" }, KINDS[credential.kind] || credential.kind),
    el("td", { class: "made" }, formatTime(credential.created)),
    status);
  });
  $("credentials").tBodies[0].replaceChildren(...rows);
  $("credentials").hidden = rows.length === 0;
  $("credentials-empty").hidden = rows.length > 0;
  const active = credentials.filter((credential) => !credential.revoked).length;
  $("credentials-count").textContent = rows.length === 0 ? "none yet" : `${numberFormat.format(active)} active`;
}

async function createCredential(kind, label) {
  const person = state.person;
  if (!person) return;
  $("access-error").textContent = "";
  const body = label ? { kind, label } : { kind };
  let created;
  try {
    created = await api(`/api/v2/persons/${person.id}/credentials`, { method: "POST", body: JSON.stringify(body) });
  } catch (err) {
    if (state.person === person) $("access-error").textContent = err.message;
    return;
  }
  if (state.person !== person) return;
  showCreated(created, person);
  loadCredentials(person);
}

async function revokeCredential(credential, button) {
  button.disabled = true;
  $("access-error").textContent = "";
  try {
    await api(`/api/v2/credentials/${credential.id}`, { method: "DELETE" });
  } catch (err) {
    $("access-error").textContent = err.message;
    button.disabled = false;
    return;
  }
  if (state.person && state.person.id === credential.person_id) loadCredentials(state.person);
}

/** A read-only field with a button that copies it. */
function copyField(label, value, name) {
  const input = el("input", { type: "text", readonly: "", spellcheck: "false", "data-field": name });
  input.value = value;
  const button = el("button", { type: "button", class: "copy" }, "Copy");
  button.addEventListener("click", async () => {
    input.select();
    let copied;
    try {
      await navigator.clipboard.writeText(value);
      copied = true;
    } catch (err) {
      copied = document.execCommand("copy");
    }
    button.textContent = copied ? "Copied" : "Selected: copy it";
    setTimeout(() => { button.textContent = "Copy"; }, FRESH_FOR);
  });
  return el("label", { class: "copy-field" }, el("span", {}, label), el("span", { class: "copy-row" }, input, button));
}

/** Text as base64, whatever its characters. */
function base64(text) {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** What a credential just made holds, shown this once: an attendee's link,
 *  or a device's token with what Traccar Client and OwnTracks need (the
 *  setup link also as the QR code the server drew, shown as an image, not
 *  as markup). */
function showCreated(created, person) {
  const name = `${person.first_name} ${person.last_name}`;
  const parts = [];
  if (created.kind === "attendee") {
    parts.push(
      el("p", { class: "once" }, `${name}'s link, shown this once: copy it and give it to them. Whoever opens it sees their meetings and devices.`),
      copyField("Attendee link", created.link, "link"));
  } else {
    const traccar = el("div", { class: "app", "data-app": "traccar" },
      el("h4", {}, "Traccar Client"),
      copyField("Server URL", created.traccar.server_url, "traccar-url"),
      copyField("Device identifier", created.traccar.device_identifier, "traccar-id"));
    const owntracks = el("div", { class: "app", "data-app": "owntracks" },
      el("h4", {}, "OwnTracks"),
      el("p", { class: "hint" }, "Scan the code with the phone, or open the link on it: it sets OwnTracks' HTTP mode, URL, user and password."));
    if (created.owntracks.setup_qr_svg) {
      owntracks.append(el("img", {
        class: "qr",
        alt: "QR code of the OwnTracks setup link",
        width: "200",
        height: "200",
        src: `data:image/svg+xml;base64,${base64(created.owntracks.setup_qr_svg)}`,
      }));
    } else {
      owntracks.append(el("p", { class: "hint" }, "The setup link is too long for a QR code: open it on the phone."));
    }
    owntracks.append(copyField("Setup link", created.owntracks.setup_link, "owntracks-link"));
    parts.push(
      el("p", { class: "once" }, `The token of ${name}'s device “${created.label}”, shown this once: set the phone up now.`),
      copyField("Token", created.token, "token"),
      el("div", { class: "apps" }, traccar, owntracks));
  }
  const done = el("button", { type: "button", class: "done" }, "Done");
  done.addEventListener("click", hideCreated);
  const box = $("created");
  box.dataset.kind = created.kind;
  box.replaceChildren(...parts, done);
  box.hidden = false;
  box.scrollIntoView({ block: "nearest" });
}

/** Forgets what was shown once. */
function hideCreated() {
  const box = $("created");
  box.replaceChildren();
  box.hidden = true;
}

function onDeviceForm(event) {
  event.preventDefault();
  const input = event.target.elements.label;
  const label = input.value.trim();
  input.value = "";
  createCredential("device", label || "phone");
}

// ---- Start -------------------------------------------------------------

function showMain() {
  document.body.dataset.view = auth.view;
  $("signin").hidden = true;
  $("link-invalid").hidden = true;
  $("main").hidden = false;
  $("live-stats").hidden = false;
  $("sign-out").hidden = !auth.token;
}

/** Everyone, their meetings, their links and devices. */
async function startOrganiser() {
  auth.view = "organiser";
  // A link may carry the organiser's token too (`make up` opens one).
  if (auth.token) store(CALLER_KEY, "organiser");
  showMain();
  $("who").hidden = !auth.token;
  $("who").textContent = "Organiser";
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

/** Their own page: their meetings and their devices, nobody else's. */
async function startAttendee(personId) {
  auth.view = "attendee";
  showMain();
  $("people").hidden = true;
  $("access-title").textContent = "Your devices";
  $("access-hint").textContent = "The phones that send your positions. Lost one? Revoke it: it can send nothing more.";
  $("access-actions").hidden = true;
  $("access").open = true;
  connectLive();
  let person;
  try {
    person = await api(`/api/v2/persons/${personId}`);
  } catch (err) {
    showError(err);
    return;
  }
  $("who").textContent = `${person.first_name} ${person.last_name}`;
  $("who").hidden = false;
  selectPerson(person);
}

/** Asks the server who the page's token is, and shows that view; an
 *  unknown or revoked token is forgotten. Retried while the API cannot
 *  be reached. */
async function enter(notice = "", retry = LIVE_RETRY_FIRST) {
  let me;
  try {
    me = await api("/api/v2/me");
  } catch (err) {
    if (err.status === 401 && auth.token) {
      forget(stored(CALLER_KEY) === "attendee");
      enter(BAD_TOKEN);
      return;
    }
    showError(err);
    const wait = retry / 2 + Math.random() * (retry / 2);
    setTimeout(() => enter(notice, Math.min(retry * 2, LIVE_RETRY_LAST)), wait);
    return;
  }
  clearError();
  state.openApi = me.open_api === true;
  switch (me.caller) {
    case "organiser":
      await startOrganiser();
      break;
    case "attendee":
      await startAttendee(me.person_id);
      break;
    case "device":
      forget();
      enter(DEVICE_TOKEN);
      break;
    default:
      if (stored(CALLER_KEY) === "attendee") showGate("link-invalid");
      else showSignIn(notice);
  }
}

async function start() {
  $("search").addEventListener("input", onSearch);
  $("people-more").addEventListener("click", () => loadPeople(false));
  $("create-form").addEventListener("submit", createPerson);
  $("query").addEventListener("change", runQuery);
  $("query").addEventListener("submit", (event) => {
    event.preventDefault();
    runQuery();
  });
  $("plot").addEventListener("mouseover", onPlotHover);
  $("plot").addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
  $("signin-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("organiser-instead").addEventListener("click", organiserInstead);
  $("make-link").addEventListener("click", () => createCredential("attendee"));
  $("device-form").addEventListener("submit", onDeviceForm);
  // An attendee's link (or the organiser's, as `make up` opens it): its
  // token is kept, and taken out of the address bar (and so of the
  // history and of what is shared from it).
  const link = /^#token=([^&]+)$/.exec(location.hash);
  if (link) {
    let token = link[1];
    try {
      token = decodeURIComponent(token);
    } catch (err) {
      // Kept as it is: the server says whether it is one.
    }
    remember(token, "attendee");
    history.replaceState(null, "", `${location.pathname}${location.search}`);
  } else {
    auth.token = stored(TOKEN_KEY);
  }
  await enter();
}

start();
