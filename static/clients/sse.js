// Server-Sent Events: EventSource on /sse/FEED.

import { ALL_EVENT_KINDS } from '/static/facts.js';
import { utf8Length } from '/static/util.js';
import { Backoff, nowMicros } from '/static/clients/common.js';

// The server names each SSE message by its event's kind (`event: stroke`), and EventSource
// hands a named message only to a listener for that name: so listen for every kind the
// server has (facts.js, generated from src/event.rs), never a list typed here. An SSE event
// named `error` would collide with EventSource's own `error` event (a connection problem);
// the two are told apart by `data`, which only a message carries.
const SSE_PRELUDE_BYTES = utf8Length('retry: 2000\n\n');
const SSE_STATES = ['CONNECTING', 'OPEN', 'CLOSED'];

export function sseClient(ctx) {
  const backoff = new Backoff(ctx);
  let source = null;

  function open() {
    // The first connection (and one made after EventSource gave up) carries the cursor in
    // the URL; EventSource's own reconnections send it as Last-Event-ID, which the server
    // prefers.
    const es = new EventSource(ctx.url({ after: ctx.cursor }));
    source = es;
    const readyState = () => ctx.detail({ readyState: SSE_STATES[es.readyState] ?? '?' });
    ctx.state('connecting', 'connecting');
    readyState();

    es.addEventListener('open', () => {
      ctx.request();
      // Every connection starts with `retry: 2000\n\n`; EventSource consumes it unseen.
      ctx.bytes(SSE_PRELUDE_BYTES);
      ctx.state('streaming', 'streaming');
      readyState();
    });

    const onMessage = (e) => {
      const receivedAt = nowMicros();
      // The frame exactly as it came: one `id:`, one `event:`, one `data:` line (the JSON is
      // compact, so it never spans lines), then a blank line.
      ctx.bytes(utf8Length(`id: ${e.lastEventId}\nevent: ${e.type}\ndata: ${e.data}\n\n`));
      backoff.reset();
      let event;
      try {
        event = JSON.parse(e.data);
      } catch {
        ctx.state('streaming (skipped an unreadable event)', 'streaming');
        return;
      }
      ctx.deliver(event, receivedAt);
    };
    for (const type of ALL_EVENT_KINDS) es.addEventListener(type, onMessage);

    es.addEventListener('error', (e) => {
      if (typeof e.data === 'string') {
        onMessage(e); // an `event: error` message, not a connection error
        return;
      }
      readyState();
      if (es.readyState === EventSource.CONNECTING) {
        // The stream dropped; EventSource retries by itself after `retry` (2 s). We keep
        // that rather than close and reopen with our jittered backoff: the browser's own
        // reconnection (with Last-Event-ID) is what the SSE page teaches. So SSE pages broken
        // together come back together, 2 s later (the HTML spec lets a browser wait longer,
        // "exponential backoff" is its example); spreading them would take a different
        // `retry:` per connection from the server.
        ctx.state('reconnecting (EventSource retries after 2 s)', 'backoff');
      } else {
        // CLOSED: an HTTP error status or a wrong Content-Type makes EventSource give up
        // for good. Open a new one ourselves, with backoff.
        es.close();
        if (source === es) source = null;
        backoff.retry('EventSource gave up', open);
      }
    });
  }

  return {
    start: open,
    stop() {
      backoff.cancel();
      source?.close();
      source = null;
    },
  };
}
