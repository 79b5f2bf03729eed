// "This page in three browsers": the committed per-engine recovery figures
// (results/browsers/recovery.json, written by scripts/browser-results.sh from the browser test
// that kills each lane): one row per transport, one column per engine, the median of the runs
// and their range.

import { $, formatMs, transportTitle, TRANSPORTS } from '/static/util.js';

const ENGINE_ORDER = ['chromium', 'firefox', 'webkit'];

/** Fills the #browser-recovery table from the committed results. */
export async function showBrowserRecovery() {
  const table = $('browser-recovery');
  if (!table) return;
  const note = $('browser-recovery-note');
  let data;
  try {
    const res = await fetch('/results/browsers/recovery.json', { cache: 'no-cache' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    data = await res.json();
  } catch (err) {
    note.textContent = `Could not read /results/browsers/recovery.json (${err.message}).`;
    return;
  }
  const engines = ENGINE_ORDER.filter((e) => data.engines?.[e]);
  table.querySelector('thead tr').replaceChildren(...headCells(data, engines));
  table.querySelector('tbody').replaceChildren(...TRANSPORTS.map((t) => transportRow(data, engines, t)));
  note.textContent = `${data.what} Command: ${data.command}. Machine: ${data.machine}.`;
}

/** The corner, then one column per engine with its browser and number of runs. */
function headCells(data, engines) {
  const corner = document.createElement('th');
  corner.scope = 'col';
  corner.textContent = 'transport';
  return [
    corner,
    ...engines.map((e) => {
      const th = document.createElement('th');
      th.scope = 'col';
      th.dataset.engine = e;
      th.textContent = `${data.engines[e].browser} (${data.engines[e].runs.length} runs)`;
      return th;
    }),
  ];
}

/** One transport's row: per engine, the median recovery of the runs and their range. */
function transportRow(data, engines, t) {
  const tr = document.createElement('tr');
  const th = document.createElement('th');
  th.scope = 'row';
  th.textContent = transportTitle(t);
  tr.append(th);
  for (const e of engines) {
    const values = data.engines[e].runs.map((r) => r[t]?.ms).filter(Number.isFinite).sort((a, b) => a - b);
    const td = document.createElement('td');
    td.dataset.engine = e;
    td.dataset.transport = t;
    // A transport no committed run holds (one added after the run) says so, not a dash; one
    // that other engines' runs hold but this engine's do not (WebTransport in WebKitGTK, which
    // has none) says that.
    const held = (engine) => data.engines[engine].runs.some((r) => r[t] !== undefined);
    td.textContent = !engines.some(held)
      ? 'not measured yet'
      : !held(e)
        ? 'not in this engine\u2019s runs'
        : values.length === 0
        ? '–'
        : values.length === 1
          ? formatMs(values[0])
          : `${formatMs(values[Math.floor(values.length / 2)])} (${formatMs(values[0])}–${formatMs(values[values.length - 1])})`;
    tr.append(td);
  }
  return tr;
}
