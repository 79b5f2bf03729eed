// WebTransport over HTTP/3: a session at https://HOST:PORT/webtransport/FEED on UDP, at the
// TCP server's port number. The page reads where and with which certificate hashes from
// GET /api/webtransport (the server's certificate is made at start and valid under 14 days,
// the only kind a browser takes by hash), then:
//
// - downstream: the server opens one unidirectional stream and writes NDJSON to it, the
//   heartbeat line `{"heartbeat":MS}` first, then each event's JSON and `\n` (the lines
//   fetch streaming carries);
// - upstream: send(text) writes one line on a bidirectional stream the page opens (chat
//   commands, strokes); a refusal comes back as an `error` line on that stream;
// - datagrams (options.datagrams, clock and canvas): each event may come as one datagram,
//   which the network may lose for good; the page counts the ids that never came.
//
// Browsers send no cookies with a WebTransport session, so the chat asks
// POST /api/webtransport/ticket (which carries the cookie) for a single-use ticket just
// before each session and puts it in the URL. Nothing reconnects for the page: it resumes
// with `after=` its cursor, and watches the heartbeat to tell a quiet session from a dead
// one. UDP is blocked on many networks: a session that is not ready within READY_MS is given
// up (and a page with a fallback moves on, static/fallback.js).

import { Backoff, Silence, heartbeatOf, nowMicros } from '/static/clients/common.js';
import { mayHaveSession, utf8Length } from '/static/util.js';

/** How long the QUIC handshake and the CONNECT request may take before the page gives up
 * on this attempt: on a network that drops UDP nothing ever answers. */
export const READY_MS = 5000;

/** A line longer than this without its newline ends the session as broken. */
const MAX_LINE_BYTES = 1 << 20;

/** How often the connection's statistics are read, where the engine has getStats(). */
const STATS_EVERY_MS = 1000;

/** Whether this engine has WebTransport at all (WebKitGTK does not). */
export function hasWebTransport() {
  return typeof globalThis.WebTransport === 'function';
}

/** `GET /api/webtransport`: the URL base and the hashes as `new WebTransport` takes them. */
export async function endpoint(origin = location.origin) {
  const response = await fetch(`${origin}/api/webtransport`, { cache: 'no-store' });
  if (!response.ok) throw new Error(`GET /api/webtransport answered ${response.status} (WebTransport off on this server)`);
  const info = await response.json();
  const host = new URL(origin).hostname;
  const hashes = (info.certificateHashes ?? []).map((h) => ({
    algorithm: h.algorithm,
    value: Uint8Array.from(atob(h.value), (c) => c.charCodeAt(0)),
  }));
  return { base: `https://${host}:${info.port}`, hashes };
}

/** The options of `new WebTransport`: the pinned hashes, or none with a real certificate. */
export function transportOptions(hashes) {
  return hashes.length > 0 ? { serverCertificateHashes: hashes } : {};
}

/** Resolves with `promise`'s value, or rejects after `ms` with `why`. */
function within(promise, ms, why) {
  let timer = 0;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(why)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Splits a byte stream into lines; calls onLine(text) per line, onChunk(n) per chunk. */
async function readLines(readable, { onChunk, onLine, live }) {
  const reader = readable.getReader();
  const decoder = new TextDecoder();
  let pending = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done || !live()) return null;
      onChunk(value.byteLength);
      pending += decoder.decode(value, { stream: true });
      let end;
      while ((end = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, end);
        pending = pending.slice(end + 1);
        if (line !== '') onLine(line);
      }
      if (pending.length > MAX_LINE_BYTES) return `a line over ${MAX_LINE_BYTES} bytes without its end`;
    }
  } finally {
    reader.releaseLock();
  }
}

