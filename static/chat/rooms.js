// Rooms and presence: the rooms this page follows (the room picker and the "Your rooms"
// list) and who is online in the chosen room (the online list and the whisper suggestions).
// Rendered with textContent only.

import { LIMITS } from '/static/facts.js';
import { el } from '/static/util.js';

/** The server follows at most this many rooms per subscription. */
export const MAX_ROOMS = LIMITS.roomsPerSubscription;

/**
 * The rooms and online lists in these elements: roomSelect (<select>), roomsList (<ul>),
 * usersList (<ul>), usersRoom, usersCount, nickList and roomOptions (<datalist>s).
 */
export function createRooms({ roomSelect, roomsList, usersList, usersRoom, usersCount, nickList, roomOptions }) {
  let rooms = ['lobby'];

  function render() {
    const selected = roomSelect.value;
    roomSelect.replaceChildren(
      ...rooms.map((room) => {
        const option = el('option', '', `#${room}`);
        option.value = room;
        return option;
      }),
    );
    roomSelect.value = rooms.includes(selected) ? selected : rooms[0];
    roomsList.replaceChildren(
      ...rooms.map((room) => {
        const item = el('li', 'chat-room-item');
        item.append(el('span', 'chat-room', `#${room}`));
        if (rooms.length > 1) {
          const leave = el('button', 'chat-room-leave', '×');
          leave.type = 'button';
          leave.dataset.room = room;
          leave.title = `Leave #${room}`;
          leave.setAttribute('aria-label', `Leave #${room}`);
          item.append(leave);
        }
        return item;
      }),
    );
  }

  render();

  return {
    /** The rooms followed, for the subscription's `rooms=`. */
    get list() {
      return rooms;
    },

    /** The room chosen in the picker (where messages go, whose online list shows). */
    get selected() {
      return roomSelect.value || 'lobby';
    },

    select(room) {
      roomSelect.value = room;
    },

    has(room) {
      return rooms.includes(room);
    },

    /** Follows one more room; false when MAX_ROOMS are followed already. */
    add(room) {
      if (rooms.length >= MAX_ROOMS) return false;
      rooms.push(room);
      render();
      return true;
    },

    /** Stops following `room`; false when it is the last one or not followed. */
    remove(room) {
      if (rooms.length <= 1 || !rooms.includes(room)) return false;
      rooms = rooms.filter((r) => r !== room);
      render();
      return true;
    },

    /** Who is online in `room`; `me` is marked and left out of the whisper suggestions. */
    showUsers(room, nicks, me) {
      usersRoom.textContent = `#${room}`;
      usersCount.textContent = String(nicks.length);
      usersList.replaceChildren(
        ...nicks.map((nick) => {
          const item = el('li');
          const button = el('button', 'chat-user', nick);
          button.type = 'button';
          button.dataset.nick = nick;
          button.classList.toggle('me', nick === me);
          button.title = nick === me ? 'You' : `Whisper to ${nick}`;
          item.append(button);
          return item;
        }),
      );
      if (nicks.length === 0) usersList.append(el('li', 'chat-empty', 'nobody yet'));
      nickList.replaceChildren(
        ...nicks
          .filter((nick) => nick !== me)
          .map((nick) => {
            const option = el('option');
            option.value = nick;
            return option;
          }),
      );
    },

    /** This page's nick changed: mark it in the online list. */
    markMe(nick) {
      for (const button of usersList.querySelectorAll('.chat-user')) {
        button.classList.toggle('me', button.dataset.nick === nick);
      }
    },

    /** Rooms others are in, offered when joining one: [{room, online}]. */
    suggest(list) {
      roomOptions.replaceChildren(
        ...list.map(({ room, online }) => {
          const option = el('option');
          option.value = String(room);
          option.label = `${online} online`;
          return option;
        }),
      );
    },
  };
}
