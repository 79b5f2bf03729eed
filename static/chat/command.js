// What a signed-in page asks the chat to do over its WebSocket (as src/chat/command.rs): the
// command frames, sent as text frames on the chat socket. The HTTP transports do the same
// with requests (chat/api.js).

export const say = (room, text) => ({ type: 'say', room, text });
export const whisper = (to, text) => ({ type: 'whisper', to, text });
export const nick = (name) => ({ type: 'nick', nick: name });
