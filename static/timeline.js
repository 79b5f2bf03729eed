// The live timeline: what the page's own clients did, when, one row per subscription on one
// time axis. Drawn from the records every client sends through its context (clients/common.js,
// onTimeline): a request as a bar from sent to answered (a stream's bar stays open until the
// stream ends), each event as a mark where it arrived (with its latency), each send upstream
// as a mark the other way (hollow when it went by a POST of its own, not the connection), and breaks (a failure, a backoff,
// a stream that ended) and the request that resumed after one. Nothing here is modelled: a
// bar is drawn only because a client made that request.
//
// Resource Timing adds what a script cannot see of its own requests: for each request whose
// entry the browser has written (a request's entry appears when its response has ended, so a
// stream's only once it ends, and a WebSocket or WebTransport session has none), the time it waited for a connection before it went out
// (requestStart − fetchStart, less DNS and connecting: the six-per-origin queue of HTTP/1.1)
// is drawn hatched at the start of its bar, and its encodedBodySize joins the body bytes the
// page read. A bar's words (under the SVG when it is hovered or tapped, and in the list)
// carry its head and body bytes: the heads
// as the subscription's client estimated them (clients/heads.js: the server's record of this
// page's own requests), the body as the page read it, so far for an open stream.
//
//   const timeline = createTimeline(root);          // root: the elements of _timeline.html
//   handlers.onTimeline = timeline.row('clock', transport);   // one row per subscription
//   timeline.items(), timeline.rows()               // the model, for tests: plain objects
//
// A mark hovered or tapped is described in words under the SVG ([data-timeline=selected]),
// the words made then, not kept as a <title> on each of the marks.
//
// Keyboard and screen readers: the SVG is one image (role=img) whose label points at the
// list; the list (a <details> below it) is the accessible view, one tab stop however many
// marks there are, and it holds still while it has focus. Each draw is measured
// (performance.measure, DRAW_MEASURE), so the browser's own performance timeline has it.
//
// Memory is bounded: each row keeps the last KEEP_MS of items and at most MAX_ITEMS. The
// drawing is incremental: each mark is made once, in a group whose transform moves the
// time axis; a frame adds the new marks, changes the ones that changed (a bar answered, its
// Resource Timing), stretches the open bars and drops the marks gone by. Only a change of
// view (a resize, pause, look-back, a new row) draws the view anew. It runs at most once per
// animation frame, and not at all while the timeline is scrolled out of view or the tab is
// hidden (no animation frames there).
//
// Times are performance.now() milliseconds (the page's monotonic clock); titles and the list
// give them as seconds since the page opened.

import { TRANSPORT_COLORS } from '/static/facts.js';
import { latencyMs, withClockOffset } from '/static/clock-offset.js';
import { transportName } from '/static/util.js';

const KEEP_MS = 120_000;
/** The name of each draw's performance.measure entry. */
export const DRAW_MEASURE = 'pushpoll-timeline-draw';
// The measures are also kept in the page's performance buffer, which has no bound of its own.
const MEASURES_KEPT = 600;
// Per row: 10 events/s for 120 s, each with its own request (long polling), is 2,400.
const MAX_ITEMS = 3000;
const VIEW_MS = 15_000;
const BACK_MAX_S = (KEEP_MS - VIEW_MS) / 1000;
const LIST_ITEMS = 60;
const LIST_EVERY_MS = 1000;
const MOVE_MS = 30;
const ROW_H = 46;
const AXIS_H = 22;
const LABEL_W = 0; // labels sit above each row's bars, so narrow screens keep the width

const secs = (ms) => `${(ms / 1000).toFixed(3)} s`;
const WAIT_SHOWN_MS = 1; // shorter waits are a connection's scheduling, not a queue

/** The parts of a Resource Timing entry the timeline shows. */
function timingOf(entry) {
  const connecting =
    Math.max(0, entry.connectEnd - entry.connectStart) + Math.max(0, entry.domainLookupEnd - entry.domainLookupStart);
  return {
    // requestStart is 0 where the engine does not say (cross-origin without
    // Timing-Allow-Origin): then no wait is known.
    waitMs: entry.requestStart > 0 ? Math.max(0, entry.requestStart - entry.fetchStart - connecting) : null,
    from: entry.fetchStart,
    encodedBody: entry.encodedBodySize > 0 ? entry.encodedBodySize : null,
  };
}

let nextKey = 1; // every item's own number, on its SVG element as data-key

