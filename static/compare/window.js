// Figures over a sliding window: lists of [time, value] pairs (performance.now() times), the
// old ones dropped as time passes.

/** How far back the rates and the longest waits look. */
export const RATE_WINDOW_MS = 10_000;

/** Drops entries older than `windowMs` from a list of [time, value] pairs. */
export function prune(list, now, windowMs) {
  let i = 0;
  while (i < list.length && now - list[i][0] > windowMs) i += 1;
  if (i > 0) list.splice(0, i);
}

/** The largest value of the last RATE_WINDOW_MS, or null when there is none. */
export function longest(list, now) {
  prune(list, now, RATE_WINDOW_MS);
  return list.length === 0 ? null : Math.max(...list.map(([, w]) => w));
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}
