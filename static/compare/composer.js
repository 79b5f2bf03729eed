// The chat lane's form: signs in under the nick given and sends a message to the lobby (once,
// or one every AUTO_SEND_MS), which every lane's chat subscription then delivers; the
// arrivals table expects it by its id.

import { $, postJson } from '/static/util.js';

const AUTO_SEND_MS = 2000;

/** Wires the #cmp-send form; `run` names this page's nick, `arrivals` expects what is sent. */
export function createComposer(arrivals, run) {
  const nickInput = $('cmp-nick');
  const textInput = $('cmp-text');
  const status = $('cmp-send-status');
  const auto = $('cmp-auto');
  nickInput.value = `compare-${run.slice(0, 4)}`;
  let signedInAs = null;
  let sent = 0;

  async function send(text) {
    const nick = nickInput.value.trim();
    if (signedInAs !== nick) {
      await postJson('/api/session', { nick });
      signedInAs = nick;
    }
    const answer = await postJson('/api/chat/messages', { room: 'lobby', text });
    sent += 1;
    arrivals.expect(answer.id, nick, text);
    status.textContent = `Sent message ${answer.id} (${sent} so far); watch it arrive five times.`;
  }

  async function sendFromForm() {
    try {
      await send(textInput.value.trim() || 'Hello, every transport');
    } catch (err) {
      signedInAs = err.code === 'unauthorized' ? null : signedInAs;
      status.textContent = `Not sent: ${err.message}`;
    }
  }

  $('cmp-send').addEventListener('submit', (e) => {
    e.preventDefault();
    void sendFromForm();
  });
  let autoTimer = 0;
  auto.addEventListener('change', () => {
    clearInterval(autoTimer);
    if (auto.checked) autoTimer = setInterval(() => void sendFromForm(), AUTO_SEND_MS);
  });
}
