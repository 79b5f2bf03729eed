// The live timeline: what the page's own clients did, when, one row per subscription on one
// time axis. Drawn from the records every client sends through its context (clients/common.js,
// onTimeline): a request as a bar from sent to answered (a stream's bar stays open until the
// stream ends), each event as a mark where it arrived (its latency in its title), each frame
// sent upstream on that connection as a mark the other way, and breaks (a failure, a backoff,
// a stream that ended) and the request that resumed after one. Nothing here is modelled: a
// bar is drawn only because a client made that request.
//
//   const timeline = createTimeline(root);          // root: the elements of _timeline.html
//   handlers.onTimeline = timeline.row('clock', transport);   // one row per subscription
//   timeline.items(), timeline.rows()               // the model, for tests: plain objects
//
// Memory is bounded: each row keeps the last KEEP_MS of items and at most MAX_ITEMS. The
// drawing is redone at most once per animation frame, only while something can have changed
// (the page is live, or a record or a control changed it), and not at all while the
// timeline is scrolled out of view or the tab is hidden (no animation frames there).
//
// Times are performance.now() milliseconds (the page's monotonic clock); titles and the list
// give them as seconds since the page opened.

import { TRANSPORT_COLORS } from '/static/facts.js';
import { latencyMs, withClockOffset } from '/static/clock-offset.js';
import { transportName } from '/static/util.js';

const KEEP_MS = 120_000;
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

/** One subscription's records, as items: bars, events, sends, breaks, resumes. */
class Row {
  constructor(name, transport) {
    this.name = name;
    this.transport = transport;
    this.items = [];
    this.bar = null; // the open bar, if any
    this.broken = false; // a break since the last request
  }

  push(item) {
    this.items.push(item);
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
    this.bar = null;
  }

