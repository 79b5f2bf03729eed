// Hidden iframe ("forever frame"): GET /iframe/FEED?after=ID as a hidden document whose
// scripts call parent.pushpoll(event).

import { utf8Length } from '/static/util.js';
import { Backoff, SILENCE_FACTOR, heartbeatOf, nowMicros } from '/static/clients/common.js';
import { LIMITS } from '/static/facts.js';

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

// How often the client looks at whether the stream document grew.
const STREAM_CHECK_MS = 250;

export function iframeClient(ctx, options) {
  const MAX_DOCUMENT = LIMITS.iframeDocumentBytes; // the server ends each document after this many bytes
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
  let silenceMs = 0; // SILENCE_FACTOR × the heartbeat interval the stream announced

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
      const interval = heartbeatOf(event);
      if (interval) {
        // `{"heartbeat":MS}`: sent when the stream opens and after MS ms without events.
        docBytes += n;
        ctx.bytes(n);
        silenceMs = SILENCE_FACTOR * interval;
        return;
      }
      docBytes += n;
      docEvents += 1;
      ctx.bytes(n);
      backoff.reset();
      // A copy made in this page: holding the iframe's own objects would keep each
      // replaced document alive.
      ctx.deliver(JSON.parse(JSON.stringify(event)), receivedAt);
      ctx.detail({ documentBytes: docBytes });
      ctx.state(`streaming (document ${kib(docBytes)} of ${MAX_DOCUMENT / 1024} KiB)`, 'streaming');
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

  // A forever frame whose connection breaks gives no sign in Chromium and Firefox: the
  // document stays "loading" (WebKitGTK fires `load`). But a healthy stream always grows:
  // every event and every heartbeat is a <script>, a node of the document's body. A body
  // that has not grown for SILENCE_FACTOR times the announced heartbeat interval means a
  // dead stream: reopen it from the cursor.
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
    } else if (silenceMs > 0 && now - grewAt > silenceMs) {
      const silent = Math.round((now - grewAt) / 1000);
      frame.remove();
      frame = null;
      open(`no event and no heartbeat for ${silent} s, reopening after id ${ctx.cursor}`);
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
    silenceMs = 0;
    grewAt = performance.now();
    clearInterval(watchdog);
    watchdog = setInterval(check, STREAM_CHECK_MS);
    ctx.request({ url: next.src });
    ctx.detail({ documents: opens, documentBytes: 0 });
    ctx.state(`${why}: loading the stream document`, 'connecting');
    container.append(next);
  }

  // `load` fires when the document is complete: the server ended it at its cap, the server
  // shut down, or the request failed (then the frame shows an error page, which looks the
  // same from here). A document that delivered events was a healthy stream: reopen at once.
  // One that delivered nothing points at a problem: back off.
  function ended(which) {
    if (ctx.stopped || which !== frame) return;
    frame.remove();
    frame = null;
    if (docEvents > 0) {
      const why =
        docBytes >= MAX_DOCUMENT - 4096 ? `document reached ${MAX_DOCUMENT / 1024} KiB` : 'stream ended';
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
