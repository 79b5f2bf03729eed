// The compare page: the clock and the chat over every transport at once, each lane with
// its live cost and its controls (pause, kill, the short-poll interval), and the chat lane
// showing each message's arrival over each transport. With `?lanes=draw` each lane shows the shared canvas
// instead of the clock: its strokes arrive over that lane's transport, and what is drawn on it
// is sent over that transport, so one stroke can be watched arriving once per transport.
//
// One module per concern, under static/compare/:
//   origins.js   which origin each lane uses (two origins for the six-connection limit), the layouts
//   lane.js      one transport's subscriptions, pause and resume; its figures.js and kill.js
//   arrivals.js  the chat lane's table: each message's arrival per transport, and what was lost
//   composer.js  the chat lane's form (as chat/composer.js is the chat panel's)
//   controls.js  the lanes' buttons and the poll interval
//   stats.js     the server's count of open connections
//   timing.js    Resource Timing: how long requests wait for a connection, by origin,
//                protocol and transport; budget.js and protocols.js are its two tables
//   browsers.js  the committed per-engine recovery figures
//   window.js    figures over a sliding window
// and the lanes' feeds, stacked on one time axis, in the timeline (static/timeline.js).

import { $, fetchJson, TRANSPORTS } from '/static/util.js';
import { showClockOffset } from '/static/clock-offset.js';
import { Arrivals } from '/static/compare/arrivals.js';
import { showBrowserRecovery } from '/static/compare/browsers.js';
import { renderBudget } from '/static/compare/budget.js';
import { createComposer } from '/static/compare/composer.js';
import { wireControls } from '/static/compare/controls.js';
import { Lane } from '/static/compare/lane.js';
import {
  describeLaneFeed,
  describeOrigins,
  STARTS_PAUSED,
  STARTS_PAUSED_WHY,
  unavailable,
} from '/static/compare/origins.js';
import { createProtocols } from '/static/compare/protocols.js';
import { followServerCounts } from '/static/compare/stats.js';
import { createTiming } from '/static/compare/timing.js';
import { createTimeline } from '/static/timeline.js';

const RENDER_MS = 500;

const RUN = Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) =>
  b.toString(36).padStart(2, '0'),
).join('');

async function boot() {
  const arrivals = new Arrivals(
    $('arrivals'),
    Object.fromEntries(
      TRANSPORTS.map((t) => [t, document.querySelector(`[data-lost="${t}"]`)]),
    ),
  );
  // One row per lane, in the lanes' order, on one time axis.
  const timeline = createTimeline($('timeline'));
  const lanes = TRANSPORTS.map((t) => new Lane(t, $(`lane-${t}`), arrivals, timeline));
  showClockOffset($('clock-offset'), $('clock-offset-uncertainty'));
  describeOrigins($('origin-note'), $('layout-link'));
  describeLaneFeed($('lanes-note'), $('lanes-link'));
  wireControls(lanes);
  createComposer(arrivals, RUN);
  void followServerCounts(lanes);

  const timing = createTiming();
  const protocols = createProtocols(lanes, timing);
  protocols.start();
  timing.start();
  const budget = $('budget-rows');
  function render() {
    const now = performance.now();
    for (const lane of lanes) lane.render(now);
    arrivals.check(lanes);
    renderBudget(budget, lanes, timing);
    protocols.render(now);
  }
  setInterval(render, RENDER_MS);

  await startFromTheChatsPosition(lanes);
  for (const lane of lanes) {
    const missing = unavailable(lane.transport);
    if (missing) lane.unavailable(missing);
    else if (lane.transport === STARTS_PAUSED) lane.holdBack(STARTS_PAUSED_WHY);
    else lane.start();
  }
  render();
  window.addEventListener('pagehide', () => {
    for (const lane of lanes) lane.stop();
  });
}

// Every chat subscription starts from the same, explicit point: the chat's position now.
// A stream has no cursor until its first event, so without this a lane paused before any
// message arrived would resume from "now" again and skip what was said in between.
async function startFromTheChatsPosition(lanes) {
  try {
    const { next } = (await fetchJson('/poll/chat?rooms=lobby&history=0')).data;
    if (Number.isSafeInteger(next)) for (const lane of lanes) lane.cursors.chat = next;
  } catch {
    // Without it the lanes start from "now" each; only a pause before the first message
    // could then miss one, and the lost count would show it.
  }
}

// The explanations are folded (<details>): a link to a part of one (from another page, or
// #churn-breaks) opens the fold that holds it, so the link lands on what it names.
function openFoldOfTarget() {
  const id = decodeURIComponent(location.hash.slice(1));
  let fold = id ? document.getElementById(id)?.closest('details') : null;
  while (fold) {
    fold.open = true;
    fold = fold.parentElement?.closest('details');
  }
  const target = id ? document.getElementById(id) : null;
  if (target) {
    target.scrollIntoView();
    keepInView(target);
  }
}

// The page above the target grows as it starts (the timeline's rows, the lanes' figures, the
// measured browser recovery), which would push the target out of view: for the first 20 s
// (a slow or busy machine takes more than 8 to start every lane), until the reader scrolls,
// each growth scrolls it back.
function keepInView(target) {
  const until = performance.now() + 20000;
  let reader = false;
  const moved = () => {
    reader = true;
  };
  for (const kind of ['wheel', 'touchstart', 'keydown', 'pointerdown']) {
    window.addEventListener(kind, moved, { once: true, passive: true });
  }
  const watch = new ResizeObserver(() => {
    if (reader || performance.now() > until) {
      watch.disconnect();
      return;
    }
    target.scrollIntoView();
  });
  watch.observe(document.body);
}

void boot();
void showBrowserRecovery();
openFoldOfTarget();
window.addEventListener('hashchange', openFoldOfTarget);
