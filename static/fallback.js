// Automatic fallback, in the spirit of SockJS and SignalR (which try the best transport first
// and step down) — Socket.IO does the reverse: it starts on long polling and upgrades. Try the
// best one first, give each a deadline, and step down on failure.
//
//   const { transport, steps } = await negotiate('clock', { blocked, timeoutMs, onStep });
//
// Each step is { transport, ok, why, ms }. A step counts as working only when a real clock
// tick has come through it, not when its handshake succeeded: a proxy that buffers responses
// passes the WebSocket upgrade or the EventSource's `200 text/event-stream` and then delivers
// nothing, and a probe that stopped at `open` would choose a transport on which no event ever
// arrives. The probe closes its connection again; the caller then connects with
// clients/index.js's connect(transport, …).

import { parseJson, TRANSPORTS, wsUrl } from '/static/util.js';
import { endpoint, hasWebTransport, transportOptions } from '/static/clients/webtransport.js';

// The pushing transports first, polling last: the server's list (poll … webtransport)
// backwards. WebTransport goes first: two-way, no head-of-line blocking across streams; but UDP
// is blocked on many networks and some engines lack it, so its probe answers at once where
// there is no WebTransport and otherwise within the same deadline as every probe: a network
// that drops UDP costs the page that deadline, never a hang. The WebSocket comes next, the
// two-way transport on TCP. The iframe is left out: it cannot tell a buffering proxy from a quiet feed before the deadline.
// fetch streaming comes after SSE and before long polling: it is the same kind of response
// (one body that grows), so a proxy that holds SSE back usually holds it back too, and SSE
// goes first because the browser resumes it by itself; but fetch still passes where only
// `text/event-stream` is singled out (a filter keyed on the type, a browser without
// EventSource), and it is still one response per connection rather than one per event.
export const ORDER = Object.freeze(TRANSPORTS.filter((t) => t !== 'iframe').reverse());

/**
 * The probe's cursor. The clock is a state feed: a cursor older than its latest tick gets
 * that tick at once (docs/API.md), so every transport has a real event to deliver straight
 * away and the deadline measures the path, not the wait for the next tick.
 */
const OLD = '0';

/** A clock tick as the API delivers it (not an error notice, not a handshake). */
function isTick(event) {
  return event !== null && typeof event === 'object' && event.type === 'tick' && Number.isSafeInteger(event.id);
}

/**
 * Resolves with null when `transport` delivers a tick within `timeoutMs`, else with the reason.
 * The probes always use the clock feed: it ticks every second and needs no sign-in.
 */
const PROBES = {
  webtransport(timeoutMs) {
    return webtransportProbe(timeoutMs);
  },
  ws(timeoutMs) {
    return new Promise((resolve) => {
      const socket = new WebSocket(wsUrl(`/ws/clock?after=${OLD}`));
      let opened = false;
      const timer = setTimeout(
        () => finish(opened ? `upgraded, but no event within ${timeoutMs} ms` : `no upgrade within ${timeoutMs} ms`),
        timeoutMs,
      );
      function finish(why) {
        clearTimeout(timer);
        socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
        socket.close();
        resolve(why);
      }
      socket.onopen = () => {
        opened = true;
      };
      socket.onmessage = (e) => {
        if (isTick(parseJson(e.data))) finish(null);
      };
      // A refused upgrade (403, 503, a proxy that drops Upgrade) closes before opening;
      // the browser hides the status, 1006 is all the page is told.
      socket.onclose = (e) =>
        finish(opened ? `closed (${e.code}) before any event` : `upgrade failed (close ${e.code} before open)`);
    });
  },
  sse(timeoutMs) {
    return new Promise((resolve) => {
      const source = new EventSource(`/sse/clock?after=${OLD}`);
      let opened = false;
      const timer = setTimeout(
        () =>
          finish(opened ? `stream opened, but no event within ${timeoutMs} ms (a buffering proxy?)` : `no event stream within ${timeoutMs} ms`),
        timeoutMs,
      );
      function finish(why) {
        clearTimeout(timer);
        source.close();
        resolve(why);
      }
      source.onopen = () => {
        opened = true;
      };
      source.addEventListener('tick', (e) => {
        if (isTick(parseJson(e.data))) finish(null);
      });
      // Before `open`, an error means the response was not a 200 text/event-stream; after
      // it, the stream broke before an event came through.
      source.onerror = () =>
        finish(opened ? 'the event stream broke before any event' : 'the event stream was refused (not a 200 text/event-stream)');
    });
  },
  fetch(timeoutMs) {
    return streamProbe(`/fetch/clock?after=${OLD}`, timeoutMs);
  },
  longpoll(timeoutMs) {
    return fetchProbe(`/longpoll/clock?after=${OLD}&timeout=1`, Math.max(timeoutMs, 2500));
  },
  poll(timeoutMs) {
    return fetchProbe(`/poll/clock?after=${OLD}`, timeoutMs);
  },
};

