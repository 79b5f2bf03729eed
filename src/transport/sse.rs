//! Server-Sent Events: `GET /sse/FEED` answers `text/event-stream` and never finishes. Each
//! event is an `id:`/`event:`/`data:` message; `EventSource` reconnects by itself after
//! `retry:` ms and sends the last id it saw as `Last-Event-ID`, which is the cursor.

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;

use super::{Framing, open_stream};
use crate::error::ApiError;
use crate::event::Event;
use crate::http::{FeedPath, Subscribing, parse_cursor};
use crate::names::Transport;
use crate::state::AppState;

static SSE: Framing = Framing {
    transport: Transport::Sse,
    content_type: "text/event-stream",
    prelude: || Bytes::from_static(b"retry: 2000\n\n"),
    heartbeat: crate::wire::sse_heartbeat,
    frame: Event::sse_frame,
    max_bytes: None,
};

pub async fn handler(
    State(app): State<AppState>,
    FeedPath(feed): FeedPath,
    Subscribing {
        params,
        headers,
        kill,
    }: Subscribing,
) -> Result<Response, ApiError> {
    app.stats().transport(Transport::Sse).request();
    // On a reconnect the URL still carries the first `after=`; the header is newer.
    let cursor = match headers.get("last-event-id") {
        Some(value) => Some(parse_cursor(
            "Last-Event-ID",
            value
                .to_str()
                .map_err(|_| ApiError::BadCursor("Last-Event-ID is not text".into()))?,
        )?),
        None => params.cursor()?,
    };
    open_stream(&app, &SSE, feed, cursor, &params, &headers, kill).await
}
