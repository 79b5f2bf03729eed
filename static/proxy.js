// The proxy lab: the clock over every transport at once, and a long poll of a quiet feed,
// measured as they arrive through whatever proxy is in front of the page: how many ticks, how
// late (receipt plus the clock offset minus the tick's own timestamp, clock-offset.js), the
// longest gap between arrivals, the largest burst, the last error, and a verdict. The page's explanation names the fix in
// deploy/nginx.conf for each failure. All on the page's own origin: five held connections
// (long poll, quiet long poll, iframe, fetch stream, SSE) fit in the six a browser allows per
// origin.

import { TRANSPORT } from '/static/facts.js';
import { $, formatMs } from '/static/util.js';
import { connect, nowMicros, TRANSPORTS } from '/static/clients/index.js';
import { latencyMs, showClockOffset, withClockOffset } from '/static/clock-offset.js';

/** A tick later than this (its latency, see clock-offset.js) was held on the way. */
const LATE_MS = 1500;
/** No tick for this long (the clock ticks every second) means the transport is stalled. */
const STALLED_MS = 3000;
/** Ticks that arrive within this long of each other are one burst. */
const BURST_MS = 100;
/** The quiet feed's hold: the server's default, longer than the naive proxy's 10 s. */
const QUIET_HOLD_S = 25;
const RENDER_MS = 250;

const started = performance.now();
showClockOffset($('clock-offset'), $('clock-offset-uncertainty'));

/** What one transport has shown so far. */
function lane() {
  return {
    events: 0,
    lastAt: null, // performance.now() of the last tick
    lastLateMs: null,
    worstLateMs: 0,
    gapMs: 0,
    burst: 0,
    largestBurst: 0,
    clock: '–',
    state: 'connecting',
    phase: 'connecting',
    lastError: '',
  };
}

const lanes = Object.fromEntries(TRANSPORTS.map((t) => [t, lane()]));
const quiet = { status: null, heldMs: null, state: 'waiting', since: performance.now(), tries: 0 };

function onTick(l, event, receivedAtMicros) {
  const now = performance.now();
  if (l.lastAt !== null) {
    const gap = now - l.lastAt;
    l.gapMs = Math.max(l.gapMs, gap);
    l.burst = gap < BURST_MS ? l.burst + 1 : 1;
  } else {
    // The first tick's gap counts from when the page started asking.
    l.gapMs = now - started;
    l.burst = 1;
  }
  l.largestBurst = Math.max(l.largestBurst, l.burst);
  l.lastAt = now;
  l.events += 1;
  // Late on the server's clock (clock-offset.js), so it holds from another machine too.
  withClockOffset((estimate) => {
    const lateMs = Math.max(0, latencyMs(receivedAtMicros, event.ts, estimate));
    l.lastLateMs = lateMs;
    l.worstLateMs = Math.max(l.worstLateMs, lateMs);
  });
  if (typeof event.time === 'string') l.clock = event.time.slice(11, 19);
}

// WebTransport is QUIC on UDP, straight to the server's own port: no HTTP reverse proxy
// carries it (deploy/nginx.conf says what a deployment does instead), so the lab does not
// open it here, where it would bypass the proxy and look as if it had passed through.
const BYPASSES = new Set([TRANSPORT.webtransport]);

for (const transport of TRANSPORTS) {
  const l = lanes[transport];
  if (BYPASSES.has(transport)) {
    l.state = 'not opened: UDP to the server itself, never through this proxy';
    continue;
  }
  connect(
    transport,
    'clock',
    {
      onEvent(event, receivedAt) {
        if (event.type === 'tick') onTick(l, event, receivedAt ?? nowMicros());
      },
      onState(text, phase) {
        l.state = text;
        l.phase = phase;
        if (phase === 'backoff' || phase === 'error') l.lastError = text;
      },
      onDetail(detail) {
        if (typeof detail.lastClose === 'string') l.lastError = `closed ${detail.lastClose}`;
      },
    },
    { container: $('lab-frames') },
  );
}

/**
 * A long poll of a chat room nobody writes to: the server holds it QUIET_HOLD_S seconds and
 * answers with no events, unless a proxy gives up first. Asked again and again; the cursor
 * comes from each answer (the latest chat id at first).
 */
