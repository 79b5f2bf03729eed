// One lane of the compare page: one transport's two subscriptions (its feed, the clock or the
// canvas, and the chat), pausing and resuming them from their cursors, and its card: the
// figures (compare/figures.js), the kill and its recovery (compare/kill.js).

import { $, randomTag } from '/static/util.js';
import { connect, POLL_INTERVAL } from '/static/clients/index.js';
import { latencyMs, withClockOffset } from '/static/clock-offset.js';
import { createClock } from '/static/clock.js';
import { createDraw } from '/static/draw.js';
import { LaneFigures } from '/static/compare/figures.js';
import { Kill } from '/static/compare/kill.js';
import { LANE_FEED, originOf } from '/static/compare/origins.js';

const STALE_MS = 3000;
// The phases (see clients/index.js) in which a client holds a connection or waits for one (a
// request that is queued behind the six looks the same from the page).
const HOLDING = new Set(['connecting', 'waiting', 'streaming', 'open']);

/** One transport: its two subscriptions (its feed and the chat), its figures and its controls. */
export class Lane {
  constructor(transport, root, arrivals, timeline) {
    this.transport = transport;
    this.root = root;
    this.arrivals = arrivals;
    // Its own 128 random bits: the tag reads this lane's wire record and kills its connections.
    this.tag = `cmp-${transport}-${randomTag()}`;
    this.origin = originOf(transport);
    this.clock = createClock(root);
    this.feed = LANE_FEED;
    // The lane's row of the page's timeline: its feed's requests and events.
    this.timelineRow = timeline.row(this.feed, transport);
    this.draw = null; // the lane's canvas (createDraw), made at the first start
    this.fields = new Map();
    for (const el of root.querySelectorAll('[data-field]')) this.fields.set(el.dataset.field, el);
    const set = (field, text) => this.set(field, text);
    this.figures = new LaneFigures(set);
    this.kill = new Kill(root, set);
    this.clients = null;
    this.cursors = { [this.feed]: null, chat: null };
    this.phases = { [this.feed]: 'connecting', chat: 'connecting' };
    this.stateText = 'starting';
    this.serverOpen = null; // the server's count of this transport's open connections
    this.interval = POLL_INTERVAL.default;
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
    const counting = this.figures.handlers();
    return {
      ...counting,
      onEvent: (event, receivedAt) => this.onEvent(feed, event, receivedAt),
      onRequest: () => {
        counting.onRequest();
        // Recovery is timed on the lane's own feed: the clock has an event every second; the
        // canvas only when someone draws.
        if (feed === this.feed) this.kill.onRequest();
      },
      ...(feed === this.feed ? { onTimeline: this.timelineRow } : {}),
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

  /** Never started: this browser cannot run the transport (origins.js, unavailable). Its
   * buttons are disabled, and the lane says why. */
  unavailable(why) {
    this.phases = { [this.feed]: 'stopped', chat: 'stopped' };
    this.stateText = why;
    this.root.dataset.paused = 'true';
    this.root.dataset.unavailable = 'true';
    for (const button of this.root.querySelectorAll('button')) button.disabled = true;
  }

  /** Left paused at start (STARTS_PAUSED in origins.js), saying why. */
  holdBack(why) {
    this.phases = { [this.feed]: 'stopped', chat: 'stopped' };
    this.stateText = why;
    this.root.dataset.paused = 'true';
    const button = this.root.querySelector('[data-action="pause"]');
    if (button) button.textContent = 'Resume';
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
    this.figures.onEvent(now);
    if (
      Number.isFinite(event.ts) &&
      (event.type === 'tick' || event.type === 'message' || event.type === 'stroke')
    ) {
      // On the server's clock (clock-offset.js): at once, but for the first events of a load.
      withClockOffset((estimate) => {
        const latency = latencyMs(receivedAt, event.ts, estimate);
        this.figures.onLatency(now, latency);
        if (event.type === 'message') this.arrivals.arrive(this.transport, event, latency);
      });
    }
    if (feed === 'clock' && event.type === 'tick') {
      this.clock.show(event);
      this.root.dataset.tickTime = String(event.time);
    }
    if (feed === this.feed) this.kill.onEvent(now);
  }

  killConnection() {
    if (this.paused) return;
    void this.kill.start(this.tag);
  }

  /** Connections this lane holds (or waits for) now. */
  held() {
    if (!this.clients) return 0;
    return Object.values(this.phases).filter((p) => HOLDING.has(p)).length;
  }

  render(now) {
    this.figures.render(now);
    this.set('open', `${this.held()} · ${this.serverOpen ?? '–'}`);
    this.set('state', this.stateText);
    // A quiet canvas is not a stale one: strokes come only when someone draws.
    const since = this.figures.sinceLastEvent(now);
    const stale = this.feed === 'clock' && !this.paused && (since === null || since > STALE_MS);
    this.root.dataset.stale = String(stale);
  }
}
