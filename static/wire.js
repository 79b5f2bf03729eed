// "Show the wire": the HTTP exchanges this page's clients made, as the server saw them.
//
// A page's fetches, EventSources, iframes and WebSockets cannot read their own request
// headers (and most response headers), so the page tags its subscriptions (`tag=NAME` in
// each transport URL) and the server records every tagged request: request line and
// headers, response status line and headers, and the first bytes of the body.
// createWire(root, tag) shows that record while the <details> element under `root` is open:
// it asks `GET /api/debug/wire?tag=NAME` once a second (newest first, at most 10 exchanges)
// and stops when the details are closed or the page is hidden.
//
// Elements under `root`: a <details> (required), #wire-list (an <ol>, required),
// [data-wire="status"] and [data-wire="tag"] (optional). Everything received is rendered
// with textContent: a header or body that holds markup stays text.

import { el, formatMs, parseJson, plural, setText, TRANSPORTS, utf8Length } from '/static/util.js';
import { headBytes } from '/static/clients/heads.js';

const POLL_MS = 1000;

// Runs of at least this many spaces in a body head are shown as one marker (the iframe
// stream's prelude is padded past 1 KiB with spaces).
const SPACE_RUN = 40;
const SPACE_RUNS = new RegExp(` {${SPACE_RUN},}(?:\\n {${SPACE_RUN},})*`, 'g');

// Headers worth a second look, emphasised in the listing. Every header is listed; the server
// keeps the values of an allowlist only (those these pages explain), others as a length.
const NOTABLE_REQUEST = new Set([
  'accept',
  'cache-control',
  'connection',
  'cookie',
  'last-event-id',
  'origin',
  'sec-websocket-key',
  'sec-websocket-version',
  'upgrade',
]);
const NOTABLE_RESPONSE = new Set([
  'cache-control',
  'connection',
  'content-length',
  'content-type',
  'retry-after',
  'sec-websocket-accept',
  'set-cookie',
  'transfer-encoding',
  'upgrade',
  'x-accel-buffering',
]);

const numbers = new Intl.NumberFormat('en');

/**
 * Starts the wire view under `root` for requests tagged `tag`. Returns { stop }.
 */
export function createWire(root, tag) {
  const details = root.querySelector('details');
  const list = root.querySelector('#wire-list') ?? root.querySelector('ol');
  const statusEl = root.querySelector('[data-wire="status"]');
  const tagEl = root.querySelector('[data-wire="tag"]');
  if (!details || !list) return { stop() {} };
  if (tagEl) tagEl.textContent = tag;

  const url = `/api/debug/wire?tag=${encodeURIComponent(tag)}`;
  const views = new Map(); // seq → exchange view
  let timer = 0;
  let inFlight = null;
  let running = false;
  let generation = 0; // bumped by every start and stop: an older loop's answer is dropped

  function status(text, kind = '') {
    if (!statusEl) return;
    if (statusEl.textContent !== text) statusEl.textContent = text;
    if (kind) statusEl.dataset.kind = kind;
    else delete statusEl.dataset.kind;
  }

  async function refresh() {
    const mine = generation;
    const live = () => running && mine === generation;
    const controller = new AbortController();
    inFlight = controller;
    const guard = setTimeout(() => controller.abort(), 5000);
    try {
      const response = await fetch(url, {
        cache: 'no-store',
        credentials: 'same-origin',
        signal: controller.signal,
      });
      const text = await response.text();
      if (!live()) return;
      if (!response.ok) {
        const why = `HTTP ${response.status}${errorCode(text)}`;
        status(`Could not read the server's record: ${why}.`, 'error');
        return;
      }
      const record = JSON.parse(text);
      const exchanges = Array.isArray(record?.exchanges) ? record.exchanges : [];
      render(exchanges);
      const at = new Date().toISOString().slice(11, 19);
      status(
        exchanges.length === 0
          ? `No tagged request recorded yet (asked at ${at} UTC).`
          : `${plural(exchanges.length, 'exchange')}, newest first (the server keeps the last 10); ` +
              `updated ${at} UTC.`,
      );
    } catch (err) {
      if (!live()) return;
      status(
        err?.name === 'AbortError'
          ? 'The server did not answer within 5 s; asking again.'
          : err instanceof SyntaxError
            ? "The server's record was not readable JSON."
            : 'Could not reach the server; asking again.',
        'error',
      );
    } finally {
      clearTimeout(guard);
      if (inFlight === controller) inFlight = null;
    }
  }

  // One request at a time: the next one is asked a second after the previous answer.
  async function loop(mine) {
    await refresh();
    if (running && mine === generation) timer = setTimeout(loop, POLL_MS, mine);
  }

  function start() {
    if (running) return;
    running = true;
    generation += 1;
    status('Asking the server…');
    void loop(generation);
  }

  function stop() {
    running = false;
    generation += 1;
    clearTimeout(timer);
    inFlight?.abort();
    inFlight = null;
  }

  function render(exchanges) {
    const seen = new Set();
    let previous = null;
    for (const exchange of exchanges) {
      if (exchange === null || typeof exchange !== 'object') continue;
      const key = String(exchange.seq);
      if (seen.has(key)) continue;
      seen.add(key);
      let view = views.get(key);
      if (!view) {
        view = exchangeView();
        views.set(key, view);
      }
      view.update(exchange);
      // Newest first; existing elements only move when out of place, so a selection or a
      // scrolled body survives the refresh.
      const wanted = previous ? previous.nextSibling : list.firstChild;
      if (wanted !== view.el) list.insertBefore(view.el, wanted);
      previous = view.el;
    }
    for (const [key, view] of views) {
      if (!seen.has(key)) {
        view.el.remove();
        views.delete(key);
      }
    }
  }

  details.addEventListener('toggle', () => {
    if (details.open) start();
    else stop();
  });
  window.addEventListener('pagehide', stop);
  window.addEventListener('pageshow', (e) => {
    if (e.persisted && details.open) start();
  });
  if (details.open) start();

  return { stop };
}

