// The chat lane: one row per message, one cell per transport with that transport's delivery
// latency, and per transport the messages its cursor passed without delivering (lost).

import { formatMs, TRANSPORTS } from '/static/util.js';

/** Rows kept in the table; the oldest go first. */
const MAX_ROWS = 30;

/** The chat lane: one row per message, one cell per transport. */
export class Arrivals {
  constructor(tbody, lost) {
    this.tbody = tbody;
    this.lostCells = lost;
    this.rows = new Map(); // id → { tr, cells, arrived: Set }
    this.lost = Object.fromEntries(TRANSPORTS.map((t) => [t, 0]));
  }

  /** The row of message `event.id`, added (newest first, MAX_ROWS kept) if it is new. */
  row(event) {
    let row = this.rows.get(event.id);
    if (row) return row;
    row = newRow(event);
    this.rows.set(event.id, row);
    while (this.rows.size > MAX_ROWS) {
      const oldest = Math.min(...this.rows.keys());
      this.rows.get(oldest).tr.remove();
      this.rows.delete(oldest);
    }
    // Newest first.
    const order = [...this.rows.keys()].sort((a, b) => b - a);
    this.tbody.replaceChildren(...order.map((id) => this.rows.get(id).tr));
    return row;
  }

  /** A message we sent was stored as `id`: it must now arrive five times. */
  expect(id, from, text) {
    this.row({ id, from, text });
  }

  arrive(transport, event, latency) {
    const row = this.row(event);
    if (!row.from.textContent) row.from.textContent = event.from ?? '';
    if (!row.text.textContent) row.text.textContent = event.text ?? '';
    row.arrived.add(transport);
    const td = row.cells[transport];
    td.textContent = formatMs(latency);
    td.dataset.state = 'arrived';
  }

  /** Marks messages a transport's cursor passed without delivering them. */
  check(lanes) {
    for (const lane of lanes) {
      const cursor = lane.chatCursor;
      if (cursor === null) continue;
      for (const [id, row] of this.rows) {
        const td = row.cells[lane.transport];
        if (id <= cursor && !row.arrived.has(lane.transport) && td.dataset.state !== 'lost') {
          td.dataset.state = 'lost';
          td.textContent = 'lost';
          this.lost[lane.transport] += 1;
        }
      }
      const cell = this.lostCells[lane.transport];
      cell.textContent = String(this.lost[lane.transport]);
      cell.classList.toggle('bad', this.lost[lane.transport] > 0);
    }
  }
}

/** A message's row: id, sender, text, and a pending cell per transport. */
function newRow(event) {
  const tr = document.createElement('tr');
  tr.dataset.id = String(event.id);
  const cell = (text, className) => {
    const td = document.createElement('td');
    td.textContent = text;
    if (className) td.className = className;
    tr.append(td);
    return td;
  };
  cell(String(event.id));
  const from = cell(event.from ?? '');
  const text = cell(event.text ?? '', 'message-text');
  const cells = {};
  for (const transport of TRANSPORTS) {
    cells[transport] = cell('…');
    cells[transport].dataset.transport = transport;
    cells[transport].dataset.state = 'pending';
  }
  return { tr, cells, from, text, arrived: new Set() };
}
