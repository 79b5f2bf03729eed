// Who this page is in the chat (as src/chat/session.rs): signing in, renaming and signing
// out, the page's memory of having signed in, and following the other tabs of this origin
// and the server when they end the session.
//
// Signing in and out is HTTP on every transport: the session is an HttpOnly cookie that only
// a response can set. Over WebSocket a rename is a `nick` frame on the chat socket, confirmed
// by the `rename` event that comes back.

import * as api from '/static/chat/api.js';
import * as command from '/static/chat/command.js';
import { explain } from '/static/chat/error.js';
import { NAME } from '/static/chat/name.js';
import { nowMicros } from '/static/clients/index.js';
import { serverMicros } from '/static/clock-offset.js';
import { mayHaveSession, SIGNED_IN_KEY } from '/static/util.js';

// The session cookie is HttpOnly, so only `GET /api/session` can tell whether this browser
// is signed in, and it answers 401 when not, which Chromium logs in the console as a failed
// resource load even though the page expects and handles it. So the page remembers (in
// localStorage, shared by the origin's tabs like the cookie) that it signed in, and only
// asks when it may have a session (util.js, mayHaveSession).
function rememberSignedIn(signedIn) {
  try {
    localStorage.setItem(SIGNED_IN_KEY, signedIn ? 'yes' : 'no');
  } catch {
    // Private mode or storage disabled: the page just asks every time.
  }
}

/** The session part of the chat panel; `chat` is the panel (see chat.js). */
export function createSession(chat) {
  const { root, ui, status } = chat;
  let me = '';
  // When this page learned its current nick (µs, this page's clock; compared with `ts` on the
  // server's, clock-offset.js): a `rename` from that nick made later is
  // this session's (nicks are unique among the online), an older one is somebody's past.
  let meSince = 0;
  let renaming = ''; // WebSocket: the nick asked for in a `nick` frame, until confirmed
  let busy = false; // a sign-in, rename or sign-out request is under way

  function setMe(nick) {
    me = nick;
    meSince = nowMicros();
    ui.me.textContent = nick;
    root.dataset.signedIn = String(Boolean(nick));
    ui.signIn.textContent = nick ? 'Rename' : 'Sign in';
    ui.signOut.disabled = !nick;
    if (nick) ui.nick.value = nick;
    chat.presence.markMe(nick);
  }

  /** Asks the server who this browser is (the cookie is HttpOnly: the page cannot read it). */
  async function check() {
    const answer = await api.getSession();
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
    const known = e.newValue === 'yes' ? await check() : false;
    if (known === false && before) {
      endedByServer();
      status.show('Signed out in another tab.');
    } else if (known === true && me !== before) {
      chat.subscription.open(); // reopened with the session the other tab made
      chat.presence.schedule();
      status.show(`Signed in as ${me} in another tab.`, 'ok');
    }
  }

  async function submitNick() {
    if (busy) return;
    const nick = ui.nick.value.trim();
    if (!NAME.test(nick)) {
      status.show(explain('invalid_nick'), 'error');
      ui.nick.focus();
      return;
    }
    if (me && nick === me) {
      status.show(`You are already signed in as ${me}.`);
      return;
    }
    if (me && chat.twoWay) {
      // Over WebSocket (or WebTransport) a rename is a frame (a line); the `rename` event that comes back confirms it.
      status.show(`Renaming to ${nick}…`);
      renaming = nick;
      chat.subscription.send(command.nick(nick));
      return;
    }
    busy = true;
    const answer = me ? await api.rename(nick) : await api.signIn(nick);
    busy = false;
    if (!answer.ok) {
      status.show(explain(answer.code, answer.message, { nick }), 'error');
      if (answer.status === 401) endedByServer();
      return;
    }
    signedIn(typeof answer.data?.nick === 'string' ? answer.data.nick : nick);
  }

  /** The server accepted a sign-in or an HTTP rename as `nick`. */
  function signedIn(nick) {
    const renamed = Boolean(me);
    rememberSignedIn(true);
    setMe(nick);
    if (renamed) {
      status.show(`You are now ${me}.`);
    } else {
      status.show(`Signed in as ${me}.`, 'ok');
      chat.subscription.open(); // the new subscription carries the session cookie
    }
    chat.presence.schedule();
  }

  async function signOut() {
    if (busy || !me) return;
    busy = true;
    // Stopped first, so the server's closing of this session's streams and sockets is not
    // mistaken for a connection problem; reopened below without the session.
    chat.subscription.stop();
    const answer = await api.signOut();
    busy = false;
    // 401: the session had already ended; either way this page is signed out now.
    const signedOut = answer.ok || answer.status === 401;
    if (signedOut) {
      rememberSignedIn(false);
      setMe('');
      chat.subscription.dropOutbox();
    }
    chat.subscription.open();
    chat.presence.schedule();
    if (signedOut) status.show('Signed out.');
    else status.show(explain(answer.code, answer.message), 'error');
  }

  /** The server no longer knows this session (idle timeout, signed out in another tab). */
  function endedByServer() {
    rememberSignedIn(false);
    if (!me) return;
    setMe('');
    chat.subscription.dropOutbox();
    chat.subscription.open();
    chat.presence.schedule();
  }

  /** The chat socket closed with `close` ("CODE reason"). The close codes the server gives a
   * session's sockets when the session ends: 4000 after --idle-timeout, 1000 "logged out"
   * (e.g. from another tab; this page stops its own socket before it signs out, so that close
   * is never reported here). */
  function onSocketClosed(close) {
    if (!me || !/^(4000 |1000 logged out)/.test(close)) return;
    endedByServer();
    status.show(
      close.startsWith('4000')
        ? 'Your session ended after a long idle time: sign in again to chat.'
        : 'Your session was signed out elsewhere: sign in again to chat.',
      'error',
    );
  }

  /** A `rename` event: ours if it renames our nick to the one we asked for (WebSocket), or
   * was made since we got our nick (e.g. a rename from another tab of this browser). */
  function onRename(event) {
    const ours =
      me && event.from === me && (event.nick === renaming || event.ts >= serverMicros(meSince));
    if (!ours) return;
    renaming = '';
    setMe(String(event.nick));
    status.show(`You are now ${me}.`);
  }

  /** At start: asks who this browser is, if it may have signed in before. */
  function greet() {
    const known = mayHaveSession() ? check() : Promise.resolve(false);
    void known.then((answer) => {
      if (answer === false && !status.text) {
        status.show('Pick a nick and sign in to chat; you can read without one.');
      }
    });
  }

  ui.identity.addEventListener('submit', (e) => {
    e.preventDefault();
    void submitNick();
  });
  ui.signOut.addEventListener('click', () => void signOut());
  setMe('');

  return {
    /** This page's nick, '' when signed out. */
    get me() {
      return me;
    },
    check,
    endedByServer,
    onSocketClosed,
    onRename,
    greet,
    /** Follows the other tabs' signing in and out while the panel runs. */
    listen() {
      window.addEventListener('storage', onStorage);
    },
    stopListening() {
      window.removeEventListener('storage', onStorage);
    },
  };
}
