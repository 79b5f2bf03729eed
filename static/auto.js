// The automatic-fallback page: negotiate a transport with fallback.js, say which one was
// chosen and why the better ones were not, then run the clock over it.

import { $, el, transportName } from '/static/util.js';
import { connect } from '/static/clients/index.js';
import { createClock } from '/static/clock.js';
import { ORDER, negotiate } from '/static/fallback.js';

const clock = createClock($('clock'));
const stepsEl = $('auto-steps');
const chosenEl = $('auto-chosen');
const stateEl = $('auto-state');
let client = null;
let running = false;

// "Block on this page": one checkbox per transport of the fallback chain, in its order, so
// the page lists the chain from fallback.js (and the transports from the server's facts.js).
for (const t of ORDER) {
  const box = document.createElement('input');
  box.type = 'checkbox';
  box.id = `block-${t}`;
  const label = el('label');
  label.append(box, document.createTextNode(` ${transportName(t)}`));
  $('block-list').append(label, document.createTextNode(' '));
}

function blocked() {
  return new Set(ORDER.filter((t) => $(`block-${t}`).checked));
}

function showStep(step) {
  const li = document.createElement('li');
  li.className = step.ok ? 'auto-step ok' : 'auto-step fail';
  li.dataset.transport = step.transport;
  const name = document.createElement('strong');
  name.textContent = transportName(step.transport);
  li.append(name, document.createTextNode(step.ok ? ` — works (${step.ms} ms)` : ` — ${step.why} (${step.ms} ms)`));
  stepsEl.append(li);
}

async function run() {
  if (running) return;
  running = true;
  client?.stop();
  client = null;
  stepsEl.replaceChildren();
  chosenEl.textContent = '…';
  chosenEl.dataset.transport = '';
  stateEl.textContent = 'negotiating';
  const timeoutMs = Number($('auto-timeout').value) || 3000;
  const { transport } = await negotiate('clock', { blocked: blocked(), timeoutMs, onStep: showStep });
  running = false;
  if (!transport) {
    chosenEl.textContent = 'none: every transport failed';
    stateEl.textContent = 'no transport';
    return;
  }
  chosenEl.textContent = transport;
  chosenEl.dataset.transport = transport;
  client = connect(transport, 'clock', {
    onEvent(event) {
      if (event.type === 'tick') clock.show(event);
    },
    onState(text) {
      stateEl.textContent = `${transportName(transport)}: ${text}`;
    },
  });
}

$('auto-retry').addEventListener('click', () => run());
run();
