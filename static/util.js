// What every page module shares: the transports and their names as the pages show them,
// element lookup and creation, JSON requests, and the formatters for bytes, times and counts.
// A leaf: it imports only the generated facts.js, and everything under static/ may import it.

import { TRANSPORTS, TRANSPORT_NAMES } from '/static/facts.js';

/** The transports, in the order every page lists them (ids as in the URLs): the
 * server's list (src/names.rs), served in facts.js. */
export { TRANSPORTS };

// Each transport's name as the pages write it, [at the start of a heading or cell, in a
// sentence], from src/names.rs (`Transport::title`, `name_in_sentence`) through facts.js.
const NAMES = TRANSPORT_NAMES;

/** "Short polling": the transport's name as a heading or table cell starts (its id if unknown). */
export function transportTitle(transport) {
  return NAMES[transport]?.[0] ?? transport;
}

/** "short polling": the transport's name inside a sentence (its id if unknown). */
export function transportName(transport) {
  return NAMES[transport]?.[1] ?? transport;
}

/** The WebSocket URL of `path` on this page's own host. */
export function wsUrl(path) {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}${path}`;
}

/** The element with this id under `root` (the whole document by default), or null. */
export function $(id, root = document) {
  return root === document ? document.getElementById(id) : root.querySelector(`#${id}`);
}

/** A new element with a class and text content (never markup). */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = String(text);
  return node;
}

/** Sets an element's text, touching the DOM only when it changes. */
export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

const encoder = new TextEncoder();

/** UTF-8 byte length of a string: what it weighs on the wire. */
export function utf8Length(text) {
  return encoder.encode(text).length;
}

/** JSON.parse that answers null for text that is not JSON. */
export function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/**
 * A JSON request to this server. Resolves for every HTTP answer, to
 * `{ok, status, data, code, message, retryAfter}`: `data` is the parsed body (null when it is
 * not JSON); on an error status `code` and `message` are the API's error body's (else
 * `http_STATUS` and `HTTP STATUS`) and `retryAfter` the Retry-After seconds (or null).
 * Rejects only when no answer came (a network error). `cache` is fetch's cache mode: a mode
 * other than the default adds request headers (Cache-Control, Pragma), so a page that counts
 * its request heads keeps the default.
 */
export async function fetchJson(path, { method = 'GET', body, cache = 'no-store' } = {}) {
  const init = { method, cache, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers = { 'Content-Type': 'application/json' };
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  // Not JSON (a proxy's error page, say): the status says enough.
  const data = text ? parseJson(text) : null;
  if (response.ok) return { ok: true, status: response.status, data };
  const error = data?.error ?? {};
  return {
    ok: false,
    status: response.status,
    data,
    code: typeof error.code === 'string' ? error.code : `http_${response.status}`,
    message: typeof error.message === 'string' ? error.message : `HTTP ${response.status}`,
    retryAfter: Number.parseInt(response.headers.get('Retry-After') ?? '', 10) || null,
  };
}

/** fetchJson that never rejects: no answer at all resolves with `code: 'network'`. */
export async function requestJson(method, path, body) {
  try {
    return await fetchJson(path, { method, body });
  } catch {
    return { ok: false, status: 0, code: 'network', message: 'the server could not be reached' };
  }
}

/**
 * POSTs a JSON body and resolves to the answer's JSON (`{}` when it has none); an error
 * status rejects with an Error carrying the API's `message` and `code`.
 */
export async function postJson(path, body) {
  const answer = await fetchJson(path, { method: 'POST', body });
  if (!answer.ok) {
    const error = new Error(answer.message);
    error.code = answer.code;
    throw error;
  }
  return answer.data ?? {};
}

/** 512 B, 1.5 KiB, 2.25 MiB. */
export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(2)} MiB`;
}

/** 12.3 ms, 1.25 s; `–` for no value. */
export function formatMs(ms) {
  if (ms === null || !Number.isFinite(ms)) return '–';
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`;
}

/** "1 stroke", "2 strokes". */
export function plural(n, noun) {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/**
 * 128 random bits as 22 base64url characters (the server refuses shorter tags): what makes
 * a diagnostic tag unguessable.
 */
export function randomTag() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const base64 = btoa(String.fromCharCode(...bytes));
  return base64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** localStorage key remembering that this browser signed in to the chat (the cookie is
 * HttpOnly, so a page cannot see it). */
export const SIGNED_IN_KEY = 'pushpoll.chat.signedIn';

/** Whether this browser may have a chat session: asking the server when it has none gets a
 * 401, which Chromium logs as a failed load although the page expects it. Storage that cannot
 * be used means "maybe". */
export function mayHaveSession() {
  try {
    return localStorage.getItem(SIGNED_IN_KEY) === 'yes';
  } catch {
    return true;
  }
}
