// "Which protocol each transport used": what the page sees (Resource Timing's
// nextHopProtocol, compare/timing.js; for the iframe, its documents' own navigation) and what
// the server saw (the request line of the lane's newest tagged request in its wire record),
// with each transport's longest wait for a connection and the waits by protocol.

import { $, fetchJson, formatMs, plural, transportTitle, TRANSPORTS } from '/static/util.js';
import { H2_MAX_STREAMS, TWO_WAY } from '/static/facts.js';
import { longest } from '/static/compare/window.js';
import { pageProtocol, QUEUED_MS } from '/static/compare/timing.js';

// How often the panel reads the server's record of each lane's newest request.
const PROTOCOL_READ_MS = 5000;

/** The protocols table of `lanes`, from `timing`: start() reads the server's record, render(now)
 * fills #protocol-rows and #protocol-waits. */
export function createProtocols(lanes, timing) {
  const serverSaw = new Map(); // transport → version
  const iframeLane = lanes.find((l) => l.transport === 'iframe');

  /** The iframe lane's documents report their own navigation: the newest frame that has one. */
  function iframeProtocol() {
    const frames = [...iframeLane.root.querySelectorAll('iframe')].reverse();
    for (const frame of frames) {
      try {
        const nav = frame.contentWindow?.performance.getEntriesByType('navigation')[0];
        if (nav?.nextHopProtocol) return nav.nextHopProtocol;
      } catch {
        // A frame not (yet) of this origin: no answer from it.
      }
    }
    return null;
  }

  // The server's record of each lane's newest request: its request line ends with the
  // version hyper parsed ("HTTP/2.0", "HTTP/1.1").
  async function readServerProtocols() {
    for (const lane of lanes) {
      try {
        const url = `/api/debug/wire?for=protocol&tag=${encodeURIComponent(lane.tag)}`;
        const answer = await fetchJson(url);
        const line = (answer.data?.exchanges ?? [])
          .map((x) => x?.request?.line)
          .find((l) => typeof l === 'string' && (l.startsWith(`GET /${lane.transport}/`) || l.startsWith(`POST /${lane.transport}/`)));
        if (line) serverSaw.set(lane.transport, line.slice(line.lastIndexOf(' ') + 1));
      } catch {
        // Diagnostics off or a network error: the cell keeps what it showed.
      }
    }
    setTimeout(readServerProtocols, PROTOCOL_READ_MS);
  }

  /** What the page saw of transport `t`: [protocol or null, the words for the cell]. */
  function pageSaw(t) {
    const page = t === 'iframe' ? iframeProtocol() ?? timing.transport(t).protocol : timing.transport(t).protocol;
    if (t === 'ws') return [null, 'not in Resource Timing (WebSocket handshakes are not reported)'];
    if (t === 'webtransport') return [null, 'not in Resource Timing (a WebTransport session is not a fetch)'];
    if (!page) {
      // A stream read by EventSource or fetch() gets its entry only when it ends.
      const stillOpen = t === 'sse' || t === 'fetch';
      return [null, stillOpen ? 'stream still open: no entry until it ends' : 'no request finished yet'];
    }
    return [page, page];
  }

  function transportRow(t, now) {
    const tr = document.createElement('tr');
    tr.dataset.transport = t;
    const [page, pageText] = pageSaw(t);
    if (page) tr.dataset.pageProtocol = page;
    // A WebTransport session is HTTP/3 by definition, and the wire record holds no HTTP/3.
    const server = t === 'webtransport' ? 'HTTP/3 (QUIC on UDP)' : serverSaw.get(t) ?? null;
    if (server) tr.dataset.serverProtocol = server;
    const wait = longest(timing.transport(t).waits, now);
    const cells = [
      transportTitle(t),
      pageText,
      server ?? 'not read yet',
      TWO_WAY.includes(t) ? '–' : wait === null ? 'no request finished' : formatMs(wait),
    ];
    for (const text of cells) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.append(td);
    }
    if (wait !== null && wait >= QUEUED_MS) tr.children[3].classList.add('full');
    if (wait !== null) tr.dataset.waitMs = wait.toFixed(1);
    return tr;
  }

  /** The longest wait of the window per protocol, in one sentence. */
  function waitsByProtocol(now) {
    const parts = timing.protocols().map(([protocol, list]) => {
      const wait = longest(list, now);
      return `${protocol}: ${wait === null ? 'no request finished' : formatMs(wait)} (${plural(list.length, 'request')})`;
    });
    return `This page came over ${pageProtocol() ?? 'an unreported protocol'}. Longest wait for a connection in the last 10 s, by protocol: ${parts.length === 0 ? 'no request finished yet' : parts.join('; ')}. Over HTTP/1.1 a request waits whenever its origin's six connections are all held; over HTTP/2 it becomes a new stream at once (up to the server's ${H2_MAX_STREAMS}).`;
  }

  const rows = $('protocol-rows');
  const waits = $('protocol-waits');
  return {
    start() {
      setTimeout(readServerProtocols, 1500);
    },
    render(now) {
      rows.replaceChildren(...TRANSPORTS.map((t) => transportRow(t, now)));
      waits.textContent = waitsByProtocol(now);
    },
  };
}
