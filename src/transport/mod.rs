//! The five transports. Each is a thin adapter over the feed core, one file each, with the
//! same shape: a `handler` that counts the request, reads the feed and cursor, and answers
//! with what the feed gives. The shared pieces live here: the transport names, the query
//! and path extractors, the JSON batch of the polling transports and the endless body of
//! the streaming ones.

pub mod iframe;
pub mod longpoll;
pub mod poll;
pub mod sse;
pub mod ws;

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::{HeaderMap, HeaderValue, header, request::Parts};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use tokio::time::{Instant, MissedTickBehavior};

use crate::app::AppState;
use crate::chat::{MAX_HISTORY, parse_room};
use crate::error::ApiError;
use crate::feed::{Ended, Event, FeedName, Filter, SharedEvent, Start, Subscription};

/// The five ways of delivering a feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Poll = 0,
    LongPoll = 1,
    Iframe = 2,
    Sse = 3,
    Ws = 4,
}

impl Transport {
    pub const ALL: [Transport; 5] = [
        Transport::Poll,
        Transport::LongPoll,
        Transport::Iframe,
        Transport::Sse,
        Transport::Ws,
    ];

    /// The transport's name in URLs (`/sse/clock`) and in the statistics.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Poll => "poll",
            Transport::LongPoll => "longpoll",
            Transport::Iframe => "iframe",
            Transport::Sse => "sse",
            Transport::Ws => "ws",
        }
    }
}

/// The `{feed}` segment of a transport URL; an unknown feed is a `404`.
pub struct FeedPath(pub FeedName);

impl<S: Send + Sync> FromRequestParts<S> for FeedPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(name) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        FeedName::parse(&name)
            .map(FeedPath)
            .ok_or(ApiError::UnknownFeed(name))
    }
}

/// The query string as a map; malformed encoding is a `400` with a JSON body.
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(map) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        Ok(Params(map))
    }
}

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// `rooms=lobby,red`: the chat rooms to follow (default `lobby`); see [`parse_rooms`].
    pub fn rooms(&self) -> Result<Vec<std::sync::Arc<str>>, ApiError> {
        parse_rooms(self.get("rooms").unwrap_or("lobby"))
    }

    /// `after=ID`: deliver events with an id above it.
    pub fn cursor(&self) -> Result<Option<u64>, ApiError> {
        self.0
            .get("after")
            .map(|v| parse_cursor("after", v))
            .transpose()
    }

    /// An integer parameter within `range`, or `default` when absent.
    pub fn int(
        &self,
        name: &str,
        range: RangeInclusive<u64>,
        default: u64,
    ) -> Result<u64, ApiError> {
        let Some(raw) = self.0.get(name) else {
            return Ok(default);
        };
        match raw.parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(ApiError::BadRequest(format!(
                "{name}={raw:?} must be a whole number from {} to {}",
                range.start(),
                range.end()
            ))),
        }
    }

    /// `limit=N`: the most events one poll answer carries (1–1000, default 100).
    pub fn limit(&self) -> Result<usize, ApiError> {
        Ok(self.int("limit", 1..=1000, 100)? as usize)
    }
}

/// How a transport holds its subscription, which decides presence in the chat: a push
/// subscription keeps its user online while open; a poll for [`crate::chat::presence::POLL_PRESENCE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    Poll,
    Push,
}

