// The shared canvas (the draw feed): every page draws, every page sees every stroke, over the
// transport chosen in the panel. What it shows is what *sending* costs: each send's upstream
// bytes, and per stroke.
//
// Sending. A stroke is at most 64 points; while the pointer moves, the line so far is sent
// every SEND_EVERY_MS as one stroke (the next one starts at its last point), so a long line
// is several strokes and the others see it grow. WebSocket: one frame on the draw socket,
// `{"type":"draw","strokes":[…]}`. The HTTP transports: `POST /api/draw {"strokes":[…]}`,
// one request in flight at a time, strokes drawn meanwhile wait and go in the next batch.
//
// Upstream bytes, by definition (not TCP/IP, not TLS: this is plain HTTP on one machine):
// - WebSocket: the client frame as RFC 6455 §5.2 lays it out: 2 header bytes, 2 more for a
//   payload of 126–65535 bytes (8 for more), the 4-byte mask every client frame carries,
//   then the payload (the UTF-8 JSON). The server accepts no extension (no
//   permessage-deflate), so the payload goes as it is; tests/browser/draw.rs checks that
//   Chromium's socket reports no extension.
// - HTTP: the request head (request line, every header the browser sent, including those a
//   script cannot see: Cookie, User-Agent, Sec-Fetch-*…) and the body, as the server received
//   them: its answer says `{"request":{"head":H,"body":B}}`. The answer itself is not counted.
//
// Received strokes are drawn with canvas calls only, after checking every field the way the
// server does; anything else is counted as refused and not drawn.

import { LIMITS, TWO_WAY } from '/static/facts.js';
import { el, fetchJson, plural, transportName, utf8Length } from '/static/util.js';
import { connect, TRANSPORTS, wsFrameBytes } from '/static/clients/index.js';

// The server's rules for a stroke (src/feed/draw.rs, through facts.js).
const COORD_MAX = LIMITS.drawMaxCoord;
const MAX_POINTS = LIMITS.drawMaxPoints;
const MAX_STROKES = LIMITS.drawMaxStrokes;
const WIDTH = LIMITS.drawWidth;
const SEND_EVERY_MS = 100;
/** Strokes waiting to be sent beyond this are dropped (and counted): a page never hoards. */
const MAX_WAITING = 4 * MAX_STROKES;

