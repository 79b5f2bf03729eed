// The two polling transports' request (short and long polling): one GET answered with a
// `{"events":[…],"next":ID}` batch, its failures in words.

import { nowMicros } from '/static/clients/common.js';

const decoder = new TextDecoder();

/** A short reason for a failed request, for the state line. */
export function describe(err) {
  if (err instanceof HttpError) return `HTTP ${err.status}${err.code ? ` ${err.code}` : ''}`;
  if (err?.name === 'AbortError') return 'timed out';
  if (err instanceof SyntaxError) return 'unreadable answer';
  return 'network error';
}

class HttpError extends Error {
  constructor(status, bodyText) {
    let code = '';
    try {
      code = JSON.parse(bodyText)?.error?.code ?? '';
    } catch {
      // Not our JSON error body (a proxy's page, say): the status says enough.
    }
    super(`HTTP ${status}`);
    this.status = status;
    this.code = typeof code === 'string' ? code : '';
  }
}

/**
 * GETs a `{"events":[…],"next":ID}` batch (the polling transports). Counts the body bytes
 * exactly (headers are invisible to fetch), delivers the events, advances the cursor.
 * Resolves to the number of events; rejects on abort, network error or HTTP error.
 */
export async function fetchBatch(ctx, url, signal) {
  ctx.request({ url });
  const response = await fetch(url, { signal, cache: 'no-store', credentials: 'same-origin' });
  const body = await response.arrayBuffer();
  const receivedAt = nowMicros();
  ctx.answered(body.byteLength);
  ctx.bytes(body.byteLength);
  const text = decoder.decode(body);
  if (!response.ok) throw new HttpError(response.status, text);
  const batch = JSON.parse(text);
  const events = Array.isArray(batch?.events) ? batch.events : [];
  for (const event of events) ctx.deliver(event, receivedAt);
  ctx.advance(batch?.next);
  return events.length;
}

/** An AbortController that also aborts by itself after `ms`. */
export function deadline(ms) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), ms);
  return { controller, clear: () => clearTimeout(timer) };
}
