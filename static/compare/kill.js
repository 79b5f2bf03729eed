// "Kill the connection": the server drops the lane's tagged connections
// (POST /api/debug/kill), and the lane times how long until its feed answers again.

import { formatMs, plural, postJson } from '/static/util.js';

/** The kill-and-recover measurement of one lane. `set(field, text)` writes its card; `root`
 * is the lane's element, whose data attributes the browser tests read. */
export class Kill {
  constructor(root, set) {
    this.root = root;
    this.set = set;
    this.current = null; // { at, newRequest, killed, done }
  }

  /** Kills the connections tagged `tag` and says so; recovery is timed by onEvent. */
  async start(tag) {
    delete this.root.dataset.recoveredMs;
    const kill = { at: performance.now(), newRequest: false, killed: null, done: false };
    this.current = kill;
    this.set('recovery', 'Killing…');
    try {
      const answer = await postJson('/api/debug/kill', { tag });
      kill.killed = answer.killed;
      this.root.dataset.killed = String(answer.killed);
      if (!kill.done) {
        this.set(
          'recovery',
          answer.killed === 0
            ? 'No request was in flight to kill (the idle keep-alive connection stays open); waiting for the next poll…'
            : `Killed ${plural(answer.killed, 'connection')}; recovering…`,
        );
      }
    } catch (err) {
      this.current = null;
      this.set('recovery', `The kill failed: ${err.message}`);
    }
  }

  /** The lane's feed made a new request: the next event is its answer. */
  onRequest() {
    if (this.current) this.current.newRequest = true;
  }

  /** An event of the lane's feed arrived at `now`: after a kill and a new request, that is
   * the recovery. */
  onEvent(now) {
    const kill = this.current;
    if (!kill || kill.done || !kill.newRequest) return;
    kill.done = true;
    const took = now - kill.at;
    this.root.dataset.recoveredMs = took.toFixed(0);
    this.set(
      'recovery',
      kill.killed === 0
        ? `No request was in flight to kill (the idle keep-alive connection stays open): every poll is a new request. Next answer after ${formatMs(took)}.`
        : `Killed ${plural(kill.killed, 'connection')}; back after ${formatMs(took)}, resumed from the cursor.`,
    );
  }
}
