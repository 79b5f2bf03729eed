// The server's own count of each transport's open connections (GET /api/stats, counted by
// src/stats.rs), shown beside what each lane holds.

import { fetchJson } from '/static/util.js';

const STATS_MS = 2000;

/** Reads the server's counts every STATS_MS into each lane's `serverOpen`. */
export async function followServerCounts(lanes) {
  try {
    const { data: stats } = await fetchJson('/api/stats');
    for (const lane of lanes) lane.serverOpen = stats.transports?.[lane.transport]?.open ?? null;
  } catch {
    // The next round tries again; the figure stays as it was.
  }
  setTimeout(() => void followServerCounts(lanes), STATS_MS);
}