/** One subscription's records, as items: bars, events, sends, breaks, resumes. */
class Row {
  constructor(name, transport) {
    this.name = name;
    this.transport = transport;
    this.items = [];
    this.bar = null; // the open bar, if any
    this.broken = false; // a break since the last request
    this.heads = null; // the client's estimated head sizes: { request, response, source }
    // For the drawing: items pushed since the last draw, and drawn items that changed since
    // (a bar ended, its Resource Timing came). Bounded: past MAX_ITEMS the view is redrawn.
    this.fresh = [];
    this.touched = new Set();
  }

  push(item) {
    item.key = nextKey;
    nextKey += 1;
    this.items.push(item);
    if (this.fresh.length < MAX_ITEMS) this.fresh.push(item);
    const old = performance.now() - KEEP_MS;
    // The oldest go first: past the count, or ended before the window kept (an open bar stays).
    while (
      this.items.length > MAX_ITEMS ||
      (this.items.length > 0 && (this.items[0].end ?? this.items[0].at ?? Infinity) < old)
    ) {
      this.items.shift();
    }
  }

  endBar(at, ending, bytes = null) {
    if (!this.bar) return;
    this.bar.end = at;
    this.bar.ending = ending;
    if (bytes !== null) this.bar.bytes = bytes;
    this.touched.add(this.bar);
    this.bar = null;
  }

  record(r) {
    switch (r.kind) {
      case 'open':
        this.endBar(r.at, 'replaced');
        if (this.broken) this.push({ kind: 'resume', at: r.at });
        this.broken = false;
        this.bar = {
          kind: 'bar',
          start: r.at,
          end: null,
          ending: null,
          bytes: null, // body bytes the page read (so far, while open)
          events: 0,
          url: typeof r.url === 'string' ? r.url : null,
          head: r.head !== false,
          timing: null, // from Resource Timing, once the browser wrote the entry
        };
        this.push(this.bar);
        break;
      case 'answered':
        this.endBar(r.at, 'answered', r.bytes);
        break;
      case 'bytes':
        if (this.bar) this.bar.bytes = (this.bar.bytes ?? 0) + r.n;
        break;
      case 'heads':
        this.heads = { request: r.request, response: r.response, source: r.source };
        break;
      case 'break':
        this.endBar(r.at, 'broken');
        this.broken = true;
        this.push({ kind: 'break', at: r.at, text: String(r.text ?? '') });
        break;
      case 'stopped':
        // Paused by the page (the compare page's lanes): the next request resumes.
        this.endBar(r.at, 'stopped');
        this.broken = true;
        this.push({ kind: 'stopped', at: r.at });
        break;
      case 'up':
        this.push({ kind: 'up', at: r.at, bytes: r.bytes, via: typeof r.via === 'string' ? r.via : null });
        break;
      case 'event':
      case 'gap': {
        const item = {
          kind: r.kind,
          at: r.at,
          id: r.id,
          type: r.type,
          latencyMs: null,
          replay: false,
        };
        if (this.bar) this.bar.events += 1;
        if (r.ts !== null) {
          // On the server's clock (clock-offset.js): at once, but for a load's first events.
          withClockOffset((estimate) => {
            if (r.ts < r.since + estimate.offsetMicros) item.replay = true;
            else item.latencyMs = latencyMs(r.receivedAt, r.ts, estimate);
          });
        }
        this.push(item);
        break;
      }
      default:
        break;
    }
  }
}

/** A bar's wait for a connection, in words, or ''. */
function waitText(item) {
  const ms = item.timing?.waitMs;
  return ms === null || ms === undefined || ms < WAIT_SHOWN_MS
    ? ''
    : `waited ${Math.round(ms)} ms for a connection (Resource Timing: fetchStart to requestStart, less DNS and connecting)`;
}

/** A bar's head and body bytes, in words: the heads as the client estimated them, the body as
 * the page read it (and as Resource Timing saw it on the wire, once it has the entry). */
function bytesText(row, item) {
  const open = item.end === null;
  const heads = !item.head
    ? 'head: HTTP/3, QPACK-compressed, not counted'
    : row.heads
      ? `head ${row.heads.request} B up, ${row.heads.response} B down (${row.heads.source === 'floor' ? 'floor: the request line and Host, a status line' : "the server's record of this page's requests"})`
      : 'head not known yet';
  const read = item.bytes ?? 0;
  const wire =
    item.timing?.encodedBody !== null && item.timing?.encodedBody !== undefined
      ? `; ${item.timing.encodedBody} B on the wire (Resource Timing)`
      : '';
  const body = `body ${read} B read by the page${open ? ' so far' : ''} (not compressed: the server sends no Content-Encoding${wire})`;
  return `${heads}; ${body}`;
}

