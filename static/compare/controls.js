// Each lane's buttons (pause/resume, kill the connection) and the short-polling lane's poll
// interval.

import { $ } from '/static/util.js';
import { POLL_INTERVAL } from '/static/clients/index.js';

/** Wires the controls of `lanes`. */
export function wireControls(lanes) {
  for (const lane of lanes) {
    lane.root.querySelector('[data-action="pause"]').addEventListener('click', (e) => {
      if (lane.paused) {
        lane.start();
        e.currentTarget.textContent = 'Pause';
      } else {
        lane.stop();
        e.currentTarget.textContent = 'Resume';
      }
    });
    lane.root
      .querySelector('[data-action="kill"]')
      .addEventListener('click', () => lane.killConnection());
  }

  const pollLane = lanes.find((l) => l.transport === 'poll');
  const intervalInput = $('poll-interval');
  intervalInput.addEventListener('change', () => {
    const value = Number(intervalInput.value);
    const ok = Number.isInteger(value) && value >= POLL_INTERVAL.min && value <= POLL_INTERVAL.max;
    intervalInput.setAttribute('aria-invalid', String(!ok));
    if (ok) pollLane.setInterval(value);
  });
}
