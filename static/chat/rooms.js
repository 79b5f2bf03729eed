// The rooms this page follows: the room picker, the "Your rooms" list with its leave buttons,
// joining a room (with the rooms others are in as suggestions) and leaving one. Rendered with
// textContent only.

import * as api from '/static/chat/api.js';
import { explain } from '/static/chat/error.js';
import { NAME } from '/static/chat/name.js';
import { LIMITS } from '/static/facts.js';
import { el } from '/static/util.js';

/** The server follows at most this many rooms per subscription. */
const MAX_ROOMS = LIMITS.roomsPerSubscription;

/** The rooms part of the chat panel; `chat` is the panel (see chat.js). */
export function createRooms(chat) {
  const { ui, status } = chat;
  let rooms = ['lobby'];

  function render() {
    const selected = ui.roomSelect.value;
    ui.roomSelect.replaceChildren(
      ...rooms.map((room) => {
        const option = el('option', '', `#${room}`);
        option.value = room;
        return option;
      }),
    );
    ui.roomSelect.value = rooms.includes(selected) ? selected : rooms[0];
    ui.roomsList.replaceChildren(...rooms.map((room) => roomItem(room, rooms.length > 1)));
  }

  async function join() {
    const room = ui.newRoom.value.trim().replace(/^#/, '');
    if (!NAME.test(room)) {
      status.show(explain('invalid_room'), 'error');
      return;
    }
    ui.newRoom.value = '';
    if (!rooms.includes(room)) {
      if (rooms.length >= MAX_ROOMS) {
        status.show(`At most ${MAX_ROOMS} rooms at once: leave one first.`, 'error');
        return;
      }
      rooms.push(room);
      render();
      chat.subscription.open();
      await chat.history.catchUp(room);
    }
    ui.roomSelect.value = room;
    status.show(`Following #${room}; messages you send go there.`);
    chat.presence.schedule();
  }

  function leave(room) {
    if (rooms.length <= 1 || !rooms.includes(room)) return;
    rooms = rooms.filter((r) => r !== room);
    render();
    chat.subscription.open();
    chat.presence.schedule();
    status.show(`Left #${room}.`);
  }

  /** Rooms others are in, offered when joining one. */
  async function suggest() {
    const answer = await api.rooms();
    if (!answer.ok || !Array.isArray(answer.data?.rooms)) return;
    ui.roomOptions.replaceChildren(
      ...answer.data.rooms.map(({ room, online }) => {
        const option = el('option');
        option.value = String(room);
        option.label = `${online} online`;
        return option;
      }),
    );
  }

  ui.roomsList.addEventListener('click', (e) => {
    const button = e.target.closest('.chat-room-leave');
    if (button) leave(button.dataset.room);
  });
  ui.join.addEventListener('submit', (e) => {
    e.preventDefault();
    void join();
  });
  ui.newRoom.addEventListener('focus', () => void suggest());
  render();

  return {
    /** The rooms followed, for the subscription's `rooms=`. */
    get list() {
      return rooms;
    },

    /** The room chosen in the picker (where messages go, whose online list shows). */
    get selected() {
      return ui.roomSelect.value || 'lobby';
    },
  };
}

/** One followed room, with a leave button unless it is the only one. */
function roomItem(room, leavable) {
  const item = el('li', 'chat-room-item');
  item.append(el('span', 'chat-room', `#${room}`));
  if (leavable) {
    const leave = el('button', 'chat-room-leave', '×');
    leave.type = 'button';
    leave.dataset.room = room;
    leave.title = `Leave #${room}`;
    leave.setAttribute('aria-label', `Leave #${room}`);
    item.append(leave);
  }
  return item;
}