/// Opens `transport`'s subscription to `feed` after `cursor`, as every transport does: for
/// the chat, with the rooms, history and session (whispers, presence) the request carries.
/// A transport refused with `--refuse` gets `503 transport_refused` here.
pub fn open(
    app: &AppState,
    transport: Transport,
    feed: FeedName,
    cursor: Option<u64>,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Subscription, ApiError> {
    if app.config().refuse.iter().any(|r| r == transport.as_str()) {
        return Err(ApiError::TransportRefused(transport.as_str()));
    }
    // Without a cursor a short poll wants what is there now, the others the next event.
    let start = if transport == Transport::Poll {
        Start::Now
    } else {
        Start::Next
    };
    let hold = match transport {
        Transport::Poll | Transport::LongPoll => Hold::Poll,
        Transport::Iframe | Transport::Sse | Transport::Ws => Hold::Push,
    };
    let shutdown = app.shutdown_token();
    let mut sub = match feed {
        FeedName::Clock => app
            .clock()
            .subscribe(cursor, start, 0, Filter::default(), shutdown),
        FeedName::Chat => {
            let chat = app.chat();
            let rooms = params.rooms()?;
            let history =
                params.int("history", 0..=MAX_HISTORY, chat.default_history() as u64)? as usize;
            let session = chat.sessions().from_headers(headers);
            let filter = Filter {
                rooms: rooms.clone(),
                session: session.as_ref().map(|s| s.id),
            };
            let mut sub = chat
                .feed()
                .subscribe(cursor, start, history, filter, shutdown);
            if let Some(session) = session {
                match hold {
                    Hold::Push => {
                        sub.hold(chat.presence().attach(session.id, &session.nick, &rooms));
                        sub.end_with_session(session.ended.clone());
                    }
                    Hold::Poll => chat.presence().polled(session.id, &session.nick, &rooms),
                }
            }
            sub
        }
        // The canvas: every stroke to everyone, no rooms, no sessions, no history (a page
        // asks with `after=0` for the strokes kept).
        FeedName::Draw => {
            app.draw()
                .feed()
                .subscribe(cursor, start, 0, Filter::default(), shutdown)
        }
    };
    // A tagged connection can be dropped by `POST /api/debug/kill` (the compare page).
    if let Some(tag) = params.get("tag") {
        let (switch, guard) = app.diagnostics().kill_switch(crate::diag::parse_tag(tag)?);
        sub.end_when_killed(switch);
        sub.hold(guard);
    }
    Ok(sub)
}

/// A response that breaks the connection off: the head may go out, then hyper closes the
/// connection without ending the body, which the client sees as a network error. What
/// `POST /api/debug/kill` does to a held request or a stream.
pub fn killed() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "connection killed by POST /api/debug/kill",
    )
}

/// Up to `limit` events that are available now. `limit` bounds what is *read* too: at most
/// one replay page of at most `limit` events comes from the store, so an old cursor with
/// `limit=1` costs one row, not the whole range (the answer's `next` says where to go on).
pub async fn drain(sub: &mut Subscription, limit: usize) -> Vec<SharedEvent> {
    if limit == 0 {
        return Vec::new();
    }
    sub.read_at_most(limit);
    sub.ready().await;
    let mut events = Vec::new();
    while events.len() < limit {
        match sub.try_next() {
            Some(event) => events.push(event),
            None => break,
        }
    }
    events
}

/// Rooms one subscription may follow at once.
pub const MAX_ROOMS: usize = 16;

/// The longest `rooms=` value accepted: 16 names of 24 four-byte characters with their
/// commas fit (1552 bytes), with room for some spaces and repeats. Checked before any
/// splitting, so a huge list costs one length comparison.
pub const MAX_ROOMS_PARAM_BYTES: usize = 2048;

/// Parses a `rooms=` value: comma-separated room names, blanks around them trimmed,
/// repeats folded, at most [`MAX_ROOMS`] distinct. Work is linear in the input: the raw
/// length is bounded first, and the scan stops at the 17th distinct room, so de-duplication
/// only ever compares against at most 16 names.
pub fn parse_rooms(raw: &str) -> Result<Vec<std::sync::Arc<str>>, ApiError> {
    let too_many =
        || ApiError::Invalid("invalid_room", format!("at most {MAX_ROOMS} rooms at once"));
    if raw.len() > MAX_ROOMS_PARAM_BYTES {
        return Err(ApiError::Invalid(
            "invalid_room",
            format!("rooms= is longer than {MAX_ROOMS_PARAM_BYTES} bytes"),
        ));
    }
    let mut rooms: Vec<std::sync::Arc<str>> = Vec::with_capacity(MAX_ROOMS);
    for name in raw.split(',') {
        let name = name.trim();
        if rooms.iter().any(|room| &**room == name) {
            continue;
        }
        if rooms.len() == MAX_ROOMS {
            return Err(too_many());
        }
        rooms.push(parse_room(name)?);
    }
    Ok(rooms)
}

