// The fetch streaming page's upstream section: does this browser stream a request body
// (`fetch(url, { body: ReadableStream, duplex: 'half' })`)? First by feature detection, then
// by trying it against the server, and each outcome said in words. Every engine the tests
// drive answers differently (tests/browser/fetch.rs): Chromium streams over HTTP/2 only
// (a TypeError over HTTP/1.1), Firefox sends the stream's text `[object ReadableStream]`,
// WebKitGTK throws NotSupportedError.

import { $, fetchJson, randomTag } from '/static/util.js';

const PIECES = ['{"rooms":', '["lobby"],"history":0}'];
const PIECE_GAP_MS = 300;
const DEADLINE_MS = 5000;

function show(id, outcome, text) {
  const el = $(id);
  if (!el) return;
  el.dataset.outcome = outcome;
  el.textContent = text; // text, never markup: messages come from the engine and the server
}

/** The feature detection the Fetch standard's authors suggest: an engine that supports
 * request streams reads the `duplex` option and gives a stream body no Content-Type (one that
 * turns the stream into text labels it `text/plain`). */
export function detectRequestStreams() {
  let duplexRead = false;
  try {
    const hasContentType = new Request(location.href, {
      method: 'POST',
      body: new ReadableStream(),
      get duplex() {
        duplexRead = true;
        return 'half';
      },
    }).headers.has('Content-Type');
    return { supported: duplexRead && !hasContentType, duplexRead, hasContentType, error: null };
  } catch (err) {
    return { supported: false, duplexRead, hasContentType: null, error: `${err.name}: ${err.message}` };
  }
}

/** What the engine would put on the wire for a stream body: the Request's body read back. */
async function bodyAsSent() {
  try {
    const request = new Request(location.href, {
      method: 'POST',
      body: new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode('streamed'));
          c.close();
        },
      }),
      duplex: 'half',
    });
    return await request.text();
  } catch (err) {
    return `(${err.name}: ${err.message})`;
  }
}

/** Sends the chat subscription's body in two pieces to `POST /fetch/chat`, and says what came of it. */
async function tryIt() {
  const encoder = new TextEncoder();
  const body = new ReadableStream({
    async start(controller) {
      for (const [i, piece] of PIECES.entries()) {
        if (i > 0) await new Promise((r) => setTimeout(r, PIECE_GAP_MS));
        controller.enqueue(encoder.encode(piece));
      }
      controller.close();
    },
  });
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), DEADLINE_MS);
  // Tagged, so the server's record of the request says which HTTP version carried it (an
  // open stream has no Resource Timing entry to ask).
  const tag = `upstream-${randomTag()}`;
  try {
    const response = await fetch(`/fetch/chat?for=upstream&tag=${tag}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body,
      duplex: 'half',
      signal: abort.signal,
    });
    const protocol = await serverSaw(tag);
    if (response.ok) {
      show('upstream-result', 'streamed', `streamed: the body left in ${PIECES.length} pieces, ${PIECE_GAP_MS} ms apart, and the server answered ${response.status} with its stream (protocol ${protocol})`);
    } else {
      let answer = '';
      try {
        const json = await response.json();
        answer = `${json?.error?.code ?? ''} ${json?.error?.message ?? ''}`.trim();
      } catch {
        answer = '(no JSON)';
      }
      show('upstream-result', 'refused', `sent, but not as a stream: the server answered ${response.status} ${answer} (protocol ${protocol})`);
    }
  } catch (err) {
    const outcome = err.name === 'TypeError' ? 'type-error' : err.name === 'NotSupportedError' ? 'not-supported' : 'error';
    show('upstream-result', outcome, abort.signal.aborted ? `no answer within ${DEADLINE_MS} ms` : `refused by the browser: ${err.name}: ${err.message}`);
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}

/** The HTTP version of the tagged request as the server parsed it (`HTTP/2.0` → `h2`). */
async function serverSaw(tag) {
  try {
    const answer = await fetchJson(`/api/debug/wire?for=upstream&tag=${encodeURIComponent(tag)}`);
    const line = answer.data?.exchanges?.[0]?.request?.line ?? '';
    const version = line.slice(line.lastIndexOf(' ') + 1);
    return version === 'HTTP/2.0' ? 'h2' : version === 'HTTP/1.1' ? 'http/1.1' : version || 'unknown';
  } catch {
    return 'unknown';
  }
}

async function run() {
  const detected = detectRequestStreams();
  const how = detected.error
    ? `the Request threw ${detected.error}`
    : `duplex ${detected.duplexRead ? 'read' : 'not read'}, ${detected.hasContentType ? 'a Content-Type added (the stream became text)' : 'no Content-Type added'}`;
  show('upstream-detect', detected.supported ? 'supported' : 'unsupported', `${detected.supported ? 'supported' : 'not supported'} (${how})`);
  const sent = await bodyAsSent();
  const code = $('upstream-body');
  if (code) code.textContent = sent;
  const button = $('upstream-try');
  button?.addEventListener('click', async () => {
    button.disabled = true;
    show('upstream-result', 'trying', 'trying…');
    await tryIt();
    button.disabled = false;
  });
}

if ($('upstream')) run();
