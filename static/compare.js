// The compare page: the clock and the chat over all five transports at once, each lane with
// its live cost and its controls (pause, kill, the short-poll interval), and the chat lane
// showing each message's five arrivals. With `?lanes=draw` each lane shows the shared canvas
// instead of the clock: its strokes arrive over that lane's transport, and what is drawn on it
// is sent over that transport, so one stroke can be watched arriving five times.
//
// Six connections per origin: long polling, the iframe and SSE hold one connection per
// subscription, two subscriptions each, which is six, the most a browser opens to one origin
// over HTTP/1.1. So SSE and long polling subscribe from the server's other loopback name
// (localhost ↔ 127.0.0.1, same port), a second origin with its own six; the server answers it
// with CORS headers. `?one-origin` puts everything on the page's origin to show the stall.
//
// Over HTTPS the page is served over HTTP/2 (ALPN, when the browser offers h2), which carries
// every request to one origin as streams of one connection: there is no six to work around,
// so over https: every transport stays on the page's origin. The "protocols" panel shows what
// each transport actually used.

import {
  $,
  fetchJson,
  formatBytes,
  formatMs,
  plural,
  postJson,
  randomTag,
  transportTitle,
} from '/static/util.js';
import { connect, POLL_INTERVAL, TRANSPORTS } from '/static/clients/index.js';
import { latencyMs, showClockOffset, withClockOffset } from '/static/clock-offset.js';
import { H2_MAX_STREAMS, TRANSPORT } from '/static/facts.js';
import { createClock } from '/static/clock.js';
import { createDraw } from '/static/draw.js';

const RATE_WINDOW_MS = 10_000;
const LATENCY_WINDOW_MS = 60_000;
const STALE_MS = 3000;
const RENDER_MS = 500;
const STATS_MS = 2000;
const MAX_ROWS = 30;
const AUTO_SEND_MS = 2000;
const QUEUED_MS = 250;

// The loopback alias exists only for a page opened on the server's own machine: opened from
// the network (http://192.0.2.2:3000/ in a classroom), `localhost` would be the student's own
// machine, so the page then has no second origin and puts everything on its own. Over HTTPS
// the server speaks HTTP/2, where every transport shares one connection: one origin is enough.
const HAS_ALIAS = ['localhost', '127.0.0.1', '[::1]'].includes(location.hostname);
const SECURE = location.protocol === 'https:';
const QUERY = new URLSearchParams(location.search);
const ONE_ORIGIN = SECURE || !HAS_ALIAS || QUERY.has('one-origin');
// The feed each lane shows beside the chat: the clock, or the shared canvas. Never both: a
// third subscription per lane would put nine held connections on two origins.
const LANE_FEED = QUERY.get('lanes') === 'draw' ? 'draw' : 'clock';
// The server's SETTINGS_MAX_CONCURRENT_STREAMS (facts.js, from src/net/listener.rs
// MAX_H2_STREAMS): the HTTP/2 counterpart of the six.
const H2_STREAMS = H2_MAX_STREAMS;
// How often the panel reads the server's record of each lane's newest request.
const PROTOCOL_READ_MS = 5000;
const PAGE_ORIGIN = location.origin;
const ALIAS_ORIGIN = (() => {
  const host = location.hostname === 'localhost' ? '127.0.0.1' : 'localhost';
  return `${location.protocol}//${host}${location.port ? `:${location.port}` : ''}`;
})();
// The transports that hold HTTP connections and may leave the page's origin. The iframe
// may not: its scripts call parent.pushpoll, which needs the same origin.
const ON_ALIAS = new Set([TRANSPORT.sse, TRANSPORT.longpoll]);
const originOf = (transport) =>
  !ONE_ORIGIN && ON_ALIAS.has(transport) ? ALIAS_ORIGIN : PAGE_ORIGIN;
// The phases (see clients/index.js) in which a client holds a connection or waits for one (a
// request that is queued behind the six looks the same from the page).
const HOLDING = new Set(['connecting', 'waiting', 'streaming', 'open']);

const RUN = Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) =>
  b.toString(36).padStart(2, '0'),
).join('');

/** This page's address with the parameter `name` set to `value` ('' for a bare flag) or
 * removed (null), the others kept. */
