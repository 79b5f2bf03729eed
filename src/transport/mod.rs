//! The five transports. Each is a thin adapter over the feed core, one file each, with the
//! same shape: a `handler` that counts the request, reads the feed and cursor, and answers
//! with what the feed gives. The shared pieces live here: opening a subscription, the JSON
//! batch of the polling transports and the endless body of the streaming ones. (The names
//! are `crate::names`, the extractors `crate::http`.)

pub mod iframe;
pub mod longpoll;
pub mod poll;
pub mod sse;
pub mod ws;

use std::ops::RangeInclusive;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::time::{Instant, MissedTickBehavior};

use crate::chat::MAX_HISTORY;
use crate::error::ApiError;
use crate::event::{Event, SharedEvent};
use crate::feed::{Ended, Filter, Start, Subscription};
use crate::http::{KillSwitch, Params, events_json, session_of};
use crate::names::{FeedName, Transport};
use crate::state::AppState;

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
    kill: Option<KillSwitch>,
) -> Result<Subscription, ApiError> {
    if app.config().refuse.contains(&transport) {
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
            let session = session_of(chat, headers);
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
    // A tagged connection can be dropped by `POST /api/debug/kill` (the compare page); the
    // diagnostics' recorder handed its switch over in the request (`crate::http::Subscribing`).
    if let Some(KillSwitch { token, guard }) = kill {
        sub.end_when_killed(token);
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
