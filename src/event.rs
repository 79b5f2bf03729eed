//! Events: the unit every transport delivers, with their ids and audiences. An event is
//! serialized to JSON once, when it is created, and every subscriber shares those bytes; each
//! transport's framing of it (an SSE frame, an iframe `<script>` chunk) is built at most once
//! too, on first use. A leaf module: it imports nothing of this crate and nothing of axum
//! (the WebSocket edge turns [`Event::json`] into a text message itself).

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// An event as it travels on the wire. The load tester and the tests parse events into this
/// type, so there is one definition of the format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEvent {
    /// Strictly increasing within its feed, never reused: the cursor clients resume from.
    pub id: u64,
    /// Server time in microseconds since the Unix epoch when the event was created; the
    /// delivery latency of an event is `received_at - ts`.
    pub ts: u64,
    #[serde(flatten)]
    pub body: EventBody,
}

/// What happened. The `type` field of the JSON names the variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EventBody {
    /// One clock tick; `time` is the tick's time in RFC 3339 (UTC).
    Tick { time: String },
    /// A chat message to a room.
    Message {
        room: String,
        from: String,
        text: String,
    },
    /// A private message: delivered only to the sender's and the recipient's subscriptions.
    Whisper {
        from: String,
        to: String,
        text: String,
    },
    /// `nick` came online in `room`.
    Join { room: String, nick: String },
    /// `nick` went offline in `room`.
    Leave { room: String, nick: String },
    /// `from` is now called `nick`.
    Rename { from: String, nick: String },
    /// The server could not replay everything after `after`: delivery resumes at
    /// `resumed_from`. Its `id` is `resumed_from - 1`, the cursor to continue from.
    Gap { after: u64, resumed_from: u64 },
    /// One stroke on the shared canvas (the draw feed): `points` is a flat `[x0,y0,x1,y1,…]`
    /// of whole numbers in `0..=1000`, `color` is `#rrggbb`; both checked before publishing
    /// (the draw feed).
    Stroke {
        color: String,
        width: u32,
        points: Vec<u32>,
    },
}

impl EventBody {
    /// Every value [`EventBody::kind`] returns, in the order of the variants: the one list of
    /// event names (the pages' SSE listeners and `type` checks come from it via `facts`).
    pub const KINDS: [&'static str; 8] = [
        "tick", "message", "whisper", "join", "leave", "rename", "gap", "stroke",
    ];

    /// The value of the `type` field: also the SSE `event:` name.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::Tick { .. } => "tick",
            EventBody::Message { .. } => "message",
            EventBody::Whisper { .. } => "whisper",
            EventBody::Join { .. } => "join",
            EventBody::Leave { .. } => "leave",
            EventBody::Rename { .. } => "rename",
            EventBody::Gap { .. } => "gap",
            EventBody::Stroke { .. } => "stroke",
        }
    }

    /// The room the event belongs to, if it belongs to one.
    pub fn room(&self) -> Option<&str> {
        match self {
            EventBody::Message { room, .. }
            | EventBody::Join { room, .. }
            | EventBody::Leave { room, .. } => Some(room),
            _ => None,
        }
    }
}

/// Who may receive an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every subscriber of the feed (clock ticks, renames, gaps).
    Everyone,
    /// Subscribers of this room.
    Room(Arc<str>),
    /// Only the subscriptions of these two sessions (a whisper's sender and recipient).
    Sessions(u64, u64),
}

/// An event ready to be sent: its id and type for routing, and its JSON, made once.
#[derive(Debug)]
pub struct Event {
    pub id: u64,
    pub ts: u64,
    pub kind: &'static str,
    pub audience: Audience,
    /// The event's JSON, compact, without a trailing newline.
    pub json: Bytes,
    sse: OnceLock<Bytes>,
    iframe: OnceLock<Bytes>,
    ndjson: OnceLock<Bytes>,
}

/// Events are shared by every subscriber and every queue that holds them.
pub type SharedEvent = Arc<Event>;

