// Saying something: the message box, the whisper recipient, sending (a frame on the chat
// socket over WebSocket, POST /api/chat/messages otherwise) and the refusals that answer it,
// with the rate limit's wait kept here so the page does not ask the server for more refusals.

import { utf8Length } from '/static/util.js';
import * as api from '/static/chat/api.js';
import * as command from '/static/chat/command.js';
import { explain, keepsText } from '/static/chat/error.js';
import { NAME, NAME_RULE } from '/static/chat/name.js';

/** The compose form of the chat panel; `chat` is the panel (see chat.js). */
export function createComposer(chat) {
  const { ui, status } = chat;
  let lastSent = ''; // WebSocket: the text of the last frame, restored if the server refuses it
  // After a rate-limit answer, sends wait until here (performance.now()) instead of asking
  // the server for more refusals.
  let coolUntil = 0;

  /** The form reads "Whisper" while a recipient is set, "Send" otherwise. */
  function showMode() {
    const to = ui.to.value.trim();
    ui.compose.classList.toggle('whispering', Boolean(to));
    ui.send.textContent = to ? 'Whisper' : 'Send';
    ui.toClear.hidden = !to;
  }

  /** Picks the whisper recipient ('' for the room) and goes back to the message box. */
  function whisperTo(nick) {
    ui.to.value = nick;
    showMode();
    ui.text.focus();
  }

  function coolFor(seconds) {
    coolUntil = performance.now() + seconds * 1000;
  }

  /** Why `text` to `to` cannot be sent now, in words, or '' when it can. */
  function refusal(text, to) {
    if (!chat.session.me) return 'Sign in first: pick a nick above.';
    if (!text.trim()) return explain('invalid_text');
    const wait = Math.ceil((coolUntil - performance.now()) / 1000);
    if (wait > 0) return explain('rate_limited', '', { retryAfter: wait });
    if (to && !NAME.test(to)) return `The whisper recipient must be a nick: ${NAME_RULE}.`;
    return '';
  }

  async function send() {
    const text = ui.text.value;
    const to = ui.to.value.trim();
    const room = chat.rooms.selected;
    const why = refusal(text, to);
    if (why) {
      status.show(why, 'error');
      if (!chat.session.me) ui.nick.focus();
      return;
    }
    // The message shows when it comes back through the subscription, like everyone's:
    // nothing is echoed here, so what the log shows is what the server stored.
    ui.text.value = '';
    if (chat.twoWay) {
      lastSent = text;
      chat.subscription.send(to ? command.whisper(to, text) : command.say(room, text));
      return;
    }
    const answer = await api.postMessage({ room, to, text });
    if (answer.ok) {
      // The request body as api.postMessage sends it (its head is the browser's, unseen).
      chat.subscription.sentApart(utf8Length(JSON.stringify(to ? { to, text } : { room, text })), 'POST /api/chat/messages');
      if (status.kind === 'error') status.show('');
      return;
    }
    if (!ui.text.value) ui.text.value = text; // not lost: try again
    if (answer.retryAfter) coolFor(answer.retryAfter);
    status.show(explain(answer.code, answer.message, { retryAfter: answer.retryAfter, to }), 'error');
    if (answer.status === 401) chat.session.endedByServer();
  }

  /** WebSocket: an `error` event answering one of our frames. */
  async function onRefusal(event) {
    const code = typeof event.code === 'string' ? event.code : 'error';
    const message = typeof event.message === 'string' ? event.message : '';
    if (keepsText(code) && !ui.text.value && lastSent) ui.text.value = lastSent;
    // The WebSocket error event has no Retry-After: the seconds are in its message.
    const retryAfter = Number(/retry in (\d+) s/.exec(message)?.[1]) || null;
    if (code === 'rate_limited' && retryAfter) coolFor(retryAfter);
    status.show(
      explain(code, message, { retryAfter, nick: ui.nick.value.trim(), to: ui.to.value.trim() }),
      'error',
    );
    if (code === 'unauthorized') await recheckSession();
  }

  /** Refused as signed out: the socket may predate the sign-in, or the session ended. */
  async function recheckSession() {
    const known = await chat.session.check();
    if (known === true) {
      // Signed in, but this socket was opened before: reopen it with the cookie.
      chat.subscription.open();
      status.show('The chat socket was reconnected with your session: send again.', 'error');
    } else if (known === false) {
      chat.session.endedByServer();
    }
  }

  /** A `rename` event: a recipient who renamed is followed to the new nick. */
  function onRename(event) {
    if (ui.to.value.trim() !== event.from) return;
    ui.to.value = String(event.nick);
    showMode();
  }

  ui.compose.addEventListener('submit', (e) => {
    e.preventDefault();
    void send();
  });
  ui.to.addEventListener('input', showMode);
  ui.to.addEventListener('change', showMode);
  ui.toClear.addEventListener('click', () => whisperTo(''));
  showMode();

  return { whisperTo, onRefusal, onRename };
}