/** The elements of one exchange, updated in place on every refresh. */
function exchangeView() {
  const item = el('li', 'wire-exchange');

  const summary = el('p', 'wire-summary');
  const seqEl = el('span', 'wire-seq');
  const stateEl = el('span', 'wire-state');
  const timingEl = el('span', 'wire-timing');
  summary.append(seqEl, stateEl, timingEl);

  const request = part('Request');
  const requestLine = el('span', 'wire-request-line');
  const requestHeaders = el('span', 'wire-headers');
  request.pre.append(requestLine, requestHeaders);

  const response = part('Response');
  const responseLine = el('span', 'wire-response-line');
  const responseHeaders = el('span', 'wire-headers');
  response.pre.append(responseLine, responseHeaders);

  const heads = el('div', 'wire-heads');
  heads.append(request.root, response.root);

  const body = part('Body');
  body.pre.className = 'wire-body';
  body.pre.tabIndex = 0; // it scrolls: reachable from the keyboard

  item.append(summary, heads, body.root);

  let shownRequest = '';
  let shownResponse = '';
  let shownHead = null;

  return {
    el: item,
    update(x) {
      // open · complete · aborted (any other word the server uses is shown as it is)
      const state =
        typeof x.state === 'string' && /^[a-z_-]{1,20}$/.test(x.state) ? x.state : 'unknown';
      const line = typeof x.request?.line === 'string' ? x.request.line : '';
      setData(item, 'state', state);
      setData(item, 'transport', transportOf(line));
      setData(item, 'seq', String(x.seq ?? ''));

      setText(seqEl, `#${x.seq ?? '?'}`);
      setText(stateEl, state);
      setData(stateEl, 'state', state);
      setText(timingEl, timing(x, state));

      const req = JSON.stringify(x.request ?? null);
      if (req !== shownRequest) {
        shownRequest = req;
        setText(requestLine, line || '(no request line)');
        fillHeaders(requestHeaders, x.request?.headers, NOTABLE_REQUEST);
        setText(request.size, headSize(x.request));
      }

      const res = JSON.stringify(x.response ?? null);
      if (res !== shownResponse) {
        shownResponse = res;
        // Until the handler answers (a held long poll) the server reports `response: null`.
        if (typeof x.response?.line === 'string' && x.response.line !== '') {
          setText(responseLine, x.response.line);
          fillHeaders(responseHeaders, x.response.headers, NOTABLE_RESPONSE);
          setText(response.size, headSize(x.response));
        } else {
          setText(responseLine, '(no response yet: the server is holding the request)');
          responseHeaders.replaceChildren();
          setText(response.size, '');
        }
      }

      const bytes = Number.isFinite(x.body?.bytes) ? x.body.bytes : 0;
      const head = typeof x.body?.head === 'string' ? x.body.head : '';
      const headBytes = Number.isFinite(x.body?.head_bytes)
        ? x.body.head_bytes
        : utf8Length(head);
      const upgrade = /^HTTP\/\S+ 101\b/.test(x.response?.line ?? '');
      setText(body.size, bodySize(bytes, headBytes, state));
      if (head !== shownHead) {
        shownHead = head;
        if (head === '') {
          body.pre.replaceChildren(
            el(
              'span',
              'wire-empty',
              upgrade
                ? 'No HTTP body: after the 101 the connection carries WebSocket frames, ' +
                    'which are not HTTP and are not recorded.'
                : state === 'open'
                  ? '(nothing sent yet)'
                  : '(empty body)',
            ),
          );
        } else {
          body.pre.replaceChildren(...bodyNodes(head));
        }
      }
    },
  };
}

