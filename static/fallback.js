// Automatic fallback, as socket.io, SockJS and SignalR negotiate a transport: try the best
// one first, give each a deadline, and step down on failure.
//
//   const { transport, steps } = await negotiate('clock', { blocked, timeoutMs, onStep });
//
// Each step is { transport, ok, why, ms }. A probe opens the transport for real (the
// WebSocket upgrade, the EventSource's first response, one long poll, one short poll) and
// closes it again; the caller then connects with clients.js's connect(transport, …).

export const ORDER = Object.freeze(['ws', 'sse', 'longpoll', 'poll']);

/** A cursor beyond any event: the long-poll probe is answered within its 1 s timeout. */
const QUIET = '9000000000000000';

function wsUrl(path) {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}${path}`;
}

/** Resolves with null when `transport` works within `timeoutMs`, else with the reason. */
const PROBES = {
  ws(feed, timeoutMs) {
    return new Promise((resolve) => {
      const socket = new WebSocket(wsUrl(`/ws/${feed}?after=${QUIET}`));
      const timer = setTimeout(() => finish(`no upgrade within ${timeoutMs} ms`), timeoutMs);
      function finish(why) {
        clearTimeout(timer);
        socket.onopen = socket.onclose = socket.onerror = null;
        socket.close();
        resolve(why);
      }
      socket.onopen = () => finish(null);
      // A refused upgrade (403, 503, a proxy that drops Upgrade) closes before opening;
      // the browser hides the status, 1006 is all the page is told.
      socket.onclose = (e) => finish(`upgrade failed (close ${e.code} before open)`);
    });
  },
  sse(feed, timeoutMs) {
    return new Promise((resolve) => {
      const source = new EventSource(`/sse/${feed}?after=${QUIET}`);
      const timer = setTimeout(() => finish(`no event stream within ${timeoutMs} ms`), timeoutMs);
      function finish(why) {
        clearTimeout(timer);
        source.close();
        resolve(why);
      }
      source.onopen = () => finish(null);
      // Before `open`, an error means the response was not a 200 text/event-stream.
      source.onerror = () => finish('the event stream was refused (not a 200 text/event-stream)');
    });
  },
  longpoll(feed, timeoutMs) {
    return fetchProbe(`/longpoll/${feed}?after=${QUIET}&timeout=1`, Math.max(timeoutMs, 2500));
  },
  poll(feed, timeoutMs) {
    return fetchProbe(`/poll/${feed}?after=${QUIET}`, timeoutMs);
  },
};

async function fetchProbe(url, timeoutMs) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    const response = await fetch(url, { signal: abort.signal, cache: 'no-store' });
    await response.arrayBuffer();
    return response.ok ? null : `HTTP ${response.status}`;
  } catch (err) {
    return abort.signal.aborted ? `no answer within ${timeoutMs} ms` : `request failed (${err.message})`;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Tries the transports in `order` until one works. `blocked` transports are skipped as
 * if refused (a page control, to watch the fallback without restarting the server).
 */
export async function negotiate(feed, { order = ORDER, blocked = new Set(), timeoutMs = 3000, onStep = () => {} } = {}) {
  const steps = [];
  for (const transport of order) {
    const started = performance.now();
    const why = blocked.has(transport) ? 'blocked on this page' : await PROBES[transport](feed, timeoutMs);
    const step = { transport, ok: why === null, why: why ?? 'works', ms: Math.round(performance.now() - started) };
    steps.push(step);
    onStep(step);
    if (step.ok) return { transport, steps };
  }
  return { transport: null, steps };
}