impl Event {
    /// An event for everyone, or for the room it names.
    pub fn new(wire: &WireEvent) -> SharedEvent {
        let audience = match wire.body.room() {
            Some(room) => Audience::Room(room.into()),
            None => Audience::Everyone,
        };
        Self::with_audience(wire, audience)
    }

    pub fn with_audience(wire: &WireEvent, audience: Audience) -> SharedEvent {
        // Serializing plain strings and integers cannot fail.
        let json = serde_json::to_vec(wire).unwrap_or_default();
        Self::from_json(
            wire.id,
            wire.ts,
            wire.body.kind(),
            audience,
            Bytes::from(json),
        )
    }

    /// An event whose JSON was made before (read back from the store).
    pub fn from_json(
        id: u64,
        ts: u64,
        kind: &'static str,
        audience: Audience,
        json: Bytes,
    ) -> SharedEvent {
        Arc::new(Event {
            id,
            ts,
            kind,
            audience,
            json,
            sse: OnceLock::new(),
            iframe: OnceLock::new(),
            ndjson: OnceLock::new(),
        })
    }

    /// The kind names as `&'static str`, for events rebuilt from stored JSON.
    pub fn static_kind(kind: &str) -> &'static str {
        [
            "tick", "message", "whisper", "join", "leave", "rename", "gap", "stroke",
        ]
        .into_iter()
        .find(|k| *k == kind)
        .unwrap_or("message")
    }

    /// `id: ID\nevent: TYPE\ndata: JSON\n\n` — one Server-Sent Events message.
    pub fn sse_frame(&self) -> Bytes {
        self.sse
            .get_or_init(|| {
                let mut out = Vec::with_capacity(self.json.len() + 40);
                out.extend_from_slice(
                    format!("id: {}\nevent: {}\ndata: ", self.id, self.kind).as_bytes(),
                );
                out.extend_from_slice(&self.json);
                out.extend_from_slice(crate::wire::SSE_MESSAGE_END);
                Bytes::from(out)
            })
            .clone()
    }

    /// `JSON\n` — one line of the `fetch` stream (NDJSON). The JSON is compact and escapes
    /// any newline inside a string, so the event is exactly one line.
    pub fn ndjson_line(&self) -> Bytes {
        self.ndjson
            .get_or_init(|| {
                let mut out = Vec::with_capacity(self.json.len() + 1);
                out.extend_from_slice(&self.json);
                out.extend_from_slice(crate::wire::NDJSON_LINE_END);
                Bytes::from(out)
            })
            .clone()
    }

    /// `<script>parent.pushpoll(JSON)</script>\n` — one chunk of the hidden-iframe stream,
    /// with the JSON escaped so that no payload can end the script element.
    pub fn iframe_chunk(&self) -> Bytes {
        self.iframe
            .get_or_init(|| {
                let mut out = Vec::with_capacity(self.json.len() + 48);
                out.extend_from_slice(IFRAME_CALL_OPEN);
                escape_for_script(&self.json, &mut out);
                out.extend_from_slice(IFRAME_CALL_CLOSE);
                Bytes::from(out)
            })
            .clone()
    }
}

/// The fixed callback the iframe stream calls in its parent page, spelled once, beside its
/// decoder, in [`crate::wire`].
pub use crate::wire::{IFRAME_CALL_CLOSE, IFRAME_CALL_OPEN};