async function quietLoop() {
  let after = 0;
  for (;;) {
    const asked = performance.now();
    quiet.tries += 1;
    quiet.state = `held (try ${quiet.tries})`;
    quiet.since = asked;
    try {
      const response = await fetch(`/longpoll/chat?rooms=proxy-lab-quiet&after=${after}&timeout=${QUIET_HOLD_S}`, {
        cache: 'no-store',
      });
      quiet.status = response.status;
      quiet.heldMs = performance.now() - asked;
      const text = await response.text();
      if (response.ok) {
        const next = JSON.parse(text)?.next;
        if (Number.isSafeInteger(next)) after = next;
        quiet.state = `answered 200 after ${formatMs(quiet.heldMs)}`;
      } else {
        quiet.state = `HTTP ${response.status} after ${formatMs(quiet.heldMs)}`;
        await new Promise((r) => setTimeout(r, 1000));
      }
    } catch (err) {
      quiet.status = 0;
      quiet.state = `request failed (${err.message})`;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

function verdict(l, now, transport) {
  if (BYPASSES.has(transport)) return ['bypass', 'does not pass: no HTTP proxy carries UDP'];
  if (l.events === 0) {
    if (l.lastError) return ['fails', 'fails: no event, the connection failed'];
    if (now - started > STALLED_MS) return ['stalled', 'stalled: nothing yet'];
    return ['', '…'];
  }
  if (now - l.lastAt > STALLED_MS) return ['stalled', `stalled: nothing for ${Math.round((now - l.lastAt) / 1000)} s`];
  if (l.worstLateMs > LATE_MS) return ['bursts', 'in bursts, late'];
  return ['ok', 'on time'];
}

function set(row, field, text, verdictId) {
  const cell = row.querySelector(`[data-f="${field}"]`);
  if (cell.textContent !== text) cell.textContent = text;
  if (verdictId !== undefined) cell.dataset.verdict = verdictId;
}

function render() {
  const now = performance.now();
  $('lab-elapsed').textContent = String(Math.round((now - started) / 1000));
  for (const transport of TRANSPORTS) {
    const l = lanes[transport];
    const row = document.querySelector(`tr[data-lab="${transport}"]`);
    set(row, 'clock', l.clock);
    set(row, 'events', String(l.events));
    set(row, 'late', l.lastLateMs === null ? '–' : formatMs(l.lastLateMs));
    set(row, 'worst', l.events ? formatMs(l.worstLateMs) : '–');
    set(row, 'gap', l.events ? formatMs(Math.max(l.gapMs, now - l.lastAt)) : formatMs(now - started));
    set(row, 'burst', l.events ? `${l.largestBurst} tick${l.largestBurst === 1 ? '' : 's'}` : '–');
    set(row, 'state', l.lastError && l.lastError !== l.state ? `${l.state} · last error: ${l.lastError}` : l.state);
    const [id, text] = verdict(l, now, transport);
    set(row, 'verdict', text, id);
  }
  const row = document.querySelector('tr[data-lab="quiet"]');
  const holding = formatMs(now - quiet.since);
  set(row, 'state', quiet.state.startsWith('held') ? `${quiet.state}: ${holding}` : quiet.state);
  if (quiet.status === 504) set(row, 'verdict', `cut: 504 after ${formatMs(quiet.heldMs)}`, 'cut');
  else if (quiet.status === 200) set(row, 'verdict', `held ${formatMs(quiet.heldMs)}, answered`, 'ok');
  else if (quiet.status !== null) set(row, 'verdict', `fails: ${quiet.state}`, 'fails');
}

/** Which proxy answered: the X-Proxy-Config header the configs in deploy/ add. */
async function whichProxy() {
  const el = $('lab-proxy');
  try {
    const response = await fetch('/healthz', { cache: 'no-store' });
    await response.arrayBuffer();
    const config = response.headers.get('x-proxy-config');
    const server = response.headers.get('server');
    el.dataset.proxy = config ?? 'none';
    el.textContent =
      config === 'naive'
        ? 'the naive proxy (deploy/nginx-naive.conf)'
        : config === 'good'
          ? 'the good proxy (deploy/nginx.conf)'
          : `no proxy that says which (no X-Proxy-Config header${server ? `; Server: ${server}` : ''})`;
  } catch (err) {
    el.dataset.proxy = 'unknown';
    el.textContent = `unknown (${err.message})`;
  }
}

whichProxy();
void quietLoop();
render();
setInterval(render, RENDER_MS);
