// Page bootstrap for the five transport demos. The page names its transport in
// <body data-transport="poll|longpoll|iframe|sse|ws">; this module starts the clock client
// over it and wires the clock display and the cost panel, and the chat panel (chat.js) when
// the page has a #chat section: both subscriptions use the page's transport and report into
// the same cost panel. Pages without a known transport (e.g. one that only wants
// createClock) get nothing started.
//
// Every subscription of a page load carries the same random `tag=page-…` (128 random bits),
// so the server records its HTTP exchanges; a page with a #wire section shows them
// (wire.js). The tag is a capability: whoever knows it can read that record, which holds
// what the page's chat stream carried (its whispers too), so it must not be guessable.

import { connect, POLL_INTERVAL, TRANSPORTS, utf8Length } from '/static/clients.js';
import { createPanel } from '/static/panel.js';
import { createChat } from '/static/chat.js';
import { createWire } from '/static/wire.js';

/**
 * 128 random bits as 22 base64url characters (the server refuses shorter tags): what makes
 * a diagnostic tag unguessable. Also used by the compare page.
 */
export function randomTag() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const base64 = btoa(String.fromCharCode(...bytes));
  return base64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** A tag for this page load's requests: `page-` and 128 random bits (22 characters). */
export function pageTag() {
  return `page-${randomTag()}`;
}

/**
 * The clock display in `section`: the tick's time in UTC, taken from the event's `time`
 * field as sent (no conversion, so it is exactly what the server stamped), and the event id.
 * Elements: [data-clock="time"], [data-clock="id"], [data-clock="raw"] (all optional).
 */
export function createClock(section) {
  const timeEl = section.querySelector('[data-clock="time"]');
  const idEl = section.querySelector('[data-clock="id"]');
  const rawEl = section.querySelector('[data-clock="raw"]');
  let lastSeconds = '';
  let showMillis = false;
  let flip = false;

  return {
    show(event) {
      const match = /T(\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z$/.exec(String(event.time ?? ''));
      let text;
      if (match) {
        // Ticks come once a second by default, so HH:MM:SS changes with every tick. With
        // --tick-ms under 1000 two ticks can share a second; from the first time that
        // happens, milliseconds are shown too, so the display still changes on every tick.
        if (match[1] === lastSeconds) showMillis = true;
        lastSeconds = match[1];
        text = showMillis ? `${match[1]}.${(match[2] ?? '0').padEnd(3, '0').slice(0, 3)}` : match[1];
      } else {
        text = String(event.time ?? '?');
      }
      if (timeEl) {
        timeEl.textContent = text;
        // Restart a short highlight: two identical animations, alternated, so each tick
        // starts a new one.
        flip = !flip;
        timeEl.classList.toggle('tick-a', flip);
        timeEl.classList.toggle('tick-b', !flip);
      }
      if (idEl) idEl.textContent = String(event.id);
      if (rawEl) rawEl.textContent = JSON.stringify(event);
    },
  };
}

function boot(transport) {
  const panel = createPanel(document.getElementById('panel'));
  const clock = createClock(document.getElementById('clock'));
  const notice = document.getElementById('notice');
  const intervalInput = document.getElementById('poll-interval');
  const intervalHint = document.getElementById('poll-interval-hint');
  const chatRoot = document.getElementById('chat');
  const wireRoot = document.getElementById('wire');
  const tag = pageTag();
  let client = null;
  let chat = null;

  const handlers = {
    ...panel,
    onEvent(event, receivedAt) {
      panel.onEvent(event, receivedAt);
      if (event.type === 'tick') clock.show(event);
    },
    onNotice(event) {
      panel.onNotice(event);
      if (notice) {
        notice.textContent = `Server notice: ${event.code ?? 'error'}: ${event.message ?? ''}`;
      }
    },
  };

  function readInterval() {
    if (!intervalInput) return POLL_INTERVAL.default;
    const ms = Number(intervalInput.value);
    const ok = Number.isInteger(ms) && ms >= POLL_INTERVAL.min && ms <= POLL_INTERVAL.max;
    intervalInput.setAttribute('aria-invalid', String(!ok));
    if (intervalHint) {
      intervalHint.textContent = ok
        ? ''
        : `Enter a whole number of milliseconds from ${POLL_INTERVAL.min} to ${POLL_INTERVAL.max}.`;
    }
    return ok ? ms : null;
  }

  function start() {
    const interval = readInterval() ?? POLL_INTERVAL.default;
    client = connect(transport, 'clock', handlers, { interval, params: { tag } });
    if (chatRoot) {
      chat ??= createChat(chatRoot, { transport, panel, interval, params: { tag } });
      chat.start();
    }
  }

  function stop() {
    client?.stop();
    client = null;
    chat?.stop();
  }

  intervalInput?.addEventListener('change', () => {
    const ms = readInterval();
    if (ms === null) return;
    client?.setInterval(ms);
    chat?.setInterval(ms);
  });

  const sendForm = document.getElementById('ws-send');
  sendForm?.addEventListener('submit', (e) => {
    e.preventDefault();
    const input = sendForm.querySelector('input');
    const text = input?.value.trim() || 'hello';
    if (!notice) return;
    notice.textContent = client?.send(text)
      ? `Sent a ${utf8Length(text)}-byte text frame; waiting for the server's answer…`
      : 'The socket is not open; nothing was sent.';
  });

  // Leaving the page closes the connection deliberately (a WebSocket gets a clean 1000);
  // coming back from the back/forward cache starts a new client.
  window.addEventListener('pagehide', stop);
  window.addEventListener('pageshow', (e) => {
    if (e.persisted && !client) start();
  });

  start();
  if (wireRoot) createWire(wireRoot, tag);
}

const transport = document.body.dataset.transport;
if (TRANSPORTS.includes(transport)) boot(transport);
