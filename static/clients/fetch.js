// fetch() streaming: /fetch/FEED answers application/x-ndjson, one event's JSON per line, and
// never finishes; the page reads the body as a ReadableStream, chunk by chunk as it arrives.
//
// The chat subscribes with a POST whose JSON body carries the cursor, the rooms and the
// history, the way the LLM APIs stream an answer to a POSTed prompt. The clock and the
// canvas, and any feed on another origin, use a GET with the same values in the query: the
// server answers another origin's CORS preflight for GET only, so a cross-origin POST with a
// JSON body would be refused before it was sent.
//
// Unlike EventSource nothing here is done by the browser: the page splits the lines, resumes
// from its cursor (`after`) when the stream ends or breaks, and watches the heartbeat line
// (`{"heartbeat":MS}`) to tell a quiet stream from a dead one.

import { NDJSON_CONTENT_TYPE } from '/static/facts.js';
import { utf8Length } from '/static/util.js';
import { Backoff, Silence, heartbeatOf, nowMicros } from '/static/clients/common.js';

/** The media type the server streams (src/wire.rs, served in facts.js; docs/API.md). */
export const NDJSON_TYPE = NDJSON_CONTENT_TYPE;

/** A line longer than this without its newline ends the stream as broken: the server's
 * events are far smaller, and a reader must not buffer without bound. */
const MAX_LINE_BYTES = 1 << 20;

export function fetchClient(ctx) {
  const backoff = new Backoff(ctx);
  let abort = null;
  let reopens = 0;
  let sentUrl = null; // the last request's URL, for its bar on the timeline
  const silence = new Silence((silent, limit) => {
    ctx.state(
      `no event and no heartbeat for ${(silent / 1000).toFixed(1)} s (limit ${(limit / 1000).toFixed(1)} s), reopening after id ${ctx.cursor}`,
      'connecting',
    );
    ctx.detail({ silenceReopens: (reopens += 1) });
    close();
    open();
  });

  function close() {
    abort?.abort();
    abort = null;
  }

  /** The request: a POST with a JSON body for the chat on this origin, else a GET. */
  function request(signal) {
    const sameOrigin = ctx.origin === location.origin;
    if (ctx.feed === 'chat' && sameOrigin) {
      const { rooms, history, tag, ...rest } = ctx.params;
      const body = {};
      if (ctx.cursor !== null) body.after = ctx.cursor;
      if (typeof rooms === 'string') body.rooms = rooms.split(',').filter((r) => r !== '');
      if (history !== undefined && history !== null) body.history = Number(history);
      const text = JSON.stringify(body);
      // Only the diagnostics' tag (and parameters the server ignores) stay in the URL.
      const url = new URL(`${ctx.origin}/fetch/${encodeURIComponent(ctx.feed)}`);
      for (const [key, value] of Object.entries({ tag, ...rest })) {
        if (value !== null && value !== undefined) url.searchParams.set(key, String(value));
      }
      ctx.bytesUp(utf8Length(text));
      ctx.detail({ method: 'POST', requestBody: text });
      sentUrl = url.href;
      return fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: NDJSON_TYPE },
        body: text,
        signal,
        cache: 'no-store',
      });
    }
    ctx.detail({ method: 'GET' });
    sentUrl = ctx.url({ after: ctx.cursor });
    return fetch(sentUrl, {
      headers: { Accept: NDJSON_TYPE },
      signal,
      cache: 'no-store',
      // Another origin's stream is read without cookies, as every transport's is.
      credentials: sameOrigin ? 'same-origin' : 'omit',
    });
  }

  async function open() {
    if (ctx.stopped) return;
    const controller = new AbortController();
    abort = controller;
    ctx.state('connecting', 'connecting');
    silence.start();
    let why = null;
    try {
      const response = await request(controller.signal);
      ctx.request({ url: sentUrl });
      const type = response.headers.get('Content-Type') ?? '';
      if (!response.ok || !type.startsWith(NDJSON_TYPE)) {
        why = response.ok ? `answered ${type || 'no Content-Type'}, not ${NDJSON_TYPE}` : `HTTP ${response.status}`;
        await response.body?.cancel();
      } else {
        ctx.state('streaming', 'streaming');
        why = await read(response.body, controller);
      }
    } catch (err) {
      if (controller.signal.aborted) return; // stopped, or reopened by the silence watch
      why = `the stream broke (${err.message})`;
    }
    if (abort !== controller || ctx.stopped) return;
    abort = null;
    silence.stop();
    if (why === null) {
      // The server ended the response (a restart, a drain): resume from the cursor at once.
      ctx.state(`the stream ended; reopening after id ${ctx.cursor}`, 'connecting');
      open();
    } else {
      backoff.retry(why, open);
    }
  }

  /** Reads the body line by line until it ends (null) or breaks (the reason). */
  async function read(body, controller) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let pending = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (controller.signal.aborted) return null;
      if (done) return null;
      const receivedAt = nowMicros();
      // The body's bytes exactly as they arrived (chunked framing is below what fetch shows).
      ctx.bytes(value.byteLength);
      silence.heard();
      pending += decoder.decode(value, { stream: true });
      let end;
      while ((end = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, end);
        pending = pending.slice(end + 1);
        if (line !== '') onLine(line, receivedAt);
      }
      if (pending.length > MAX_LINE_BYTES) {
        controller.abort();
        return `a line over ${MAX_LINE_BYTES} bytes without its end`;
      }
    }
  }

  function onLine(line, receivedAt) {
    let value;
    try {
      value = JSON.parse(line);
    } catch {
      ctx.state('streaming (skipped an unreadable line)', 'streaming');
      return;
    }
    const interval = heartbeatOf(value);
    if (interval) {
      silence.announced(interval);
      return;
    }
    backoff.reset();
    ctx.deliver(value, receivedAt);
  }

  return {
    start: open,
    stop() {
      backoff.cancel();
      silence.stop();
      close();
    },
  };
}
