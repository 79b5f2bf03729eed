//! The stream core of the streaming transports (the hidden iframe, `fetch()` streaming and
//! Server-Sent Events):
//! one open-ended response body that frames each event as it arrives, with heartbeats.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::killed;
use crate::error::ApiError;
use crate::event::Event;
use crate::feed::{Ended, Subscription};
use crate::http::{KillSwitch, Params, Subscribing};
use crate::names::{FeedName, Transport};
use crate::state::AppState;

/// How a streaming transport frames the feed into one open-ended response body.
pub struct Framing {
    pub transport: Transport,
    pub content_type: &'static str,
    /// Sent first: SSE's `retry:` line, the iframe's padded HTML head (nothing for `fetch`).
    pub prelude: fn() -> Bytes,
    /// The heartbeat ([`crate::wire::heartbeat_json`]) framed, given `--keepalive`: sent
    /// after the prelude and whenever nothing else was sent for `--keepalive`, so proxies
    /// keep the connection open and the client can tell a quiet stream from a dead one.
    pub heartbeat: fn(std::time::Duration) -> String,
    /// One event, framed.
    pub frame: fn(&Event) -> Bytes,
    /// End the response after this many bytes (the client reopens with its cursor).
    pub max_bytes: Option<usize>,
}

/// Opens the subscription a streaming request asks for, at `cursor`, and answers it framed by
/// `framing`: what each streaming handler does once it has read its cursor its own way.
pub async fn open_stream(
    app: &AppState,
    framing: &'static Framing,
    feed: FeedName,
    cursor: Option<u64>,
    params: &Params,
    headers: &HeaderMap,
    kill: Option<KillSwitch>,
) -> Result<Response, ApiError> {
    let sub = super::open(app, framing.transport, feed, cursor, params, headers, kill).await?;
    Ok(stream_response(app, framing, sub))
}

/// `GET /TRANSPORT/FEED?after=ID&…` for a stream whose cursor is the query's `after` (the
/// hidden iframe, `fetch()`): counts the request (a refused cursor counts too), then opens.
pub async fn get_stream(
    app: &AppState,
    framing: &'static Framing,
    feed: FeedName,
    Subscribing {
        params,
        headers,
        kill,
    }: Subscribing,
) -> Result<Response, ApiError> {
    app.stats().transport(framing.transport).request();
    open_stream(
        app,
        framing,
        feed,
        params.cursor()?,
        &params,
        &headers,
        kill,
    )
    .await
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
        let heartbeat = Bytes::from((framing.heartbeat)(every));
        let mut prelude = (framing.prelude)().to_vec();
        prelude.extend_from_slice(&heartbeat);
        let mut sent = prelude.len();
        counters.sent(prelude.len(), 0);
        yield Ok::<Bytes, std::io::Error>(Bytes::from(prelude));
        let mut keepalive = super::quiet::Quiet::new(every);
        loop {
            let chunk = tokio::select! {
                event = sub.next() => match event {
                    Some(event) => {
                        keepalive.sent();
                        let chunk = (framing.frame)(&event);
                        counters.sent(chunk.len(), 1);
                        chunk
                    }
                    None => break,
                },
                () = keepalive.due() => {
                    counters.sent(heartbeat.len(), 0);
                    heartbeat.clone()
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