/// A cursor is an event id: a non-negative integer.
pub fn parse_cursor(source: &str, raw: &str) -> Result<u64, ApiError> {
    raw.trim().parse::<u64>().map_err(|_| {
        ApiError::BadCursor(format!(
            "{source} {raw:?} is not an event id (a non-negative integer)"
        ))
    })
}

/// `HEAD[e1,e2,…]TAIL`: a JSON array of events from their shared JSON, never re-serialized.
pub fn events_json(events: &[SharedEvent], head: &str, tail: &str) -> bytes::Bytes {
    let size = events.iter().map(|e| e.json.len() + 1).sum::<usize>() + head.len() + tail.len() + 2;
    let mut body = BytesMut::with_capacity(size);
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(b"[");
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            body.extend_from_slice(b",");
        }
        body.extend_from_slice(&event.json);
    }
    body.extend_from_slice(b"]");
    body.extend_from_slice(tail.as_bytes());
    body.freeze()
}

/// `{"events":[…],"next":ID}`, the answer of both polling transports.
pub fn batch_response(
    app: &AppState,
    transport: Transport,
    events: &[SharedEvent],
    next: u64,
) -> Response {
    let body = events_json(events, "{\"events\":", &format!(",\"next\":{next}}}"));
    app.stats()
        .transport(transport)
        .sent(body.len(), events.len());
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

/// How a streaming transport frames the feed into one open-ended response body.
pub struct Framing {
    pub transport: Transport,
    pub content_type: &'static str,
    /// Sent first: SSE's `retry:` line, the iframe's padded HTML head.
    pub prelude: fn() -> Bytes,
    /// Sent when nothing else was sent for `--keepalive`, so proxies and browsers keep the
    /// connection open.
    pub keepalive: &'static [u8],
    /// One event, framed.
    pub frame: fn(&Event) -> Bytes,
    /// End the response after this many bytes (the client reopens with its cursor).
    pub max_bytes: Option<usize>,
}

/// An open-ended response that frames each event of `sub` as it arrives. It ends when the
/// client goes away, at `max_bytes`, or at shutdown (the subscription ends then).
pub fn stream_response(
    app: &AppState,
    framing: &'static Framing,
    mut sub: Subscription,
) -> Response {
    let stats = app.stats().clone();
    let open = stats.open(framing.transport);
    let every = app.config().keepalive;
    let body = async_stream::stream! {
        let _open = open;
        let counters = stats.transport(framing.transport);
        let prelude = (framing.prelude)();
        let mut sent = prelude.len();
        counters.sent(prelude.len(), 0);
        yield Ok::<Bytes, std::io::Error>(prelude);
        let mut keepalive = tokio::time::interval_at(Instant::now() + every, every);
        keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let chunk = tokio::select! {
                event = sub.next() => match event {
                    Some(event) => {
                        keepalive.reset();
                        let chunk = (framing.frame)(&event);
                        counters.sent(chunk.len(), 1);
                        chunk
                    }
                    None => break,
                },
                _ = keepalive.tick() => {
                    counters.sent(framing.keepalive.len(), 0);
                    Bytes::from_static(framing.keepalive)
                }
            };
            sent += chunk.len();
            yield Ok(chunk);
            if framing.max_bytes.is_some_and(|max| sent >= max) {
                break;
            }
        }
        if sub.ended() == Some(Ended::Killed) {
            yield Err(killed());
        }
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(framing.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache, no-store"),
            ),
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// Long-poll holds are whole seconds between these bounds.
pub const LONGPOLL_TIMEOUT_S: RangeInclusive<u64> = 1..=60;

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