/** A labelled block: a heading line with a size, then a <pre>. */
function part(label) {
  const root = el('div', 'wire-part');
  const heading = el('p', 'wire-label');
  const size = el('span', 'wire-size');
  heading.append(el('strong', '', label), ' ', size);
  const pre = el('pre', 'wire-head');
  root.append(heading, pre);
  return { root, size, pre };
}

function fillHeaders(container, headers, notable) {
  const nodes = [];
  for (const pair of Array.isArray(headers) ? headers : []) {
    if (!Array.isArray(pair)) continue;
    const name = String(pair[0] ?? '');
    const value = String(pair[1] ?? '');
    const row = el('span', 'wire-header');
    if (notable.has(name.toLowerCase())) row.classList.add('notable');
    row.append('\n', el('span', 'wire-header-name', name), `: ${value}`);
    nodes.push(row);
  }
  container.replaceChildren(...nodes);
}

/**
 * The body head as nodes: text, with each run of ≥ 40 spaces (and runs of such runs joined
 * by single line breaks) replaced by a marker saying how much it was.
 */
function bodyNodes(head) {
  const nodes = [];
  let last = 0;
  for (const match of head.matchAll(SPACE_RUNS)) {
    if (match.index > last) nodes.push(document.createTextNode(head.slice(last, match.index)));
    const run = match[0];
    const breaks = run.split('\n').length - 1;
    const spaces = run.length - breaks;
    const what = breaks === 0
      ? `⟨${numbers.format(spaces)} spaces⟩`
      : `⟨${numbers.format(spaces)} spaces over ${breaks + 1} lines⟩`;
    const marker = el('span', 'wire-elided', what);
    marker.title = 'padding, collapsed here; it is sent as plain spaces';
    nodes.push(marker);
    last = match.index + run.length;
  }
  if (last < head.length) nodes.push(document.createTextNode(head.slice(last)));
  return nodes;
}

/**
 * What a request or response head weighs on the wire (clients/heads.js counts it as the
 * cost panels do: the line and each `name: value` with CRLFs, plus the blank line; a value
 * the server does not keep, shown as "(N bytes, not shown)", counts as N bytes).
 */
function headSize(part) {
  if (typeof part?.line !== 'string' || part.line === '') return '';
  const headers = (Array.isArray(part.headers) ? part.headers : []).filter(
    (pair) => Array.isArray(pair) && pair.length === 2,
  );
  const bytes = headBytes({ line: part.line, headers });
  return `${plural(headers.length, 'header')} · head ≈ ${numbers.format(bytes)} B`;
}

function bodySize(bytes, headBytes, state) {
  const total = `${numbers.format(bytes)} byte${bytes === 1 ? '' : 's'}`;
  const sofar = state === 'open' ? `${total} so far` : `${total} in all`;
  if (bytes === 0) return sofar;
  const shown = Math.min(headBytes, bytes);
  return shown >= bytes
    ? `${sofar} (all shown)`
    : `${sofar} (first ${numbers.format(shown)} shown)`;
}

function timing(x, state) {
  const parts = [];
  if (Number.isFinite(x.started)) {
    parts.push(`started ${new Date(x.started / 1000).toISOString().slice(11, 23)} UTC`);
  }
  if (Number.isFinite(x.duration_ms)) {
    const d = duration(x.duration_ms);
    parts.push(
      state === 'open' ? `${d} so far` : state === 'complete' ? `took ${d}` : `${state} after ${d}`,
    );
  }
  return parts.join(' · ');
}

function duration(ms) {
  if (ms < 60_000) return formatMs(ms);
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

/** `GET /sse/clock?tag=… HTTP/1.1` → `sse` (or `other`). */
function transportOf(line) {
  const path = line.split(' ')[1] ?? '';
  const first = path.split(/[/?]/)[1] ?? '';
  return TRANSPORTS.includes(first) ? first : 'other';
}

function errorCode(text) {
  const code = parseJson(text)?.error?.code;
  return typeof code === 'string' ? ` ${code}` : '';
}

function setData(node, key, value) {
  if (node.dataset[key] !== value) node.dataset[key] = value;
}
