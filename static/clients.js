// One client per transport, all with the same shape, so a page can run any one of them
// (or, later, all five side by side):
//
//   const client = connect(transport, feed, handlers, options);
//   client.stop();             // close everything, cancel every timer; no handler runs after it
//   client.setInterval(ms);    // short polling: change the interval (no-op elsewhere)
//   client.send(text);         // WebSocket: send one text frame, true if sent (false elsewhere)
//   client.cursor;             // the id of the last event delivered (the resume point), or null
//   client.transport, client.feed
//
// handlers (all optional):
//   onEvent(event, receivedAtMicros)  a feed event (has an `id`), each delivered once, in order
//   onNotice(event)                   a `{"type":"error",…}` notice, not part of the feed
//   onRequest()                       an HTTP request was made / a connection opened
//   onBytes(n)                        n bytes received (exactly what each transport can see,
//                                     see BYTES in the page notes and the comments below)
//   onBytesUp(n)                      n bytes sent that the page can count exactly: WebSocket
//                                     frames, frame header and 4-byte mask included
//   onFramingDown(n)                  n bytes of WebSocket frame headers received (2 or 4 per
//                                     server frame, RFC 6455 §5.2): on the wire, not in e.data
//   onHeads({request, response, source})  the estimated size of one request head and one
//                                     response head (scripts cannot see them), see HEADS below
//   onState(text, phase)              the connection state in words; phase is one of
//                                     connecting · polling · waiting · streaming · open ·
//                                     backoff · error · stopped
//   onDetail(object)                  transport-specific figures, e.g. WebSocket readyState
//
// options: { after: ID, params: {…extra query parameters…}, interval: ms (poll),
//            timeout: s (longpoll), container: Element (iframe),
//            origin: 'http://localhost:3000' (subscribe from another origin of the same
//            server, which answers loopback aliases of its own port with CORS headers; the
//            request is then made without cookies. Not for the iframe, whose document must
//            be same-origin to call parent.pushpoll) }
//
// Every client resumes the same way: the last id it delivered is the cursor (`after=`).

export const TRANSPORTS = Object.freeze(['poll', 'longpoll', 'iframe', 'sse', 'ws']);

export const POLL_INTERVAL = Object.freeze({ min: 100, max: 10_000, default: 1000 });

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 10_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** UTF-8 byte length of a string: what it weighs on the wire. */
export function utf8Length(text) {
  return encoder.encode(text).length;
}

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

/**
 * The bytes of one hidden-iframe chunk as the server sends it:
 * `<script>parent.pushpoll(JSON)</script>\n`, with `<`, `>`, `&`, U+2028 and U+2029 in the
 * JSON written as `\uXXXX`. JSON.stringify keeps the server's key order and number format
 * (ids and µs timestamps are below 2^53), so this reproduces the server's bytes exactly.
 */
export function iframeChunk(event) {
  const json = JSON.stringify(event).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return `<script>parent.pushpoll(${json})</script>\n`;
}

/**
 * Starts a client of `feed` over `transport`. See the top of this file for the shape.
 */
export function connect(transport, feed, handlers = {}, options = {}) {
  const make = FACTORIES[transport];
  if (!make) throw new TypeError(`unknown transport ${JSON.stringify(transport)}`);
  const ctx = new Context(transport, feed, handlers, options);
  const impl = make(ctx, options);
  impl.start();
  return Object.freeze({
    transport,
    feed,
    get cursor() {
      return ctx.cursor;
    },
    stop() {
      if (ctx.stopped) return;
      ctx.stopped = true;
      impl.stop();
      ctx.handlers.onState('stopped', 'stopped');
    },
    setInterval(ms) {
      impl.setInterval?.(ms);
    },
    send(text) {
      return impl.send?.(text) ?? false;
    },
  });
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
};

