// Long polling: GET /longpoll/FEED?after=ID&timeout=S, re-asked as soon as it is answered.

import { Backoff } from '/static/clients/common.js';
import { deadline, describe, fetchBatch } from '/static/clients/batch.js';

export function longpollClient(ctx, options) {
  const hold = Math.min(60, Math.max(1, Math.round(options.timeout ?? 25)));
  const backoff = new Backoff(ctx);
  let inFlight = null;
  let empty = 0;

  async function loop() {
    while (!ctx.stopped) {
      // The server answers within `hold` seconds; allow 10 s more before giving up on it.
      const guard = deadline((hold + 10) * 1000);
      inFlight = guard.controller;
      ctx.state('waiting (held request)', 'waiting');
      try {
        const n = await fetchBatch(
          ctx,
          ctx.url({ after: ctx.cursor, timeout: hold }),
          guard.controller.signal,
        );
        backoff.reset();
        if (n === 0) {
          empty += 1;
          ctx.detail({ emptyResponses: empty });
        }
      } catch (err) {
        if (ctx.stopped) return;
        backoff.retry(`request failed (${describe(err)})`, loop);
        return;
      } finally {
        guard.clear();
        inFlight = null;
      }
    }
  }

  return {
    start() {
      ctx.detail({ emptyResponses: 0, hold });
      void loop();
    },
    stop() {
      backoff.cancel();
      inFlight?.abort();
    },
  };
}
