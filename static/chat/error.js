// The chat's refusals in words (the codes of src/chat/error.rs, as the HTTP API answers them
// and the WebSocket's `error` events carry them), and which of them give the text back.

import { ERROR_CODES, LIMITS } from '/static/facts.js';
import { NAME_RULE } from '/static/chat/name.js';

/** Refusals after which the text goes back into the box, to be sent again. */
const KEEPS_TEXT = new Set([
  ERROR_CODES.rate_limited,
  ERROR_CODES.invalid_text,
  ERROR_CODES.unknown_user,
  ERROR_CODES.unauthorized,
]);

/** Whether a refusal with this code leaves the message to be sent again. */
export function keepsText(code) {
  return KEEPS_TEXT.has(code);
}

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
