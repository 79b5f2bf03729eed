// A lane's live cost, as the single-transport pages' panels (panel.js) count it and named as
// in the glossary: requests/s, body bytes/s and per event, bytes down · up per event, and the
// latency, last and p50 · p99 over a minute.

import { formatBytes, formatMs } from '/static/util.js';
import { percentile, prune, RATE_WINDOW_MS } from '/static/compare/window.js';

const LATENCY_WINDOW_MS = 60_000;

/** The figures of one lane; `set(field, text)` writes a `data-field` of the lane's card. */
export class LaneFigures {
  constructor(set) {
    this.set = set;
    this.requests = []; // [time, 1]
    this.received = []; // [time, bytes]
    this.latencies = []; // [time, ms]
    this.requestsTotal = 0;
    this.bytes = 0;
    this.events = 0;
    this.lastLatency = null;
    this.lastEventAt = null;
    // Both directions: bytes down = body bytes + WebSocket frame headers + one response head
    // per request; bytes up = one request head per request + WebSocket frames sent (header
    // and mask included). Head sizes are estimates (clients/heads.js): a floor, then the
    // server's wire record of this lane's own tagged requests.
    this.up = 0;
    this.framingDown = 0;
    this.heads = { request: 0, response: 0, source: 'floor' };
  }

  /** The connect() handlers that count: requests, bytes both ways, head sizes. */
  handlers() {
    return {
      onRequest: () => {
        this.requestsTotal += 1;
        this.requests.push([performance.now(), 1]);
      },
      onBytes: (n) => {
        this.bytes += n;
        this.received.push([performance.now(), n]);
      },
      onBytesUp: (n) => {
        this.up += n;
      },
      onFramingDown: (n) => {
        this.framingDown += n;
      },
      onHeads: (heads) => {
        this.heads = { ...heads };
      },
    };
  }

  /** An event arrived at `now`. */
  onEvent(now) {
    this.events += 1;
    this.lastEventAt = now;
  }

  /** A delivery latency measured at `now`. */
  onLatency(now, latency) {
    this.lastLatency = latency;
    this.latencies.push([now, latency]);
  }

  /** Milliseconds since the last event, or null before the first. */
  sinceLastEvent(now) {
    return this.lastEventAt === null ? null : now - this.lastEventAt;
  }

  render(now) {
    this.renderBothWays();
    prune(this.requests, now, RATE_WINDOW_MS);
    prune(this.received, now, RATE_WINDOW_MS);
    prune(this.latencies, now, LATENCY_WINDOW_MS);
    const seconds = RATE_WINDOW_MS / 1000;
    this.set('rps', (this.requests.length / seconds).toFixed(1));
    this.set('bps', `${formatBytes(Math.round(this.received.reduce((s, [, n]) => s + n, 0) / seconds))}/s`);
    this.set('bpe', this.events === 0 ? '–' : `${Math.round(this.bytes / this.events)} B`);
    this.set('lat-last', formatMs(this.lastLatency));
    const sorted = this.latencies.map(([, l]) => l).sort((a, b) => a - b);
    this.set('lat-pct', sorted.length === 0 ? '–' : `${formatMs(percentile(sorted, 50))} · ${formatMs(percentile(sorted, 99))}`);
    const since = this.sinceLastEvent(now);
    this.set('since', since === null ? 'none yet' : `${(since / 1000).toFixed(1)} s ago`);
  }

  renderBothWays() {
    const down = this.bytes + this.framingDown + this.requestsTotal * this.heads.response;
    const up = this.up + this.requestsTotal * this.heads.request;
    // "≈" once both head sizes come from the wire record, "≥" while either is a floor.
    const mark = this.heads.source === 'wire record' ? '≈' : '≥';
    this.set(
      'bpe-both',
      this.events === 0 ? '–' : `${mark}${Math.round(down / this.events)} · ${mark}${Math.round(up / this.events)} B`,
    );
  }
}