export function webtransportClient(ctx, options = {}) {
  const backoff = new Backoff(ctx);
  const datagrams = options.datagrams === true && ctx.feed !== 'chat';
  // The chat runs beside another session on the same page: only the other one reports the
  // connection's own details (URL, last line, QUIC statistics), so they describe one session.
  const reports = ctx.feed !== 'chat';
  let session = null; // the open WebTransport, or null
  let writer = null; // the upstream stream's writer, once opened
  let sampler = 0;
  let reopens = 0;
  // Datagram mode: ids that arrived, and the gaps between them (what the network lost).
  const lost = { datagrams: 0, missing: 0, step: 0, last: null };
  const silence = new Silence((silent, limit) => {
    ctx.state(
      `no line for ${(silent / 1000).toFixed(1)} s (limit ${(limit / 1000).toFixed(1)} s), reopening after id ${ctx.cursor}`,
      'connecting',
    );
    ctx.detail({ silenceReopens: (reopens += 1) });
    close('silent');
    open();
  });

  function close(why) {
    const wt = session;
    session = null;
    writer = null;
    if (wt) {
      try {
        wt.close({ closeCode: 0, reason: why });
      } catch {
        // already closed
      }
    }
  }

  /** The chat's ticket, when this page is signed in; null otherwise (an anonymous reader). */
  async function ticket() {
    if (ctx.feed !== 'chat' || ctx.origin !== location.origin || !mayHaveSession()) return null;
    const response = await fetch('/api/webtransport/ticket', { method: 'POST', cache: 'no-store' });
    if (response.status === 401) return null;
    if (!response.ok) throw new Error(`POST /api/webtransport/ticket answered ${response.status}`);
    const body = await response.json();
    ctx.detail({ ticket: `single use, ${body.expiresInMs / 1000} s to redeem` });
    return body.ticket;
  }

  /** Counts the ids datagram mode never delivered: for the canvas ids are consecutive; for
   * the clock they are tick times, a tick apart (the smallest step seen). */
  function counted(id) {
    if (!Number.isSafeInteger(id)) return;
    lost.datagrams += 1;
    if (lost.last !== null && id > lost.last) {
      const step = id - lost.last;
      if (ctx.feed === 'draw') {
        lost.missing += step - 1;
      } else {
        lost.step = lost.step === 0 ? step : Math.min(lost.step, step);
        lost.missing += Math.max(0, Math.round(step / lost.step) - 1);
      }
    }
    if (lost.last === null || id > lost.last) lost.last = id;
    ctx.detail({ datagrams: lost.datagrams, datagramsMissing: lost.missing });
  }

  function onLine(line, receivedAt, fromDatagram) {
    if (reports) ctx.detail({ lastLine: line.length > 160 ? `${line.slice(0, 160)}…` : line });
    let value;
    try {
      value = JSON.parse(line);
    } catch {
      return;
    }
    const interval = heartbeatOf(value);
    if (interval) {
      silence.announced(interval);
      return;
    }
    backoff.reset();
    if (fromDatagram) counted(value?.id);
    ctx.deliver(value, receivedAt);
  }

  async function sampleStats(wt) {
    if (!reports) return;
    if (typeof wt.getStats !== 'function') {
      ctx.detail({ quicStats: 'not in this engine (no WebTransport.getStats())' });
      return;
    }
    try {
      const s = await wt.getStats();
      ctx.detail({
        quicStats: 'getStats()',
        quicBytesReceived: s.bytesReceived ?? null,
        quicBytesSent: s.bytesSent ?? null,
        quicPacketsLost: s.packetsLost ?? null,
        quicRttMs: s.smoothedRtt ?? null,
      });
    } catch (err) {
      ctx.detail({ quicStats: `getStats() rejected (${err.name}${err.message ? `: ${err.message}` : ''})` });
    }
  }

  async function open() {
    if (ctx.stopped) return;
    if (!hasWebTransport()) {
      ctx.state('this browser has no WebTransport', 'error');
      ctx.detail({ unsupported: true });
      return;
    }
    ctx.state('connecting (QUIC handshake)', 'connecting');
    let wt = null;
    let why = null;
    try {
      const { base, hashes } = await endpoint(ctx.origin);
      const extra = { after: ctx.cursor, ticket: await ticket(), datagrams: datagrams ? 1 : null };
      const url = `${base}${new URL(ctx.url(extra)).pathname}${new URL(ctx.url(extra)).search}`;
      if (reports) ctx.detail({ url });
      wt = new WebTransport(url, transportOptions(hashes));
      session = wt;
      wt.closed.catch(() => {}); // read below; never an unhandled rejection
      await within(wt.ready, READY_MS, `no QUIC answer within ${READY_MS / 1000} s (UDP blocked on this network?)`);
      if (session !== wt || ctx.stopped) return;
      ctx.request({ heads: false });
      const streams = wt.incomingUnidirectionalStreams.getReader();
      const first = await within(streams.read(), READY_MS, 'the session opened no event stream');
      streams.releaseLock();
      if (first.done) throw new Error('the session ended before its event stream');
      ctx.state(datagrams ? 'open (events as datagrams, heartbeats on the stream)' : 'open (NDJSON on a server-opened stream)', 'open');
      silence.start();
      clearInterval(sampler);
      sampler = setInterval(() => sampleStats(wt), STATS_EVERY_MS);
      if (datagrams) readDatagrams(wt);
      why = await readLines(first.value, {
        onChunk: (n) => {
          ctx.bytes(n);
          silence.heard();
        },
        onLine: (line) => onLine(line, nowMicros(), false),
        live: () => session === wt && !ctx.stopped,
      });
      if (why === null && session === wt) {
        const info = await within(wt.closed, 2000, 'closed').catch(() => null);
        why = info ? `the server closed the session (${info.closeCode ?? ''} ${info.reason ?? ''})`.trim() : 'the session ended';
      }
    } catch (err) {
      why = err.message || String(err);
    }
    if (wt === null || session !== wt || ctx.stopped) return;
    silence.stop();
    clearInterval(sampler);
    close('reopening');
    backoff.retry(why, open);
  }

  async function readDatagrams(wt) {
    const reader = wt.datagrams.readable.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done || session !== wt) return;
        ctx.bytes(value.byteLength);
        silence.heard();
        onLine(decoder.decode(value), nowMicros(), true);
      }
    } catch {
      // the session ended; open() handles it
    }
  }

  async function upstream() {
    if (writer) return writer;
    const wt = session;
    if (!wt) return null;
    const stream = await wt.createBidirectionalStream();
    if (session !== wt) return null;
    writer = stream.writable.getWriter();
    // Refusals (a message too long, signed out) come back on this stream as error lines.
    readLines(stream.readable, {
      onChunk: (n) => ctx.bytes(n),
      onLine: (line) => onLine(line, nowMicros(), false),
      live: () => session === wt && !ctx.stopped,
    }).catch(() => {});
    return writer;
  }

  return {
    start: open,
    stop() {
      clearInterval(sampler);
      backoff.cancel();
      silence.stop();
      close('page closed');
    },
    send(text) {
      if (ctx.stopped || session === null) return false;
      const line = `${String(text)}\n`;
      const bytes = new TextEncoder().encode(line);
      upstream()
        .then((w) => w?.write(bytes))
        .catch(() => {
          writer = null;
        });
      // The stream's payload: the line and its newline (QUIC's framing is below what the
      // page sees).
      ctx.bytesUp(utf8Length(line));
      return true;
    },
  };
}
