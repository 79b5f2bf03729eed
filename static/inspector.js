// The WebSocket wire inspector: opens a socket with `?inspect=1`, on which the server's first
// frame is the handshake as it happened, and recomputes Sec-WebSocket-Accept here —
// base64(SHA-1(Sec-WebSocket-Key + the RFC 6455 GUID)) — to show the server answered the
// browser's key correctly. Browsers never expose these headers to the WebSocket API itself.

import { $, wsUrl } from '/static/util.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

async function acceptFor(key) {
  const digest = await crypto.subtle.digest('SHA-1', new TextEncoder().encode(key + GUID));
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

function lines(part) {
  return [part.line, ...Object.entries(part.headers).map(([k, v]) => `${k}: ${v}`)].join('\n');
}

function inspect() {
  $('inspect-match').textContent = '…';
  const socket = new WebSocket(wsUrl('/ws/clock?inspect=1&after=9000000000000000'));
  socket.onmessage = async (e) => {
    socket.close();
    const handshake = JSON.parse(e.data);
    if (handshake.type !== 'handshake') return;
    const key = handshake.request.headers['sec-websocket-key'] ?? '';
    const accept = handshake.response.headers['sec-websocket-accept'] ?? '';
    const computed = await acceptFor(key);
    $('inspect-request').textContent = lines(handshake.request);
    $('inspect-response').textContent = lines(handshake.response);
    $('inspect-key').textContent = key;
    $('inspect-accept').textContent = accept;
    $('inspect-computed').textContent = computed;
    $('inspect-match').textContent = computed === accept ? 'match' : 'MISMATCH';
    $('inspect-match').className = computed === accept ? 'ok' : 'fail';
  };
  socket.onerror = () => {
    $('inspect-match').textContent = 'the inspected socket failed';
  };
}

$('inspect-run').addEventListener('click', inspect);
inspect();
