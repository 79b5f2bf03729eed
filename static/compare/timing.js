// How long requests wait for a connection, from Resource Timing: per request, when the page
// asked (startTime) and when the request actually went out (requestStart); the difference is
// the time it queued for a free connection (plus connecting, well under a millisecond on
// loopback). The server sends Timing-Allow-Origin, so cross-origin requests report it too.
// Kept per origin (the six-connections table), per protocol and per transport (the protocols
// table), with the protocol each transport's finished requests used.

import { TRANSPORTS } from '/static/util.js';
import { longest } from '/static/compare/window.js';

// Marked from 250 ms: a request queued behind this page's held connections waits for the
// next long-poll answer (about a second), while a busy machine's scheduling alone was seen
// adding up to 130 ms (Firefox, 2 loaded cores).
export const QUEUED_MS = 250;

/** The transport a request URL belongs to (`/sse/…` → sse), if any. */
function transportOfUrl(url) {
  const first = new URL(url).pathname.split('/')[1];
  return TRANSPORTS.includes(first) ? first : null;
}

/** The protocol the page itself came over. */
export function pageProtocol() {
  return performance.getEntriesByType('navigation')[0]?.nextHopProtocol || null;
}

/** The waits of the requests this page makes, from start() on. */
export function createTiming() {
  const byOrigin = new Map(); // origin → [time, ms]
  const byProtocol = new Map(); // nextHopProtocol → [time, ms]
  const byTransport = new Map(); // transport → { protocol, waits: [time, ms] }
  for (const t of TRANSPORTS) byTransport.set(t, { protocol: null, waits: [] });

  const append = (map, key, entry) => {
    if (!map.has(key)) map.set(key, []);
    map.get(key).push(entry);
  };

  function note(entry) {
    const transport = transportOfUrl(entry.name);
    // An empty nextHopProtocol (a cross-origin entry without Timing-Allow-Origin, or an
    // engine that does not fill it) is no answer.
    if (transport && entry.nextHopProtocol) byTransport.get(transport).protocol = entry.nextHopProtocol;
    if (!(entry.requestStart > 0)) return;
    const wait = [performance.now(), entry.requestStart - entry.startTime];
    append(byOrigin, new URL(entry.name).origin, wait);
    if (entry.nextHopProtocol) append(byProtocol, entry.nextHopProtocol, wait);
    if (transport) byTransport.get(transport).waits.push(wait);
  }

  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) note(entry);
  });

  return {
    start() {
      observer.observe({ type: 'resource' });
      // Entries also go to a 250-entry buffer nobody reads here; keep it from filling.
      setInterval(() => performance.clearResourceTimings(), 30_000);
    },
    /** The longest wait for a connection to `origin` in the window, or null. */
    longestWait(origin, now) {
      return longest(byOrigin.get(origin) ?? [], now);
    },
    /** What `transport`'s finished requests showed: { protocol, waits }. */
    transport(t) {
      return byTransport.get(t);
    },
    /** The waits by protocol: [protocol, [time, ms] list] pairs. */
    protocols() {
      return [...byProtocol.entries()];
    },
  };
}