/// Appends `json` to `out` with `<`, `>`, `&`, U+2028 and U+2029 written as `\uXXXX`.
///
/// These characters can only occur inside JSON strings, where the escape means the same
/// character, so the result is still the same JSON value. `<` and `>` stop `</script>` and
/// `<!--` from ending or confusing the script element, `&` keeps the text inert for HTML
/// parsers, and U+2028/U+2029 are line terminators in older JavaScript engines.
pub fn escape_for_script(json: &[u8], out: &mut Vec<u8>) {
    let mut start = 0;
    let mut i = 0;
    while i < json.len() {
        let replacement: Option<&[u8]> = match json[i] {
            b'<' => Some(b"\\u003c"),
            b'>' => Some(b"\\u003e"),
            b'&' => Some(b"\\u0026"),
            // U+2028 and U+2029 are E2 80 A8 and E2 80 A9 in UTF-8.
            0xE2 if json.get(i + 1) == Some(&0x80) && json.get(i + 2) == Some(&0xA8) => {
                Some(b"\\u2028")
            }
            0xE2 if json.get(i + 1) == Some(&0x80) && json.get(i + 2) == Some(&0xA9) => {
                Some(b"\\u2029")
            }
            _ => None,
        };
        match replacement {
            Some(escaped) => {
                out.extend_from_slice(&json[start..i]);
                out.extend_from_slice(escaped);
                i += if json[i] == 0xE2 { 3 } else { 1 };
                start = i;
            }
            None => i += 1,
        }
    }
    out.extend_from_slice(&json[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_lists_every_variant_once_in_order() {
        let s = String::new;
        // One of each variant; a new variant breaks this match until it is added here and
        // to `KINDS`.
        let one_of_each = |i: usize| -> Option<EventBody> {
            let body = match i {
                0 => EventBody::Tick { time: s() },
                1 => EventBody::Message {
                    room: s(),
                    from: s(),
                    text: s(),
                },
                2 => EventBody::Whisper {
                    from: s(),
                    to: s(),
                    text: s(),
                },
                3 => EventBody::Join {
                    room: s(),
                    nick: s(),
                },
                4 => EventBody::Leave {
                    room: s(),
                    nick: s(),
                },
                5 => EventBody::Rename {
                    from: s(),
                    nick: s(),
                },
                6 => EventBody::Gap {
                    after: 0,
                    resumed_from: 0,
                },
                7 => EventBody::Stroke {
                    color: s(),
                    width: 1,
                    points: vec![],
                },
                _ => return None,
            };
            match &body {
                EventBody::Tick { .. }
                | EventBody::Message { .. }
                | EventBody::Whisper { .. }
                | EventBody::Join { .. }
                | EventBody::Leave { .. }
                | EventBody::Rename { .. }
                | EventBody::Gap { .. }
                | EventBody::Stroke { .. } => Some(body),
            }
        };
        let kinds: Vec<&str> = (0..).map_while(one_of_each).map(|b| b.kind()).collect();
        assert_eq!(kinds, EventBody::KINDS);
    }

    fn escaped(s: &str) -> String {
        let json = serde_json::to_vec(s).unwrap();
        let mut out = Vec::new();
        escape_for_script(&json, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn script_breakers_are_escaped_and_the_value_is_unchanged() {
        let hostile = "</script><img src=x onerror=alert(1)> & \u{2028}\u{2029} <!-- é";
        let out = escaped(hostile);
        for bad in ["<", ">", "&", "\u{2028}", "\u{2029}"] {
            assert!(!out.contains(bad), "{bad:?} survived in {out}");
        }
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, hostile);
    }

    #[test]
    fn plain_json_passes_through() {
        assert_eq!(escaped("hello é"), "\"hello é\"");
    }

    #[test]
    fn frames_are_built_from_the_same_json() {
        let ev = Event::new(&WireEvent {
            id: 7,
            ts: 9,
            body: EventBody::Tick { time: "t<".into() },
        });
        assert_eq!(
            &ev.json[..],
            br#"{"id":7,"ts":9,"type":"tick","time":"t<"}"#
        );
        assert_eq!(
            &ev.sse_frame()[..],
            b"id: 7\nevent: tick\ndata: {\"id\":7,\"ts\":9,\"type\":\"tick\",\"time\":\"t<\"}\n\n"
        );
        assert_eq!(
            &ev.iframe_chunk()[..],
            b"<script>parent.pushpoll({\"id\":7,\"ts\":9,\"type\":\"tick\",\"time\":\"t\\u003c\"})</script>\n"
        );
    }
}
