// The live cost panel: what a transport has cost so far. createPanel(root) returns handlers
// for connect() (see clients/index.js) and renders into the elements under `root` marked with
// data-stat="NAME" (the counters) and data-detail="KEY" (transport-specific figures, keyed
// like the objects clients pass to onDetail). Scoping by `root` instead of by id lets a page
// hold several panels.
//
// Both directions, named as in the glossary (docs/API.md, /demos/glossary.html):
//   bytes down = body bytes the scripts saw + WebSocket frame headers + one response head
//                per request (estimated);
//   bytes up   = one request head per request (estimated) + WebSocket frames sent (exact:
//                header and 4-byte mask included).
// The head sizes come from clients/heads.js (onHeads): a floor until the server's wire record of
// this page's own requests gives them. Chunked framing and WebSocket control frames (the
// browser's pongs, the close) are not counted. Every figure that holds an estimate says so.
//
// Latency = receipt + clock offset − the event's `ts`: the offset (server's clock − this
// page's, clock-offset.js) makes it hold when the page and the server are two machines.

import { latencyMs, showClockOffset, withClockOffset } from '/static/clock-offset.js';
import { formatBytes } from '/static/util.js';

const RENDER_EVERY_MS = 250;

export function createPanel(root) {
  const stats = {
    requests: 0,
    bytes: 0,
    events: 0,
    notices: 0,
    latencyLastMs: null,
    latencySumMs: 0,
    latencyCount: 0,
    state: 'starting',
    bytesUpExact: 0,
    framingDown: 0,
    heads: { request: 0, response: 0, source: 'floor' },
  };
  const details = {};

  const statElements = new Map();
  for (const el of root.querySelectorAll('[data-stat]')) statElements.set(el.dataset.stat, el);
  const detailElements = new Map();
  for (const el of root.querySelectorAll('[data-detail]')) detailElements.set(el.dataset.detail, el);

  // Rendering is throttled: as soon as the current task is done if the last render is
  // RENDER_EVERY_MS old (a microtask, so the bytes, event and state of one delivery show
  // together), else at the end of that window. A burst of events costs one render, and a
  // quiet panel is never stale.
  let lastRender = -Infinity;
  let pending = false;
  function changed() {
    if (pending) return;
    pending = true;
    const wait = lastRender + RENDER_EVERY_MS - performance.now();
    if (wait <= 0) {
      queueMicrotask(render);
    } else {
      setTimeout(render, wait);
    }
  }

  function set(name, text, map = statElements) {
    const el = map.get(name);
    if (el && el.textContent !== text) el.textContent = text;
  }

  function render() {
    pending = false;
    lastRender = performance.now();
    const { requests, bytes, events } = stats;
    set('state', stats.state);
    set('requests', String(requests));
    set('bytes', String(bytes));
    set('bytes-human', bytes >= 1024 ? `(${formatBytes(bytes)})` : '');
    set('events', String(events));
    set('notices', String(stats.notices));
    set('latency-last', stats.latencyLastMs === null ? '–' : stats.latencyLastMs.toFixed(1));
    set(
      'latency-avg',
      stats.latencyCount === 0 ? '–' : (stats.latencySumMs / stats.latencyCount).toFixed(1),
    );
    set('bytes-per-event', events === 0 ? '–' : (bytes / events).toFixed(0));
    set('requests-per-event', events === 0 ? '–' : (requests / events).toFixed(2));
    renderBothWays();
    for (const [key, value] of Object.entries(details)) {
      set(key, formatDetail(key, value), detailElements);
    }
  }

  showClockOffset(statElements.get('clock-offset'), statElements.get('clock-offset-uncertainty'));

  function renderBothWays() {
    const { requests, bytes, events, heads } = stats;
    const down = bytes + stats.framingDown + requests * heads.response;
    const up = stats.bytesUpExact + requests * heads.request;
    set('bytes-down', String(down));
    set('bytes-up', String(up));
    set('bytes-down-per-event', events === 0 ? '–' : (down / events).toFixed(0));
    set('bytes-up-per-event', events === 0 ? '–' : (up / events).toFixed(0));
    set('bytes-both-per-event', events === 0 ? '–' : ((down + up) / events).toFixed(0));
    set(
      'heads-estimate',
      heads.source === 'wire record'
        ? `estimated: request head ≈ ${heads.request} B, response head ≈ ${heads.response} B each, from the server's record of this page's requests`
        : heads.source === 'wire record, response floor'
          ? `estimated: request head ≈ ${heads.request} B (server's record), response head ≥ ${heads.response} B (none answered yet)`
          : `estimated: request head ≥ ${heads.request} B (request line and Host only, until the server's record arrives)`,
    );
  }

  return {
    onBytesUp(n) {
      stats.bytesUpExact += n;
      changed();
    },
    onFramingDown(n) {
      stats.framingDown += n;
      changed();
    },
    onHeads(heads) {
      stats.heads = { ...heads };
      changed();
    },
    onRequest() {
      stats.requests += 1;
      changed();
    },
    onBytes(n) {
      stats.bytes += n;
      changed();
    },
    // `liveSince` (this page's clock, µs): events the server created before it are replays
    // (chat history), whose age is not a delivery latency; they count as events, not in the
    // latency figures. Compared on the server's clock, since `ts` is the server's.
    onEvent(event, receivedAtMicros, { liveSince = null } = {}) {
      stats.events += 1;
      if (Number.isFinite(event.ts)) {
        // Publish on the server → handler in this page, on the server's clock: counted once
        // the offset is known (at once, but for the first events of a page load).
        const ts = event.ts;
        withClockOffset((estimate) => {
          if (liveSince !== null && !(ts >= liveSince + estimate.offsetMicros)) return;
          const ms = latencyMs(receivedAtMicros, ts, estimate);
          stats.latencyLastMs = ms;
          stats.latencySumMs += ms;
          stats.latencyCount += 1;
          changed();
        });
      }
      changed();
    },
    onNotice() {
      stats.notices += 1;
      changed();
    },
    onState(text) {
      stats.state = text;
      changed();
    },
    onDetail(object) {
      Object.assign(details, object);
      changed();
    },
  };
}

function formatDetail(key, value) {
  if (key === 'documentBytes') return formatBytes(value);
  return String(value);
}
