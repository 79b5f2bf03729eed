// The log's past: older messages of the chosen room on request ("Load older messages"), and
// the recent ones of a room just joined, from GET /api/chat/history.

import * as api from '/static/chat/api.js';
import { explain } from '/static/chat/error.js';
import { plural } from '/static/util.js';

/** Messages fetched per "Load older messages", and for a room just joined. */
const OLDER_BATCH = 20;

/** The history part of the chat panel; `chat` is the panel (see chat.js). */
export function createHistory(chat) {
  const { ui, status, log } = chat;

  async function loadOlder() {
    const room = chat.rooms.selected;
    const before = log.oldestMessage(room);
    ui.older.disabled = true;
    const answer = await api.history(room, { before, limit: OLDER_BATCH });
    ui.older.disabled = false;
    if (!answer.ok) {
      status.show(explain(answer.code, answer.message), 'error');
      return;
    }
    const events = Array.isArray(answer.data?.events) ? answer.data.events : [];
    const added = log.show(events, { older: true, me: chat.session.me });
    status.show(
      added === 0
        ? `No older messages in #${room}.`
        : `Loaded ${plural(added, 'older message')} of #${room}.`,
    );
  }

  /** A room just joined: the subscription resumes from its cursor, so it replays nothing of
   * the new room; its recent messages come from here instead. */
  async function catchUp(room) {
    const answer = await api.history(room, { limit: OLDER_BATCH });
    if (answer.ok && Array.isArray(answer.data?.events)) {
      log.show(answer.data.events, { older: true, me: chat.session.me });
    }
  }

  ui.older.addEventListener('click', () => void loadOlder());

  return { catchUp };
}
