// The chat panel of the transport demos. createChat(root, options) wires the elements under
// `root` (the #chat section) and receives the `chat` feed over the page's own transport with
// clients/index.js's connect(), the same client the clock uses. The requests and commands
// are in chat/api.js, the log in chat/render.js, rooms and the online list in chat/rooms.js;
// this file holds the state that ties them: who this page is, the subscription, sending.
//
//   const chat = createChat(root, { transport, panel, interval });
//   chat.start();            // check the session, subscribe, start refreshing relative times
//   chat.stop();             // close the subscription and cancel every timer
//   chat.setInterval(ms);    // short polling: the chat follows the page's poll interval
//
// Sending: the WebSocket page sends chat frames on its chat socket (`say`, `whisper`, `nick`),
// the HTTP transports POST /api/chat/messages (and PATCH /api/session to rename). Signing in
// and out is HTTP everywhere: the session is an HttpOnly cookie that only a response can set.
//
// The subscription's presence and whisper delivery are bound to the cookie it was opened
// with, and its rooms are in its URL, so signing in or out and joining or leaving a room
// reopen it, resuming from its cursor.
//
// Everything received is rendered with textContent (and attribute values via dataset/title):
// no received string is ever parsed as HTML.

import { $, plural, transportName } from '/static/util.js';
import { connect, nowMicros } from '/static/clients/index.js';
import { serverMicros } from '/static/clock-offset.js';
import * as api from '/static/chat/api.js';
import { createLog } from '/static/chat/render.js';
import { createRooms, MAX_ROOMS } from '/static/chat/rooms.js';
import { ERROR_CODES } from '/static/facts.js';

/** Refusals after which the text goes back into the box, to be sent again. */
const KEEPS_TEXT = new Set([
  ERROR_CODES.rate_limited,
  ERROR_CODES.invalid_text,
  ERROR_CODES.unknown_user,
  ERROR_CODES.unauthorized,
]);

/** Messages replayed when a subscription starts without a cursor (server max 200). */
const HISTORY = 50;
/** Messages fetched per "Load older messages". */
const OLDER_BATCH = 20;
/** Frames kept while the WebSocket (re)connects. */
const MAX_OUTBOX = 20;
const RELATIVE_TIME_EVERY_MS = 15_000;
const USERS_DEBOUNCE_MS = 250;

