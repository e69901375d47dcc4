// Beacon's live page: loads recent history, then follows /events from the
// last sequence it has. Every message is shown once, in sequence order,
// newest on top; a reconnect (to this or any receiver) resumes after the
// last sequence shown.
'use strict';

const HISTORY = 100;         // messages loaded when the page opens
const KEEP = 500;            // messages kept on the page
const MAX_INTERVALS = 10000; // intervals kept for the histogram
const BINS = 10;
const GAP_SHOWN_MS = 10000;  // how long the header says "gap"
const RETRY_MAX_MS = 30000;  // longest wait between reconnection attempts
const LABELS = { busy: 'busy, retrying' };
// Why a row loaded with the page has no latency: it is measured on arrival.
const UNMEASURED = 'Sent before this page opened (loaded from history): its latency was not measured';

const view = {
  state: document.getElementById('state'),
  count: document.getElementById('count'),
  lastSeq: document.getElementById('last-seq'),
  list: document.getElementById('messages'),
  empty: document.getElementById('empty'),
  template: document.getElementById('message-template'),
  histogram: document.getElementById('histogram'),
  summary: document.getElementById('histogram-summary'),
  axis: document.getElementById('axis'),
  axisMin: document.getElementById('axis-min'),
  axisMax: document.getElementById('axis-max'),
  latencyNote: document.getElementById('latency-note'),
};

const page = {
  lastSeq: null,      // newest sequence shown (or known, for an empty stream)
  lastSentAt: null,   // its sent_at, for Δt
  count: 0,
  intervals: [],
  source: null,
  retryMs: 1000,
  gapUntil: 0,
  unmeasured: 0,      // rows shown without a latency (loaded with the page)
};

function setState(state) {
  if (state === 'live' && Date.now() < page.gapUntil) state = 'gap';
  view.state.dataset.state = state;
  view.state.textContent = LABELS[state] ?? state;
}