/** What an item is, in words (the line under the SVG when it is hovered or tapped, and its
 * line in the list). */
function describe(row, item) {
  const who = `${row.name} (${transportName(row.transport)})`;
  switch (item.kind) {
    case 'bar': {
      const events = item.events === 1 ? '1 event' : `${item.events} events`;
      const wait = waitText(item);
      const sent = `${who}: request sent at ${secs(item.start)}${wait ? `, ${wait}` : ''}`;
      if (item.end === null) return `${sent}, still open (${events} so far); ${bytesText(row, item)}`;
      const how = { answered: 'answered', broken: 'broken', replaced: 'given up', stopped: 'closed by the page' }[item.ending];
      return `${sent}, ${how} after ${Math.round(item.end - item.start)} ms, ${events}; ${bytesText(row, item)}`;
    }
    case 'event':
    case 'gap': {
      const what = item.kind === 'gap' ? 'gap (events were skipped)' : `${item.type || 'event'} ${item.id ?? ''}`.trim();
      const latency = item.replay
        ? ', replayed (created before this subscription started)'
        : item.latencyMs === null
          ? ''
          : `, latency ${item.latencyMs.toFixed(1)} ms`;
      return `${who}: ${what} arrived at ${secs(item.at)}${latency}`;
    }
    case 'up':
      return item.via
        ? `${who}: ${item.bytes} B sent upstream at ${secs(item.at)} by a request of its own (${item.via}), not over this row's connection`
        : `${who}: ${item.bytes} B sent upstream at ${secs(item.at)} over this row's connection`;
    case 'break':
      return `${who}: break at ${secs(item.at)}: ${item.text}`;
    case 'resume':
      return `${who}: resumed (new request) at ${secs(item.at)}`;
    case 'stopped':
      return `${who}: stopped by the page at ${secs(item.at)}`;
    default:
      return who;
  }
}

/**
 * The timeline in `root` (a section holding [data-timeline="svg"], "pause", "back",
 * "back-text", "selected", "list-box" and "list"). Returns { row(name, transport), rows(),
 * items(), frames() }.
 */
