// The chat panel of the transport demos. createChat(root, options) wires the elements under
// `root` (the #chat section) and receives the `chat` feed over the page's own transport with
// clients.js's connect(), the same client the clock uses.
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

import { connect, nowMicros } from '/static/clients.js';

/** Messages replayed when a subscription starts without a cursor (server max 200). */
const HISTORY = 50;
/** Messages fetched per "Load older messages". */
const OLDER_BATCH = 20;
/** Lines kept in the log; the oldest go first. */
const MAX_LINES = 500;
/** The server follows at most this many rooms per subscription. */
const MAX_ROOMS = 16;
/** Frames kept while the WebSocket (re)connects. */
const MAX_OUTBOX = 20;
const RELATIVE_TIME_EVERY_MS = 15_000;
const USERS_DEBOUNCE_MS = 250;
/** localStorage key remembering that this browser signed in (see mayHaveSession). */
const SIGNED_IN_KEY = 'pushpoll.chat.signedIn';

// Nicks and room names: 1–24 letters, digits, `_`, `-`, `.`, as the server checks them (Rust's
// char::is_alphanumeric is Alphabetic or Numeric; the `u` flag counts code points, like the
// server's chars). Checking here first means no request is sent that must fail.
const NAME = /^[\p{Alphabetic}\p{N}_.-]{1,24}$/u;

const TRANSPORT_NAMES = {
  poll: 'short polling',
  longpoll: 'long polling',
  iframe: 'hidden iframe',
  sse: 'Server-Sent Events',
  ws: 'WebSocket',
};

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

// The session cookie is HttpOnly, so only `GET /api/session` can tell whether this browser
// is signed in, and it answers 401 when not, which Chromium logs in the console as a failed
// resource load even though the page expects and handles it. So the page remembers (in
// localStorage, shared by the origin's tabs like the cookie) that it signed in, and only
// asks when it may have a session. Storage that cannot be used means "ask".
function mayHaveSession() {
  try {
    return localStorage.getItem(SIGNED_IN_KEY) === 'yes';
  } catch {
    return true;
  }
}

function rememberSignedIn(signedIn) {
  try {
    localStorage.setItem(SIGNED_IN_KEY, signedIn ? 'yes' : 'no');
  } catch {
    // Private mode or storage disabled: the page just asks every time.
  }
}

/** An element with a class and text content (never markup). */
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = String(text);
  return node;
}

/**
 * A JSON request to the chat API. Never throws: resolves to
 * `{ok: true, status, data}` or `{ok: false, status, code, message, retryAfter}`.
 */
async function api(method, path, body) {
  const init = { method, cache: 'no-store', credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers = { 'Content-Type': 'application/json' };
    init.body = JSON.stringify(body);
  }
  let response;
  let text = '';
  try {
    response = await fetch(path, init);
    text = await response.text();
  } catch {
    return { ok: false, status: 0, code: 'network', message: 'the server could not be reached' };
  }
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON (a proxy's error page, say): the status says enough.
  }
  if (response.ok) return { ok: true, status: response.status, data };
  const error = data?.error ?? {};
  return {
    ok: false,
    status: response.status,
    code: typeof error.code === 'string' ? error.code : `http_${response.status}`,
    message: typeof error.message === 'string' ? error.message : `HTTP ${response.status}`,
    retryAfter: Number.parseInt(response.headers.get('Retry-After') ?? '', 10) || null,
  };
}