function formatMs(ms) {
  if (ms == null || !Number.isFinite(ms)) return '—';
  if (Math.abs(ms) < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

// "1 interval", "2 intervals".
function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

// The two ends of the histogram's axis, told apart: in milliseconds when
// rounding would show the same value at both.
function axisLabels(min, max) {
  const labels = [formatMs(min), formatMs(max)];
  if (labels[0] !== labels[1]) return labels;
  return [min, max].map((ms) => `${Math.round(ms)} ms`);
}

function formatTime(date) {
  return date.toLocaleTimeString([], { hour12: false }) + '.' + String(date.getMilliseconds()).padStart(3, '0');
}

function isMessage(m) {
  return m && Number.isSafeInteger(m.seq) && typeof m.text === 'string' && typeof m.sender === 'string'
    && typeof m.sent_at === 'string' && Number.isFinite(m.interval_ms);
}

// Adds one message on top. `live` is false for history loaded with the
// page, whose end-to-end latency is not meaningful.
function add(m, live) {
  if (!isMessage(m) || (page.lastSeq != null && m.seq <= page.lastSeq)) return;
  const sentAt = new Date(m.sent_at);
  const item = view.template.content.firstElementChild.cloneNode(true);
  item.dataset.seq = String(m.seq);
  item.querySelector('.text').textContent = m.text;
  item.querySelector('.seq').textContent = String(m.seq);
  item.querySelector('.sender').textContent = m.sender;
  item.querySelector('.sender').title = m.sender;
  const time = item.querySelector('.sent');
  time.dateTime = m.sent_at;
  time.textContent = Number.isNaN(sentAt.getTime()) ? m.sent_at : formatTime(sentAt);
  const dt = page.lastSentAt == null ? null : sentAt - page.lastSentAt;
  item.querySelector('.dt').textContent = formatMs(dt);
  const latency = item.querySelector('.latency');
  if (live) {
    latency.textContent = formatMs(Date.now() - sentAt);
    item.classList.add('fresh');
  } else {
    latency.textContent = '—';
    latency.title = UNMEASURED;
    latency.classList.add('unmeasured');
    page.unmeasured += 1;
  }
  view.list.prepend(item);
  while (view.list.children.length > KEEP) {
    if (view.list.lastElementChild.querySelector('.unmeasured')) page.unmeasured -= 1;
    view.list.lastElementChild.remove();
  }
  view.latencyNote.hidden = page.unmeasured === 0;

  page.lastSeq = m.seq;
  page.lastSentAt = sentAt;
  page.count += 1;
  view.count.textContent = String(page.count);
  view.lastSeq.textContent = String(m.seq);
  view.empty.hidden = true;
  page.intervals.push(m.interval_ms);
  if (page.intervals.length > MAX_INTERVALS) page.intervals.shift();
}

function showGap(gap) {
  const row = document.createElement('li');
  row.className = 'gap-row';
  row.dataset.gapFrom = String(gap.from);
  row.dataset.gapTo = String(gap.to);
  row.textContent = `Messages ${gap.from}–${gap.to} are no longer retained.`;
  view.list.prepend(row);
  page.lastSeq = Math.max(page.lastSeq ?? 0, gap.to);
  page.lastSentAt = null;
  page.gapUntil = Date.now() + GAP_SHOWN_MS;
  setState('gap');
  setTimeout(() => { if (view.state.dataset.state === 'gap') setState('live'); }, GAP_SHOWN_MS + 50);
}

// The stream was created anew (a wiped broker, `beacon all` restarted): what
// the page shows belongs to the old one. Start over, as a reload would.
function resetPage() {
  if (page.source) page.source.close();
  page.source = null;
  page.lastSeq = null;
  page.lastSentAt = null;
  page.count = 0;
  page.intervals = [];
  page.gapUntil = 0;
  page.unmeasured = 0;
  view.latencyNote.hidden = true;
  view.list.replaceChildren();
  view.histogram.replaceChildren();
  view.histogram.classList.remove('single');
  view.count.textContent = '0';
  view.lastSeq.textContent = '—';
  view.empty.hidden = false;
  view.summary.textContent = 'waiting for messages';
  view.axis.classList.remove('single');
  view.axisMin.textContent = '';
  view.axisMax.textContent = '';
  view.axisMax.hidden = false;
  start();
}

// Ten bars from the shortest interval to the longest; when they are all
// the same (one interval, or a broadcaster with a fixed wait), one bar in
// the middle with that value under it, rather than an axis whose two ends
// read alike.
let histogramQueued = false;
function drawHistogram() {
  if (histogramQueued) return;
  histogramQueued = true;
  requestAnimationFrame(() => {
    histogramQueued = false;
    const values = page.intervals;
    if (values.length === 0) return;
    let min = Infinity;
    let max = -Infinity;
    for (const v of values) { if (v < min) min = v; if (v > max) max = v; }
    const single = min === max;
    const bins = single ? 1 : BINS;
    const width = (max - min) / bins;
    const counts = new Array(bins).fill(0);
    for (const v of values) counts[single ? 0 : Math.min(bins - 1, Math.floor((v - min) / width))] += 1;
    const peak = Math.max(...counts);
    if (view.histogram.children.length !== bins) {
      view.histogram.replaceChildren(...counts.map(() => {
        const bar = document.createElement('div');
        bar.className = 'bar';
        return bar;
      }));
    }
    view.histogram.classList.toggle('single', single);
    counts.forEach((count, i) => {
      const bar = view.histogram.children[i];
      bar.style.height = `${Math.max(2, (count / peak) * 100)}%`;
      bar.title = single
        ? `${formatMs(min)}: ${count}`
        : `${formatMs(min + i * width)} – ${formatMs(min + (i + 1) * width)}: ${count}`;
    });
    view.axis.classList.toggle('single', single);
    const [low, high] = single ? [formatMs(min), ''] : axisLabels(min, max);
    view.axisMin.textContent = low;
    view.axisMax.textContent = high;
    view.axisMax.hidden = single;
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    view.summary.textContent = `${plural(values.length, 'interval')} · mean ${formatMs(mean)}`;
  });
}

async function loadHistory() {
  const response = await fetch(`/api/messages?limit=${HISTORY}`, { cache: 'no-store' });
  if (!response.ok) throw new Error(`history: HTTP ${response.status}`);
  const body = await response.json();
  for (const m of body.messages) add(m, false);
  if (page.lastSeq == null && Number.isSafeInteger(body.last_seq)) page.lastSeq = body.last_seq;
  drawHistogram();
}

function connect() {
  if (page.source) page.source.close();
  const url = page.lastSeq == null ? '/events' : `/events?after=${page.lastSeq}`;
  const source = new EventSource(url);
  page.source = source;
  source.onopen = () => {
    page.retryMs = 1000;
    setState('live');
  };
  source.onmessage = (event) => {
    let m;
    try { m = JSON.parse(event.data); } catch { return; }
    add(m, true);
    drawHistogram();
  };
  source.addEventListener('gap', (event) => {
    try { showGap(JSON.parse(event.data)); } catch { /* ignore a malformed gap */ }
  });
  source.addEventListener('reset', resetPage);
  source.onerror = () => {
    // The browser retries by itself (sending Last-Event-ID) unless the
    // server answered with an error; then we reconnect from our own cursor.
    if (source.readyState !== EventSource.CLOSED) {
      setState('reconnecting');
      return;
    }
    source.close();
    if (page.source === source) page.source = null;
    retryLater(url);
  };
}

// After the server refused the stream: ask it why (an EventSource cannot
// tell), say so, and try again after a backoff with jitter, so that many
// pages refused together do not all come back at once. A receiver at its
// client cap answers 503 with Retry-After.
async function retryLater(url) {
  let busy = false;
  let retryAfterMs = 0;
  try {
    const response = await fetch(url, { method: 'HEAD', cache: 'no-store' });
    if (response.status === 503) {
      busy = true;
      retryAfterMs = (Number(response.headers.get('Retry-After')) || 0) * 1000;
    }
  } catch { /* unreachable: an ordinary reconnect */ }
  setState(busy ? 'busy' : 'reconnecting');
  const base = Math.max(page.retryMs, retryAfterMs);
  page.retryMs = Math.min(page.retryMs * 2, RETRY_MAX_MS);
  setTimeout(connect, base * (0.5 + Math.random()));
}

// History first, then the stream from where it ends: until the history
// loads (a receiver starting, a proxy error) keep trying rather than follow
// the stream without knowing where to resume from.
async function start() {
  setState('connecting');
  for (let delayMs = 500; ; delayMs = Math.min(delayMs * 2, 10000)) {
    try {
      await loadHistory();
      break;
    } catch (err) {
      console.warn(err);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
  connect();
}

start();
