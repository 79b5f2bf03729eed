// WebSocket: /ws/FEED?after=ID, reconnected by the page (WebSocket has no retry of its own).

import { utf8Length } from '/static/util.js';
import { Backoff, Silence, heartbeatOf, nowMicros } from '/static/clients/common.js';

/** The bytes of a WebSocket frame with `payload` bytes (RFC 6455 §5.2): 2, 4 or 10 bytes of
 * header, plus the 4-byte masking key on every client-to-server frame. */
export function wsFrameBytes(payload, masked) {
  const header = payload < 126 ? 2 : payload < 65_536 ? 4 : 10;
  return header + (masked ? 4 : 0) + payload;
}

const WS_STATES = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'];

export function wsClient(ctx) {
  const backoff = new Backoff(ctx);
  let socket = null;
  let sampler = 0;
  let shown = { readyState: '', bufferedAmount: -1 };
  // The server's pings are answered by the browser and never shown to the page; its
  // `{"heartbeat":MS}` messages are. Silent for 2.5 times MS: drop that socket (its close
  // handshake may never complete on a dead network) and reconnect from the cursor at once.
  const silence = new Silence((silent) => {
    const dead = socket;
    socket = null;
    dead?.close(4002, 'silent');
    ctx.state(`no message for ${(silent / 1000).toFixed(1)} s: reconnecting`, 'connecting');
    open();
  });

  // readyState and bufferedAmount change without events (bufferedAmount drains as the
  // browser sends), so they are sampled four times a second and reported when they change.
  function sample() {
    const readyState = socket ? WS_STATES[socket.readyState] : 'CLOSED';
    const bufferedAmount = socket ? socket.bufferedAmount : 0;
    if (readyState !== shown.readyState || bufferedAmount !== shown.bufferedAmount) {
      shown = { readyState, bufferedAmount };
      ctx.detail(shown);
    }
  }

  function open() {
    const ws = new WebSocket(ctx.url({ after: ctx.cursor }).replace(/^http/, 'ws'));
    socket = ws;
    ctx.request(); // the handshake is one HTTP request
    ctx.state('connecting (handshake)', 'connecting');
    sample();

    ws.addEventListener('open', () => {
      silence.start();
      ctx.state('OPEN', 'open');
      sample();
    });

    ws.addEventListener('message', (e) => {
      const receivedAt = nowMicros();
      if (typeof e.data !== 'string') {
        ctx.bytes(e.data.size ?? e.data.byteLength ?? 0); // binary frames: not used by feeds
        return;
      }
      const payload = utf8Length(e.data);
      ctx.bytes(payload);
      ctx.framingDown(wsFrameBytes(payload, false) - payload);
      backoff.reset();
      silence.heard();
      let event;
      try {
        event = JSON.parse(e.data);
      } catch {
        return;
      }
      const interval = heartbeatOf(event);
      if (interval) {
        silence.announced(interval);
        return;
      }
      ctx.deliver(event, receivedAt);
    });

    // A failed connection fires `error` then `close`; everything is handled on `close`.
    ws.addEventListener('close', (e) => {
      if (socket !== ws && !ctx.stopped) return; // a silent socket, already replaced
      silence.stop();
      if (socket === ws) socket = null;
      const lastClose = `${e.code}${e.reason ? ` ${e.reason}` : ''}${e.wasClean ? '' : ' (not clean)'}`;
      ctx.detail({ lastClose });
      sample();
      if (ctx.stopped) return;
      backoff.retry(`closed with ${e.code}`, open);
    });
  }

  return {
    start() {
      sampler = setInterval(sample, 250);
      open();
    },
    stop() {
      clearInterval(sampler);
      silence.stop();
      backoff.cancel();
      const ws = socket;
      socket = null;
      if (!ws) return;
      if (ws.readyState === WebSocket.CONNECTING) {
        // Closing before the handshake completes makes Chrome log an error; close it as
        // soon as it opens instead.
        ws.addEventListener('open', () => ws.close(1000, 'page closed'));
      } else {
        ws.close(1000, 'page closed');
      }
    },
    send(text) {
      if (ctx.stopped || socket?.readyState !== WebSocket.OPEN) return false;
      const data = String(text);
      socket.send(data);
      ctx.bytesUp(wsFrameBytes(utf8Length(data), true));
      sample();
      return true;
    },
  };
}
