// The chat's HTTP API: session, messages, history, presence and rooms. No DOM here: the
// concerns that call it (chat/session.js, composer.js, history.js, presence.js, rooms.js)
// decide what to show.

import { requestJson } from '/static/util.js';

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