/** What every client shares: the handlers, the cursor, URLs and the stopped flag. */
class Context {
  constructor(transport, feed, handlers, options) {
    this.transport = transport;
    this.feed = feed;
    this.handlers = { ...NO_HANDLERS, ...handlers };
    this.params = { ...(options.params ?? {}) };
    this.cursor = Number.isSafeInteger(options.after) ? options.after : null;
    this.origin = options.origin ? new URL(options.origin).origin : location.origin;
    this.stopped = false;
    this.headsAsked = false; // the head sizes are reported once per client (HEADS)
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

  request() {
    if (this.stopped) return;
    this.handlers.onRequest();
    if (!this.headsAsked) {
      this.headsAsked = true;
      // A floor at once, the server's record a little later (it has the request by then).
      this.handlers.onHeads(headFloor(this.url({ after: this.cursor }), this.origin));
      measureHeads(this);
    }
  }

  bytesUp(n) {
    if (!this.stopped && n > 0) this.handlers.onBytesUp(n);
  }

  framingDown(n) {
    if (!this.stopped && n > 0) this.handlers.onFramingDown(n);
  }

  bytes(n) {
    if (!this.stopped && n > 0) this.handlers.onBytes(n);
  }

  state(text, phase) {
    if (!this.stopped) this.handlers.onState(text, phase);
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
    this.handlers.onEvent(event, receivedAt);
  }
}

// HEADS. Browsers send request headers (User-Agent, Accept*, Sec-Fetch-*, cookies…) that no
// script can read, and show scripts only some response headers, so the head sizes are
// estimated, and said to be. The floor is what the page knows for certain: the request line
// and the Host line; the response floor is a status line. The estimate replaces it from the
// server's wire record of this page's own tagged requests (GET /api/debug/wire, the "show the
// wire" view): request line and headers as received, response line and headers as sent,
// sized as they are on the wire (`name: value\r\n`, the blank line). A value the server does
// not keep shows as `(N bytes, not shown)` and counts as N bytes. Chunked framing of the
// streams (a hex length and two CRLFs per chunk) is not included.

/** The bytes of a WebSocket frame with `payload` bytes (RFC 6455 §5.2): 2, 4 or 10 bytes of
 * header, plus the 4-byte masking key on every client-to-server frame. */
export function wsFrameBytes(payload, masked) {
  const header = payload < 126 ? 2 : payload < 65_536 ? 4 : 10;
  return header + (masked ? 4 : 0) + payload;
}

function headFloor(url, origin) {
  const u = new URL(url);
  const request = utf8Length(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${new URL(origin).host}\r\n\r\n`);
  return { request, response: utf8Length('HTTP/1.1 200 OK\r\n\r\n'), source: 'floor' };
}

const HIDDEN_LENGTH = /^\((\d+) bytes, not shown\)$/;

/** Bytes of a head as recorded by the server: the line, each `name: value\r\n`, the blank line. */
export function headBytes(head) {
  if (!head || typeof head.line !== 'string' || !Array.isArray(head.headers)) return null;
  let n = utf8Length(head.line) + 2 + 2;
  for (const pair of head.headers) {
    if (!Array.isArray(pair) || pair.length !== 2) continue;
    const [name, value] = pair.map(String);
    const hidden = HIDDEN_LENGTH.exec(value);
    n += utf8Length(name) + 2 + (hidden ? Number(hidden[1]) : utf8Length(value)) + 2;
  }
  return n;
}

/** Reads this client's newest recorded exchanges (when its URLs carry a tag) and reports the
 * sizes of their heads: the newest request head, and the newest response head (a parked long
 * poll has none yet; until one is answered the response keeps its floor, and the record is
 * read again, at most three times). One GET each, not counted as the transport's: it is the
 * page's diagnostics. */
function measureHeads(ctx, tries = 3) {
  const tag = ctx.params.tag;
  if (typeof tag !== 'string' || tries <= 0) return;
  setTimeout(async () => {
    if (ctx.stopped) return;
    try {
      // `for=heads` (ignored by the server) tells these reads apart from the wire view's own
      // (`/api/debug/wire?tag=…`, wire.js) in Resource Timing and in the server's logs.
      const url = `/api/debug/wire?for=heads&tag=${encodeURIComponent(tag)}`;
      const answer = await fetch(url, { cache: 'no-store' });
      if (!answer.ok) return;
      const record = await answer.json();
      const mine = (record?.exchanges ?? []).filter(
        (x) => typeof x?.request?.line === 'string' && x.request.line.startsWith(`GET /${ctx.transport}/`),
      );
      const request = headBytes(mine[0]?.request);
      const response = mine.map((x) => headBytes(x.response)).find((n) => n !== null) ?? null;
      if (request === null || ctx.stopped) return;
      ctx.handlers.onHeads({
        request,
        response: response ?? utf8Length('HTTP/1.1 200 OK\r\n\r\n'),
        source: response === null ? 'wire record, response floor' : 'wire record',
      });
      if (response === null) measureHeads(ctx, tries - 1);
    } catch {
      // No record (diagnostics off, network error): the floor stays, labelled as such.
    }
  }, tries === 3 ? 1500 : 5000);
}

/**
 * Retry with exponential backoff and full jitter: the n-th retry waits a random time
 * between 0 and min(10 s, 1 s · 2^n), showing a countdown in the state. Without the jitter,
 * every page broken by the same event (a server restart, a deploy) would come back in the
 * same instant, again and again; `loadtest --storm` measures that wave with and without
 * jitter (results/storm/). EventSource is the exception: it reconnects by itself after the
 * server's `retry:` (2 s for every page); see sseClient.
 */
class Backoff {
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

/** A short reason for a failed request, for the state line. */
function describe(err) {
  if (err instanceof HttpError) return `HTTP ${err.status}${err.code ? ` ${err.code}` : ''}`;
  if (err?.name === 'AbortError') return 'timed out';
  if (err instanceof SyntaxError) return 'unreadable answer';
  return 'network error';
}

class HttpError extends Error {
  constructor(status, bodyText) {
    let code = '';
    try {
      code = JSON.parse(bodyText)?.error?.code ?? '';
    } catch {
      // Not our JSON error body (a proxy's page, say): the status says enough.
    }
    super(`HTTP ${status}`);
    this.status = status;
    this.code = typeof code === 'string' ? code : '';
  }
}

/**
 * GETs a `{"events":[…],"next":ID}` batch (the polling transports). Counts the body bytes
 * exactly (headers are invisible to fetch), delivers the events, advances the cursor.
 * Resolves to the number of events; rejects on abort, network error or HTTP error.
 */
async function fetchBatch(ctx, url, signal) {
  ctx.request();
  const response = await fetch(url, { signal, cache: 'no-store', credentials: 'same-origin' });
  const body = await response.arrayBuffer();
  const receivedAt = nowMicros();
  ctx.bytes(body.byteLength);
  const text = decoder.decode(body);
  if (!response.ok) throw new HttpError(response.status, text);
  const batch = JSON.parse(text);
  const events = Array.isArray(batch?.events) ? batch.events : [];
  for (const event of events) ctx.deliver(event, receivedAt);
  ctx.advance(batch?.next);
  return events.length;
}

/** An AbortController that also aborts by itself after `ms`. */
function deadline(ms) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), ms);
  return { controller, clear: () => clearTimeout(timer) };
}

// ---------------------------------------------------------------------------------------
// Short polling: GET /poll/FEED?after=ID on a fixed timetable.

function pollClient(ctx, options) {
  let interval = clampInterval(options.interval ?? POLL_INTERVAL.default);
  let start = 0; // timetable origin (performance.now())
  let slot = 0; // index of the next slot
  let timer = 0;
  let inFlight = null;
  let empty = 0;

  const idleText = () => `polling every ${interval} ms`;

  // Slot k fires at start + k × interval, so a slow answer does not push later polls back
  // (and hide latency). If an answer is still outstanding when a slot comes, that slot is
  // skipped instead of stacking requests; slots missed while the tab was throttled are
  // skipped too.
  function schedule() {
    const now = performance.now();
    slot = Math.max(slot + 1, Math.ceil((now - start) / interval));
    timer = setTimeout(fire, start + slot * interval - now);
  }

  function fire() {
    schedule();
    if (inFlight) return;
    void pollOnce();
  }

  async function pollOnce() {
    // An answer comes at once; 10 s without one means something is wrong on the way.
    const guard = deadline(Math.max(10_000, interval));
    inFlight = guard.controller;
    try {
      const n = await fetchBatch(ctx, ctx.url({ after: ctx.cursor }), guard.controller.signal);
      if (n === 0) {
        empty += 1;
        ctx.detail({ emptyResponses: empty });
      }
      ctx.state(idleText(), 'polling');
    } catch (err) {
      if (ctx.stopped) return; // aborted by stop(): nothing to report
      ctx.state(`last poll failed (${describe(err)}); polling every ${interval} ms`, 'error');
    } finally {
      guard.clear();
      inFlight = null;
    }
  }

  function restart() {
    clearTimeout(timer);
    start = performance.now();
    slot = 0;
    timer = setTimeout(fire, 0);
  }

  return {
    start() {
      ctx.detail({ emptyResponses: 0, interval });
      ctx.state(idleText(), 'polling');
      restart();
    },
    stop() {
      clearTimeout(timer);
      inFlight?.abort();
    },
    setInterval(ms) {
      const next = clampInterval(ms);
      if (next === interval || ctx.stopped) return;
      interval = next;
      ctx.detail({ interval });
      ctx.state(idleText(), 'polling');
      // Start a new timetable whose first slot is one new interval from now.
      clearTimeout(timer);
      start = performance.now();
      slot = 0;
      schedule();
    },
  };
}

function clampInterval(ms) {
  const n = Math.round(Number(ms));
  if (!Number.isFinite(n)) return POLL_INTERVAL.default;
  return Math.min(POLL_INTERVAL.max, Math.max(POLL_INTERVAL.min, n));
}

// ---------------------------------------------------------------------------------------
// Long polling: GET /longpoll/FEED?after=ID&timeout=S, re-asked as soon as it is answered.

function longpollClient(ctx, options) {
  const hold = Math.min(60, Math.max(1, Math.round(options.timeout ?? 25)));
  const backoff = new Backoff(ctx);
  let inFlight = null;
  let empty = 0;

  async function loop() {
    while (!ctx.stopped) {
      // The server answers within `hold` seconds; allow 10 s more before giving up on it.
      const guard = deadline((hold + 10) * 1000);
      inFlight = guard.controller;
      ctx.state('waiting (held request)', 'waiting');
      try {
        const n = await fetchBatch(
          ctx,
          ctx.url({ after: ctx.cursor, timeout: hold }),
          guard.controller.signal,
        );
        backoff.reset();
        if (n === 0) {
          empty += 1;
          ctx.detail({ emptyResponses: empty });
        }
      } catch (err) {
        if (ctx.stopped) return;
        backoff.retry(`request failed (${describe(err)})`, loop);
        return;
      } finally {
        guard.clear();
        inFlight = null;
      }
    }
  }

  return {
    start() {
      ctx.detail({ emptyResponses: 0, hold });
      void loop();
    },
    stop() {
      backoff.cancel();
      inFlight?.abort();
    },
  };
}

// ---------------------------------------------------------------------------------------
// Hidden iframe ("forever frame"): GET /iframe/FEED?after=ID as a hidden document whose
// scripts call parent.pushpoll(event).

// The server calls a fixed global name, so one dispatcher on `window` routes each call to
// the client whose iframe made it. The event object is an object literal evaluated by the
// iframe's script, so its prototype is that iframe's own `Object.prototype`: comparing realms
// tells the clients apart without any help from the server. (Routing by feed or a per-client
// callback name would need a server change; this needs none.)
const frameClients = new Set();
const DISPATCHER = Symbol.for('pushpoll.dispatcher');

function installDispatcher() {
  if (window.pushpoll?.[DISPATCHER]) return;
  const dispatch = (event) => {
    let target = null;
    for (const client of frameClients) {
      if (client.owns(event)) {
        target = client;
        break;
      }
    }
    // Fallback for a realm check that cannot be made: with one client there is no doubt.
    if (!target && frameClients.size === 1) [target] = frameClients;
    target?.receive(event);
  };
  dispatch[DISPATCHER] = true;
  window.pushpoll = dispatch;
}

// How long a hidden-iframe stream may stay silent (no event, no keep-alive) before the client
// takes it for dead: twice the server's default keep-alive interval (15 s).
const STREAM_SILENCE_MS = 30_000;
const STREAM_CHECK_MS = 2000;

function iframeClient(ctx, options) {
  const MAX_DOCUMENT = 256 * 1024; // the server ends each document after this many bytes
  const backoff = new Backoff(ctx);
  const container = options.container ?? document.body;
  let frame = null;
  let opens = 0;
  let docBytes = 0; // event chunks received in the current document
  let docEvents = 0;
  let startWhenLoaded = null;
  let watchdog = 0;
  let seenNodes = -1; // child nodes of the stream document's body at the last check
  let grewAt = 0; // performance.now() when they last grew

  const self = {
    owns(event) {
      try {
        return frame !== null && Object.getPrototypeOf(event) === frame.contentWindow.Object.prototype;
      } catch {
        return false; // an error page in the frame is cross-origin: not ours
      }
    },

    receive(event) {
      if (ctx.stopped || event === null || typeof event !== 'object') return;
      const receivedAt = nowMicros();
      const n = utf8Length(iframeChunk(event));
      docBytes += n;
      docEvents += 1;
      ctx.bytes(n);
      backoff.reset();
      // A copy made in this page: holding the iframe's own objects would keep each
      // replaced document alive.
      ctx.deliver(JSON.parse(JSON.stringify(event)), receivedAt);
      ctx.detail({ documentBytes: docBytes });
      ctx.state(`streaming (document ${kib(docBytes)} of 256 KiB)`, 'streaming');
    },

    start() {
      installDispatcher();
      frameClients.add(self);
      ctx.detail({ documents: 0, documentBytes: 0 });
      // Opened after the page's own `load` event: an iframe that never finishes loading
      // would otherwise hold the page's load event (and its spinner) forever.
      if (document.readyState === 'complete') {
        open();
      } else {
        ctx.state('waiting for the page to load', 'connecting');
        startWhenLoaded = () => {
          if (!ctx.stopped) open();
        };
        window.addEventListener('load', startWhenLoaded, { once: true });
      }
    },

    stop() {
      frameClients.delete(self);
      clearInterval(watchdog);
      backoff.cancel();
      if (startWhenLoaded) window.removeEventListener('load', startWhenLoaded);
      frame?.remove(); // removing the frame ends its document and closes the stream
      frame = null;
    },
  };

  // A forever frame whose connection breaks gives no sign: the browser keeps the document
  // "loading" and fires nothing (no `load`, no `error`). But a healthy stream always grows:
  // every event is a <script> and, after 15 s of silence, the server sends a `<!-- -->`
  // keep-alive, and both become nodes of the document's body. A body that has not grown for
  // STREAM_SILENCE_MS means a dead stream: reopen it from the cursor.
  function check() {
    if (ctx.stopped || !frame) return;
    let nodes = -1;
    try {
      nodes = frame.contentDocument?.body?.childNodes.length ?? -1;
    } catch {
      // An error page is cross-origin: it does not grow either.
    }
    const now = performance.now();
    if (nodes !== seenNodes) {
      seenNodes = nodes;
      grewAt = now;
    } else if (now - grewAt > STREAM_SILENCE_MS) {
      const silent = Math.round((now - grewAt) / 1000);
      frame.remove();
      frame = null;
      open(`no event and no keep-alive for ${silent} s, reopening after id ${ctx.cursor}`);
    }
  }

  function open(why = 'connecting') {
    // A fresh iframe per document instead of a new `src`: changing the src of a loaded frame
    // would add an entry to the tab's history for every reopen. `n` only makes each URL
    // distinct in the network log; the server ignores it.
    opens += 1;
    const next = document.createElement('iframe');
    next.className = 'stream-frame';
    next.hidden = true;
    next.title = 'pushpoll event stream (hidden)';
    next.tabIndex = -1;
    next.setAttribute('aria-hidden', 'true');
    next.src = ctx.url({ after: ctx.cursor, n: opens });
    next.addEventListener('load', () => ended(next), { once: true });
    frame?.remove();
    frame = next;
    docBytes = 0;
    docEvents = 0;
    seenNodes = -1;
    grewAt = performance.now();
    clearInterval(watchdog);
    watchdog = setInterval(check, STREAM_CHECK_MS);
    ctx.request();
    ctx.detail({ documents: opens, documentBytes: 0 });
    ctx.state(`${why}: loading the stream document`, 'connecting');
    container.append(next);
  }

  // `load` fires when the document is complete: the server ended it at 256 KiB, the server
  // shut down, or the request failed (then the frame shows an error page, which looks the
  // same from here). A document that delivered events was a healthy stream: reopen at once.
  // One that delivered nothing points at a problem: back off.
  function ended(which) {
    if (ctx.stopped || which !== frame) return;
    frame.remove();
    frame = null;
    if (docEvents > 0) {
      const why =
        docBytes >= MAX_DOCUMENT - 4096 ? 'document reached 256 KiB' : 'stream ended';
      open(`${why}, reopening after id ${ctx.cursor}`);
    } else {
      backoff.retry('stream ended without events', () => open('reconnecting'));
    }
  }

  return self;
}

function kib(bytes) {
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

// ---------------------------------------------------------------------------------------
// Server-Sent Events: EventSource on /sse/FEED.

// Event names the feeds use. An SSE event named `error` collides with EventSource's own
// `error` event (a connection problem); the two are told apart by `data`, which only a
// message carries.
const SSE_EVENT_TYPES = ['tick', 'message', 'whisper', 'join', 'leave', 'rename', 'gap'];
const SSE_PRELUDE_BYTES = utf8Length('retry: 2000\n\n');
const SSE_STATES = ['CONNECTING', 'OPEN', 'CLOSED'];

function sseClient(ctx) {
  const backoff = new Backoff(ctx);
  let source = null;

  function open() {
    // The first connection (and one made after EventSource gave up) carries the cursor in
    // the URL; EventSource's own reconnections send it as Last-Event-ID, which the server
    // prefers.
    const es = new EventSource(ctx.url({ after: ctx.cursor }));
    source = es;
    const readyState = () => ctx.detail({ readyState: SSE_STATES[es.readyState] ?? '?' });
    ctx.state('connecting', 'connecting');
    readyState();

    es.addEventListener('open', () => {
      ctx.request();
      // Every connection starts with `retry: 2000\n\n`; EventSource consumes it unseen.
      ctx.bytes(SSE_PRELUDE_BYTES);
      ctx.state('streaming', 'streaming');
      readyState();
    });

    const onMessage = (e) => {
      const receivedAt = nowMicros();
      // The frame exactly as it came: one `id:`, one `event:`, one `data:` line (the JSON is
      // compact, so it never spans lines), then a blank line.
      ctx.bytes(utf8Length(`id: ${e.lastEventId}\nevent: ${e.type}\ndata: ${e.data}\n\n`));
      backoff.reset();
      let event;
      try {
        event = JSON.parse(e.data);
      } catch {
        ctx.state('streaming (skipped an unreadable event)', 'streaming');
        return;
      }
      ctx.deliver(event, receivedAt);
    };
    for (const type of SSE_EVENT_TYPES) es.addEventListener(type, onMessage);

    es.addEventListener('error', (e) => {
      if (typeof e.data === 'string') {
        onMessage(e); // an `event: error` message, not a connection error
        return;
      }
      readyState();
      if (es.readyState === EventSource.CONNECTING) {
        // The stream dropped; EventSource retries by itself after `retry` (2 s). We keep
        // that rather than close and reopen with our jittered backoff: the browser's own
        // reconnection (with Last-Event-ID) is what the SSE page teaches. So SSE pages broken
        // together come back together, 2 s later (the HTML spec lets a browser wait longer,
        // "exponential backoff" is its example); spreading them would take a different
        // `retry:` per connection from the server.
        ctx.state('reconnecting (EventSource retries after 2 s)', 'backoff');
      } else {
        // CLOSED: an HTTP error status or a wrong Content-Type makes EventSource give up
        // for good. Open a new one ourselves, with backoff.
        es.close();
        if (source === es) source = null;
        backoff.retry('EventSource gave up', open);
      }
    });
  }

  return {
    start: open,
    stop() {
      backoff.cancel();
      source?.close();
      source = null;
    },
  };
}

// ---------------------------------------------------------------------------------------
// WebSocket: /ws/FEED?after=ID, reconnected by the page (WebSocket has no retry of its own).

const WS_STATES = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'];

function wsClient(ctx) {
  const backoff = new Backoff(ctx);
  let socket = null;
  let sampler = 0;
  let shown = { readyState: '', bufferedAmount: -1 };

  // readyState and bufferedAmount change without events (bufferedAmount drains as the
  // browser sends), so they are sampled four times a second and reported when they change.
  function sample() {
    const readyState = socket ? WS_STATES[socket.readyState] : 'CLOSED';
    const bufferedAmount = socket ? socket.bufferedAmount : 0;
    if (readyState !== shown.readyState || bufferedAmount !== shown.bufferedAmount) {
      shown = { readyState, bufferedAmount };
      ctx.detail(shown);
    }
  }

  function open() {
    const ws = new WebSocket(ctx.url({ after: ctx.cursor }).replace(/^http/, 'ws'));
    socket = ws;
    ctx.request(); // the handshake is one HTTP request
    ctx.state('connecting (handshake)', 'connecting');
    sample();

    ws.addEventListener('open', () => {
      ctx.state('OPEN', 'open');
      sample();
    });

    ws.addEventListener('message', (e) => {
      const receivedAt = nowMicros();
      if (typeof e.data !== 'string') {
        ctx.bytes(e.data.size ?? e.data.byteLength ?? 0); // binary frames: not used by feeds
        return;
      }
      const payload = utf8Length(e.data);
      ctx.bytes(payload);
      ctx.framingDown(wsFrameBytes(payload, false) - payload);
      backoff.reset();
      let event;
      try {
        event = JSON.parse(e.data);
      } catch {
        return;
      }
      ctx.deliver(event, receivedAt);
    });

    // A failed connection fires `error` then `close`; everything is handled on `close`.
    ws.addEventListener('close', (e) => {
      if (socket === ws) socket = null;
      const lastClose = `${e.code}${e.reason ? ` ${e.reason}` : ''}${e.wasClean ? '' : ' (not clean)'}`;
      ctx.detail({ lastClose });
      sample();
      if (ctx.stopped) return;
      backoff.retry(`closed with ${e.code}`, open);
    });
  }

  return {
    start() {
      sampler = setInterval(sample, 250);
      open();
    },
    stop() {
      clearInterval(sampler);
      backoff.cancel();
      const ws = socket;
      socket = null;
      if (!ws) return;
      if (ws.readyState === WebSocket.CONNECTING) {
        // Closing before the handshake completes makes Chrome log an error; close it as
        // soon as it opens instead.
        ws.addEventListener('open', () => ws.close(1000, 'page closed'));
      } else {
        ws.close(1000, 'page closed');
      }
    },
    send(text) {
      if (ctx.stopped || socket?.readyState !== WebSocket.OPEN) return false;
      const data = String(text);
      socket.send(data);
      ctx.bytesUp(wsFrameBytes(utf8Length(data), true));
      sample();
      return true;
    },
  };
}

const FACTORIES = {
  poll: pollClient,
  longpoll: longpollClient,
  iframe: iframeClient,
  sse: sseClient,
  ws: wsClient,
};
