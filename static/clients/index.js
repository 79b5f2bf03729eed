// One client per transport, all with the same shape, so a page can run any one of them
// (or all of them side by side). This file is the entry: connect() starts the transport's own
// client (poll.js, longpoll.js, iframe.js, fetch.js, sse.js, ws.js, webtransport.js: the same
// files as the server's src/transport/ and the load tester's clients/); what they share is in common.js
// (the cursor and handler skeleton, the backoff), batch.js (the polling transports' request)
// and heads.js (the estimated head sizes).
//
//   const client = connect(transport, feed, handlers, options);
//   client.stop();             // close everything, cancel every timer; no handler runs after it
//   client.setInterval(ms);    // short polling: change the interval (no-op elsewhere)
//   client.send(text);         // WebSocket: send one text frame; WebTransport: one line on its
//                              // upstream stream; true if sent (false elsewhere)
//   client.cursor;             // the id of the last event delivered (the resume point), or null
//   client.transport, client.feed
//
// handlers (all optional):
//   onEvent(event, receivedAtMicros)  a feed event (has an `id`), each delivered once, in order
//   onNotice(event)                   a `{"type":"error",…}` notice, not part of the feed
//   onRequest()                       an HTTP request was made / a connection opened
//   onBytes(n)                        n bytes received (exactly what each transport can see,
//                                     see BYTES in the page notes and each client's file)
//   onBytesUp(n)                      n bytes sent that the page can count exactly: WebSocket
//                                     frames, frame header and 4-byte mask included; fetch
//                                     streaming's POST bodies
//   onFramingDown(n)                  n bytes of WebSocket frame headers received (2 or 4 per
//                                     server frame, RFC 6455 §5.2): on the wire, not in e.data
//   onHeads({request, response, source})  the estimated size of one request head and one
//                                     response head (scripts cannot see them), see heads.js
//   onState(text, phase)              the connection state in words; phase is one of
//                                     connecting · polling · waiting · streaming · open ·
//                                     backoff · error · stopped
//   onDetail(object)                  transport-specific figures, e.g. WebSocket readyState
//   onTimeline(record)                what happened when, for the timeline (timeline.js): a
//                                     request sent or answered, a connection opened, an event,
//                                     a frame sent upstream, a break, a stop (common.js)
//
// options: { after: ID, params: {…extra query parameters…}, interval: ms (poll),
//            timeout: s (longpoll), container: Element (iframe),
//            datagrams: true (webtransport, clock and draw: events as QUIC datagrams),
//            origin: 'http://localhost:3000' (subscribe from another origin of the same
//            server, which answers loopback aliases of its own port with CORS headers; the
//            request is then made without cookies. Not for the iframe, whose document must
//            be same-origin to call parent.pushpoll) }
//
// Every client resumes the same way: the last id it delivered is the cursor (`after=`).

import { Context } from '/static/clients/common.js';
import { utf8Length } from '/static/util.js';
import { pollClient } from '/static/clients/poll.js';
import { longpollClient } from '/static/clients/longpoll.js';
import { iframeClient } from '/static/clients/iframe.js';
import { fetchClient } from '/static/clients/fetch.js';
import { sseClient } from '/static/clients/sse.js';
import { wsClient } from '/static/clients/ws.js';
import { webtransportClient } from '/static/clients/webtransport.js';

// What pages and tests import from here, wherever it is defined.
export { TRANSPORTS, utf8Length } from '/static/util.js';
export { nowMicros } from '/static/clients/common.js';
export { headBytes } from '/static/clients/heads.js';
export { POLL_INTERVAL } from '/static/clients/poll.js';
export { iframeChunk } from '/static/clients/iframe.js';
export { wsFrameBytes } from '/static/clients/ws.js';
export { hasWebTransport } from '/static/clients/webtransport.js';

const FACTORIES = {
  poll: pollClient,
  longpoll: longpollClient,
  iframe: iframeClient,
  fetch: fetchClient,
  sse: sseClient,
  ws: wsClient,
  webtransport: webtransportClient,
};

/**
 * Starts a client of `feed` over `transport`. See the top of this file for the shape.
 */
export function connect(transport, feed, handlers = {}, options = {}) {
  const make = FACTORIES[transport];
  if (!make) throw new TypeError(`unknown transport ${JSON.stringify(transport)}`);
  const ctx = new Context(transport, feed, handlers, options);
  const impl = make(ctx, options);
  impl.start();
  return Object.freeze({
    transport,
    feed,
    get cursor() {
      return ctx.cursor;
    },
    stop() {
      if (ctx.stopped) return;
      ctx.record('stopped');
      ctx.stopped = true;
      impl.stop();
      ctx.handlers.onState('stopped', 'stopped');
    },
    setInterval(ms) {
      impl.setInterval?.(ms);
    },
    send(text) {
      const sent = impl.send?.(text) ?? false;
      if (sent) ctx.record('up', { bytes: utf8Length(String(text)) });
      return sent;
    },
  });
}
