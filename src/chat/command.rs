//! What a signed-in client asks the chat to do, decoded once whatever carried it: the body of
//! `POST /api/chat/messages` and a WebSocket text frame both become a [`Command`], and
//! [`crate::chat::Chat::run`] carries it out. The defaults (`"lobby"` when a message names no
//! room) live here, once.

use serde::Deserialize;

use super::ChatError;

/// The room a message goes to when it names none.
pub const DEFAULT_ROOM: &str = "lobby";

/// A message a session sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// To everyone in `room`.
    Room { room: String, text: String },
    /// To one user, by nick.
    Whisper { to: String, text: String },
}

/// Everything a session may do by command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Send(Message),
    /// Rename the session.
    Nick(String),
}

impl Message {
    /// `room`, or [`DEFAULT_ROOM`] when none is named.
    fn to_room(room: Option<String>, text: String) -> Message {
        Message::Room {
            room: room.unwrap_or_else(|| DEFAULT_ROOM.to_string()),
            text,
        }
    }
}

/// The body of `POST /api/chat/messages`: `{"room","text"}` or `{"to","text"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    room: Option<String>,
    to: Option<String>,
    text: String,
}

impl TryFrom<SendBody> for Message {
    type Error = ChatError;

    fn try_from(body: SendBody) -> Result<Message, ChatError> {
        match (body.room, body.to) {
            (Some(_), Some(_)) => Err(ChatError::BadCommand(
                "give either \"room\" or \"to\", not both".into(),
            )),
            (None, Some(to)) => Ok(Message::Whisper {
                to,
                text: body.text,
            }),
            (room, None) => Ok(Message::to_room(room, body.text)),
        }
    }
}

/// A chat client's WebSocket frame: `{"type":"say"|"whisper"|"nick",…}`.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Frame {
    Say { room: Option<String>, text: String },
    Whisper { to: String, text: String },
    Nick { nick: String },
}

impl From<Frame> for Command {
    fn from(frame: Frame) -> Command {
        match frame {
            Frame::Say { room, text } => Command::Send(Message::to_room(room, text)),
            Frame::Whisper { to, text } => Command::Send(Message::Whisper { to, text }),
            Frame::Nick { nick } => Command::Nick(nick),
        }
    }
}

/// Why a frame is not a command; `code` and message are what the socket answers with.
#[derive(Debug, PartialEq, Eq)]
pub struct BadFrame {
    pub code: &'static str,
    pub message: String,
}

impl Command {
    /// Decodes a WebSocket text frame. Not JSON, or a known type with bad fields, is
    /// `bad_json`; another `type` is `unknown_type` (told apart so a client learns which
    /// types exist).
    pub fn from_frame(text: &str) -> Result<Command, BadFrame> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|err| BadFrame {
            code: "bad_json",
            message: format!("not JSON: {err}"),
        })?;
        let kind = value
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_string();
        if !["say", "whisper", "nick"].contains(&kind.as_str()) {
            return Err(BadFrame {
                code: "unknown_type",
                message: format!("unknown frame type {kind:?}: send say, whisper or nick"),
            });
        }
        serde_json::from_value::<Frame>(value)
            .map(Command::from)
            .map_err(|err| BadFrame {
                code: "bad_json",
                message: format!("bad {kind} frame: {err}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> Result<Message, ChatError> {
        Message::try_from(serde_json::from_str::<SendBody>(json).unwrap())
    }

    #[test]
    fn a_body_and_a_frame_without_a_room_both_go_to_the_lobby() {
        let lobby = Message::Room {
            room: "lobby".into(),
            text: "hi".into(),
        };
        assert_eq!(body(r#"{"text":"hi"}"#).unwrap(), lobby);
        assert_eq!(
            Command::from_frame(r#"{"type":"say","text":"hi"}"#).unwrap(),
            Command::Send(lobby)
        );
    }

    #[test]
    fn a_body_with_room_and_to_is_refused() {
        assert!(matches!(
            body(r#"{"room":"a","to":"b","text":"hi"}"#),
            Err(ChatError::BadCommand(_))
        ));
    }

    #[test]
    fn frames_say_what_is_wrong_with_them() {
        assert_eq!(Command::from_frame("nope").unwrap_err().code, "bad_json");
        assert_eq!(
            Command::from_frame(r#"{"type":"shout"}"#).unwrap_err().code,
            "unknown_type"
        );
        assert_eq!(
            Command::from_frame(r#"{"type":"nick"}"#).unwrap_err().code,
            "bad_json"
        );
        assert_eq!(
            Command::from_frame(r#"{"type":"nick","nick":"bo"}"#).unwrap(),
            Command::Nick("bo".into())
        );
    }
}
