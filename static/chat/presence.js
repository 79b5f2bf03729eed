// Who is online in the chosen room (as src/chat/presence.rs): the online list, refreshed from
// the server when presence changes, and the whisper suggestions. Rendered with textContent
// only.

import * as api from '/static/chat/api.js';
import { el } from '/static/util.js';

const USERS_DEBOUNCE_MS = 250;

/** The online list of the chat panel; `chat` is the panel (see chat.js). */
export function createPresence(chat) {
  const { ui, status } = chat;
  let timer = 0;
  let asked = 0;
  let running = false;

  /** Refreshes the online list soon; presence events often come in bursts. */
  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, USERS_DEBOUNCE_MS);
  }

  async function refresh() {
    const room = chat.rooms.selected;
    const ask = ++asked;
    const answer = await api.users(room);
    // A later refresh (or a room change) overtook this one: its answer is stale.
    if (ask !== asked || !running || !answer.ok) return;
    const nicks = Array.isArray(answer.data?.users) ? answer.data.users.map(String) : [];
    show(room, nicks, chat.session.me);
  }

  /** Who is online in `room`; `me` is marked and left out of the whisper suggestions. */
  function show(room, nicks, me) {
    ui.usersRoom.textContent = `#${room}`;
    ui.usersCount.textContent = String(nicks.length);
    ui.usersList.replaceChildren(...nicks.map((nick) => userItem(nick, me)));
    if (nicks.length === 0) ui.usersList.append(el('li', 'chat-empty', 'nobody yet'));
    ui.nickList.replaceChildren(
      ...nicks
        .filter((nick) => nick !== me)
        .map((nick) => {
          const option = el('option');
          option.value = nick;
          return option;
        }),
    );
  }

  /** This page's nick changed: mark it in the online list. */
  function markMe(nick) {
    for (const button of ui.usersList.querySelectorAll('.chat-user')) {
      button.classList.toggle('me', button.dataset.nick === nick);
    }
  }

  /** An event from the subscription: a rename, or a join or leave of the room shown, changes
   * the list. */
  function onEvent(event) {
    const shown = (event.type === 'join' || event.type === 'leave') && event.room === ui.roomSelect.value;
    if (event.type === 'rename' || shown) schedule();
  }

  ui.roomSelect.addEventListener('change', schedule);
  ui.usersList.addEventListener('click', (e) => {
    const button = e.target.closest('.chat-user');
    if (!button) return;
    if (button.dataset.nick === chat.session.me) {
      status.show('That is you: pick someone else to whisper to.');
      return;
    }
    chat.composer.whisperTo(button.dataset.nick);
  });

  return {
    schedule,
    markMe,
    onEvent,
    start() {
      running = true;
      schedule();
    },
    stop() {
      running = false;
      clearTimeout(timer);
    },
  };
}

/** One nick of the online list: a button that picks them as the whisper recipient. */
function userItem(nick, me) {
  const item = el('li');
  const button = el('button', 'chat-user', nick);
  button.type = 'button';
  button.dataset.nick = nick;
  button.classList.toggle('me', nick === me);
  button.title = nick === me ? 'You' : `Whisper to ${nick}`;
  item.append(button);
  return item;
}
