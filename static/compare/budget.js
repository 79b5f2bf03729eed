// "Six connections per origin": per origin, the connections this page's lanes hold or wait
// for, the browser's limit, and the longest wait for a connection (compare/timing.js); the
// two-way transports in rows of their own (a WebSocket's pool; WebTransport's QUIC sessions).

import { formatMs } from '/static/util.js';
import { H2_MAX_STREAMS, TWO_WAY } from '/static/facts.js';
import { ALIAS_ORIGIN, ONE_ORIGIN, PAGE_ORIGIN } from '/static/compare/origins.js';
import { pageProtocol, QUEUED_MS } from '/static/compare/timing.js';

const WEBSOCKETS = 'WebSockets (apart from the six in Chromium and Firefox; WebKit counts them in)';
const WEBTRANSPORT = 'WebTransport sessions (QUIC on UDP: no TCP connection, not one of the six)';

/** Renders the table body `tbody` from `lanes` and `timing`'s waits. */
export function renderBudget(tbody, lanes, timing) {
  const rows = [
    [PAGE_ORIGIN, lanes.filter((l) => l.origin === PAGE_ORIGIN && !TWO_WAY.includes(l.transport))],
  ];
  if (!ONE_ORIGIN) rows.push([ALIAS_ORIGIN, lanes.filter((l) => l.origin === ALIAS_ORIGIN)]);
  rows.push([WEBSOCKETS, lanes.filter((l) => l.transport === 'ws')]);
  rows.push([WEBTRANSPORT, lanes.filter((l) => l.transport === 'webtransport')]);
  const now = performance.now();
  tbody.replaceChildren(...rows.map(([name, group]) => budgetRow(name, group, timing, now)));
}

/** One origin (or the WebSockets): held connections, limit, longest wait. */
function budgetRow(name, group, timing, now) {
  const tr = document.createElement('tr');
  const held = group.reduce((s, l) => s + l.held(), 0);
  const parts = group.map((l) => `${l.transport} ${l.held()}`).join(', ');
  const isOrigin = name.startsWith('http');
  const wait = isOrigin ? timing.longestWait(name, now) : null;
  // The server's SETTINGS_MAX_CONCURRENT_STREAMS (facts.js, from src/net/listener.rs
  // MAX_H2_STREAMS): the HTTP/2 counterpart of the six.
  const h2 = isOrigin && pageProtocol() === 'h2';
  const cells = [
    isOrigin ? new URL(name).host : name,
    `${held} (${parts})`,
    h2
      ? `${H2_MAX_STREAMS} streams on one HTTP/2 connection`
      : isOrigin
        ? '6'
        : name === WEBTRANSPORT
          ? 'none of the six: the server\'s own bound (--max-webtransport-sessions)'
          : 'Chromium, Firefox: a pool of their own; WebKit: the six of their origin',
    isOrigin ? (wait === null ? 'no request finished' : formatMs(wait)) : '–',
  ];
  for (const text of cells) {
    const td = document.createElement('td');
    td.textContent = text;
    tr.append(td);
  }
  if (isOrigin && !h2 && held >= 6) tr.children[1].classList.add('full');
  if (wait !== null && wait >= QUEUED_MS) tr.children[3].classList.add('full');
  if (wait !== null) tr.dataset.waitMs = wait.toFixed(1);
  return tr;
}