export function createTimeline(root) {
  const q = (name) => root.querySelector(`[data-timeline="${name}"]`);
  const svg = q('svg');
  const pauseButton = q('pause');
  const back = q('back');
  const backText = q('back-text');
  const listBox = q('list-box');
  const list = q('list');
  const selectedText = q('selected');
  const rows = [];
  let selected = null; // { row, item }: the mark hovered or tapped last, described under the SVG
  let view = null; // the last draw's { start, end, plot }, to find the mark under a pointer
  let pausedAt = null;
  let scheduled = false;
  let dirty = true; // a record or a control changed what is drawn
  let visible = true; // on screen (IntersectionObserver): off it, nothing is drawn
  let lastDraw = -Infinity;
  let lastList = -Infinity;
  let width = svg.clientWidth || 600;
  const frameTimes = []; // the last 120 draws' durations (ms), for the figures below
  let measures = 0; // draws measured since the buffer's measures were last cleared
  // The range's bound is this file's: the HTML gives none of its own.
  if (back) back.max = String(BACK_MAX_S);

  // Resource Timing: each entry to the bar of the request it describes, by URL and start (a
  // short poll asks the same URL again while nothing changed). A stream's bar starts when its
  // response arrived (fetch streaming, SSE), later than its entry's startTime.
  function onResource(entry) {
    let best = null;
    let bestRow = null;
    for (const row of rows) {
      for (let i = row.items.length - 1; i >= 0; i -= 1) {
        const item = row.items[i];
        if (item.kind !== 'bar' || item.url !== entry.name || item.timing !== null) continue;
        if (item.start < entry.startTime - 50 || item.start > entry.responseEnd + 50) continue;
        if (!best || Math.abs(item.start - entry.startTime) < Math.abs(best.start - entry.startTime)) {
          best = item;
          bestRow = row;
        }
      }
    }
    if (!best) return;
    best.timing = timingOf(entry);
    bestRow.touched.add(best);
    changed();
  }
  try {
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) onResource(entry);
    }).observe({ type: 'resource', buffered: true });
  } catch {
    // No Resource Timing observer: the bars go without their waits.
  }

  new ResizeObserver(() => {
    width = svg.clientWidth || width;
    rebuild = true;
    changed();
  }).observe(svg);

  new IntersectionObserver((entries) => {
    visible = entries.some((e) => e.isIntersecting);
    changed();
  }).observe(svg);

  function changed() {
    dirty = true;
    schedule();
  }

  function schedule() {
    if (scheduled || !visible) return;
    scheduled = true;
    requestAnimationFrame(draw);
  }

  function viewEnd(now) {
    return (pausedAt ?? now) - Number(back?.value ?? 0) * 1000;
  }

  const NS = 'http://www.w3.org/2000/svg';
  let layer = null; // the group the time axis moves: one child group per row
  let rowLayers = [];
  let origin = 0; // the time at x = 0 in the moving group
  let scale = 1; // px per ms
  let rebuild = true; // the view changed: draw it anew
  let lastPrune = -Infinity;
  const drawn = new Map(); // item → its elements, for every mark in the SVG

  function make(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    parent?.append(node);
    return node;
  }

  /** The right end of a mark in time: an open bar's is the view's end. */
  const rightOf = (item, end) => (item.kind === 'bar' ? (item.end ?? end) : item.at);

  /** Makes the elements of one item in row `i`, at their place on the moving group. */
  function drawItem(row, i, item, end) {
    const y = i * ROW_H;
    const into = rowLayers[i];
    const ax = (t) => ((t - origin) * scale).toFixed(1);
    const els = [];
    if (item.kind === 'bar') {
      const barEnd = item.end ?? end;
      els.push(
        make('rect', {
          class: item.end === null ? 'tl-bar tl-open' : 'tl-bar',
          'data-key': item.key,
          x: ax(item.start),
          y: y + 26,
          width: Math.max(2, (barEnd - item.start) * scale).toFixed(1),
          height: 12,
          rx: 2,
          fill: TRANSPORT_COLORS[row.transport] ?? '#444',
        }, into),
      );
      const wait = item.timing?.waitMs;
      if (wait !== null && wait !== undefined && wait >= WAIT_SHOWN_MS) {
        // Hatched over the bar's first part (or before a stream's bar, which starts when its
        // response came): the time the request queued before it went out.
        els.push(
          make('rect', {
            class: 'tl-wait',
            'data-key': item.key,
            x: ax(item.timing.from),
            y: y + 24,
            width: Math.max(2, wait * scale).toFixed(1),
            height: 16,
          }, into),
        );
      }
    } else if (item.kind === 'event' || item.kind === 'gap') {
      // Down: from the server into the page.
      const cls = item.kind === 'gap' ? 'tl-gap' : 'tl-event';
      els.push(make('path', { class: cls, 'data-key': item.key, d: `M${ax(item.at)} ${y + 25}l-4 -6h8z` }, into));
    } else if (item.kind === 'up') {
      // Up: from the page to the server.
      // Hollow when it went by a request of its own (a POST), not over this row's connection.
      els.push(make('path', { class: item.via ? 'tl-up tl-apart' : 'tl-up', 'data-key': item.key, d: `M${ax(item.at)} ${y + 39}l-4 6h8z` }, into));
    } else if (['break', 'stopped', 'resume'].includes(item.kind)) {
      const resume = item.kind === 'resume';
      const g = make('g', { class: resume ? 'tl-resume' : 'tl-break', 'data-key': item.key }, into);
      make('line', { x1: ax(item.at), x2: ax(item.at), y1: y + 20, y2: y + 44 }, g);
      make('text', { x: ax(item.at), y: y + 18, 'text-anchor': 'middle' }, g).textContent = resume ? '↻' : '✕';
      els.push(g);
    }
    drawn.set(item, els);
  }

  function undraw(item) {
    for (const node of drawn.get(item) ?? []) node.remove();
    drawn.delete(item);
  }

  /** The whole view anew: the rows' labels, the axis, and every mark in view. */
  function drawView(start, end, plot) {
    drawn.clear();
    svg.replaceChildren();
    const height = rows.length * ROW_H + AXIS_H;
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    svg.setAttribute('height', String(height));
    // The hatching of a wait for a connection: a pattern, so it reads without its colour.
    const pattern = make('pattern', {
      id: 'tl-hatch',
      width: 6,
      height: 6,
      patternUnits: 'userSpaceOnUse',
      patternTransform: 'rotate(45)',
    }, make('defs', {}, svg));
    make('line', { x1: 0, y1: 0, x2: 0, y2: 6, class: 'tl-hatch-line' }, pattern);
    rows.forEach((row, i) => {
      const y = i * ROW_H;
      make('text', { class: 'tl-label', x: LABEL_W + 2, y: y + 15 }, svg).textContent =
        `${row.name} · ${transportName(row.transport)}`;
      make('line', { class: 'tl-base', x1: LABEL_W, x2: LABEL_W + plot, y1: y + 32, y2: y + 32 }, svg);
    });
    // The axis: a tick a second, a label every five, in seconds before the view's end.
    const axisY = rows.length * ROW_H;
    const x = (t) => (LABEL_W + ((t - start) / VIEW_MS) * plot).toFixed(1);
    make('line', { class: 'tl-axis', x1: LABEL_W, x2: LABEL_W + plot, y1: axisY + 2, y2: axisY + 2 }, svg);
    for (let sec = 0; sec <= VIEW_MS / 1000; sec += 1) {
      const tx = x(end - sec * 1000);
      make('line', { class: 'tl-axis', x1: tx, x2: tx, y1: axisY, y2: axisY + 6 }, svg);
      if (sec % 5 === 0) {
        const label = sec === 0 ? (pausedAt === null && Number(back?.value ?? 0) === 0 ? 'now' : '') : `−${sec} s`;
        const anchor = sec === 0 ? 'end' : sec === VIEW_MS / 1000 ? 'start' : 'middle';
        make('text', { class: 'tl-tick', x: tx, y: axisY + 19, 'text-anchor': anchor }, svg).textContent = label;
      }
    }
    origin = start;
    scale = plot / VIEW_MS;
    layer = make('g', {}, svg);
    rowLayers = rows.map(() => make('g', {}, layer));
    rows.forEach((row, i) => {
      row.fresh = [];
      row.touched.clear();
      for (const item of row.items) {
        if (rightOf(item, end) >= start) drawItem(row, i, item, end);
      }
    });
  }

  function draw() {
    scheduled = false;
    const t0 = performance.now();
    // Live and unchanged, the axis alone moves: a move every other frame of a 60 Hz screen
    // (about a pixel per frame) halves the cost and looks the same.
    if (!dirty && !rebuild && t0 - lastDraw < MOVE_MS) {
      schedule();
      return;
    }
    dirty = false;
    lastDraw = t0;
    const end = viewEnd(t0);
    const start = end - VIEW_MS;
    const plot = Math.max(100, width - LABEL_W - 8);
    view = { start, end, plot };
    const overflowed = rows.some((row) => row.fresh.length >= MAX_ITEMS);
    if (rebuild || overflowed || Math.abs(plot / VIEW_MS - scale) > 1e-9) {
      rebuild = false;
      drawView(start, end, plot);
    } else {
      rows.forEach((row, i) => {
        for (const item of row.touched) {
          if (drawn.has(item)) {
            undraw(item);
            drawItem(row, i, item, end);
          }
        }
        row.touched.clear();
        for (const item of row.fresh) drawItem(row, i, item, end);
        row.fresh = [];
        // The open bar reaches the view's end.
        const open = row.bar && drawn.get(row.bar)?.[0];
        open?.setAttribute('width', Math.max(2, (end - row.bar.start) * scale).toFixed(1));
      });
      // What went by on the left, once a second.
      if (t0 - lastPrune > 1000) {
        lastPrune = t0;
        for (const item of [...drawn.keys()]) {
          if (rightOf(item, end) < start) undraw(item);
        }
      }
    }
    layer.setAttribute('transform', `translate(${((origin - start) * scale).toFixed(1)} 0)`);
    // The list holds still while a reader is in it (focus on it or inside it).
    const reading = (list?.contains(document.activeElement) ?? false) && list.children.length > 0;
    if (listBox?.open && !reading && t0 - lastList >= LIST_EVERY_MS) {
      lastList = t0;
      renderList(start, end);
    }
    if (selected && selectedText) selectedText.textContent = describe(selected.row, selected.item);
    const t1 = performance.now();
    frameTimes.push(t1 - t0);
    if (frameTimes.length > 120) frameTimes.shift();
    measure(t0, t1);
    // Live, the axis moves; paused, only a record or a control redraws it.
    if (pausedAt === null) schedule();
  }

  /** Each draw on the browser's performance timeline, kept to the last MEASURES_KEPT there
   * (a PerformanceObserver of 'measure' sees every one). */
  function measure(t0, t1) {
    try {
      performance.measure(DRAW_MEASURE, { start: t0, end: t1 });
    } catch {
      return; // an engine without measure(name, options)
    }
    measures += 1;
    if (measures > MEASURES_KEPT) {
      performance.clearMeasures(DRAW_MEASURE);
      measures = 0;
    }
  }

  /** The newest LIST_ITEMS items of the view, newest first, as text (the accessible view). */
  function renderList(start, end) {
    const all = [];
    for (const row of rows) {
      for (const item of row.items) {
        const at = item.kind === 'bar' ? item.start : item.at;
        if (at >= start && at <= end) all.push([at, describe(row, item)]);
      }
    }
    all.sort((a, b) => b[0] - a[0]);
    list.replaceChildren(
      ...all.slice(0, LIST_ITEMS).map(([, text]) => {
        const li = document.createElement('li');
        li.textContent = text;
        return li;
      }),
    );
  }

  /** The mark under a pointer at (clientX, clientY), in the row under it: on a bar's band,
   * the bar there (its wait included), else the event, send, break or resume nearest within
   * 16 px; above or below the band, the other way round. */
  function pick(clientX, clientY) {
    if (!view) return null;
    const box = svg.getBoundingClientRect();
    const i = Math.floor((clientY - box.top) / ROW_H);
    const row = rows[i];
    if (!row) return null;
    const band = clientY - box.top - i * ROW_H;
    const msPerPx = VIEW_MS / view.plot;
    const t = view.start + (clientX - box.left - LABEL_W) * msPerPx;
    let bar = null;
    let mark = null;
    let markOff = 16 * msPerPx;
    for (const item of row.items) {
      if (item.kind === 'bar') {
        // As drawn: at least 2 px wide, its wait before it.
        const from = Math.min(item.start, item.timing?.from ?? item.start);
        const to = Math.max(item.end ?? view.end, item.start + 2 * msPerPx);
        if (t >= from - msPerPx && t <= to + msPerPx) bar = item;
        continue;
      }
      const off = Math.abs(item.at - t);
      if (off <= markOff) {
        mark = item;
        markOff = off;
      }
    }
    const onBars = band >= 24 && band <= 40;
    const best = onBars ? (bar ?? mark) : (mark ?? bar);
    return best ? { row, item: best } : null;
  }

  function select(e) {
    const found = pick(e.clientX, e.clientY);
    if (!found || !selectedText) return;
    selected = found;
    selectedText.textContent = describe(found.row, found.item);
  }
  svg.addEventListener('click', select);
  svg.addEventListener('pointermove', select);

  function showBack() {
    if (!backText) return;
    const s = Number(back?.value ?? 0);
    backText.textContent = s === 0 ? (pausedAt === null ? 'live' : 'paused') : `${s} s back`;
  }

  pauseButton?.addEventListener('click', () => {
    pausedAt = pausedAt === null ? performance.now() : null;
    pauseButton.setAttribute('aria-pressed', String(pausedAt !== null));
    pauseButton.textContent = pausedAt === null ? 'Pause' : 'Resume';
    root.dataset.paused = String(pausedAt !== null);
    showBack();
    rebuild = true;
    changed();
  });
  back?.addEventListener('input', () => {
    showBack();
    rebuild = true;
    changed();
  });
  listBox?.addEventListener('toggle', () => {
    lastList = -Infinity;
    changed();
  });
  showBack();

  const timeline = {
    /** A new row; the returned function is the subscription's onTimeline handler. */
    row(name, transport) {
      const row = new Row(name, transport);
      rows.push(row);
      rebuild = true;
      changed();
      return (record) => {
        row.record(record);
        if (pausedAt === null) changed();
      };
    },
    /** The rows, top to bottom: { name, transport }. */
    rows() {
      return rows.map((row) => ({ name: row.name, transport: row.transport }));
    },
    /** Every item kept, as plain objects with their row's name and transport. */
    items() {
      return rows.flatMap((row) =>
        row.items.map((item) => ({ row: row.name, transport: row.transport, ...item })),
      );
    },
    /** The durations of the last draws (ms): how much of a frame the timeline takes. */
    frames() {
      return [...frameTimes];
    },
  };
  // For the browser tests (tests/browser/timeline.rs): the model, read from the page.
  window.pushpollTimeline = timeline;
  return timeline;
}
