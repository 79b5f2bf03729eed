// What every client shares (see index.js for the shape they have): the context that holds
// the page's handlers, the cursor and the stopped flag, and the backoff between reconnects.

import { HEARTBEAT_MEMBER, SILENCE_FACTOR } from '/static/facts.js';
import { headFloor, measureHeads } from '/static/clients/heads.js';

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 10_000;

// Wall-clock time in microseconds, for latency = receipt - event.ts (same machine, same
// clock). Date.now() alone is truncated to whole milliseconds, which on loopback (latency
// well under 1 ms) would read low or even negative. performance.now() has sub-ms resolution
// but is a monotonic clock that can drift from the wall clock over hours, so it is kept
// inside the millisecond Date.now() reports, re-anchoring whenever it strays out of it.
let clockOffsetMs = 0;
export function nowMicros() {
  const wall = Date.now();
  let precise = performance.timeOrigin + performance.now() + clockOffsetMs;
  if (precise < wall || precise >= wall + 1) {
    const anchored = precise < wall ? wall : wall + 0.999;
    clockOffsetMs += anchored - precise;
    precise = anchored;
  }
  return precise * 1000;
}

const NO_HANDLERS = {
  onEvent() {},
  onNotice() {},
  onRequest() {},
  onBytes() {},
  onBytesUp() {},
  onFramingDown() {},
  onHeads() {},
  onState() {},
  onDetail() {},
  onTimeline() {},
};

// What the timeline (timeline.js) is told, one record per thing that happened, at
// performance.now(): `open` (a request sent or a connection opened: a bar starts; `url`, the
// URL requested, by which Resource Timing's entry for it is found; `head: false` for one with
// no HTTP/1.1 head), `answered` (a polling request's answer read: its bar ends; `bytes`, its
// body), `bytes` (`n` body bytes read on the open request, as onBytes counts them), `heads`
// (the subscription's estimated head sizes, as onHeads has them), `break` (a failure, a
// backoff or a stream that ended: the open bar ends; `text` says why), `event` (a feed event
// delivered: `receivedAt` and the event's `ts`, both µs, for its latency), `gap` (the feed
// skipped events), `up` (a frame sent upstream on this connection), `stopped`. A break is
// recorded on the phase's change, not on each backoff countdown, and when a new request is
// sent while the last is still held (a stream given up for a new one).
const BREAK_PHASES = new Set(['backoff', 'error']);
const HOLD_PHASES = new Set(['streaming', 'open']);

/** What every client shares: the handlers, the cursor, URLs and the stopped flag. */
export class Context {
  constructor(transport, feed, handlers, options) {
    this.transport = transport;
    this.feed = feed;
    this.handlers = { ...NO_HANDLERS, ...handlers };
    this.params = { ...(options.params ?? {}) };
    this.cursor = Number.isSafeInteger(options.after) ? options.after : null;
    this.origin = options.origin ? new URL(options.origin).origin : location.origin;
    this.stopped = false;
    this.headsAsked = false; // the head sizes are reported once per client (HEADS)
    this.phase = null;
    this.holding = false; // a request sent and not yet answered or broken
    // Events the server created before this client started are replays (chat history):
    // the timeline shows them without a delivery latency.
    this.since = nowMicros();
  }

  /** One timeline record (see above), stamped now. */
  record(kind, fields = {}) {
    if (this.stopped) return;
    if (kind === 'open') this.holding = true;
    else if (kind === 'answered' || kind === 'break') this.holding = false;
    this.handlers.onTimeline?.({ kind, at: performance.now(), ...fields });
  }

  /** A polling request's answer was read: its bar ends. */
  answered(bytes) {
    this.record('answered', { bytes });
  }

