// The chat panel of the transport demos. createChat(root, options) wires the elements under
// `root` (the #chat section) and receives the `chat` feed over the page's own transport.
//
//   const chat = createChat(root, { transport, panel, interval });
//   chat.start();            // check the session, subscribe, start refreshing relative times
//   chat.stop();             // close the subscription and cancel every timer
//   chat.setInterval(ms);    // short polling: the chat follows the page's poll interval
//
// One module per concern, under static/chat/, named as src/chat/ names the same concern:
//   session.js       who this page is: sign in, rename, sign out, other tabs
//   presence.js      who is online in the chosen room
//   rooms.js         the rooms followed: picker, join, leave
//   composer.js      the message box: sending, whispers, refusals and the rate limit's wait
//   history.js       older messages, and a joined room's recent ones
//   subscription.js  the chat feed over the page's transport, and the WebSocket's frames
//   render.js        the log's lines; api.js, command.js, name.js, error.js: the requests, the
//                    WebSocket commands, the name rule and the refusals in words
// Each is made with the panel (`chat` below) and reaches the others through it when called.
//
// Everything received is rendered with textContent (and attribute values via dataset/title):
// no received string is ever parsed as HTML.

import { TWO_WAY } from '/static/facts.js';
import { $ } from '/static/util.js';
import { createComposer } from '/static/chat/composer.js';
import { createHistory } from '/static/chat/history.js';
import { createPresence } from '/static/chat/presence.js';
import { createLog } from '/static/chat/render.js';
import { createRooms } from '/static/chat/rooms.js';
import { createSession } from '/static/chat/session.js';
import { createSubscription } from '/static/chat/subscription.js';

const RELATIVE_TIME_EVERY_MS = 15_000;

/** The panel's elements, by their ids in demos/_chat.html. */
function elements(root) {
  const byId = (id) => $(id, root);
  return {
    identity: byId('chat-identity'),
    nick: byId('chat-nick'),
    signIn: byId('chat-signin'),
    signOut: byId('chat-signout'),
    me: byId('chat-me'),
    older: byId('chat-older'),
    log: byId('chat-log'),
    compose: byId('chat-compose'),
    roomSelect: byId('chat-room'),
    to: byId('chat-to'),
    toClear: byId('chat-to-clear'),
    text: byId('chat-text'),
    send: byId('chat-send'),
    status: byId('chat-status'),
    usersList: byId('chat-users'),
    usersRoom: byId('chat-users-room'),
    usersCount: byId('chat-users-count'),
    nickList: byId('chat-nick-list'),
    roomsList: byId('chat-rooms'),
    roomOptions: byId('chat-room-list'),
    join: byId('chat-join'),
    newRoom: byId('chat-new-room'),
    conn: byId('chat-conn'),
  };
}

/** The status line under the message box: one sentence and its kind (info, ok, error,
 * waiting), which styles it. */
function statusLine(node) {
  return {
    show(text, kind = 'info') {
      node.textContent = text;
      node.dataset.kind = kind;
    },
    get kind() {
      return node.dataset.kind;
    },
    get text() {
      return node.textContent;
    },
  };
}

// options: transport, panel (a createPanel to report into), interval (short polling), and
// `connect` options passed through to the subscription: `params` (extra query parameters,
// e.g. a diagnostic `tag`) and `origin` (another origin to subscribe from); `onTimeline`, the
// subscription's row of the page's timeline (timeline.js), if any.
export function createChat(root, { transport, panel, interval, params = {}, origin, onTimeline } = {}) {
  const ui = elements(root);
  const chat = {
    root,
    ui,
    // Commands go on the transport's own connection (WebSocket frames, WebTransport lines).
    twoWay: TWO_WAY.includes(transport),
    status: statusLine(ui.status),
    log: createLog(ui.log),
  };
  // Made in this order because each wires its controls and shows its first state when made:
  // the session marks "not signed in" in the online list, so presence comes first.
  chat.rooms = createRooms(chat);
  chat.presence = createPresence(chat);
  chat.composer = createComposer(chat);
  chat.session = createSession(chat);
  chat.history = createHistory(chat);
  chat.subscription = createSubscription(chat, {
    transport,
    panel,
    interval,
    params,
    origin,
    onTimeline,
    onEvent: (event) => receive(chat, event),
  });

  let running = false;
  let clockTimer = 0;
  return {
    start() {
      if (running) return;
      running = true;
      clockTimer = setInterval(chat.log.refreshTimes, RELATIVE_TIME_EVERY_MS);
      chat.session.listen();
      // Subscribed at once: the browser sends the cookie, if any, without waiting for this
      // page to know who it is.
      chat.subscription.open();
      chat.session.greet();
      chat.presence.start();
    },
    stop() {
      running = false;
      chat.session.stopListening();
      clearInterval(clockTimer);
      chat.presence.stop();
      chat.subscription.stop();
    },
    setInterval(ms) {
      chat.subscription.setInterval(ms);
    },
  };
}

/** An event from the subscription: into the log, then to the concerns it changes. */
function receive(chat, event) {
  chat.log.show([event], { me: chat.session.me });
  if (event.type === 'rename') {
    chat.session.onRename(event);
    chat.composer.onRename(event);
  }
  chat.presence.onEvent(event);
}