// options: transport, panel (a createPanel to report into), interval (short polling), and
// `connect` options passed through to the subscription: `params` (extra query parameters,
// e.g. a diagnostic `tag`) and `origin` (another origin to subscribe from).
export function createChat(root, { transport, panel, interval, params = {}, origin } = {}) {
  const $ = (id) => root.querySelector(`#${id}`);
  const nickForm = $('chat-identity');
  const nickInput = $('chat-nick');
  const signInButton = $('chat-signin');
  const signOutButton = $('chat-signout');
  const meEl = $('chat-me');
  const log = $('chat-log');
  const olderButton = $('chat-older');
  const composeForm = $('chat-compose');
  const roomSelect = $('chat-room');
  const toInput = $('chat-to');
  const toClear = $('chat-to-clear');
  const textInput = $('chat-text');
  const sendButton = $('chat-send');
  const statusEl = $('chat-status');
  const usersList = $('chat-users');
  const usersRoom = $('chat-users-room');
  const usersCount = $('chat-users-count');
  const nickList = $('chat-nick-list');
  const roomsList = $('chat-rooms');
  const joinForm = $('chat-join');
  const newRoomInput = $('chat-new-room');
  const roomOptions = $('chat-room-list');
  const connEl = $('chat-conn');

  const isWs = transport === 'ws';
  // Events created before the page started are replays (history), not deliveries: their
  // age says nothing about the transport, so they do not count towards the panel's latency.
  const liveSince = nowMicros();

  let client = null;
  let pollInterval = interval;
  let me = '';
  // When this page learned its current nick (µs): a `rename` from that nick made later is
  // this session's (nicks are unique among the online), an older one is somebody's past.
  let meSince = 0;
  let renaming = ''; // WebSocket: the nick asked for in a `nick` frame, until confirmed
  let rooms = ['lobby'];
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
  const lines = new Map(); // event id → its line in the log

  // ---- status line ---------------------------------------------------------------------

  function status(text, kind = 'info') {
    statusEl.textContent = text;
    statusEl.dataset.kind = kind;
  }

  /** A failed API call or WebSocket error event, in words. */
  function explain(code, message, { retryAfter = null, nick = '', to = '' } = {}) {
    switch (code) {
      case 'nick_taken':
        return `The nick “${nick}” is taken by someone online; pick another.`;
      case 'invalid_nick':
        return 'A nick is 1–24 letters, digits, “_”, “-” or “.” (no spaces).';
      case 'invalid_room':
        return 'A room name is 1–24 letters, digits, “_”, “-” or “.” (no spaces).';
      case 'invalid_text':
        return 'A message is 1–2000 characters and not blank.';
      case 'rate_limited':
        return retryAfter
          ? `Too many messages (at most 20 in 10 s): try again in ${retryAfter} s.`
          : `Too many messages: ${message}`;
      case 'unknown_user':
        return to
          ? `Nobody called “${to}” is online: whispers reach only people who are online.`
          : `${message}: whispers reach only people who are online.`;
      case 'too_large':
        return 'That message is too large for one request (16 KiB at most).';
      case 'unauthorized':
        return 'You are not signed in (your session may have ended): pick a nick to sign in again.';
      case 'network':
        return 'The server could not be reached; try again in a moment.';
      default:
        return `${message} (${code})`;
    }
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
    for (const button of usersList.querySelectorAll('.chat-user')) {
      button.classList.toggle('me', button.dataset.nick === nick);
    }
  }

  /** Asks the server who this browser is (the cookie is HttpOnly: the page cannot read it). */
  async function checkSession() {
    const answer = await api('GET', '/api/session');
    if (answer.ok && typeof answer.data?.nick === 'string') {
      rememberSignedIn(true);
      if (answer.data.nick !== me) setMe(answer.data.nick);
      return true;
    }
    if (answer.status === 401) {
      rememberSignedIn(false);
      if (me) setMe('');
      return false;
    }
    return null; // unknown (network error): change nothing
  }

  /** Another tab of this origin signed in or out (the cookie is shared): follow it. */
  async function onStorage(e) {
    if (e.key !== SIGNED_IN_KEY || busy) return;
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
    if (!NAME.test(nick)) {
      status(explain('invalid_nick'), 'error');
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
      sendFrame({ type: 'nick', nick });
      return;
    }
    busy = true;
    const answer = me
      ? await api('PATCH', '/api/session', { nick })
      : await api('POST', '/api/session', { nick });
    busy = false;
    if (!answer.ok) {
      status(explain(answer.code, answer.message, { nick }), 'error');
      if (answer.status === 401) signedOutByServer();
      return;
    }
    const renamed = Boolean(me);
    rememberSignedIn(true);
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
    const answer = await api('DELETE', '/api/session');
    busy = false;
    // 401: the session had already ended; either way this page is signed out now.
    const signedOut = answer.ok || answer.status === 401;
    if (signedOut) {
      rememberSignedIn(false);
      setMe('');
      outbox = [];
    }
    subscribe();
    scheduleUsers();
    if (signedOut) status('Signed out.');
    else status(explain(answer.code, answer.message), 'error');
  }

  /** The server no longer knows this session (idle timeout, signed out in another tab). */
  function signedOutByServer() {
    rememberSignedIn(false);
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
    const room = roomSelect.value || 'lobby';
    if (!me) {
      status('Sign in first: pick a nick above.', 'error');
      nickInput.focus();
      return;
    }
    if (!text.trim()) {
      status(explain('invalid_text'), 'error');
      return;
    }
    const wait = Math.ceil((coolUntil - performance.now()) / 1000);
    if (wait > 0) {
      status(explain('rate_limited', '', { retryAfter: wait }), 'error');
      return;
    }
    if (to && !NAME.test(to)) {
      status(
        'The whisper recipient must be a nick: 1–24 letters, digits, “_”, “-” or “.”.',
        'error',
      );
      return;
    }
    // The message shows when it comes back through the subscription, like everyone's:
    // nothing is echoed here, so what the log shows is what the server stored.
    textInput.value = '';
    if (isWs) {
      lastSent = text;
      sendFrame(to ? { type: 'whisper', to, text } : { type: 'say', room, text });
      return;
    }
    const answer = await api('POST', '/api/chat/messages', to ? { to, text } : { room, text });
    if (answer.ok) {
      if (statusEl.dataset.kind === 'error') status('');
      return;
    }
    if (!textInput.value) textInput.value = text; // not lost: try again
    if (answer.retryAfter) coolUntil = performance.now() + answer.retryAfter * 1000;
    status(explain(answer.code, answer.message, { retryAfter: answer.retryAfter, to }), 'error');
    if (answer.status === 401) signedOutByServer();
  }

  /** WebSocket: an `error` event answering one of our frames. */
  async function onNotice(event) {
    const code = typeof event.code === 'string' ? event.code : 'error';
    const message = typeof event.message === 'string' ? event.message : '';
    if (['rate_limited', 'invalid_text', 'unknown_user', 'unauthorized'].includes(code)) {
      if (!textInput.value && lastSent) textInput.value = lastSent;
    }
    // The WebSocket error event has no Retry-After: the seconds are in its message.
    const retryAfter = Number(/retry in (\d+) s/.exec(message)?.[1]) || null;
    if (code === 'rate_limited' && retryAfter) coolUntil = performance.now() + retryAfter * 1000;
    status(
      explain(code, message, {
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

  /** The line for one event, or null for a type the chat does not show. */
  function lineFor(event) {
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

  /** Puts one event in the log in id order, once. Returns true if it was added. */
  function insert(event) {
    if (!Number.isSafeInteger(event?.id) || lines.has(event.id)) return false;
    const line = lineFor(event);
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

  /** Adds events (live or fetched), keeping the reader's place unless they were at the end. */
  function show(events, { older = false } = {}) {
    const follow = atBottom();
    const before = log.scrollHeight;
    let added = 0;
    for (const event of events) if (insert(event)) added += 1;
    if (added === 0) return 0;
    if (!older) trim();
    if (older) {
      log.scrollTop += log.scrollHeight - before; // older lines above: stay on what was read
    } else if (follow || (me && events.some((e) => e.from === me))) {
      log.scrollTop = log.scrollHeight;
    }
    return added;
  }

  function refreshTimes() {
    const now = Date.now();
    for (const node of log.querySelectorAll('time.chat-time')) {
      const text = relativeTime(Number(node.dataset.ms), now);
      if (node.textContent !== text) node.textContent = text;
    }
  }

  /** An event from the subscription. */
  function receive(event) {
    show([event]);
    if (event.type === 'rename') {
      // Ours if it renames our nick to the one we asked for (WebSocket), or was made since
      // we got our nick (e.g. a rename from another tab of this browser).
      const ours = me && event.from === me && (event.nick === renaming || event.ts >= meSince);
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
    const room = roomSelect.value || 'lobby';
    let oldest = null;
    for (const line of log.querySelectorAll('.chat-line[data-type="message"]')) {
      if (line.dataset.room === room) {
        oldest = idOf(line);
        break; // the log is in id order: the first is the oldest
      }
    }
    const query = new URLSearchParams({ room, limit: String(OLDER_BATCH) });
    if (oldest !== null) query.set('before', String(oldest));
    olderButton.disabled = true;
    const answer = await api('GET', `/api/chat/history?${query}`);
    olderButton.disabled = false;
    if (!answer.ok) {
      status(explain(answer.code, answer.message), 'error');
      return;
    }
    const events = Array.isArray(answer.data?.events) ? answer.data.events : [];
    const added = show(events, { older: true });
    status(
      added === 0
        ? `No older messages in #${room}.`
        : `Loaded ${added} older message${added === 1 ? '' : 's'} of #${room}.`,
    );
  }

  // ---- online list -----------------------------------------------------------------------

  /** Refreshes the online list soon; presence events often come in bursts. */
  function scheduleUsers() {
    clearTimeout(usersTimer);
    usersTimer = setTimeout(refreshUsers, USERS_DEBOUNCE_MS);
  }

  async function refreshUsers() {
    const room = roomSelect.value || 'lobby';
    const asked = ++usersAsked;
    const answer = await api('GET', `/api/chat/users?room=${encodeURIComponent(room)}`);
    // A later refresh (or a room change) overtook this one: its answer is stale.
    if (asked !== usersAsked || !running || !answer.ok) return;
    const nicks = Array.isArray(answer.data?.users) ? answer.data.users.map(String) : [];
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
  }

  // ---- rooms ---------------------------------------------------------------------------

  function renderRooms() {
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

  async function joinRoom() {
    const room = newRoomInput.value.trim().replace(/^#/, '');
    if (!NAME.test(room)) {
      status(explain('invalid_room'), 'error');
      return;
    }
    newRoomInput.value = '';
    if (!rooms.includes(room)) {
      if (rooms.length >= MAX_ROOMS) {
        status(`At most ${MAX_ROOMS} rooms at once: leave one first.`, 'error');
        return;
      }
      rooms.push(room);
      renderRooms();
      subscribe();
      // The subscription resumes from its cursor, so it replays nothing of the new room:
      // its recent messages come from the history API instead.
      const answer = await api(
        'GET',
        `/api/chat/history?room=${encodeURIComponent(room)}&limit=${OLDER_BATCH}`,
      );
      if (answer.ok && Array.isArray(answer.data?.events)) {
        show(answer.data.events, { older: true });
      }
    }
    roomSelect.value = room;
    status(`Following #${room}; messages you send go there.`);
    scheduleUsers();
  }

  function leaveRoom(room) {
    if (rooms.length <= 1 || !rooms.includes(room)) return;
    rooms = rooms.filter((r) => r !== room);
    renderRooms();
    subscribe();
    scheduleUsers();
    status(`Left #${room}.`);
  }

  async function suggestRooms() {
    const answer = await api('GET', '/api/chat/rooms');
    if (!answer.ok || !Array.isArray(answer.data?.rooms)) return;
    roomOptions.replaceChildren(
      ...answer.data.rooms.map(({ room, online }) => {
        const option = el('option');
        option.value = String(room);
        option.label = `${online} online`;
        return option;
      }),
    );
  }

  // ---- the subscription ------------------------------------------------------------------

  const handlers = {
    // Same transport as the clock: its requests, bytes and events count in the same panel.
    onRequest: () => panel?.onRequest(),
    onBytes: (n) => panel?.onBytes(n),
    onBytesUp: (n) => panel?.onBytesUp?.(n),
    onFramingDown: (n) => panel?.onFramingDown?.(n),
    onEvent(event, receivedAt) {
      panel?.onEvent(event, receivedAt, { replayed: !(event.ts >= liveSince) });
      receive(event);
    },
    onNotice(event) {
      panel?.onNotice(event);
      void onNotice(event);
    },
    // The panel's state and details stay the clock's; the chat's connection shows here.
    onState(text, phase) {
      connEl.textContent = `Chat over ${TRANSPORT_NAMES[transport] ?? transport}: ${text}`;
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
      params: { ...params, rooms: rooms.join(','), history: HISTORY },
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

  renderRooms();
  composeMode();
  setMe('');

  return {
    start() {
      if (running) return;
      running = true;
      clockTimer = setInterval(refreshTimes, RELATIVE_TIME_EVERY_MS);
      window.addEventListener('storage', onStorage);
      // Subscribed at once: the browser sends the cookie, if any, without waiting for this
      // page to know who it is.
      subscribe();
      const check = mayHaveSession() ? checkSession() : Promise.resolve(false);
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