// options: transport, panel (a createPanel to report into), interval (short polling), and
// `connect` options passed through to the subscription: `params` (extra query parameters,
// e.g. a diagnostic `tag`) and `origin` (another origin to subscribe from).
export function createChat(root, { transport, panel, interval, params = {}, origin } = {}) {
  const byId = (id) => $(id, root);
  const nickForm = byId('chat-identity');
  const nickInput = byId('chat-nick');
  const signInButton = byId('chat-signin');
  const signOutButton = byId('chat-signout');
  const meEl = byId('chat-me');
  const olderButton = byId('chat-older');
  const composeForm = byId('chat-compose');
  const roomSelect = byId('chat-room');
  const toInput = byId('chat-to');
  const toClear = byId('chat-to-clear');
  const textInput = byId('chat-text');
  const sendButton = byId('chat-send');
  const statusEl = byId('chat-status');
  const usersList = byId('chat-users');
  const roomsList = byId('chat-rooms');
  const joinForm = byId('chat-join');
  const newRoomInput = byId('chat-new-room');
  const connEl = byId('chat-conn');
  const log = createLog(byId('chat-log'));
  const rooms = createRooms({
    roomSelect,
    roomsList,
    usersList,
    usersRoom: byId('chat-users-room'),
    usersCount: byId('chat-users-count'),
    nickList: byId('chat-nick-list'),
    roomOptions: byId('chat-room-list'),
  });

  const isWs = transport === 'ws';
  // Events created before the page started are replays (history), not deliveries: their
  // age says nothing about the transport, so they do not count towards the panel's latency.
  const liveSince = nowMicros();

  let client = null;
  let pollInterval = interval;
  let me = '';
  // When this page learned its current nick (µs, this page's clock; compared with `ts` on the
  // server's, clock-offset.js): a `rename` from that nick made later is
  // this session's (nicks are unique among the online), an older one is somebody's past.
  let meSince = 0;
  let renaming = ''; // WebSocket: the nick asked for in a `nick` frame, until confirmed
  let busy = false; // a sign-in, rename or sign-out request is under way
  let outbox = []; // WebSocket frames waiting for the socket to open
  let lastSent = ''; // WebSocket: the text of the last frame, restored if the server refuses it
  // After a rate-limit answer, sends wait until here (performance.now()) instead of asking
  // the server for more refusals.
  let coolUntil = 0;
  let usersTimer = 0;
  let usersAsked = 0;
  let clockTimer = 0;
  let running = false;

  // ---- status line ---------------------------------------------------------------------

  function status(text, kind = 'info') {
    statusEl.textContent = text;
    statusEl.dataset.kind = kind;
  }

  // ---- identity ------------------------------------------------------------------------

  function setMe(nick) {
    me = nick;
    meSince = nowMicros();
    meEl.textContent = nick;
    root.dataset.signedIn = String(Boolean(nick));
    signInButton.textContent = nick ? 'Rename' : 'Sign in';
    signOutButton.disabled = !nick;
    if (nick) nickInput.value = nick;
    rooms.markMe(nick);
  }

  /** Asks the server who this browser is (the cookie is HttpOnly: the page cannot read it). */
  async function checkSession() {
    const answer = await api.getSession();
    if (answer.ok && typeof answer.data?.nick === 'string') {
      api.rememberSignedIn(true);
      if (answer.data.nick !== me) setMe(answer.data.nick);
      return true;
    }
    if (answer.status === 401) {
      api.rememberSignedIn(false);
      if (me) setMe('');
      return false;
    }
    return null; // unknown (network error): change nothing
  }

  /** Another tab of this origin signed in or out (the cookie is shared): follow it. */
  async function onStorage(e) {
    if (e.key !== api.SIGNED_IN_KEY || busy) return;
    const before = me;
    const known = e.newValue === 'yes' ? await checkSession() : false;
    if (known === false && before) {
      signedOutByServer();
      status('Signed out in another tab.');
    } else if (known === true && me !== before) {
      subscribe(); // reopened with the session the other tab made
      scheduleUsers();
      status(`Signed in as ${me} in another tab.`, 'ok');
    }
  }

  async function submitNick() {
    if (busy) return;
    const nick = nickInput.value.trim();
    if (!api.NAME.test(nick)) {
      status(api.explain('invalid_nick'), 'error');
      nickInput.focus();
      return;
    }
    if (me && nick === me) {
      status(`You are already signed in as ${me}.`);
      return;
    }
    if (me && isWs) {
      // Over WebSocket a rename is a frame; the `rename` event that comes back confirms it.
      status(`Renaming to ${nick}…`);
      renaming = nick;
      sendFrame(api.frames.nick(nick));
      return;
    }
    busy = true;
    const answer = me ? await api.rename(nick) : await api.signIn(nick);
    busy = false;
    if (!answer.ok) {
      status(api.explain(answer.code, answer.message, { nick }), 'error');
      if (answer.status === 401) signedOutByServer();
      return;
    }
    const renamed = Boolean(me);
    api.rememberSignedIn(true);
    setMe(typeof answer.data?.nick === 'string' ? answer.data.nick : nick);
    if (renamed) {
      status(`You are now ${me}.`);
    } else {
      status(`Signed in as ${me}.`, 'ok');
      subscribe(); // the new subscription carries the session cookie
    }
    scheduleUsers();
  }

  async function signOut() {
    if (busy || !me) return;
    busy = true;
    // Stopped first, so the server's closing of this session's streams and sockets is not
    // mistaken for a connection problem; reopened below without the session.
    client?.stop();
    const answer = await api.signOut();
    busy = false;
    // 401: the session had already ended; either way this page is signed out now.
    const signedOut = answer.ok || answer.status === 401;
    if (signedOut) {
      api.rememberSignedIn(false);
      setMe('');
      outbox = [];
    }
    subscribe();
    scheduleUsers();
    if (signedOut) status('Signed out.');
    else status(api.explain(answer.code, answer.message), 'error');
  }

  /** The server no longer knows this session (idle timeout, signed out in another tab). */
  function signedOutByServer() {
    api.rememberSignedIn(false);
    if (!me) return;
    setMe('');
    outbox = [];
    subscribe();
    scheduleUsers();
  }

  // ---- sending -------------------------------------------------------------------------

  /** WebSocket: sends a frame now, or as soon as the chat socket is open. */
  function sendFrame(frame) {
    const text = JSON.stringify(frame);
    if (client?.send(text)) return;
    if (outbox.length >= MAX_OUTBOX) {
      status('The chat socket is not open and too much is waiting; try again later.', 'error');
      return;
    }
    outbox.push(text);
    status('The chat socket is connecting; sending as soon as it is open…', 'waiting');
  }

  function flushOutbox() {
    while (outbox.length > 0 && client?.send(outbox[0])) outbox.shift();
    if (outbox.length === 0 && statusEl.dataset.kind === 'waiting') status('');
  }

  async function send() {
    const text = textInput.value;
    const to = toInput.value.trim();
    const room = rooms.selected;
    if (!me) {
      status('Sign in first: pick a nick above.', 'error');
      nickInput.focus();
      return;
    }
    if (!text.trim()) {
      status(api.explain('invalid_text'), 'error');
      return;
    }
    const wait = Math.ceil((coolUntil - performance.now()) / 1000);
    if (wait > 0) {
      status(api.explain('rate_limited', '', { retryAfter: wait }), 'error');
      return;
    }
    if (to && !api.NAME.test(to)) {
      status(
        `The whisper recipient must be a nick: ${api.NAME_RULE}.`,
        'error',
      );
      return;
    }
    // The message shows when it comes back through the subscription, like everyone's:
    // nothing is echoed here, so what the log shows is what the server stored.
    textInput.value = '';
    if (isWs) {
      lastSent = text;
      sendFrame(to ? api.frames.whisper(to, text) : api.frames.say(room, text));
      return;
    }
    const answer = await api.postMessage({ room, to, text });
    if (answer.ok) {
      if (statusEl.dataset.kind === 'error') status('');
      return;
    }
    if (!textInput.value) textInput.value = text; // not lost: try again
    if (answer.retryAfter) coolUntil = performance.now() + answer.retryAfter * 1000;
    status(api.explain(answer.code, answer.message, { retryAfter: answer.retryAfter, to }), 'error');
    if (answer.status === 401) signedOutByServer();
  }

  /** WebSocket: an `error` event answering one of our frames. */
  async function onNotice(event) {
    const code = typeof event.code === 'string' ? event.code : 'error';
    const message = typeof event.message === 'string' ? event.message : '';
    if (KEEPS_TEXT.has(code)) {
      if (!textInput.value && lastSent) textInput.value = lastSent;
    }
    // The WebSocket error event has no Retry-After: the seconds are in its message.
    const retryAfter = Number(/retry in (\d+) s/.exec(message)?.[1]) || null;
    if (code === 'rate_limited' && retryAfter) coolUntil = performance.now() + retryAfter * 1000;
    status(
      api.explain(code, message, {
        retryAfter,
        nick: nickInput.value.trim(),
        to: toInput.value.trim(),
      }),
      'error',
    );
    if (code === 'unauthorized') {
      const known = await checkSession();
      if (known === true) {
        // Signed in, but this socket was opened before: reopen it with the cookie.
        subscribe();
        status('The chat socket was reconnected with your session: send again.', 'error');
      } else if (known === false) {
        signedOutByServer();
      }
    }
  }

  // ---- the log -------------------------------------------------------------------------

  /** An event from the subscription. */
  function receive(event) {
    log.show([event], { me });
    if (event.type === 'rename') {
      // Ours if it renames our nick to the one we asked for (WebSocket), or was made since
      // we got our nick (e.g. a rename from another tab of this browser).
      const ours =
        me && event.from === me && (event.nick === renaming || event.ts >= serverMicros(meSince));
      if (ours) {
        renaming = '';
        setMe(String(event.nick));
        status(`You are now ${me}.`);
      }
      if (toInput.value.trim() === event.from) {
        toInput.value = String(event.nick);
        composeMode();
      }
      scheduleUsers();
    } else if (
      (event.type === 'join' || event.type === 'leave') &&
      event.room === roomSelect.value
    ) {
      scheduleUsers();
    }
  }

  async function loadOlder() {
    const room = rooms.selected;
    const before = log.oldestMessage(room);
    olderButton.disabled = true;
    const answer = await api.history(room, { before, limit: OLDER_BATCH });
    olderButton.disabled = false;
    if (!answer.ok) {
      status(api.explain(answer.code, answer.message), 'error');
      return;
    }
    const events = Array.isArray(answer.data?.events) ? answer.data.events : [];
    const added = log.show(events, { older: true, me });
    status(
      added === 0
        ? `No older messages in #${room}.`
        : `Loaded ${plural(added, 'older message')} of #${room}.`,
    );
  }

  // ---- online list -----------------------------------------------------------------------

  /** Refreshes the online list soon; presence events often come in bursts. */
  function scheduleUsers() {
    clearTimeout(usersTimer);
    usersTimer = setTimeout(refreshUsers, USERS_DEBOUNCE_MS);
  }

  async function refreshUsers() {
    const room = rooms.selected;
    const asked = ++usersAsked;
    const answer = await api.users(room);
    // A later refresh (or a room change) overtook this one: its answer is stale.
    if (asked !== usersAsked || !running || !answer.ok) return;
    const nicks = Array.isArray(answer.data?.users) ? answer.data.users.map(String) : [];
    rooms.showUsers(room, nicks, me);
  }

  // ---- rooms ---------------------------------------------------------------------------

  async function joinRoom() {
    const room = newRoomInput.value.trim().replace(/^#/, '');
    if (!api.NAME.test(room)) {
      status(api.explain('invalid_room'), 'error');
      return;
    }
    newRoomInput.value = '';
    if (!rooms.has(room)) {
      if (!rooms.add(room)) {
        status(`At most ${MAX_ROOMS} rooms at once: leave one first.`, 'error');
        return;
      }
      subscribe();
      // The subscription resumes from its cursor, so it replays nothing of the new room:
      // its recent messages come from the history API instead.
      const answer = await api.history(room, { limit: OLDER_BATCH });
      if (answer.ok && Array.isArray(answer.data?.events)) {
        log.show(answer.data.events, { older: true, me });
      }
    }
    rooms.select(room);
    status(`Following #${room}; messages you send go there.`);
    scheduleUsers();
  }

  function leaveRoom(room) {
    if (!rooms.remove(room)) return;
    subscribe();
    scheduleUsers();
    status(`Left #${room}.`);
  }

  async function suggestRooms() {
    const answer = await api.rooms();
    if (!answer.ok || !Array.isArray(answer.data?.rooms)) return;
    rooms.suggest(answer.data.rooms);
  }

  // ---- the subscription ------------------------------------------------------------------

  const handlers = {
    // Same transport as the clock: its requests, bytes and events count in the same panel.
    onRequest: () => panel?.onRequest(),
    onBytes: (n) => panel?.onBytes(n),
    onBytesUp: (n) => panel?.onBytesUp?.(n),
    onFramingDown: (n) => panel?.onFramingDown?.(n),
    onEvent(event, receivedAt) {
      panel?.onEvent(event, receivedAt, { liveSince });
      receive(event);
    },
    onNotice(event) {
      panel?.onNotice(event);
      void onNotice(event);
    },
    // The panel's state and details stay the clock's; the chat's connection shows here.
    onState(text, phase) {
      connEl.textContent = `Chat over ${transportName(transport)}: ${text}`;
      if (phase === 'open') flushOutbox();
    },
    onDetail(detail) {
      // The close codes the server gives a session's sockets when the session ends: 4000
      // after --idle-timeout, 1000 "logged out" (e.g. from another tab; this page stops its
      // own socket before it signs out, so that close is never reported here).
      const close = typeof detail.lastClose === 'string' ? detail.lastClose : '';
      if (me && /^(4000 |1000 logged out)/.test(close)) {
        signedOutByServer();
        status(
          close.startsWith('4000')
            ? 'Your session ended after a long idle time: sign in again to chat.'
            : 'Your session was signed out elsewhere: sign in again to chat.',
          'error',
        );
      }
    },
  };

  /** (Re)opens the chat subscription, resuming after the last event delivered. */
  function subscribe() {
    const after = client?.cursor ?? null;
    client?.stop();
    client = connect(transport, 'chat', handlers, {
      after,
      params: { ...params, rooms: rooms.list.join(','), history: HISTORY },
      interval: pollInterval,
      origin,
    });
  }

  // ---- controls --------------------------------------------------------------------------

  function composeMode() {
    const to = toInput.value.trim();
    composeForm.classList.toggle('whispering', Boolean(to));
    sendButton.textContent = to ? 'Whisper' : 'Send';
    toClear.hidden = !to;
  }

  nickForm.addEventListener('submit', (e) => {
    e.preventDefault();
    void submitNick();
  });
  signOutButton.addEventListener('click', () => void signOut());
  composeForm.addEventListener('submit', (e) => {
    e.preventDefault();
    void send();
  });
  toInput.addEventListener('input', composeMode);
  toInput.addEventListener('change', composeMode);
  toClear.addEventListener('click', () => {
    toInput.value = '';
    composeMode();
    textInput.focus();
  });
  roomSelect.addEventListener('change', scheduleUsers);
  usersList.addEventListener('click', (e) => {
    const button = e.target.closest('.chat-user');
    if (!button) return;
    if (button.dataset.nick === me) {
      status('That is you: pick someone else to whisper to.');
      return;
    }
    toInput.value = button.dataset.nick;
    composeMode();
    textInput.focus();
  });
  roomsList.addEventListener('click', (e) => {
    const button = e.target.closest('.chat-room-leave');
    if (button) leaveRoom(button.dataset.room);
  });
  joinForm.addEventListener('submit', (e) => {
    e.preventDefault();
    void joinRoom();
  });
  newRoomInput.addEventListener('focus', () => void suggestRooms());
  olderButton.addEventListener('click', () => void loadOlder());

  composeMode();
  setMe('');

  return {
    start() {
      if (running) return;
      running = true;
      clockTimer = setInterval(log.refreshTimes, RELATIVE_TIME_EVERY_MS);
      window.addEventListener('storage', onStorage);
      // Subscribed at once: the browser sends the cookie, if any, without waiting for this
      // page to know who it is.
      subscribe();
      const check = api.mayHaveSession() ? checkSession() : Promise.resolve(false);
      void check.then((known) => {
        if (known === false && !statusEl.textContent) {
          status('Pick a nick and sign in to chat; you can read without one.');
        }
      });
      scheduleUsers();
    },
    stop() {
      running = false;
      window.removeEventListener('storage', onStorage);
      clearInterval(clockTimer);
      clearTimeout(usersTimer);
      client?.stop();
    },
    setInterval(ms) {
      pollInterval = ms;
      client?.setInterval(ms);
    },
  };
}
