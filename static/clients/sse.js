// Server-Sent Events: EventSource on /sse/FEED.

import { ALL_EVENT_KINDS, SSE_HEARTBEAT_EVENT } from '/static/facts.js';
import { utf8Length } from '/static/util.js';
import { Backoff, Silence, heartbeatOf, nowMicros } from '/static/clients/common.js';

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
  // EventSource has no read timeout: a stream whose network vanished stays OPEN forever.
  // The server's `heartbeat` events say how often it speaks; past 2.5 times that in silence,
  // close and reopen from the cursor.
  const silence = new Silence((silent, limit) => {
    source?.close();
    source = null;
    ctx.state(
      `no event and no heartbeat for ${(silent / 1000).toFixed(1)} s (limit ${(limit / 1000).toFixed(1)} s), reopening after id ${ctx.cursor}`,
      'connecting',
    );
    ctx.detail({ silenceReopens: (reopens += 1) });
    open();
  });
  let reopens = 0;

  function open() {
    // The first connection (and one made after EventSource gave up) carries the cursor in
    // the URL; EventSource's own reconnections send it as Last-Event-ID, which the server
    // prefers.
    const es = new EventSource(ctx.url({ after: ctx.cursor }));
    source = es;
    silence.start();
    const readyState = () => ctx.detail({ readyState: SSE_STATES[es.readyState] ?? '?' });
    ctx.state('connecting', 'connecting');
    readyState();

    es.addEventListener('open', () => {
      ctx.request({ url: es.url });
      // Every connection starts with `retry: 2000\n\n`; EventSource consumes it unseen.
      ctx.bytes(SSE_PRELUDE_BYTES);
      ctx.state('streaming', 'streaming');
      readyState();
    });

    es.addEventListener(SSE_HEARTBEAT_EVENT, (e) => {
      // `event: heartbeat` (no `id:`, so Last-Event-ID stays the last event's).
      ctx.bytes(utf8Length(`event: ${e.type}\ndata: ${e.data}\n\n`));
      let interval = null;
      try {
        interval = heartbeatOf(JSON.parse(e.data));
      } catch {
        // not a heartbeat we understand: still a sign of life
      }
      if (interval) silence.announced(interval);
      else silence.heard();
    });

    const onMessage = (e) => {
      const receivedAt = nowMicros();
      silence.heard();
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
        silence.stop();
        if (source === es) source = null;
        backoff.retry('EventSource gave up', open);
      }
    });
  }

  return {
    start: open,
    stop() {
      backoff.cancel();
      silence.stop();
      source?.close();
      source = null;
    },
  };
}
