// Which origin each lane subscribes from, and the page's layouts (?one-origin, ?lanes=draw).
//
// Six connections per origin: long polling, the iframe, fetch streaming and SSE hold one
// connection per subscription, two subscriptions each, which is eight, more than the six a
// browser opens to one origin over HTTP/1.1 (WebKitGTK also counts a WebSocket's handshake in). So SSE and long polling subscribe from the
// server's other loopback name (localhost ↔ 127.0.0.1, same port), a second origin with its
// own six; the server answers it with CORS headers. That leaves four held on each origin, and
// two free on each for short polls, sends and the page's own requests. fetch streaming stays
// on the page's origin: its chat subscription is a POST with a JSON body, which another origin
// could only send after a CORS preflight (the server answers preflights for GET only), and
// the iframe must stay (its scripts call parent.pushpoll). `?one-origin` puts everything on
// the page's origin to show the stall.
//
// Over HTTPS the page is served over HTTP/2 (ALPN, when the browser offers h2), which carries
// every request to one origin as streams of one connection: there is no six to work around,
// so over https: every transport stays on the page's origin. WebTransport's sessions are QUIC
// on UDP, apart from the six: its lane stays on the page's origin.

import { TRANSPORT } from '/static/facts.js';
import { hasWebTransport } from '/static/clients/index.js';

// The loopback alias exists only for a page opened on the server's own machine: opened from
// the network (http://192.0.2.2:3000/ in a classroom), `localhost` would be the student's own
// machine, so the page then has no second origin and puts everything on its own. Over HTTPS
// the server speaks HTTP/2, where every transport shares one connection: one origin is enough.
const HAS_ALIAS = ['localhost', '127.0.0.1', '[::1]'].includes(location.hostname);
const SECURE = location.protocol === 'https:';
const QUERY = new URLSearchParams(location.search);
export const ONE_ORIGIN = SECURE || !HAS_ALIAS || QUERY.has('one-origin');
// The feed each lane shows beside the chat: the clock, or the shared canvas. Never both: a
// third subscription per lane would put nine held connections on two origins.
export const LANE_FEED = QUERY.get('lanes') === 'draw' ? 'draw' : 'clock';
export const PAGE_ORIGIN = location.origin;
export const ALIAS_ORIGIN = (() => {
  const host = location.hostname === 'localhost' ? '127.0.0.1' : 'localhost';
  return `${location.protocol}//${host}${location.port ? `:${location.port}` : ''}`;
})();
// The transports that hold HTTP connections and may leave the page's origin. The iframe
// may not: its scripts call parent.pushpoll, which needs the same origin.
const ON_ALIAS = new Set([TRANSPORT.sse, TRANSPORT.longpoll]);

// On one HTTP/1.1 origin (opened from the network, or `?one-origin`) the streams alone would
// take the six: the iframe's, fetch streaming's and SSE's two each. The polls would then never
// get a connection, not slowly but never, since a stream does not give its connection back.
// So there the fetch streaming lane starts paused, and says why: resuming it shows the
// starvation. (Over HTTPS and HTTP/2 there is no six, and every lane runs.)
export const STARTS_PAUSED = ONE_ORIGIN && !SECURE ? TRANSPORT.fetch : null;
export const STARTS_PAUSED_WHY =
  'paused at start: on one HTTP/1.1 origin its two streams would make eight held connections for six, and the lanes that asked last (the polls) would never get one. Resume it to watch them starve.';

/** Why `transport`'s lane cannot run in this browser, or null: an engine without
 * WebTransport (WebKitGTK) has nothing to open its sessions with. */
export function unavailable(transport) {
  return transport === TRANSPORT.webtransport && !hasWebTransport()
    ? 'not in this browser: it has no WebTransport (window.WebTransport is undefined), so this lane stays empty; the other lanes are the fallbacks a page uses here.'
    : null;
}

/** The origin `transport`'s lane subscribes from. */
export const originOf = (transport) =>
  !ONE_ORIGIN && ON_ALIAS.has(transport) ? ALIAS_ORIGIN : PAGE_ORIGIN;

/** This page's address with the parameter `name` set to `value` ('' for a bare flag) or
 * removed (null), the others kept. */
function withParam(name, value) {
  const query = new URLSearchParams(location.search);
  if (value === null) query.delete(name);
  else query.set(name, value);
  const qs = query.toString().replace(/=(&|$)/g, '$1');
  return `${location.pathname}${qs ? `?${qs}` : ''}`;
}

/** Says which origin each transport uses, and links to the other layout. */
export function describeOrigins(note, layoutLink) {
  layoutLink.href = withParam('one-origin', '');
  if (SECURE) {
    note.textContent = `Every transport on this page's origin (${location.host}), over HTTPS: when the page came over HTTP/2 every request to this origin is a stream of one connection, so nothing waits for one of six. "Which protocol each transport used" below shows what each one got.`;
    layoutLink.hidden = true;
  } else if (ONE_ORIGIN) {
    note.textContent = `Every transport on one origin (${location.host}): long polling, the iframe and SSE hold six connections between them, the browser's limit (fetch streaming's lane starts paused: its two streams would make eight, and the polls would never get one), so every other request (a short poll, the clock's next long poll, a message you send) queues until one is free. Here the clock's long poll is answered every second, which frees a connection for a moment, so the queue crawls rather than stops: watch the waits in "Six connections per origin" below, and the latencies.`;
    note.classList.add('warn');
    layoutLink.textContent = 'Back to two origins';
    layoutLink.href = withParam('one-origin', null);
    if (!HAS_ALIAS) {
      note.textContent = `Opened from the network (${location.host}), this page has no second name for the server that your browser reaches (localhost would be your own machine), so every transport uses this one origin. ${note.textContent}`;
      layoutLink.hidden = true;
    }
  } else {
    note.textContent = `Short polling, the iframe, fetch streaming, WebSocket and WebTransport use this page's origin (${location.host}); SSE and long polling use ${new URL(ALIAS_ORIGIN).host}, the same server under its other loopback name, so that no origin needs more than six connections. See "Six connections per origin" below.`;
  }
}

/** Says what the lanes show (clocks or the shared canvas), and links to the other. */
export function describeLaneFeed(note, lanesLink) {
  if (LANE_FEED === 'draw') {
    note.textContent = 'Each lane shows the shared canvas as its transport delivers it, instead of the clock. Draw in a lane: the stroke is sent over that lane\'s transport (WebSocket: a frame on its draw socket; WebTransport: a line on its session\'s own stream; the others: POST /api/draw), and appears in every lane, in the panel below and on every other open page. The pen\'s colour and width are set in the panel below. ';
    lanesLink.textContent = 'Back to the clocks';
    lanesLink.href = withParam('lanes', null);
    note.append(lanesLink);
  } else {
    lanesLink.href = withParam('lanes', 'draw');
  }
}