function withParam(name, value) {
  const query = new URLSearchParams(location.search);
  if (value === null) query.delete(name);
  else query.set(name, value);
  const qs = query.toString().replace(/=(&|$)/g, '$1');
  return `${location.pathname}${qs ? `?${qs}` : ''}`;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

/** Drops entries older than `windowMs` from a list of [time, value] pairs. */
function prune(list, now, windowMs) {
  let i = 0;
  while (i < list.length && now - list[i][0] > windowMs) i += 1;
  if (i > 0) list.splice(0, i);
}

/** One transport: its two subscriptions (clock and chat), its figures and its controls. */
class Lane {
  constructor(transport, root, arrivals) {
    this.transport = transport;
    this.root = root;
    this.arrivals = arrivals;
    // Its own 128 random bits: the tag reads this lane's wire record and kills its connections.
    this.tag = `cmp-${transport}-${randomTag()}`;
    this.origin = originOf(transport);
    this.clock = createClock(root);
    this.feed = LANE_FEED;
    this.draw = null; // the lane's canvas (createDraw), made at the first start
    this.fields = new Map();
    for (const el of root.querySelectorAll('[data-field]')) this.fields.set(el.dataset.field, el);
    this.clients = null;
    this.cursors = { [this.feed]: null, chat: null };
    this.phases = { [this.feed]: 'connecting', chat: 'connecting' };
    this.stateText = 'starting';
    this.requests = []; // [time, 1]
    this.received = []; // [time, bytes]
    this.latencies = []; // [time, ms]
    this.bytes = 0;
    this.events = 0;
    this.lastLatency = null;
    this.lastEventAt = null;
    this.serverOpen = null;
    this.interval = POLL_INTERVAL.default;
    this.kill = null; // { at, newRequest, killed, done }
    this.set('origin', new URL(this.origin).host);
    root.dataset.origin = new URL(this.origin).host;
    root.dataset.tag = this.tag;
  }

  set(field, text) {
    const el = this.fields.get(field);
    if (el && el.textContent !== text) el.textContent = text;
  }

  get paused() {
    return this.clients === null;
  }

  /** The chat subscription's cursor: the last chat id this lane delivered (or passed). */
  get chatCursor() {
    return this.clients?.chat.cursor ?? this.cursors.chat;
  }

  handlers(feed) {
    return {
      onEvent: (event, receivedAt) => this.onEvent(feed, event, receivedAt),
      onRequest: () => {
        this.requestsTotal = (this.requestsTotal ?? 0) + 1;
        this.requests.push([performance.now(), 1]);
        // Recovery is timed on the lane's own feed: the clock has an event every second; the
        // canvas only when someone draws.
        if (this.kill && feed === this.feed) this.kill.newRequest = true;
      },
      onBytes: (n) => {
        this.bytes += n;
        this.received.push([performance.now(), n]);
      },
      ...this.bothWaysHandlers(),
      onState: (text, phase) => {
        this.phases[feed] = phase;
        if (feed === this.feed) this.stateText = text;
      },
    };
  }

  start() {
    const subscribe = (feed, params) =>
      connect(this.transport, feed, this.handlers(feed), {
        origin: this.origin,
        after: this.cursors[feed],
        params: { tag: this.tag, ...params },
        interval: this.interval,
        container: this.root,
      });
    this.clients = {
      [this.feed]: this.feed === 'draw' ? this.startDraw() : subscribe('clock', {}),
      chat: subscribe('chat', { rooms: 'lobby', history: 0 }),
    };
    this.root.dataset.paused = 'false';
  }

  /** The lane's canvas, subscribed (again) from its cursor, in the shape of a client. */
  startDraw() {
    if (this.draw) {
      this.draw.resume();
    } else {
      const canvas = this.root.querySelector('.lane-canvas');
      canvas.hidden = false;
      for (const el of this.root.querySelectorAll('.lane-time, .lane-id')) el.hidden = true;
      // The pen is the draw panel's, below the lanes.
      this.draw = createDraw(canvas.parentElement, {
        transport: this.transport,
        color: $('draw-color'),
        width: $('draw-width'),
        connectOptions: {
          origin: this.origin,
          params: { tag: this.tag },
          interval: this.interval,
          container: this.root,
        },
        tap: this.handlers('draw'),
      });
    }
    const draw = this.draw;
    return {
      get cursor() {
        return draw.cursor;
      },
      stop: () => draw.pause(),
      setInterval: (ms) => draw.setInterval(ms),
    };
  }

  stop() {
    if (!this.clients) return;
    for (const [feed, client] of Object.entries(this.clients)) {
      this.cursors[feed] = client.cursor;
      client.stop();
    }
    this.clients = null;
    this.phases = { [this.feed]: 'stopped', chat: 'stopped' };
    this.stateText = `paused: no connection; resumes after ${this.feed} id ${this.cursors[this.feed] ?? '–'} and chat id ${this.cursors.chat ?? '–'}`;
    this.root.dataset.paused = 'true';
  }

  setInterval(ms) {
    this.interval = ms;
    for (const client of Object.values(this.clients ?? {})) client.setInterval(ms);
  }

  onEvent(feed, event, receivedAt) {
    const now = performance.now();
    this.events += 1;
    this.lastEventAt = now;
    if (
      Number.isFinite(event.ts) &&
      (event.type === 'tick' || event.type === 'message' || event.type === 'stroke')
    ) {
      // On the server's clock (clock-offset.js): at once, but for the first events of a load.
      withClockOffset((estimate) => {
        const latency = latencyMs(receivedAt, event.ts, estimate);
        this.lastLatency = latency;
        this.latencies.push([now, latency]);
        if (event.type === 'message') this.arrivals.arrive(this.transport, event, latency);
      });
    }
    if (feed === 'clock' && event.type === 'tick') {
      this.clock.show(event);
      this.root.dataset.tickTime = String(event.time);
    }
    const kill = this.kill;
    if (feed === this.feed && kill && !kill.done && kill.newRequest) {
      kill.done = true;
      const took = now - kill.at;
      this.root.dataset.recoveredMs = took.toFixed(0);
      this.set(
        'recovery',
        kill.killed === 0
          ? `No request was in flight to kill (the idle keep-alive connection stays open): every poll is a new request. Next answer after ${formatMs(took)}.`
          : `Killed ${plural(kill.killed, 'connection')}; back after ${formatMs(took)}, resumed from the cursor.`,
      );
    }
  }

  async killConnection() {
    if (this.paused) return;
    delete this.root.dataset.recoveredMs;
    this.kill = { at: performance.now(), newRequest: false, killed: null, done: false };
    const kill = this.kill;
    this.set('recovery', 'Killing…');
    try {
      const answer = await postJson('/api/debug/kill', { tag: this.tag });
      kill.killed = answer.killed;
      this.root.dataset.killed = String(answer.killed);
      if (!kill.done) {
        this.set(
          'recovery',
          answer.killed === 0
            ? 'No request was in flight to kill (the idle keep-alive connection stays open); waiting for the next poll…'
            : `Killed ${plural(answer.killed, 'connection')}; recovering…`,
        );
      }
    } catch (err) {
      this.kill = null;
      this.set('recovery', `The kill failed: ${err.message}`);
    }
  }

  /** Connections this lane holds (or waits for) now. */
  held() {
    if (!this.clients) return 0;
    return Object.values(this.phases).filter((p) => HOLDING.has(p)).length;
  }

  // Both directions, as on the single-transport pages' panels (panel.js) and named as in the
  // glossary: bytes down = body bytes + WebSocket frame headers + one response head per
  // request; bytes up = one request head per request + WebSocket frames sent (header and mask
  // included). Head sizes are estimates (clients/heads.js): a floor, then the server's wire
  // record of this lane's own tagged requests.
  bothWaysHandlers() {
    this.both ??= { requests: 0, up: 0, framingDown: 0, heads: { request: 0, response: 0, source: 'floor' } };
    const both = this.both;
    return {
      onBytesUp: (n) => {
        both.up += n;
      },
      onFramingDown: (n) => {
        both.framingDown += n;
      },
      onHeads: (heads) => {
        both.heads = { ...heads };
      },
    };
  }

  renderBothWays() {
    const both = this.both;
    if (!both) return;
    both.requests = this.requestsTotal ?? 0;
    const down = this.bytes + both.framingDown + both.requests * both.heads.response;
    const up = both.up + both.requests * both.heads.request;
    // "≈" once both head sizes come from the wire record, "≥" while either is a floor.
    const mark = both.heads.source === 'wire record' ? '≈' : '≥';
    this.set(
      'bpe-both',
      this.events === 0 ? '–' : `${mark}${Math.round(down / this.events)} · ${mark}${Math.round(up / this.events)} B`,
    );
  }

  render(now) {
    this.renderBothWays();
    prune(this.requests, now, RATE_WINDOW_MS);
    prune(this.received, now, RATE_WINDOW_MS);
    prune(this.latencies, now, LATENCY_WINDOW_MS);
    const seconds = RATE_WINDOW_MS / 1000;
    this.set('rps', (this.requests.length / seconds).toFixed(1));
    this.set('bps', `${formatBytes(Math.round(this.received.reduce((s, [, n]) => s + n, 0) / seconds))}/s`);
    this.set('bpe', this.events === 0 ? '–' : `${Math.round(this.bytes / this.events)} B`);
    this.set('lat-last', formatMs(this.lastLatency));
    const sorted = this.latencies.map(([, l]) => l).sort((a, b) => a - b);
    this.set('lat-pct', sorted.length === 0 ? '–' : `${formatMs(percentile(sorted, 50))} · ${formatMs(percentile(sorted, 99))}`);
    this.set('open', `${this.held()} · ${this.serverOpen ?? '–'}`);
    const since = this.lastEventAt === null ? null : now - this.lastEventAt;
    this.set('since', since === null ? 'none yet' : `${(since / 1000).toFixed(1)} s ago`);
    this.set('state', this.stateText);
    // A quiet canvas is not a stale one: strokes come only when someone draws.
    const stale = this.feed === 'clock' && !this.paused && (since === null || since > STALE_MS);
    this.root.dataset.stale = String(stale);
  }
}

/** The chat lane: one row per message, one cell per transport. */
class Arrivals {
  constructor(tbody, lost) {
    this.tbody = tbody;
    this.lostCells = lost;
    this.rows = new Map(); // id → { tr, cells, arrived: Set }
    this.lost = Object.fromEntries(TRANSPORTS.map((t) => [t, 0]));
  }

  row(event) {
    let row = this.rows.get(event.id);
    if (row) return row;
    const tr = document.createElement('tr');
    tr.dataset.id = String(event.id);
    const cell = (text, className) => {
      const td = document.createElement('td');
      td.textContent = text;
      if (className) td.className = className;
      tr.append(td);
      return td;
    };
    cell(String(event.id));
    const from = cell(event.from ?? '');
    const text = cell(event.text ?? '', 'message-text');
    const cells = {};
    for (const transport of TRANSPORTS) {
      cells[transport] = cell('…');
      cells[transport].dataset.transport = transport;
      cells[transport].dataset.state = 'pending';
    }
    row = { tr, cells, from, text, arrived: new Set() };
    this.rows.set(event.id, row);
    while (this.rows.size > MAX_ROWS) {
      const oldest = Math.min(...this.rows.keys());
      this.rows.get(oldest).tr.remove();
      this.rows.delete(oldest);
    }
    // Newest first.
    const order = [...this.rows.keys()].sort((a, b) => b - a);
    this.tbody.replaceChildren(...order.map((id) => this.rows.get(id).tr));
    return row;
  }

  /** A message we sent was stored as `id`: it must now arrive five times. */
  expect(id, from, text) {
    this.row({ id, from, text });
  }

  arrive(transport, event, latency) {
    const row = this.row(event);
    if (!row.from.textContent) row.from.textContent = event.from ?? '';
    if (!row.text.textContent) row.text.textContent = event.text ?? '';
    row.arrived.add(transport);
    const td = row.cells[transport];
    td.textContent = formatMs(latency);
    td.dataset.state = 'arrived';
  }

  /** Marks messages a transport's cursor passed without delivering them. */
  check(lanes) {
    for (const lane of lanes) {
      const cursor = lane.chatCursor;
      if (cursor === null) continue;
      for (const [id, row] of this.rows) {
        const td = row.cells[lane.transport];
        if (id <= cursor && !row.arrived.has(lane.transport) && td.dataset.state !== 'lost') {
          td.dataset.state = 'lost';
          td.textContent = 'lost';
          this.lost[lane.transport] += 1;
        }
      }
      const cell = this.lostCells[lane.transport];
      cell.textContent = String(this.lost[lane.transport]);
      cell.classList.toggle('bad', this.lost[lane.transport] > 0);
    }
  }
}

// The committed per-engine recovery figures (results/browsers/recovery.json, written by
// scripts/browser-results.sh from the browser test that kills each lane): one row per
// transport, one column per engine, the median of the runs and their range.
const ENGINE_ORDER = ['chromium', 'firefox', 'webkit'];

async function showBrowserRecovery() {
  const table = $('browser-recovery');
  if (!table) return;
  const note = $('browser-recovery-note');
  let data;
  try {
    const res = await fetch('/results/browsers/recovery.json', { cache: 'no-cache' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    data = await res.json();
  } catch (err) {
    note.textContent = `Could not read /results/browsers/recovery.json (${err.message}).`;
    return;
  }
  const engines = ENGINE_ORDER.filter((e) => data.engines?.[e]);
  const head = table.querySelector('thead tr');
  head.replaceChildren();
  const corner = document.createElement('th');
  corner.scope = 'col';
  corner.textContent = 'transport';
  head.append(corner);
  for (const e of engines) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.dataset.engine = e;
    th.textContent = `${data.engines[e].browser} (${data.engines[e].runs.length} runs)`;
    head.append(th);
  }
  const body = table.querySelector('tbody');
  body.replaceChildren();
  for (const t of TRANSPORTS) {
    const tr = document.createElement('tr');
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = transportTitle(t);
    tr.append(th);
    for (const e of engines) {
      const values = data.engines[e].runs.map((r) => r[t]?.ms).filter(Number.isFinite).sort((a, b) => a - b);
      const td = document.createElement('td');
      td.dataset.engine = e;
      td.dataset.transport = t;
      td.textContent = values.length === 0
        ? '–'
        : values.length === 1
          ? formatMs(values[0])
          : `${formatMs(values[Math.floor(values.length / 2)])} (${formatMs(values[0])}–${formatMs(values[values.length - 1])})`;
      tr.append(td);
    }
    body.append(tr);
  }
  note.textContent = `${data.what} Command: ${data.command}. Machine: ${data.machine}.`;
}

async function boot() {
  const arrivals = new Arrivals(
    $('arrivals'),
    Object.fromEntries(
      TRANSPORTS.map((t) => [t, document.querySelector(`[data-lost="${t}"]`)]),
    ),
  );
  const lanes = TRANSPORTS.map(
    (t) => new Lane(t, $(`lane-${t}`), arrivals),
  );
  const byTransport = Object.fromEntries(lanes.map((l) => [l.transport, l]));
  showClockOffset($('clock-offset'), $('clock-offset-uncertainty'));

  const note = $('origin-note');
  const layoutLink = $('layout-link');
  layoutLink.href = withParam('one-origin', '');
  if (SECURE) {
    note.textContent = `Every transport on this page's origin (${location.host}), over HTTPS: when the page came over HTTP/2 every request to this origin is a stream of one connection, so nothing waits for one of six. "Which protocol each transport used" below shows what each one got.`;
    layoutLink.hidden = true;
  } else if (ONE_ORIGIN) {
    note.textContent = `Every transport on one origin (${location.host}): long polling, the iframe and SSE hold six connections between them, the browser's limit, so every other request (a short poll, the clock's next long poll, a message you send) queues until one is free. Here the clock's long poll is answered every second, which frees a connection for a moment, so the queue crawls rather than stops: watch the waits in "Six connections per origin" below, and the latencies.`;
    note.classList.add('warn');
    layoutLink.textContent = 'Back to two origins';
    layoutLink.href = withParam('one-origin', null);
    if (!HAS_ALIAS) {
      note.textContent = `Opened from the network (${location.host}), this page has no second name for the server that your browser reaches (localhost would be your own machine), so every transport uses this one origin. ${note.textContent}`;
      layoutLink.hidden = true;
    }
  } else {
    note.textContent = `Short polling, the iframe and WebSocket use this page's origin (${location.host}); SSE and long polling use ${new URL(ALIAS_ORIGIN).host}, the same server under its other loopback name, so that no origin needs more than six connections. See "Six connections per origin" below.`;
  }

  const lanesLink = $('lanes-link');
  if (LANE_FEED === 'draw') {
    $('lanes-note').textContent = 'Each lane shows the shared canvas as its transport delivers it, instead of the clock. Draw in a lane: the stroke is sent over that lane\'s transport (WebSocket: a frame on its draw socket; the others: POST /api/draw), and appears in all five lanes, in the panel below and on every other open page. The pen\'s colour and width are set in the panel below. ';
    lanesLink.textContent = 'Back to the clocks';
    lanesLink.href = withParam('lanes', null);
    $('lanes-note').append(lanesLink);
  } else {
    lanesLink.href = withParam('lanes', 'draw');
  }

  for (const lane of lanes) {
    lane.root.querySelector('[data-action="pause"]').addEventListener('click', (e) => {
      if (lane.paused) {
        lane.start();
        e.currentTarget.textContent = 'Pause';
      } else {
        lane.stop();
        e.currentTarget.textContent = 'Resume';
      }
    });
    lane.root
      .querySelector('[data-action="kill"]')
      .addEventListener('click', () => void lane.killConnection());
  }

  const intervalInput = $('poll-interval');
  intervalInput.addEventListener('change', () => {
    const value = Number(intervalInput.value);
    const ok = Number.isInteger(value) && value >= POLL_INTERVAL.min && value <= POLL_INTERVAL.max;
    intervalInput.setAttribute('aria-invalid', String(!ok));
    if (ok) byTransport.poll.setInterval(value);
  });

  // ---- sending ----
  const form = $('cmp-send');
  const nickInput = $('cmp-nick');
  const textInput = $('cmp-text');
  const status = $('cmp-send-status');
  const auto = $('cmp-auto');
  nickInput.value = `compare-${RUN.slice(0, 4)}`;
  let signedInAs = null;
  let sent = 0;

  async function send(text) {
    const nick = nickInput.value.trim();
    if (signedInAs !== nick) {
      await postJson('/api/session', { nick });
      signedInAs = nick;
    }
    const answer = await postJson('/api/chat/messages', { room: 'lobby', text });
    sent += 1;
    arrivals.expect(answer.id, nick, text);
    status.textContent = `Sent message ${answer.id} (${sent} so far); watch it arrive five times.`;
  }

  async function sendFromForm() {
    try {
      await send(textInput.value.trim() || 'Hello, five transports');
    } catch (err) {
      signedInAs = err.code === 'unauthorized' ? null : signedInAs;
      status.textContent = `Not sent: ${err.message}`;
    }
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void sendFromForm();
  });
  let autoTimer = 0;
  auto.addEventListener('change', () => {
    clearInterval(autoTimer);
    if (auto.checked) autoTimer = setInterval(() => void sendFromForm(), AUTO_SEND_MS);
  });

  // ---- the server's own count of open connections ----
  async function serverStats() {
    try {
      const { data: stats } = await fetchJson('/api/stats');
      for (const lane of lanes) lane.serverOpen = stats.transports?.[lane.transport]?.open ?? null;
    } catch {
      // The next round tries again; the figure stays as it was.
    }
    setTimeout(serverStats, STATS_MS);
  }
  void serverStats();

  // ---- how long requests wait for a connection ----
  // Resource Timing tells, per request, when the page asked (startTime) and when the request
  // actually went out (requestStart): the difference is the time it queued for a free
  // connection (plus connecting, well under a millisecond on loopback). The server sends
  // Timing-Allow-Origin, so cross-origin requests report it too.
  const waits = new Map(); // origin → [time, ms]
  const protocolWaits = new Map(); // nextHopProtocol → [time, ms]
  const seen = new Map(); // transport → { protocol, waits: [time, ms] }
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      noteProtocol(entry);
      if (!(entry.requestStart > 0)) continue;
      const origin = new URL(entry.name).origin;
      if (!waits.has(origin)) waits.set(origin, []);
      const wait = entry.requestStart - entry.startTime;
      waits.get(origin).push([performance.now(), wait]);
      const protocol = entry.nextHopProtocol;
      if (protocol) {
        if (!protocolWaits.has(protocol)) protocolWaits.set(protocol, []);
        protocolWaits.get(protocol).push([performance.now(), wait]);
      }
      const transport = transportOfUrl(entry.name);
      if (transport) seen.get(transport)?.waits.push([performance.now(), wait]);
    }
  });
  for (const t of TRANSPORTS) seen.set(t, { protocol: null, waits: [] });

  /** The transport a request URL belongs to (`/sse/…` → sse), if any. */
  function transportOfUrl(url) {
    const first = new URL(url).pathname.split('/')[1];
    return TRANSPORTS.includes(first) ? first : null;
  }

  /** Remembers the protocol of a transport's finished request. An empty nextHopProtocol
   * (a cross-origin entry without Timing-Allow-Origin, or an engine that does not fill it)
   * is no answer. */
  function noteProtocol(entry) {
    const transport = transportOfUrl(entry.name);
    if (transport && entry.nextHopProtocol) seen.get(transport).protocol = entry.nextHopProtocol;
  }

  /** The protocol the page itself came over. */
  function pageProtocol() {
    return performance.getEntriesByType('navigation')[0]?.nextHopProtocol || null;
  }

  /** The iframe lane's documents report their own navigation: the newest frame that has one. */
  function iframeProtocol() {
    const frames = [...byTransport.iframe.root.querySelectorAll('iframe')].reverse();
    for (const frame of frames) {
      try {
        const nav = frame.contentWindow?.performance.getEntriesByType('navigation')[0];
        if (nav?.nextHopProtocol) return nav.nextHopProtocol;
      } catch {
        // A frame not (yet) of this origin: no answer from it.
      }
    }
    return null;
  }

  // The server's record of each lane's newest request: its request line ends with the
  // version hyper parsed ("HTTP/2.0", "HTTP/1.1").
  const serverSaw = new Map(); // transport → version
  async function readServerProtocols() {
    for (const lane of lanes) {
      try {
        const url = `/api/debug/wire?for=protocol&tag=${encodeURIComponent(lane.tag)}`;
        const answer = await fetchJson(url);
        const line = (answer.data?.exchanges ?? [])
          .map((x) => x?.request?.line)
          .find((l) => typeof l === 'string' && l.startsWith(`GET /${lane.transport}/`));
        if (line) serverSaw.set(lane.transport, line.slice(line.lastIndexOf(' ') + 1));
      } catch {
        // Diagnostics off or a network error: the cell keeps what it showed.
      }
    }
    setTimeout(readServerProtocols, PROTOCOL_READ_MS);
  }
  setTimeout(readServerProtocols, 1500);

  const protocolRows = $('protocol-rows');
  function renderProtocols(now) {
    protocolRows.replaceChildren(
      ...TRANSPORTS.map((t) => {
        const tr = document.createElement('tr');
        tr.dataset.transport = t;
        let page = t === 'iframe' ? iframeProtocol() ?? seen.get(t).protocol : seen.get(t).protocol;
        let pageText = page;
        if (t === 'ws') {
          page = null;
          pageText = 'not in Resource Timing (WebSocket handshakes are not reported)';
        } else if (!page) {
          pageText = t === 'sse'
            ? 'stream still open: no entry until it ends'
            : 'no request finished yet';
        }
        if (page) tr.dataset.pageProtocol = page;
        const server = serverSaw.get(t) ?? null;
        if (server) tr.dataset.serverProtocol = server;
        const list = seen.get(t).waits;
        prune(list, now, RATE_WINDOW_MS);
        const wait = list.length === 0 ? null : Math.max(...list.map(([, w]) => w));
        const cells = [
          transportTitle(t),
          pageText,
          server ?? 'not read yet',
          t === 'ws' ? '–' : wait === null ? 'no request finished' : formatMs(wait),
        ];
        for (const text of cells) {
          const td = document.createElement('td');
          td.textContent = text;
          tr.append(td);
        }
        if (wait !== null && wait >= QUEUED_MS) tr.children[3].classList.add('full');
        if (wait !== null) tr.dataset.waitMs = wait.toFixed(1);
        return tr;
      }),
    );
    const parts = [...protocolWaits.entries()].map(([protocol, list]) => {
      prune(list, now, RATE_WINDOW_MS);
      const wait = list.length === 0 ? null : Math.max(...list.map(([, w]) => w));
      return `${protocol}: ${wait === null ? 'no request finished' : formatMs(wait)} (${plural(list.length, 'request')})`;
    });
    $('protocol-waits').textContent = `This page came over ${pageProtocol() ?? 'an unreported protocol'}. Longest wait for a connection in the last 10 s, by protocol: ${parts.length === 0 ? 'no request finished yet' : parts.join('; ')}. Over HTTP/1.1 a request waits whenever its origin's six connections are all held; over HTTP/2 it becomes a new stream at once (up to the server's ${H2_STREAMS}).`;
  }
  observer.observe({ type: 'resource' });
  // Entries also go to a 250-entry buffer nobody reads here; keep it from filling.
  setInterval(() => performance.clearResourceTimings(), 30_000);

  function waited(origin, now) {
    const list = waits.get(origin) ?? [];
    prune(list, now, RATE_WINDOW_MS);
    return list.length === 0 ? null : Math.max(...list.map(([, w]) => w));
  }

  // ---- rendering ----
  const budget = $('budget-rows');
  function renderBudget() {
    const rows = [
      [PAGE_ORIGIN, lanes.filter((l) => l.origin === PAGE_ORIGIN && l.transport !== 'ws')],
    ];
    if (!ONE_ORIGIN) rows.push([ALIAS_ORIGIN, lanes.filter((l) => l.origin === ALIAS_ORIGIN)]);
    rows.push(['WebSockets (apart from the six in Chromium and Firefox; WebKit counts them in)', [byTransport.ws]]);
    budget.replaceChildren(
      ...rows.map(([name, group]) => {
        const tr = document.createElement('tr');
        const held = group.reduce((s, l) => s + l.held(), 0);
        const parts = group.map((l) => `${l.transport} ${l.held()}`).join(', ');
        const isOrigin = name.startsWith('http');
        const wait = isOrigin ? waited(name, performance.now()) : null;
        const h2 = isOrigin && pageProtocol() === 'h2';
        const cells = [
          isOrigin ? new URL(name).host : name,
          `${held} (${parts})`,
          h2
            ? `${H2_STREAMS} streams on one HTTP/2 connection`
            : isOrigin
              ? '6'
              : 'Chromium, Firefox: a pool of their own; WebKit: the six of their origin',
          isOrigin ? (wait === null ? 'no request finished' : formatMs(wait)) : '–',
        ];
        for (const text of cells) {
          const td = document.createElement('td');
          td.textContent = text;
          tr.append(td);
        }
        if (isOrigin && !h2 && held >= 6) tr.children[1].classList.add('full');
        // Marked from 250 ms: a request queued behind this page's held connections waits for
        // the next long-poll answer (about a second), while a busy machine's scheduling alone
        // was seen adding up to 130 ms (Firefox, 2 loaded cores).
        if (wait !== null && wait >= QUEUED_MS) tr.children[3].classList.add('full');
        if (wait !== null) tr.dataset.waitMs = wait.toFixed(1);
        return tr;
      }),
    );
  }

  function render() {
    const now = performance.now();
    for (const lane of lanes) lane.render(now);
    arrivals.check(lanes);
    renderBudget();
    renderProtocols(now);
  }
  setInterval(render, RENDER_MS);

  // Every chat subscription starts from the same, explicit point: the chat's position now.
  // A stream has no cursor until its first event, so without this a lane paused before any
  // message arrived would resume from "now" again and skip what was said in between.
  try {
    const { next } = (await fetchJson('/poll/chat?rooms=lobby&history=0')).data;
    if (Number.isSafeInteger(next)) for (const lane of lanes) lane.cursors.chat = next;
  } catch {
    // Without it the lanes start from "now" each; only a pause before the first message
    // could then miss one, and the lost count would show it.
  }
  for (const lane of lanes) lane.start();
  render();
  window.addEventListener('pagehide', () => {
    for (const lane of lanes) lane.stop();
  });
}

void boot();
void showBrowserRecovery();
