//! The seven transports, each a thin adapter over the feed core, one file each, with the
//! same shape: a `handler` that counts the request, reads the feed and cursor, and answers
//! with what the feed gives (WebTransport's sessions are not an HTTP route: its `serve`
//! accepts them from the QUIC endpoint, and its route over TCP only says where to go). Opening a subscription is shared by all and lives here; the
//! polling transports share the batch core (`batch.rs`: drain, JSON answer), the streaming
//! ones the stream core (`stream.rs`: one open-ended framed body), as the load tester's
//! `clients/` does. (The names are `crate::names`, the extractors `crate::http`.)

mod batch;
pub mod fetch;
pub mod iframe;
pub mod longpoll;
pub mod poll;
mod quiet;
pub mod sse;
mod stream;
pub mod webtransport;
pub mod ws;

pub use batch::{answer_unless_killed, batch_response, drain, kill_guard};
pub use stream::{Framing, get_stream, open_stream, stream_response};

use axum::http::HeaderMap;
use axum::routing::{MethodRouter, get};

use crate::chat::MAX_HISTORY;
use crate::chat::Session;
use crate::error::ApiError;
use crate::feed::{Filter, Start, Subscription};
use crate::http::{KillSwitch, Params, session_of};
use crate::names::{FeedName, Transport};
use crate::state::AppState;

/// The handler of `transport`'s route, `GET /TRANSPORT/{feed}` (the router adds one route per
/// [`Transport::ALL`]): the one place a transport's adapter is named, in a `match` the
/// compiler holds a new transport to. `fetch` also takes a `POST` with a JSON body.
pub fn route(transport: Transport) -> MethodRouter<AppState> {
    match transport {
        Transport::Poll => get(poll::handler),
        Transport::LongPoll => get(longpoll::handler),
        Transport::Iframe => get(iframe::handler),
        Transport::Fetch => get(fetch::handler).post(fetch::subscribe),
        Transport::Sse => get(sse::handler),
        Transport::Ws => get(ws::handler),
        Transport::WebTransport => get(webtransport::over_tcp),
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
pub async fn open(
    app: &AppState,
    transport: Transport,
    feed: FeedName,
    cursor: Option<u64>,
    params: &Params,
    headers: &HeaderMap,
    kill: Option<KillSwitch>,
) -> Result<Subscription, ApiError> {
    refused(app, transport)?;
    let session = match feed {
        FeedName::Chat => session_of(app.chat(), headers).await?,
        FeedName::Clock | FeedName::Draw => None,
    };
    open_as(app, transport, feed, cursor, params, session, kill).await
}

fn refused(app: &AppState, transport: Transport) -> Result<(), ApiError> {
    if app.config().refuse.contains(&transport) {
        return Err(ApiError::TransportRefused(transport.as_str()));
    }
    Ok(())
}

/// [`open`] for a subscriber whose chat session was found another way than by the request's
/// cookie (WebTransport's ticket: browsers send no cookies there).
pub async fn open_as(
    app: &AppState,
    transport: Transport,
    feed: FeedName,
    cursor: Option<u64>,
    params: &Params,
    session: Option<Session>,
    kill: Option<KillSwitch>,
) -> Result<Subscription, ApiError> {
    refused(app, transport)?;
    // Without a cursor a short poll wants what is there now, the others the next event.
    let start = if transport == Transport::Poll {
        Start::Now
    } else {
        Start::Next
    };
    let hold = match transport {
        Transport::Poll | Transport::LongPoll => Hold::Poll,
        Transport::Iframe
        | Transport::Fetch
        | Transport::Sse
        | Transport::Ws
        | Transport::WebTransport => Hold::Push,
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