  record(r) {
    switch (r.kind) {
      case 'open':
        this.endBar(r.at, 'replaced');
        if (this.broken) this.push({ kind: 'resume', at: r.at });
        this.broken = false;
        this.bar = { kind: 'bar', start: r.at, end: null, ending: null, bytes: null, events: 0 };
        this.push(this.bar);
        break;
      case 'answered':
        this.endBar(r.at, 'answered', r.bytes);
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
        this.push({ kind: 'up', at: r.at, bytes: r.bytes });
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

/** What an item is, in words (its SVG <title> and its line in the list). */
function describe(row, item) {
  const who = `${row.name} (${transportName(row.transport)})`;
  switch (item.kind) {
    case 'bar': {
      const body = item.bytes === null ? '' : `, ${item.bytes} B of body`;
      const events = item.events === 1 ? '1 event' : `${item.events} events`;
      if (item.end === null) return `${who}: request sent at ${secs(item.start)}, still open (${events} so far)`;
      const how = { answered: 'answered', broken: 'broken', replaced: 'given up', stopped: 'closed by the page' }[item.ending];
      return `${who}: request sent at ${secs(item.start)}, ${how} after ${Math.round(item.end - item.start)} ms${body}, ${events}`;
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
      return `${who}: ${item.bytes} B sent upstream at ${secs(item.at)}`;
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

const escape = (text) =>
  String(text).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

/**
 * The timeline in `root` (a section holding [data-timeline="svg"], "pause", "back",
 * "back-text", "list-box" and "list"). Returns { row(name, transport), items(), frames() }.
 */
export function createTimeline(root) {
  const q = (name) => root.querySelector(`[data-timeline="${name}"]`);
  const svg = q('svg');
  const pauseButton = q('pause');
  const back = q('back');
  const backText = q('back-text');
  const listBox = q('list-box');
  const list = q('list');
  const rows = [];
  let pausedAt = null;
  let scheduled = false;
  let dirty = true; // a record or a control changed what is drawn
  let visible = true; // on screen (IntersectionObserver): off it, nothing is drawn
  let lastDraw = -Infinity;
  let lastList = -Infinity;
  let width = svg.clientWidth || 600;
  const frameTimes = []; // the last 120 draws' durations (ms), for the figures below
  if (back) back.max = String(BACK_MAX_S);

  new ResizeObserver(() => {
    width = svg.clientWidth || width;
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

  function draw() {
    scheduled = false;
    const t0 = performance.now();
    // Live and unchanged, the axis alone moves: a redraw every other frame of a 60 Hz
    // screen (about a pixel per frame) halves the cost and looks the same.
    if (!dirty && t0 - lastDraw < MOVE_MS) {
      schedule();
      return;
    }
    dirty = false;
    lastDraw = t0;
    const end = viewEnd(t0);
    const start = end - VIEW_MS;
    const plot = Math.max(100, width - LABEL_W - 8);
    const x = (t) => LABEL_W + ((t - start) / VIEW_MS) * plot;
    const height = rows.length * ROW_H + AXIS_H;
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    svg.setAttribute('height', String(height));
    const parts = [];
    rows.forEach((row, i) => {
      const y = i * ROW_H;
      const color = TRANSPORT_COLORS[row.transport] ?? '#444';
      parts.push(
        `<text class="tl-label" x="${LABEL_W + 2}" y="${y + 15}">${escape(`${row.name} · ${transportName(row.transport)}`)}</text>`,
        `<line class="tl-base" x1="${LABEL_W}" x2="${LABEL_W + plot}" y1="${y + 32}" y2="${y + 32}"/>`,
      );
      for (const item of row.items) {
        const title = () => `<title>${escape(describe(row, item))}</title>`;
        if (item.kind === 'bar') {
          const barEnd = item.end ?? end;
          if (barEnd < start || item.start > end) continue;
          const x1 = Math.max(LABEL_W, x(item.start));
          const x2 = Math.min(LABEL_W + plot, x(barEnd));
          const open = item.end === null ? ' tl-open' : '';
          parts.push(
            `<rect class="tl-bar${open}" x="${x1.toFixed(1)}" y="${y + 26}" width="${Math.max(2, x2 - x1).toFixed(1)}" height="12" rx="2" fill="${color}">${title()}</rect>`,
          );
          continue;
        }
        if (item.at < start || item.at > end) continue;
        const cx = x(item.at).toFixed(1);
        if (item.kind === 'event' || item.kind === 'gap') {
          // Down: from the server into the page.
          const cls = item.kind === 'gap' ? 'tl-gap' : 'tl-event';
          parts.push(`<path class="${cls}" d="M${cx} ${y + 25}l-4 -6h8z">${title()}</path>`);
        } else if (item.kind === 'up') {
          // Up: from the page to the server.
          parts.push(`<path class="tl-up" d="M${cx} ${y + 39}l-4 6h8z">${title()}</path>`);
        } else if (item.kind === 'break' || item.kind === 'stopped') {
          parts.push(
            `<g class="tl-break"><line x1="${cx}" x2="${cx}" y1="${y + 20}" y2="${y + 44}"/><text x="${cx}" y="${y + 18}" text-anchor="middle">✕</text>${title()}</g>`,
          );
        } else if (item.kind === 'resume') {
          parts.push(
            `<g class="tl-resume"><line x1="${cx}" x2="${cx}" y1="${y + 20}" y2="${y + 44}"/><text x="${cx}" y="${y + 18}" text-anchor="middle">↻</text>${title()}</g>`,
          );
        }
      }
    });
    // The axis: a tick a second, a label every five, in seconds before the view's end.
    const axisY = rows.length * ROW_H;
    parts.push(`<line class="tl-axis" x1="${LABEL_W}" x2="${LABEL_W + plot}" y1="${axisY + 2}" y2="${axisY + 2}"/>`);
    for (let s = 0; s <= VIEW_MS / 1000; s += 1) {
      const tx = x(end - s * 1000).toFixed(1);
      parts.push(`<line class="tl-axis" x1="${tx}" x2="${tx}" y1="${axisY}" y2="${axisY + 6}"/>`);
      if (s % 5 === 0) {
        const label = s === 0 ? (pausedAt === null && Number(back?.value ?? 0) === 0 ? 'now' : '') : `−${s} s`;
        const anchor = s === 0 ? 'end' : s === VIEW_MS / 1000 ? 'start' : 'middle';
        parts.push(`<text class="tl-tick" x="${tx}" y="${axisY + 19}" text-anchor="${anchor}">${label}</text>`);
      }
    }
    svg.innerHTML = parts.join('');
    if (listBox?.open && t0 - lastList >= LIST_EVERY_MS) {
      lastList = t0;
      renderList(start, end);
    }
    frameTimes.push(performance.now() - t0);
    if (frameTimes.length > 120) frameTimes.shift();
    // Live, the axis moves; paused, only a record or a control redraws it.
    if (pausedAt === null) schedule();
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
    changed();
  });
  back?.addEventListener('input', () => {
    showBack();
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
