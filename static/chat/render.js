// The chat log: one line per event, in id order, with relative times kept fresh.
//
// Everything received is rendered with textContent (and attribute values via dataset/title):
// no received string is ever parsed as HTML.

import { el } from '/static/util.js';

/** Lines kept in the log; the oldest go first. */
const MAX_LINES = 500;

const relativeFormat = new Intl.RelativeTimeFormat('en', { numeric: 'always' });
const exactFormat = new Intl.DateTimeFormat(undefined, {
  dateStyle: 'medium',
  timeStyle: 'medium',
});

/** "just now", "2 minutes ago", "3 hours ago", "5 days ago". */
export function relativeTime(ms, now = Date.now()) {
  const seconds = Math.round((now - ms) / 1000);
  if (seconds < 45) return 'just now';
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return relativeFormat.format(-minutes, 'minute');
  const hours = Math.round(minutes / 60);
  if (hours < 24) return relativeFormat.format(-hours, 'hour');
  return relativeFormat.format(-Math.round(hours / 24), 'day');
}

function timeElement(ts) {
  const ms = Number.isFinite(ts) ? ts / 1000 : Date.now();
  const node = el('time', 'chat-time', relativeTime(ms));
  const date = new Date(ms);
  node.dateTime = date.toISOString();
  node.title = exactFormat.format(date);
  node.dataset.ms = String(ms);
  return node;
}

function roomTag(room) {
  return el('span', 'chat-room', `#${room}`);
}

/** The line for one event (`me`: this page's nick, its own lines are marked), or null for
 * a type the chat does not show. */
function lineFor(event, me) {
  const line = el('li', 'chat-line');
  line.dataset.id = String(event.id);
  line.dataset.type = event.type;
  line.append(timeElement(event.ts));
  switch (event.type) {
    case 'message':
      line.dataset.room = String(event.room);
      if (event.from === me) line.classList.add('mine');
      line.append(
        roomTag(event.room),
        el('span', 'chat-from', event.from),
        el('span', 'chat-text', event.text),
      );
      break;
    case 'whisper': {
      if (event.from === me) line.classList.add('mine');
      const tag = el('span', 'chat-tag', 'whisper');
      tag.title = 'A private message: only the two of you see it';
      line.append(
        tag,
        el('span', 'chat-from', event.from),
        el('span', 'chat-arrow', '→'),
        el('span', 'chat-to', event.to),
        el('span', 'chat-text', event.text),
      );
      break;
    }
    case 'join':
    case 'leave':
      line.dataset.room = String(event.room);
      line.append(
        roomTag(event.room),
        el('span', 'chat-notice', `${event.nick} ${event.type === 'join' ? 'joined' : 'left'}`),
      );
      break;
    case 'rename':
      line.append(el('span', 'chat-notice', `${event.from} is now known as ${event.nick}`));
      break;
    case 'gap':
      line.append(
        el(
          'span',
          'chat-notice',
          `Some older messages could not be replayed: the server resumed at event ${event.resumed_from} (after ${event.after}).`,
        ),
      );
      break;
    default:
      return null;
  }
  return line;
}

const idOf = (line) => Number(line.dataset.id);

/** The log in the <ol> `log`: show(), refreshTimes(), oldestMessage(). */
export function createLog(log) {
  const lines = new Map(); // event id → its line in the log

  /** Puts one event in the log in id order, once. Returns true if it was added. */
  function insert(event, me) {
    if (!Number.isSafeInteger(event?.id) || lines.has(event.id)) return false;
    const line = lineFor(event, me);
    if (!line) return false;
    lines.set(event.id, line);
    // Almost always the newest: an append. Older ones (history, reopened rooms) walk back.
    let after = log.lastElementChild;
    while (after && idOf(after) > event.id) after = after.previousElementSibling;
    if (after) after.after(line);
    else log.prepend(line);
    return true;
  }

  function trim() {
    while (lines.size > MAX_LINES && log.firstElementChild) {
      const first = log.firstElementChild;
      lines.delete(idOf(first));
      first.remove();
    }
  }

  const atBottom = () => log.scrollHeight - log.scrollTop - log.clientHeight < 40;

  return {
    /** Adds events (live or fetched), keeping the reader's place unless they were at the
     * end (or `me` just spoke). Returns how many were new. */
    show(events, { older = false, me = '' } = {}) {
      const follow = atBottom();
      const before = log.scrollHeight;
      let added = 0;
      for (const event of events) if (insert(event, me)) added += 1;
      if (added === 0) return 0;
      if (!older) trim();
      if (older) {
        log.scrollTop += log.scrollHeight - before; // older lines above: stay on what was read
      } else if (follow || (me && events.some((e) => e.from === me))) {
        log.scrollTop = log.scrollHeight;
      }
      return added;
    },

    refreshTimes() {
      const now = Date.now();
      for (const node of log.querySelectorAll('time.chat-time')) {
        const text = relativeTime(Number(node.dataset.ms), now);
        if (node.textContent !== text) node.textContent = text;
      }
    },

    /** The id of the oldest message of `room` in the log, or null. */
    oldestMessage(room) {
      for (const line of log.querySelectorAll('.chat-line[data-type="message"]')) {
        // The log is in id order: the first is the oldest.
        if (line.dataset.room === room) return idOf(line);
      }
      return null;
    },
  };
}
