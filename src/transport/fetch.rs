//! `fetch()` streaming: `GET /fetch/FEED?after=ID` (or, for a subscription that carries a
//! body, `POST /fetch/FEED` with a JSON one, the way the LLM APIs stream) answers
//! `application/x-ndjson` and never finishes: one event's JSON per line, the same JSON every
//! other transport carries. The page reads the body with `fetch()` and a `ReadableStream`;
//! nothing reconnects for it, so it resumes itself with `after=` its last id, and watches the
//! heartbeat line to tell a quiet stream from a dead one.

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;

use super::{Framing, get_stream, open_stream};
use crate::error::ApiError;
use crate::event::Event;
use crate::http::{FeedPath, JsonBody, Params, Subscribing};
use crate::names::Transport;
use crate::state::AppState;

static FETCH: Framing = Framing {
    transport: Transport::Fetch,
    content_type: crate::wire::NDJSON_CONTENT_TYPE,
    // Nothing before the first heartbeat line: every line is one JSON value.
    prelude: || Bytes::new(),
    heartbeat: crate::wire::ndjson_heartbeat,
    frame: Event::ndjson_line,
    max_bytes: None,
};

/// `GET /fetch/FEED?after=ID&rooms=…&history=N`: the query as every transport reads it.
pub async fn handler(
    State(app): State<AppState>,
    FeedPath(feed): FeedPath,
    subscribing: Subscribing,
) -> Result<Response, ApiError> {
    get_stream(&app, &FETCH, feed, subscribing).await
}

/// The body of `POST /fetch/FEED`: what the query carries for a `GET`, as JSON
/// (`{"after": 41, "rooms": ["lobby", "red"], "history": 20}`, every member optional). It is
/// read within the bounds of every JSON body (`crate::http::MAX_BODY_BYTES`, the body
/// deadline), and its values pass the same checks as the query's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscribe {
    after: Option<u64>,
    rooms: Option<Vec<String>>,
    history: Option<u64>,
}

impl Subscribe {
    /// The body as the query parameters the subscription reads, so both ways in are held to
    /// one set of rules (room names, the number of rooms, the history's range).
    fn params(&self) -> Result<Params, ApiError> {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(rooms) = &self.rooms {
            if rooms.iter().any(|room| room.contains(',')) {
                return Err(ApiError::Invalid(
                    "invalid_room",
                    "a room name has no comma".into(),
                ));
            }
            query.append_pair("rooms", &rooms.join(","));
        }
        if let Some(history) = self.history {
            query.append_pair("history", &history.to_string());
        }
        Params::parse(&query.finish())
    }
}

/// `POST /fetch/FEED` with a JSON body ([`Subscribe`]): the same stream as the `GET`. Only
/// `?tag=` (the diagnostics' kill switch) is read from the query.
pub async fn subscribe(
    State(app): State<AppState>,
    FeedPath(feed): FeedPath,
    Subscribing { headers, kill, .. }: Subscribing,
    JsonBody(body): JsonBody<Subscribe>,
) -> Result<Response, ApiError> {
    app.stats().transport(Transport::Fetch).request();
    let params = body.params()?;
    open_stream(&app, &FETCH, feed, body.after, &params, &headers, kill).await
}
