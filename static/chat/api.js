// The chat's requests and commands: the HTTP API (session, messages, history, presence,
// rooms), the WebSocket command frames that do the same on the chat socket, the rule names
// must follow, the words for each refusal, and the page's memory of having signed in.
// No DOM here: chat.js decides what to show.

import { LIMITS } from '/static/facts.js';
import { requestJson } from '/static/util.js';

/** localStorage key remembering that this browser signed in (see mayHaveSession). */
export const SIGNED_IN_KEY = 'pushpoll.chat.signedIn';

// Nicks and room names: LIMITS.nameChars letters, digits, `_`, `-`, `.`, as the server checks
// them (Rust's char::is_alphanumeric is Alphabetic or Numeric; the `u` flag counts code
// points, like the server's chars). Checking here first means no request is sent that must fail.
const { min: NAME_MIN, max: NAME_MAX } = LIMITS.nameChars;
export const NAME = new RegExp(`^[\\p{Alphabetic}\\p{N}_.-]{${NAME_MIN},${NAME_MAX}}$`, 'u');
/** What a name may be, in words. */
export const NAME_RULE = `${NAME_MIN}–${NAME_MAX} letters, digits, “_”, “-” or “.”`;

// Every call resolves (never throws) to requestJson's `{ok, status, data}` or
// `{ok: false, status, code, message, retryAfter}`.

/** Who this browser is: the cookie is HttpOnly, so only the server can say. 401: nobody. */
export const getSession = () => requestJson('GET', '/api/session');
export const signIn = (nick) => requestJson('POST', '/api/session', { nick });
export const rename = (nick) => requestJson('PATCH', '/api/session', { nick });
export const signOut = () => requestJson('DELETE', '/api/session');

/** A message to a room, or a whisper when `to` is set (the HTTP transports). */
export const postMessage = ({ room, to, text }) =>
  requestJson('POST', '/api/chat/messages', to ? { to, text } : { room, text });

/** A room's messages before `before` (the newest when null), at most `limit`. */
export function history(room, { before = null, limit }) {
  const query = new URLSearchParams({ room, limit: String(limit) });
  if (before !== null) query.set('before', String(before));
  return requestJson('GET', `/api/chat/history?${query}`);
}

export const users = (room) => requestJson('GET', `/api/chat/users?room=${encodeURIComponent(room)}`);
export const rooms = () => requestJson('GET', '/api/chat/rooms');

/** The WebSocket commands, sent as text frames on the chat socket. */
export const frames = {
  say: (room, text) => ({ type: 'say', room, text }),
  whisper: (to, text) => ({ type: 'whisper', to, text }),
  nick: (nick) => ({ type: 'nick', nick }),
};

/** A failed API call or WebSocket error event, in words. */
export function explain(code, message, { retryAfter = null, nick = '', to = '' } = {}) {
  switch (code) {
    case 'nick_taken':
      return `The nick “${nick}” is taken by someone online, or looks like one that is; pick another.`;
    case 'invalid_nick':
      return `A nick is ${NAME_RULE} (no spaces).`;
    case 'invalid_room':
      return `A room name is ${NAME_RULE} (no spaces).`;
    case 'invalid_text':
      return `A message is 1–${LIMITS.textChars} characters and not blank.`;
    case 'rate_limited':
      return retryAfter
        ? `Too many messages (at most ${LIMITS.rateLimit} in ${LIMITS.rateWindowS} s by default): try again in ${retryAfter} s.`
        : `Too many messages: ${message}`;
    case 'unknown_user':
      return to
        ? `Nobody called “${to}” is online: whispers reach only people who are online.`
        : `${message}: whispers reach only people who are online.`;
    case 'too_large':
      return `That message is too large for one request (${LIMITS.bodyBytes / 1024} KiB at most).`;
    case 'unauthorized':
      return 'You are not signed in (your session may have ended): pick a nick to sign in again.';
    case 'network':
      return 'The server could not be reached; try again in a moment.';
    default:
      return `${message} (${code})`;
  }
}

// The session cookie is HttpOnly, so only `GET /api/session` can tell whether this browser
// is signed in, and it answers 401 when not, which Chromium logs in the console as a failed
// resource load even though the page expects and handles it. So the page remembers (in
// localStorage, shared by the origin's tabs like the cookie) that it signed in, and only
// asks when it may have a session. Storage that cannot be used means "ask".
export function mayHaveSession() {
  try {
    return localStorage.getItem(SIGNED_IN_KEY) === 'yes';
  } catch {
    return true;
  }
}

export function rememberSignedIn(signedIn) {
  try {
    localStorage.setItem(SIGNED_IN_KEY, signedIn ? 'yes' : 'no');
  } catch {
    // Private mode or storage disabled: the page just asks every time.
  }
}
