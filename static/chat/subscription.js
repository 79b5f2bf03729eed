// The chat feed over the page's own transport, with clients/index.js's connect() (the same
// client the clock uses), and over WebSocket the frames this page sends on that socket.
//
// The subscription's presence and whisper delivery are bound to the cookie it was opened
// with, and its rooms are in its URL, so signing in or out and joining or leaving a room
// reopen it, resuming from its cursor.

import { transportName } from '/static/util.js';
import { connect, nowMicros } from '/static/clients/index.js';

/** Messages replayed when a subscription starts without a cursor (server max 200). */
const HISTORY = 50;
/** Frames kept while the WebSocket (re)connects. */
const MAX_OUTBOX = 20;

/**
 * The chat panel's subscription; `chat` is the panel (see chat.js), `onEvent(event)` takes
 * each event received. `panel` (a createPanel), `interval` (short polling), `params` and
 * `origin`: as createChat's options.
 */
export function createSubscription(
  chat,
  { transport, panel, interval, params, origin, onEvent, onTimeline },
) {
  const { ui, status } = chat;
  // Events created before the page started are replays (history), not deliveries: their
  // age says nothing about the transport, so they do not count towards the panel's latency.
  const liveSince = nowMicros();
  let client = null;
  let pollInterval = interval;
  let outbox = []; // WebSocket frames waiting for the socket to open

  const handlers = {
    // Same transport as the clock: its requests, bytes and events count in the same panel.
    onRequest: () => panel?.onRequest(),
    onBytes: (n) => panel?.onBytes(n),
    onBytesUp: (n) => panel?.onBytesUp?.(n),
    onFramingDown: (n) => panel?.onFramingDown?.(n),
    // Its own row of the page's timeline, if it has one.
    onTimeline: (record) => onTimeline?.(record),
    onEvent(event, receivedAt) {
      panel?.onEvent(event, receivedAt, { liveSince });
      onEvent(event);
    },
    onNotice(event) {
      panel?.onNotice(event);
      void chat.composer.onRefusal(event);
    },
    // The panel's state and details stay the clock's; the chat's connection shows here.
    onState(text, phase) {
      ui.conn.textContent = `Chat over ${transportName(transport)}: ${text}`;
      if (phase === 'open') flush();
    },
    onDetail(detail) {
      chat.session.onSocketClosed(typeof detail.lastClose === 'string' ? detail.lastClose : '');
    },
  };

  /** (Re)opens the chat subscription, resuming after the last event delivered. */
  function open() {
    const after = client?.cursor ?? null;
    client?.stop();
    client = connect(transport, 'chat', handlers, {
      after,
      params: { ...params, rooms: chat.rooms.list.join(','), history: HISTORY },
      interval: pollInterval,
      origin,
    });
  }

  /** WebSocket: sends a frame now, or as soon as the chat socket is open. */
  function send(frame) {
    const text = JSON.stringify(frame);
    if (client?.send(text)) return;
    if (outbox.length >= MAX_OUTBOX) {
      status.show('The chat socket is not open and too much is waiting; try again later.', 'error');
      return;
    }
    outbox.push(text);
    status.show('The chat socket is connecting; sending as soon as it is open…', 'waiting');
  }

  function flush() {
    while (outbox.length > 0 && client?.send(outbox[0])) outbox.shift();
    if (outbox.length === 0 && status.kind === 'waiting') status.show('');
  }

  return {
    open,
    send,
    /** Frames waiting for a socket are dropped (the session they were for has ended). */
    dropOutbox() {
      outbox = [];
    },
    stop() {
      client?.stop();
    },
    setInterval(ms) {
      pollInterval = ms;
      client?.setInterval(ms);
    },
    /** A message sent by a request of its own (`via`, e.g. `POST /api/chat/messages`), not
     * over this subscription: an upstream mark on its row of the timeline, saying so. */
    sentApart(bytes, via) {
      onTimeline?.({ kind: 'up', at: performance.now(), bytes, via });
    },
  };
}