/** fetch streaming's probe: read NDJSON lines until a tick, within `timeoutMs`. */
async function streamProbe(url, timeoutMs) {
  const abort = new AbortController();
  let opened = false;
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    const response = await fetch(url, { signal: abort.signal, cache: 'no-store' });
    if (!response.ok) {
      await response.body?.cancel();
      return `HTTP ${response.status}`;
    }
    opened = true;
    // Read lines until a tick: a buffering proxy lets the head through and holds the body.
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let pending = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return 'the stream ended before any event';
      pending += decoder.decode(value, { stream: true });
      const lines = pending.split('\n');
      pending = lines.pop();
      if (lines.some((line) => isTick(parseJson(line)))) return null;
    }
  } catch (err) {
    if (abort.signal.aborted) {
      return opened ? `stream opened, but no event within ${timeoutMs} ms (a buffering proxy?)` : `no response handed over within ${timeoutMs} ms`;
    }
    return `request failed (${err.message})`;
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}

/** WebTransport's probe: a session on the clock, read until a tick, within `timeoutMs`. */
async function webtransportProbe(timeoutMs) {
  if (!hasWebTransport()) return 'this browser has no WebTransport';
  let wt = null;
  let ready = false;
  let timer = 0;
  const late = new Promise((resolve) => {
    timer = setTimeout(
      () =>
        resolve(
          ready
            ? `session open, but no event within ${timeoutMs} ms`
            : `no QUIC answer within ${timeoutMs} ms (UDP blocked on this network?)`,
        ),
      timeoutMs,
    );
  });
  const attempt = (async () => {
    try {
      const { base, hashes } = await endpoint();
      wt = new WebTransport(`${base}/webtransport/clock?after=${OLD}`, transportOptions(hashes));
      wt.closed.catch(() => {});
      await wt.ready;
      ready = true;
      const streams = wt.incomingUnidirectionalStreams.getReader();
      const { value: stream, done } = await streams.read();
      if (done) return 'the session ended before its event stream';
      const reader = stream.getReader();
      const decoder = new TextDecoder();
      let pending = '';
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done) return 'the stream ended before any event';
        pending += decoder.decode(chunk.value, { stream: true });
        const lines = pending.split('\n');
        pending = lines.pop();
        const values = lines.map(parseJson);
        if (values.some(isTick)) return null;
        const refused = values.find((v) => v?.type === 'error');
        if (refused) return `refused: ${refused.code}`;
      }
    } catch (err) {
      return ready ? `the session broke (${err.message})` : `the session failed (${err.message})`;
    }
  })();
  const why = await Promise.race([attempt, late]);
  clearTimeout(timer);
  try {
    wt?.close();
  } catch {
    // already closed
  }
  return why;
}

async function fetchProbe(url, timeoutMs) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    const response = await fetch(url, { signal: abort.signal, cache: 'no-store' });
    if (!response.ok) {
      await response.arrayBuffer();
      return `HTTP ${response.status}`;
    }
    const body = parseJson(await response.text());
    return Array.isArray(body?.events) && body.events.some(isTick) ? null : 'answered, but with no event';
  } catch (err) {
    return abort.signal.aborted ? `no event within ${timeoutMs} ms` : `request failed (${err.message})`;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Tries the transports in `order` until one delivers a tick. `blocked` transports are skipped
 * as if refused (a page control, to watch the fallback without restarting the server). The
 * probes run on the clock whatever `feed` the caller will use (`feed` is accepted for callers and not needed by the probes).
 */
export async function negotiate(feed, { order = ORDER, blocked = new Set(), timeoutMs = 3000, onStep = () => {} } = {}) {
  const steps = [];
  for (const transport of order) {
    const started = performance.now();
    const why = blocked.has(transport) ? 'blocked on this page' : await PROBES[transport](timeoutMs);
    const step = { transport, ok: why === null, why: why ?? 'works', ms: Math.round(performance.now() - started) };
    steps.push(step);
    onStep(step);
    if (step.ok) return { transport, steps };
  }
  return { transport: null, steps };
}
