// The server's view, live: /api/stats/stream (Server-Sent Events, one snapshot a second)
// drawn as small time-series charts over the last three minutes, on plain canvas.

import { TRANSPORT_COLORS } from '/static/facts.js';
import { $, TRANSPORTS } from '/static/util.js';

const WINDOW = 180; // samples kept: one a second
// Each transport's colour is the server's (names::Transport::color); the process's own series is grey.
const COLORS = { ...TRANSPORT_COLORS, server: '#444' };

/** Each chart: a title, a unit, and how to read one series' value from two snapshots. */
const CHARTS = [
  { id: 'requests', title: 'Requests/s', per: (a, b, t, dt) => (b.transports[t].requests - a.transports[t].requests) / dt },
  { id: 'open', title: 'Open connections', per: (a, b, t) => b.transports[t].open },
  { id: 'bytes', title: 'Bytes sent/s', per: (a, b, t, dt) => (b.transports[t].bytes_sent - a.transports[t].bytes_sent) / dt },
  { id: 'events', title: 'Events sent/s', per: (a, b, t, dt) => (b.transports[t].events_sent - a.transports[t].events_sent) / dt },
  {
    id: 'cpu',
    title: 'Process CPU (% of one core)',
    single: (a, b, dt) => (100 * (b.process.cpu_user_s + b.process.cpu_system_s - a.process.cpu_user_s - a.process.cpu_system_s)) / dt,
  },
  { id: 'rss', title: 'Resident memory (MiB)', single: (a, b) => b.process.rss_bytes / 2 ** 20 },
];

/** What the CPU and memory charts say where the server does not send those figures: to a
 * machine other than its own (not loopback) without the operator's token, `/api/stats`
 * carries the per-transport figures only (docs/API.md, Operations). */
const OPERATOR_ONLY = 'not sent to this machine: the server shows its CPU and memory only on its own machine (loopback) or with its operator token';

const snapshots = [];
const series = Object.fromEntries(CHARTS.map((c) => [c.id, []])); // [{t, values: {name: v}}]

function record(snapshot) {
  const previous = snapshots.at(-1);
  snapshots.push(snapshot);
  if (snapshots.length > WINDOW + 1) snapshots.shift();
  if (!previous) return;
  const dt = Math.max(snapshot.uptime_s - previous.uptime_s, 1e-3);
  for (const chart of CHARTS) {
    let values;
    if (!chart.single) values = Object.fromEntries(TRANSPORTS.map((t) => [t, chart.per(previous, snapshot, t, dt)]));
    else if (previous.process && snapshot.process) values = { server: chart.single(previous, snapshot, dt) };
    else values = {};
    series[chart.id].push({ t: snapshot.uptime_s, values });
    if (series[chart.id].length > WINDOW) series[chart.id].shift();
  }
}

function format(v) {
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return v >= 10 || v === 0 ? v.toFixed(0) : v.toFixed(1);
}

function draw(chart) {
  const canvas = $(`chart-${chart.id}`);
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  const pad = { left: 44, right: 8, top: 8, bottom: 18 };
  ctx.clearRect(0, 0, width, height);
  const points = series[chart.id];
  const names = chart.single ? ['server'] : TRANSPORTS;
  const max = Math.max(1, ...points.flatMap((p) => names.map((n) => p.values[n] ?? 0)));
  const x = (i) => pad.left + ((width - pad.left - pad.right) * i) / Math.max(WINDOW - 1, 1);
  const y = (v) => height - pad.bottom - ((height - pad.top - pad.bottom) * v) / max;
  // Axes and scale.
  ctx.strokeStyle = '#ccc';
  ctx.fillStyle = '#555';
  ctx.font = '11px system-ui, sans-serif';
  ctx.beginPath();
  ctx.moveTo(pad.left, pad.top);
  ctx.lineTo(pad.left, height - pad.bottom);
  ctx.lineTo(width - pad.right, height - pad.bottom);
  ctx.stroke();
  ctx.fillText(format(max), 2, pad.top + 10);
  ctx.fillText('0', 2, height - pad.bottom);
  ctx.fillText(`last ${WINDOW / 60} min`, pad.left + 4, height - 4);
  // One line per series, right-aligned so the newest sample is at the right edge.
  const offset = WINDOW - points.length;
  for (const name of names) {
    ctx.strokeStyle = COLORS[name];
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    points.forEach((p, i) => {
      const px = x(offset + i);
      const py = y(p.values[name] ?? 0);
      if (i === 0) ctx.moveTo(px, py);
      else ctx.lineTo(px, py);
    });
    ctx.stroke();
  }
  // The latest values, as text (and for tests and screen readers).
  const latest = points.at(-1)?.values ?? {};
  const withheld = chart.single && snapshots.length > 0 && !snapshots.at(-1).process;
  $(`latest-${chart.id}`).textContent = withheld
    ? OPERATOR_ONLY
    : names.map((n) => `${n} ${format(latest[n] ?? 0)}`).join(' · ');
}

function render() {
  for (const chart of CHARTS) draw(chart);
  $('dash-samples').textContent = String(snapshots.length);
  const last = snapshots.at(-1);
  if (last) $('dash-uptime').textContent = `${last.uptime_s.toFixed(0)} s`;
}

function build() {
  const grid = $('charts');
  for (const chart of CHARTS) {
    const figure = document.createElement('figure');
    figure.className = 'card dash-chart';
    const caption = document.createElement('figcaption');
    caption.textContent = chart.title;
    const canvas = document.createElement('canvas');
    canvas.id = `chart-${chart.id}`;
    canvas.width = 420;
    canvas.height = 160;
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', chart.title);
    const latest = document.createElement('p');
    latest.className = 'note';
    latest.id = `latest-${chart.id}`;
    figure.append(caption, canvas, latest);
    grid.append(figure);
  }
  const legend = $('legend');
  for (const name of [...TRANSPORTS, 'server']) {
    const item = document.createElement('span');
    item.className = 'legend-item';
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = COLORS[name];
    item.append(swatch, document.createTextNode(name));
    legend.append(item);
  }
}

build();
const source = new EventSource('/api/stats/stream');
source.addEventListener('open', () => ($('dash-state').textContent = 'live'));
source.addEventListener('error', () => ($('dash-state').textContent = 'reconnecting…'));
source.addEventListener('stats', (e) => {
  record(JSON.parse(e.data));
  render();
});
