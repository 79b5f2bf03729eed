//! WebSocket: `GET /ws/FEED?after=ID` upgrades the connection (`101 Switching Protocols`);
//! each event is then one text message, and the client can send messages back on the same
//! socket. The server pings every `--ws-ping` and closes a peer silent for `--ws-timeout`.
//!
//! One task per socket multiplexes four things with `select!`: the feed, the client's
//! frames, the ping timer, and shutdown (inside the subscription). A send that cannot
//! complete (a client that stopped reading) only delays this socket: the feed's ring keeps
//! moving, and this subscriber resyncs from its cursor when it catches up.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{
    CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade,
    rejection::WebSocketUpgradeRejection,
};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Serialize;
use tokio::time::{Instant, MissedTickBehavior};

use super::{FeedPath, Params, Transport};
use crate::app::AppState;
use crate::error::ApiError;
use crate::feed::Subscription;

/// Largest message a client may send; larger ones close the socket with 1009.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Close codes this server uses.
pub mod close {
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A client message was larger than [`super::MAX_MESSAGE_BYTES`].
    pub const TOO_BIG: u16 = 1009;
    /// No frame and no pong from the peer for `--ws-timeout`.
    pub const PING_TIMEOUT: u16 = 4001;
}

pub async fn handler(
    State(app): State<AppState>,
    FeedPath(feed): FeedPath,
    params: Params,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    app.stats().transport(Transport::Ws).request();
    crate::origin::check(&headers, &app.config().allow_origin)?;
    let upgrade = upgrade.map_err(|e| ApiError::UpgradeRequired(e.body_text()))?;
    let cursor = params.cursor()?;
    let sub = app.feed(feed).subscribe(cursor, app.shutdown_token());
    // Upgraded sockets outlive the HTTP request, so graceful shutdown does not wait for
    // them by itself: each holds a tracker token until its task ends.
    let tracked = app.tracker().token();
    Ok(upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            let _tracked = tracked;
            serve(socket, sub, app).await;
        }))
}

/// Why the loop ended, and what to tell the peer.
enum End {
    /// The peer closed or vanished: nothing to send.
    Gone,
    Close(u16, &'static str),
}

async fn serve(mut socket: WebSocket, mut sub: Subscription, app: AppState) {
    let _open = app.stats().open(Transport::Ws);
    let counters = app.stats().transport(Transport::Ws);
    let config = app.config();
    let mut ping = tokio::time::interval_at(Instant::now() + config.ws_ping, config.ws_ping);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();

    let end = loop {
        tokio::select! {
            event = sub.next() => {
                let Some(event) = event else { break End::Close(close::GOING_AWAY, "server shutting down") };
                let text = event.ws_text();
                let len = text.len();
                if send(&mut socket, Message::Text(text), &app).await.is_err() {
                    break End::Gone;
                }
                counters.sent(len, 1);
            }
            received = socket.recv() => {
                let message = match received {
                    None => break End::Gone,
                    Some(Err(err)) if is_too_big(&err) => break End::Close(close::TOO_BIG, "message too big"),
                    Some(Err(_)) => break End::Gone,
                    Some(Ok(message)) => message,
                };
                last_heard = Instant::now();
                match message {
                    Message::Text(_) | Message::Binary(_) => {
                        let text = error_event("read_only", "this feed takes no messages: the clock only talks");
                        let len = text.len();
                        if send(&mut socket, Message::Text(text), &app).await.is_err() {
                            break End::Gone;
                        }
                        counters.sent(len, 0);
                    }
                    // The library answers pings and close frames itself.
                    Message::Ping(_) | Message::Pong(_) => {}
                    Message::Close(_) => break End::Gone,
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() >= config.ws_timeout {
                    break End::Close(close::PING_TIMEOUT, "ping timeout");
                }
                if send(&mut socket, Message::Ping(Default::default()), &app).await.is_err() {
                    break End::Gone;
                }
            }
        }
    };
    if let End::Close(code, reason) = end {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        // The peer may not read it; never wait long for that.
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            socket.send(Message::Close(Some(frame))),
        )
        .await;
    }
}

/// Sends one message, giving up if the peer has not taken it within `--ws-timeout` (a client
/// that stopped reading) or when the server shuts down.
async fn send(socket: &mut WebSocket, message: Message, app: &AppState) -> Result<(), ()> {
    let shutdown = app.shutdown_token();
    tokio::select! {
        sent = tokio::time::timeout(app.config().ws_timeout, socket.send(message)) => match sent {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        },
        () = shutdown.cancelled() => Err(()),
    }
}

fn is_too_big(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(tungstenite::Error::Capacity(_)) = e.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// `{"type":"error","code":"…","message":"…"}`: how problems are answered on a socket.
pub fn error_event(code: &str, message: &str) -> Utf8Bytes {
    #[derive(Serialize)]
    struct ErrorEvent<'a> {
        r#type: &'static str,
        code: &'a str,
        message: &'a str,
    }
    serde_json::to_string(&ErrorEvent {
        r#type: "error",
        code,
        message,
    })
    .unwrap_or_default()
    .into()
}
