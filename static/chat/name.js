// Names in the chat (as src/chat/name.rs): a nick or a room name is LIMITS.nameChars letters,
// digits, `_`, `-` or `.`. Checking here first means no request is sent that must fail.

import { LIMITS } from '/static/facts.js';

// Rust's char::is_alphanumeric is Alphabetic or Numeric; the `u` flag counts code points,
// like the server's chars.
const { min: NAME_MIN, max: NAME_MAX } = LIMITS.nameChars;
export const NAME = new RegExp(`^[\\p{Alphabetic}\\p{N}_.-]{${NAME_MIN},${NAME_MAX}}$`, 'u');
/** What a name may be, in words. */
export const NAME_RULE = `${NAME_MIN}–${NAME_MAX} letters, digits, “_”, “-” or “.”`;
