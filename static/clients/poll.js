// Short polling: GET /poll/FEED?after=ID on a fixed timetable.

import { deadline, describe, fetchBatch } from '/static/clients/batch.js';

export const POLL_INTERVAL = Object.freeze({ min: 100, max: 10_000, default: 1000 });

export function pollClient(ctx, options) {
  let interval = clampInterval(options.interval ?? POLL_INTERVAL.default);
  let start = 0; // timetable origin (performance.now())
  let slot = 0; // index of the next slot
  let timer = 0;
  let inFlight = null;
  let empty = 0;

  const idleText = () => `polling every ${interval} ms`;

  // Slot k fires at start + k × interval, so a slow answer does not push later polls back
  // (and hide latency). If an answer is still outstanding when a slot comes, that slot is
  // skipped instead of stacking requests; slots missed while the tab was throttled are
  // skipped too.
  function schedule() {
    const now = performance.now();
    slot = Math.max(slot + 1, Math.ceil((now - start) / interval));
    timer = setTimeout(fire, start + slot * interval - now);
  }

  function fire() {
    schedule();
    if (inFlight) return;
    void pollOnce();
  }

  async function pollOnce() {
    // An answer comes at once; 10 s without one means something is wrong on the way.
    const guard = deadline(Math.max(10_000, interval));
    inFlight = guard.controller;
    try {
      const n = await fetchBatch(ctx, ctx.url({ after: ctx.cursor }), guard.controller.signal);
      if (n === 0) {
        empty += 1;
        ctx.detail({ emptyResponses: empty });
      }
      ctx.state(idleText(), 'polling');
    } catch (err) {
      if (ctx.stopped) return; // aborted by stop(): nothing to report
      ctx.state(`last poll failed (${describe(err)}); polling every ${interval} ms`, 'error');
    } finally {
      guard.clear();
      inFlight = null;
    }
  }

  function restart() {
    clearTimeout(timer);
    start = performance.now();
    slot = 0;
    timer = setTimeout(fire, 0);
  }

  return {
    start() {
      ctx.detail({ emptyResponses: 0, interval });
      ctx.state(idleText(), 'polling');
      restart();
    },
    stop() {
      clearTimeout(timer);
      inFlight?.abort();
    },
    setInterval(ms) {
      const next = clampInterval(ms);
      if (next === interval || ctx.stopped) return;
      interval = next;
      ctx.detail({ interval });
      ctx.state(idleText(), 'polling');
      // Start a new timetable whose first slot is one new interval from now.
      clearTimeout(timer);
      start = performance.now();
      slot = 0;
      schedule();
    },
  };
}

function clampInterval(ms) {
  const n = Math.round(Number(ms));
  if (!Number.isFinite(n)) return POLL_INTERVAL.default;
  return Math.min(POLL_INTERVAL.max, Math.max(POLL_INTERVAL.min, n));
}