/** A stroke as the server would accept it, or null. */
export function validStroke(s) {
  if (s === null || typeof s !== 'object') return null;
  const { color, width, points } = s;
  if (typeof color !== 'string' || !/^#[0-9a-fA-F]{6}$/.test(color)) return null;
  if (!Number.isInteger(width) || width < WIDTH.min || width > WIDTH.max) return null;
  if (!Array.isArray(points) || points.length < 2 || points.length % 2 !== 0) return null;
  if (points.length / 2 > MAX_POINTS) return null;
  if (!points.every((v) => Number.isInteger(v) && v >= 0 && v <= COORD_MAX)) return null;
  return { color, width, points };
}

function paint(ctx, stroke) {
  const scale = ctx.canvas.width / COORD_MAX;
  const p = stroke.points;
  ctx.strokeStyle = stroke.color;
  ctx.fillStyle = stroke.color;
  ctx.lineWidth = stroke.width * scale;
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';
  if (p.length === 2) {
    // A zero-length line draws nothing (the canvas prunes it): a dot is a filled circle.
    ctx.beginPath();
    ctx.arc(p[0] * scale, p[1] * scale, (stroke.width * scale) / 2, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(p[0] * scale, p[1] * scale);
  for (let i = 2; i < p.length; i += 2) ctx.lineTo(p[i] * scale, p[i + 1] * scale);
  ctx.stroke();
}

function setText(root, name, value) {
  const el = root.querySelector(`[data-draw="${name}"]`);
  if (el) el.textContent = String(value);
}

/**
 * Starts a canvas in `root` (the `#draw` section, or a compare lane): it receives the draw
 * feed over `transport` and sends what is drawn on it over the same transport. Options:
 * `color` and `width`, the inputs that set the pen (default: `#draw-color` and `#draw-width`
 * in `root`); `connectOptions`, passed to connect() (origin, params, interval, container);
 * `tap`, client handlers (index.js) called after the canvas's own, so a page can count what
 * the canvas's subscription costs.
 */
export function createDraw(root, { transport, color, width, connectOptions = {}, tap = {} }) {
  const canvas = root.querySelector('canvas');
  const ctx = canvas.getContext('2d');
  const colorInput = color ?? root.querySelector('#draw-color');
  const widthInput = width ?? root.querySelector('#draw-width');
  widthInput.min = String(WIDTH.min);
  widthInput.max = String(WIDTH.max);
  const select = root.querySelector('#draw-transport');
  // One option per transport the server has (facts.js), named as the pages name them.
  for (const t of select ? TRANSPORTS : []) {
    const option = el('option', null, transportName(t));
    option.value = t;
    select.append(option);
  }
  const options = { ...connectOptions };
  const figures = {
    sends: 0,
    strokesSent: 0,
    bytesUp: 0,
    strokesReceived: 0,
    bytesDown: 0,
    refused: 0,
    dropped: 0,
  };
  let client = null;
  let cursor = 0; // the page asks for every stroke the server keeps: after=0
  let current = null; // points of the line being drawn, not yet sent
  let waiting = []; // strokes ready to send
  let inFlight = false;
  let timer = 0;

  function show() {
    setText(root, 'sends', figures.sends);
    setText(root, 'strokes-sent', figures.strokesSent);
    setText(root, 'bytes-up', figures.bytesUp);
    setText(
      root,
      'per-stroke',
      figures.strokesSent ? (figures.bytesUp / figures.strokesSent).toFixed(1) : '–',
    );
    setText(root, 'received', figures.strokesReceived);
    setText(root, 'bytes-down', figures.bytesDown);
    setText(root, 'refused', figures.refused);
    setText(root, 'dropped', figures.dropped);
  }

  function status(text) {
    setText(root, 'status', text);
  }

  function recordSend(strokes, bytes, detail) {
    figures.sends += 1;
    figures.strokesSent += strokes;
    figures.bytesUp += bytes;
    setText(root, 'last', `${bytes} B for ${plural(strokes, 'stroke')} (${detail})`);
    show();
  }

  const handlers = {
    onEvent(event) {
      if (event.type === 'gap') {
        status(`Strokes before id ${event.resumed_from} are no longer kept (the server keeps the last ${LIMITS.drawKept.toLocaleString('en')}).`);
        return;
      }
      if (event.type !== 'stroke') return;
      const stroke = validStroke(event);
      if (!stroke) {
        figures.refused += 1;
      } else {
        figures.strokesReceived += 1;
        paint(ctx, stroke);
      }
      show();
    },
    onNotice(event) {
      status(`Server: ${event.code ?? 'error'}: ${event.message ?? ''}`);
    },
    onBytes(n) {
      figures.bytesDown += n;
      show();
    },
    onState(text) {
      setText(root, 'state', text);
    },
    onDetail(detail) {
      if (detail.readyState) setText(root, 'state', detail.readyState);
    },
  };

  // The page's own handlers, if any, after the canvas's.
  const tapped = Object.fromEntries(
    [...new Set([...Object.keys(handlers), ...Object.keys(tap)])].map((name) => [
      name,
      (...args) => {
        handlers[name]?.(...args);
        tap[name]?.(...args);
      },
    ]),
  );

  function start(name) {
    client?.stop();
    transport = name;
    root.dataset.transport = name;
    client = connect(name, 'draw', tapped, { ...options, after: cursor });
    setText(root, 'transport', name);
    for (const el of root.querySelectorAll('[data-draw-for]')) {
      el.hidden = (el.dataset.drawFor === 'own-connection') !== TWO_WAY.includes(name);
    }
  }

  function switchTo(name) {
    cursor = client?.cursor ?? cursor;
    start(name);
  }

  /** Closes the subscription, keeping its cursor; strokes drawn meanwhile wait. */
  function pause() {
    cursor = client?.cursor ?? cursor;
    client?.stop();
    client = null;
  }

  async function post(batch) {
    inFlight = true;
    try {
      // The browser's default cache mode: another one would add request headers, which
      // would count in the bytes up.
      const answer = await fetchJson('/api/draw', {
        method: 'POST',
        body: { strokes: batch },
        cache: 'default',
      });
      const request = answer.data?.request;
      if (answer.ok && Number.isInteger(request?.head) && Number.isInteger(request?.body)) {
        const { head, body: bodyBytes } = request;
        recordSend(batch.length, head + bodyBytes, `request head ${head} B + body ${bodyBytes} B, as the server received them`);
        // On the subscription's row of a timeline, as sent apart from its connection.
        tap.onTimeline?.({ kind: 'up', at: performance.now(), bytes: head + bodyBytes, via: 'POST /api/draw' });
      } else {
        const error = answer.data?.error;
        const code = error?.code ?? `HTTP ${answer.status}`;
        status(`Not shared: ${code}${error?.message ? `: ${error.message}` : ''}`);
      }
    } catch (err) {
      status(`Not shared: ${err.message}`);
    } finally {
      inFlight = false;
    }
  }

  function flush() {
    if (current && current.length >= 4) {
      const s = { color: colorInput.value, width: Number(widthInput.value), points: current };
      current = current.slice(-2);
      if (validStroke(s)) waiting.push(s);
    }
    if (waiting.length > MAX_WAITING) {
      figures.dropped += waiting.length - MAX_WAITING;
      waiting = waiting.slice(-MAX_WAITING);
      show();
    }
    if (!waiting.length || inFlight) return;
    const batch = waiting.slice(0, MAX_STROKES);
    if (TWO_WAY.includes(transport)) {
      const text = JSON.stringify({ type: 'draw', strokes: batch });
      if (!client?.send(text)) return; // not open (or paused): keep them for the next tick
      waiting = waiting.slice(batch.length);
      const payload = utf8Length(text);
      if (transport === 'ws') {
        // One masked client frame (RFC 6455 §5.2).
        const frame = wsFrameBytes(payload, true);
        recordSend(batch.length, frame, `frame: ${frame - payload} B header and mask + ${payload} B payload`);
      } else {
        // One line on the session's bidirectional stream: the payload and its newline.
        recordSend(batch.length, payload + 1, `line: ${payload} B and its newline on the stream`);
      }
    } else {
      waiting = waiting.slice(batch.length);
      post(batch);
    }
  }

  function point(e) {
    const r = canvas.getBoundingClientRect();
    const clamp = (v) => Math.min(COORD_MAX, Math.max(0, Math.round(v)));
    return [clamp(((e.clientX - r.left) / r.width) * COORD_MAX), clamp(((e.clientY - r.top) / r.height) * COORD_MAX)];
  }

  canvas.addEventListener('pointerdown', (e) => {
    try {
      canvas.setPointerCapture(e.pointerId); // keep the line when the pointer leaves the canvas
    } catch {
      // not an active pointer (a synthetic event): nothing to capture
    }
    current = point(e);
  });
  canvas.addEventListener('pointermove', (e) => {
    if (!current) return;
    const [x, y] = point(e);
    const n = current.length;
    if (current[n - 2] === x && current[n - 1] === y) return;
    // Local ink at once; the same stroke comes back from the server and is drawn again.
    paint(ctx, { color: colorInput.value, width: Number(widthInput.value), points: [current[n - 2], current[n - 1], x, y] });
    current.push(x, y);
    if (current.length / 2 >= MAX_POINTS) flush();
  });
  const end = (e) => {
    if (!current) return;
    if (current.length === 2) {
      // A click: a dot.
      const s = { color: colorInput.value, width: Number(widthInput.value), points: current };
      if (validStroke(s)) {
        paint(ctx, s);
        waiting.push(s);
      }
      current = null;
    } else {
      flush();
      current = null;
    }
    try {
      canvas.releasePointerCapture(e.pointerId);
    } catch {
      // not captured
    }
  };
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);

  select?.addEventListener('change', () => {
    if (TRANSPORTS.includes(select.value)) switchTo(select.value);
  });
  root.querySelector('#draw-clear')?.addEventListener('click', () => {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
  });

  if (select) select.value = transport;
  start(transport);
  timer = setInterval(flush, SEND_EVERY_MS);
  show();

  return {
    stop() {
      clearInterval(timer);
      pause();
    },
    pause,
    /** Subscribes again from the cursor. */
    resume() {
      if (!client) start(transport);
    },
    setInterval(ms) {
      options.interval = ms;
      client?.setInterval(ms);
    },
    /** The id of the last stroke delivered (the resume point). */
    get cursor() {
      return client?.cursor ?? cursor;
    },
    get figures() {
      return { ...figures };
    },
  };
}

// The page's transport (`<body data-transport>`), WebSocket where the page has none (the
// compare page).
const root = document.getElementById('draw');
if (root) {
  const own = document.body.dataset.transport;
  const draw = createDraw(root, { transport: TRANSPORTS.includes(own) ? own : 'ws' });
  // For the browser tests: the figures as numbers.
  root.drawFigures = () => draw.figures;
}