  /** `ORIGIN/TRANSPORT/FEED?…`, with the extra parameters, then `extra` (null values dropped). */
  url(extra = {}) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries({ ...this.params, ...extra })) {
      if (value !== null && value !== undefined) query.set(key, String(value));
    }
    const qs = query.toString();
    return `${this.origin}/${this.transport}/${encodeURIComponent(this.feed)}${qs ? `?${qs}` : ''}`;
  }

  /** A request made or a connection opened, at `url` (for the timeline: Resource Timing
   * names its entry by it); `heads: false` for one that has no HTTP/1.1 head to estimate
   * (WebTransport's CONNECT is HTTP/3, its head QPACK-compressed). */
  request({ heads = true, url = null } = {}) {
    if (this.stopped) return;
    if (this.holding) {
      // A new request while the last one is neither answered nor broken: that one was
      // given up (a stream reopened, by the silence watch or at its document's cap).
      this.record('break', { text: 'given up: a new request replaces it' });
    }
    // The state that follows ('connecting') is this request's, not a second break.
    if (HOLD_PHASES.has(this.phase)) this.phase = 'connecting';
    this.record('open', { url, head: heads });
    this.handlers.onRequest();
    if (heads && !this.headsAsked) {
      this.headsAsked = true;
      // A floor at once, the server's record a little later (it has the request by then).
      this.heads(headFloor(this.url({ after: this.cursor }), this.origin));
      measureHeads(this);
    }
  }

  /** The estimated sizes of this client's heads (heads.js): to the page and its timeline. */
  heads(sizes) {
    if (this.stopped) return;
    this.handlers.onHeads(sizes);
    this.record('heads', sizes);
  }

  bytesUp(n) {
    if (!this.stopped && n > 0) this.handlers.onBytesUp(n);
  }

  framingDown(n) {
    if (!this.stopped && n > 0) this.handlers.onFramingDown(n);
  }

  bytes(n) {
    if (this.stopped || !(n > 0)) return;
    this.handlers.onBytes(n);
    // Only an open stream's bar counts these (a polling answer's come with `answered`).
    if (this.holding) this.record('bytes', { n });
  }

  state(text, phase) {
    if (this.stopped) return;
    const was = this.phase;
    this.phase = phase;
    // A failure or a backoff breaks; so does a held stream that ends (reopened at once).
    const ended = phase === 'connecting' && HOLD_PHASES.has(was) && this.holding;
    if (phase !== was && (BREAK_PHASES.has(phase) || ended)) this.record('break', { text });
    this.handlers.onState(text, phase);
  }

  detail(object) {
    if (!this.stopped) this.handlers.onDetail(object);
  }

  /** Moves the cursor forward (never back), e.g. to a poll answer's `next`. */
  advance(id) {
    if (Number.isSafeInteger(id) && (this.cursor === null || id > this.cursor)) this.cursor = id;
  }

  /** Hands one received event to the page: notices apart, duplicates dropped. */
  deliver(event, receivedAt) {
    if (this.stopped || event === null || typeof event !== 'object') return;
    if (event.type === 'error' && event.id === undefined) {
      this.handlers.onNotice(event);
      return;
    }
    if (Number.isSafeInteger(event.id)) {
      // Ids only grow; one at or below the cursor was already delivered (a resumed stream
      // may repeat the boundary), so it is dropped rather than shown twice.
      if (this.cursor !== null && event.id <= this.cursor) return;
      this.cursor = event.id;
    }
    this.record(event.type === 'gap' ? 'gap' : 'event', {
      id: Number.isSafeInteger(event.id) ? event.id : null,
      type: typeof event.type === 'string' ? event.type : '',
      ts: Number.isFinite(event.ts) ? event.ts : null,
      receivedAt,
      since: this.since,
    });
    this.handlers.onEvent(event, receivedAt);
  }
}

/**
 * Retry with exponential backoff and full jitter: the n-th retry waits a random time
 * between 0 and min(10 s, 1 s · 2^n), showing a countdown in the state. Without the jitter,
 * every page broken by the same event (a server restart, a deploy) would come back in the
 * same instant, again and again; `loadtest --storm` measures that wave with and without
 * jitter (results/storm/). EventSource is the exception: it reconnects by itself after the
 * server's `retry:` (2 s for every page); see sse.js.
 */
export class Backoff {
  constructor(ctx) {
    this.ctx = ctx;
    this.delay = BACKOFF_MIN_MS;
    this.timer = 0;
    this.ticker = 0;
  }

  /** Runs `fn` after a random part of the current delay, then doubles the delay. */
  retry(why, fn) {
    this.cancel();
    // Full jitter (uniform in [0, delay]); Math.random is enough: the spread matters, not
    // unpredictability.
    const ms = Math.random() * this.delay;
    this.delay = Math.min(this.delay * 2, BACKOFF_MAX_MS);
    const due = performance.now() + ms;
    const show = () => {
      const s = Math.max(1, Math.ceil((due - performance.now()) / 1000));
      this.ctx.state(`${why}; reconnecting in ${s} s`, 'backoff');
    };
    show();
    this.ticker = setInterval(show, 1000);
    this.timer = setTimeout(() => {
      this.cancel();
      if (!this.ctx.stopped) fn();
    }, ms);
  }

  /** Data flowed again: the next failure starts over at up to 1 s. */
  reset() {
    this.delay = BACKOFF_MIN_MS;
  }

  cancel() {
    clearTimeout(this.timer);
    clearInterval(this.ticker);
  }
}

// Liveness. The SSE, iframe and WebSocket streams carry a heartbeat, `{"heartbeat":MS}`: once
// when they open, then whenever the server sent nothing else for MS milliseconds
// (`--keepalive`; docs/API.md). A stream silent for SILENCE_FACTOR times the interval the
// server announced is taken for dead (a network gone without a FIN, which no browser API
// reports) and reopened from the cursor. SILENCE_FACTOR is the server's
// (src/net/listener.rs, liveness), served in facts.js.
export { SILENCE_FACTOR };
const SILENCE_CHECK_MS = 250;

/** Whether a parsed message is the server's heartbeat rather than an event. */
export function heartbeatOf(value) {
  return value !== null && typeof value === 'object' && typeof value[HEARTBEAT_MEMBER] === 'number'
    ? value[HEARTBEAT_MEMBER]
    : null;
}

/** Watches one stream: `heard()` on every message, `announced(ms)` on a heartbeat; calls
 * `onDead(silentMs, limitMs)` once the stream was silent past the limit. */
export class Silence {
  constructor(onDead) {
    this.onDead = onDead;
    this.limit = 0; // unknown until the first heartbeat
    this.last = performance.now();
    this.timer = 0;
  }

  start() {
    this.stop();
    this.limit = 0;
    this.last = performance.now();
    this.timer = setInterval(() => {
      const silent = performance.now() - this.last;
      if (this.limit > 0 && silent > this.limit) {
        const limit = this.limit;
        this.stop();
        this.onDead(silent, limit);
      }
    }, SILENCE_CHECK_MS);
  }

  heard() {
    this.last = performance.now();
  }

  announced(intervalMs) {
    this.limit = SILENCE_FACTOR * intervalMs;
    this.heard();
  }

  stop() {
    clearInterval(this.timer);
    this.timer = 0;
  }
}
