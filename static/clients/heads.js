// The estimated sizes of a client's request and response heads (onHeads), which no script
// can read.
//
// Browsers send request headers (User-Agent, Accept*, Sec-Fetch-*, cookies…) that no
// script can read, and show scripts only some response headers, so the head sizes are
// estimated, and said to be. The floor is what the page knows for certain: the request line
// and the Host line; the response floor is a status line. The estimate replaces it from the
// server's wire record of this page's own tagged requests (GET /api/debug/wire, the "show the
// wire" view): request line and headers as received, response line and headers as sent,
// sized as they are on the wire (`name: value\r\n`, the blank line). A value the server does
// not keep shows as `(N bytes, not shown)` and counts as N bytes. Chunked framing of the
// streams (a hex length and two CRLFs per chunk) is not included.


import { fetchJson, utf8Length } from '/static/util.js';

export function headFloor(url, origin) {
  const u = new URL(url);
  const request = utf8Length(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${new URL(origin).host}\r\n\r\n`);
  return { request, response: utf8Length('HTTP/1.1 200 OK\r\n\r\n'), source: 'floor' };
}

const HIDDEN_LENGTH = /^\((\d+) bytes, not shown\)$/;

/** Bytes of a head as recorded by the server: the line, each `name: value\r\n`, the blank line. */
export function headBytes(head) {
  if (!head || typeof head.line !== 'string' || !Array.isArray(head.headers)) return null;
  let n = utf8Length(head.line) + 2 + 2;
  for (const pair of head.headers) {
    if (!Array.isArray(pair) || pair.length !== 2) continue;
    const [name, value] = pair.map(String);
    const hidden = HIDDEN_LENGTH.exec(value);
    n += utf8Length(name) + 2 + (hidden ? Number(hidden[1]) : utf8Length(value)) + 2;
  }
  return n;
}

/** Reads this client's newest recorded exchanges (when its URLs carry a tag) and reports the
 * sizes of their heads: the newest request head, and the newest response head (a parked long
 * poll has none yet; until one is answered the response keeps its floor, and the record is
 * read again, at most three times). One GET each, not counted as the transport's: it is the
 * page's diagnostics. */
export function measureHeads(ctx, tries = 3) {
  const tag = ctx.params.tag;
  if (typeof tag !== 'string' || tries <= 0) return;
  setTimeout(async () => {
    if (ctx.stopped) return;
    try {
      // `for=heads` (ignored by the server) tells these reads apart from the wire view's own
      // (`/api/debug/wire?tag=…`, wire.js) in Resource Timing and in the server's logs.
      const url = `/api/debug/wire?for=heads&tag=${encodeURIComponent(tag)}`;
      const answer = await fetchJson(url);
      if (!answer.ok) return;
      const record = answer.data;
      // A GET, or the POST of fetch streaming's chat subscription (clients/fetch.js).
      const mine = (record?.exchanges ?? []).filter(
        (x) => typeof x?.request?.line === 'string' && ['GET', 'POST'].some((method) => x.request.line.startsWith(`${method} /${ctx.transport}/`)),
      );
      const request = headBytes(mine[0]?.request);
      const response = mine.map((x) => headBytes(x.response)).find((n) => n !== null) ?? null;
      if (request === null || ctx.stopped) return;
      ctx.heads({
        request,
        response: response ?? utf8Length('HTTP/1.1 200 OK\r\n\r\n'),
        source: response === null ? 'wire record, response floor' : 'wire record',
      });
      if (response === null) measureHeads(ctx, tries - 1);
    } catch {
      // No record (diagnostics off, network error): the floor stays, labelled as such.
    }
  }, tries === 3 ? 1500 : 5000);
}
