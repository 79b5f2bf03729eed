// Page bootstrap for the transport demos. The page names its transport in
// <body data-transport="NAME"> (one of facts.js TRANSPORTS); this module starts the clock client
// over it and wires the clock display (clock.js) and the cost panel, and the chat panel
// (chat.js) when the page has a #chat section: both subscriptions use the page's transport
// and report into the same cost panel, and each draws a row of the page's #timeline
// (timeline.js). Pages without a known transport get nothing started.
//
// Every subscription of a page load carries the same random `tag=page-…` (128 random bits),
// so the server records its HTTP exchanges; a page with a #wire section shows them
// (wire.js). The tag is a capability: whoever knows it can read that record, which holds
// what the page's chat stream carried (its whispers too), so it must not be guessable.

import { $, randomTag, utf8Length } from '/static/util.js';
import { connect, hasWebTransport, POLL_INTERVAL, TRANSPORTS } from '/static/clients/index.js';
import { createClock } from '/static/clock.js';
import { createPanel } from '/static/panel.js';
import { createChat } from '/static/chat.js';
import { createWire } from '/static/wire.js';
import { createTimeline } from '/static/timeline.js';

/** A tag for this page load's requests: `page-` and 128 random bits (22 characters). */
export function pageTag() {
  return `page-${randomTag()}`;
}

function boot(transport) {
  const panel = createPanel($('panel'));
  const clock = createClock($('clock'));
  const notice = $('notice');
  const intervalInput = $('poll-interval');
  const intervalHint = $('poll-interval-hint');
  const chatRoot = $('chat');
  const wireRoot = $('wire');
  const timelineRoot = $('timeline');
  const timeline = timelineRoot ? createTimeline(timelineRoot) : null;
  const tag = pageTag();
  // As each compare lane does: whoever holds the page holds its tag (the wire view shows it);
  // the browser tests kill this page's connections by it.
  document.body.dataset.tag = tag;
  let client = null;
  let chat = null;

  const handlers = {
    ...panel,
    onTimeline: timeline?.row('clock', transport),
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

  // WebTransport's page: whether the engine has it, said before anything is tried, and its
  // datagram mode, which restarts the clock's session.
  const support = $('wt-support');
  if (support) {
    const has = hasWebTransport();
    support.dataset.outcome = has ? 'supported' : 'unsupported';
    support.textContent = has
      ? 'This browser has WebTransport: the clock, the chat and the canvas below each run in a session.'
      : 'This browser has no WebTransport (window.WebTransport is undefined), so nothing below can connect: a page that needs it falls back to a TCP transport (see the fallback page).';
  }
  const datagrams = $('datagrams');
  datagrams?.addEventListener('change', () => {
    client?.stop();
    client = connect(transport, 'clock', handlers, clockOptions());
  });

  function clockOptions() {
    const interval = readInterval() ?? POLL_INTERVAL.default;
    return { interval, params: { tag }, datagrams: datagrams?.checked === true };
  }

  function start() {
    const interval = readInterval() ?? POLL_INTERVAL.default;
    client = connect(transport, 'clock', handlers, clockOptions());
    if (chatRoot) {
      chat ??= createChat(chatRoot, {
        transport,
        panel,
        interval,
        params: { tag },
        onTimeline: timeline?.row('chat', transport),
      });
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

  const sendForm = $('ws-send');
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
