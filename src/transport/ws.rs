//! WebSocket: `GET /ws/FEED?after=ID` upgrades the connection (`101 Switching Protocols`);
//! each event is then one text message, and the client can send messages back on the same
//! socket. The server pings every `--ws-ping` and closes a peer silent for `--ws-timeout`;
//! it also sends the heartbeat message `{"heartbeat":MS}` at the start and after
//! `--keepalive` without a message, which the page sees (a ping it never does).
//!
//! One task per socket multiplexes four things with `select!`: the feed, the client's
//! frames, the ping timer, and shutdown (inside the subscription). A send that cannot
//! complete (a client that stopped reading) only delays this socket: the feed's ring keeps
//! moving, and this subscriber resyncs from its cursor when it catches up.
//!
//! The frames are spoken by tungstenite or fastwebsockets (`--ws-engine`), behind
//! [`socket::Socket`]; the handshake checks, the loop and its bounds are the same for both.
//! WebSocket is served over HTTP/1.1 only (the HTTP/2 listener does not offer RFC 8441's
//! extended CONNECT), so the upgrade is always hyper's HTTP/1.1 upgrade.

mod socket;

use std::time::Duration;

use axum::extract::ws::{Utf8Bytes, WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Version, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, MissedTickBehavior};

use self::socket::{In, Out, Socket};
use super::open;
use crate::chat::{Command, EndReason, Session};
use crate::config::WsEngine;
use crate::error::ApiError;
use crate::feed::{Ended, Subscription};
use crate::http::{FeedPath, Subscribing, session_of};
use crate::names::{FeedName, Transport};
use crate::state::AppState;

/// Initial read buffer per socket. tungstenite zero-fills the free part of it (up to this
/// size) before every read attempt, and the serving loop polls the socket for reading each
/// time it has sent an event: at 4 KiB that memset was 3.5% of the server's CPU at 2,000
/// subscribers (in a CPU profile). Client frames are small chat lines and strokes; a larger
/// one takes a few more reads.
const READ_BUFFER_BYTES: usize = 1024;

/// Largest message a client may send; larger ones close the socket with 1009.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Close codes this server uses.
pub mod close {
    /// The session logged out.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A client message was larger than [`super::MAX_MESSAGE_BYTES`].
    pub const TOO_BIG: u16 = 1009;
    /// The session ended after `--idle-timeout` without activity.
    pub const IDLE_TIMEOUT: u16 = 4000;
    /// No frame and no pong from the peer for `--ws-timeout`.
    pub const PING_TIMEOUT: u16 = 4001;
}

pub async fn handler(
    State(app): State<AppState>,
    client: crate::http::ClientAddr,
    FeedPath(feed): FeedPath,
    Subscribing {
        params,
        headers,
        kill,
    }: Subscribing,
    uri: axum::http::Uri,
    over_tls: Option<axum::Extension<crate::net::tls::OverTls>>,
    Upgrade(upgrade): Upgrade,
) -> Result<Response, ApiError> {
    app.stats().transport(Transport::Ws).request();
    let scheme = if over_tls.is_some() {
        "https://"
    } else {
        "http://"
    };
    crate::net::origin::check(
        &headers,
        app.own_hosts(),
        &app.config().allow_origin,
        scheme,
    )?;
    let upgrade = upgrade?;
    let sub = open(
        &app,
        Transport::Ws,
        feed,
        params.cursor()?,
        &params,
        &headers,
        kill,
    )
    .await?;
    // The session this socket speaks for (the cookie on the upgrade request).
    let session = match feed {
        FeedName::Chat => session_of(app.chat(), &headers).await?,
        FeedName::Clock | FeedName::Draw => None,
    };
    // `?inspect=1`: the first frame shows the handshake as it really happened (for the
    // wire inspector), so the page can check the server's Sec-WebSocket-Accept itself.
    let inspect = params.get("inspect") == Some("1");
    let (handshake_tx, handshake_rx) = tokio::sync::oneshot::channel::<Utf8Bytes>();
    // Upgraded sockets outlive the HTTP request, so graceful shutdown does not wait for
    // them by itself: each holds a tracker token until its task ends.
    let tracked = app.tracker().token();
    let serving = move |mut socket: Socket| async move {
        let _tracked = tracked;
        if let Ok(handshake) = handshake_rx.await
            && send(&mut socket, Out::Text(handshake), &app).await.is_err()
        {
            return;
        }
        serve(socket, sub, app, feed, session, client.ip()).await;
    };
    let response = match upgrade {
        Upgrading::Tungstenite(upgrade) => upgrade
            // tungstenite's defaults reserve 128 KiB per socket for reading: at 10,000 sockets
            // that is over a gigabyte for frames of a few hundred bytes. Reads grow the buffer
            // when a large frame needs it; writes go straight out (the frames are small and
            // each send is awaited, so there is nothing to batch).
            .read_buffer_size(READ_BUFFER_BYTES)
            .write_buffer_size(0)
            .max_message_size(MAX_MESSAGE_BYTES)
            .max_frame_size(MAX_MESSAGE_BYTES)
            .on_upgrade(move |socket| serving(Socket::Tungstenite(Box::new(socket)))),
        Upgrading::Fast { key, on_upgrade } => {
            // fastwebsockets answers the key from a request of its own: the headers it reads
            // (checked already) and hyper's upgrade handle.
            let mut request = hyper::Request::new(());
            request.headers_mut().insert(header::SEC_WEBSOCKET_KEY, key);
            request.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
            request.extensions_mut().insert(on_upgrade);
            let (response, upgraded) = fastwebsockets::upgrade::upgrade(&mut request)
                .map_err(|e| ApiError::UpgradeRequired(e.to_string()))?;
            tokio::spawn(async move {
                // The upgrade fails when the client goes away before it completes.
                if let Ok(ws) = upgraded.await {
                    serving(Socket::Fast(Box::new(socket::Fast::new(ws.into_inner())))).await;
                }
            });
            response.map(axum::body::Body::new)
        }
    };
    if inspect {
        let _ = handshake_tx.send(handshake_event(&uri, &headers, &response));
    }
    Ok(response)
}

/// `{"type":"handshake","request":{…},"response":{…}}`: the upgrade's request line and the
/// headers that make it a WebSocket handshake, as received and as answered.
fn handshake_event(uri: &axum::http::Uri, request: &HeaderMap, response: &Response) -> Utf8Bytes {
    let pick =
        |headers: &HeaderMap, names: &[&str]| -> serde_json::Map<String, serde_json::Value> {
            names
                .iter()
                .filter_map(|n| {
                    headers
                        .get(*n)
                        .map(|v| (n.to_string(), v.to_str().unwrap_or("(binary)").into()))
                })
                .collect()
        };
    let request_headers = pick(
        request,
        &[
            "host",
            "origin",
            "upgrade",
            "connection",
            "sec-websocket-key",
            "sec-websocket-version",
            "sec-websocket-extensions",
        ],
    );
    let response_headers = pick(
        response.headers(),
        &["upgrade", "connection", "sec-websocket-accept"],
    );
    serde_json::json!({
        "type": "handshake",
        "request": { "line": format!("GET {uri} HTTP/1.1"), "headers": request_headers },
        "response": { "line": format!("HTTP/1.1 {}", response.status()), "headers": response_headers },
    })
    .to_string()
    .into()
}

/// The upgrade as the configured engine takes it, or why the request cannot be upgraded
/// (answered after the Origin check, as the handler orders it).
pub struct Upgrade(Result<Upgrading, ApiError>);

enum Upgrading {
    Tungstenite(WebSocketUpgrade),
    Fast {
        key: HeaderValue,
        on_upgrade: hyper::upgrade::OnUpgrade,
    },
}

impl FromRequestParts<AppState> for Upgrade {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Upgrade(upgrading(parts, app).await))
    }
}

async fn upgrading(parts: &mut Parts, app: &AppState) -> Result<Upgrading, ApiError> {
    {
        let bad = |e: WebSocketUpgradeRejection| ApiError::UpgradeRequired(e.body_text());
        if app.config().ws_engine == WsEngine::Tungstenite || parts.version > Version::HTTP_11 {
            return WebSocketUpgrade::from_request_parts(parts, app)
                .await
                .map(Upgrading::Tungstenite)
                .map_err(bad);
        }
        // The same checks and the same answers as on tungstenite: axum's extractor runs
        // without hyper's upgrade handle, so its last check (that handle) is the only one it
        // fails on a good request.
        let on_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
        let checked = WebSocketUpgrade::from_request_parts(parts, app).await;
        match (
            checked,
            on_upgrade,
            parts.headers.get(header::SEC_WEBSOCKET_KEY),
        ) {
            (
                Err(WebSocketUpgradeRejection::ConnectionNotUpgradable(_)),
                Some(on_upgrade),
                Some(key),
            ) => Ok(Upgrading::Fast {
                key: key.clone(),
                on_upgrade,
            }),
            (Err(e), _, _) => Err(bad(e)),
            (Ok(upgrade), _, _) => Ok(Upgrading::Tungstenite(upgrade)),
        }
    }
}

/// Why the loop ended, and what to tell the peer.
enum End {
    /// The peer vanished or broke the protocol: nothing to send.
    Gone,
    /// The server closes with this code and reason.
    Close(u16, &'static str),
    /// The peer closed: the server answers its close frame.
    Answer,
}

async fn serve(
    mut socket: Socket,
    mut sub: Subscription,
    app: AppState,
    feed: FeedName,
    session: Option<Session>,
    peer: std::net::IpAddr,
) {
    let _open = app.stats().open(Transport::Ws);
    let counters = app.stats().transport(Transport::Ws);
    let config = app.config();
    let mut ping = tokio::time::interval_at(Instant::now() + config.ws_ping, config.ws_ping);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    // The heartbeat a page can see (a ping is answered by the browser and never shown to
    // it): once now, then whenever no other message went out for `--keepalive`.
    let every = config.keepalive;
    let beat = Utf8Bytes::from(crate::wire::heartbeat_json(every));
    let mut heartbeat = super::quiet::Quiet::new(every);
    if send(&mut socket, Out::Text(beat.clone()), &app)
        .await
        .is_err()
    {
        return;
    }
    counters.sent(beat.len(), 0);

    let end = loop {
        tokio::select! {
            event = sub.next() => {
                let Some(event) = event else {
                    break match (sub.ended(), session.as_ref().and_then(Session::end_reason)) {
                        (Some(Ended::SessionEnded), Some(EndReason::Idle)) => End::Close(close::IDLE_TIMEOUT, "idle timeout"),
                        (Some(Ended::SessionEnded), _) => End::Close(close::NORMAL, "logged out"),
                        // Dropped without a close frame, like a failed network: the peer sees 1006.
                        (Some(Ended::Killed), _) => End::Gone,
                        _ => End::Close(close::GOING_AWAY, "server shutting down"),
                    };
                };
                let len = event.json.len();
                if send(&mut socket, Out::Event(event.json.clone()), &app).await.is_err() {
                    break End::Gone;
                }
                counters.sent(len, 1);
                heartbeat.sent();
            }
            () = heartbeat.due() => {
                if send(&mut socket, Out::Text(beat.clone()), &app).await.is_err() {
                    break End::Gone;
                }
                counters.sent(beat.len(), 0);
            }
            received = socket.recv() => {
                last_heard = Instant::now();
                if let Some(owed) = socket.owed()
                    && send(&mut socket, owed, &app).await.is_err()
                {
                    break End::Gone;
                }
                let reply = match received {
                    In::Gone => break End::Gone,
                    In::Close => break End::Answer,
                    In::TooBig => break End::Close(close::TOO_BIG, "message too big"),
                    In::Text(text) if feed == FeedName::Draw => draw_frame(&app, peer, &text),
                    In::Text(text) => handle_frame(&app, feed, session.as_ref(), &text).await,
                    In::Binary if matches!(feed, FeedName::Chat | FeedName::Draw) => {
                        Some(error_event("bad_frame", "send text frames holding JSON"))
                    }
                    In::Binary => Some(read_only()),
                    In::Control => None,
                };
                if let Some(text) = reply {
                    let len = text.len();
                    if send(&mut socket, Out::Text(text), &app).await.is_err() {
                        break End::Gone;
                    }
                    counters.sent(len, 0);
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() >= config.ws_timeout {
                    break End::Close(close::PING_TIMEOUT, "ping timeout");
                }
                if send(&mut socket, Out::Ping, &app).await.is_err() {
                    break End::Gone;
                }
            }
        }
    };
    let last = match end {
        End::Close(code, reason) => Out::Close(code, reason),
        End::Answer => Out::Answer,
        End::Gone => return,
    };
    // The peer may not read it; never wait long for that.
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(last)).await;
}

fn read_only() -> Utf8Bytes {
    error_event(
        "read_only",
        "this feed takes no messages: the clock only talks",
    )
}

/// Handles one client text frame; returns the `error` event to answer with, if any. The
/// client's own message comes back through its subscription, like everyone's.
pub(super) async fn handle_frame(
    app: &AppState,
    feed: FeedName,
    session: Option<&Session>,
    text: &str,
) -> Option<Utf8Bytes> {
    if feed != FeedName::Chat {
        return Some(read_only());
    }
    let command = match Command::from_frame(text) {
        Ok(command) => command,
        Err(bad) => return Some(error_event(bad.code, &bad.message)),
    };
    let Some(session) = session else {
        let err = ApiError::signed_out();
        return Some(error_event(err.code(), &err.to_string()));
    };
    // The same code and message as the HTTP API would answer with.
    app.chat().run(session.id, command).await.err().map(|err| {
        let err = ApiError::from(err);
        error_event(err.code(), &err.to_string())
    })
}

/// What a draw client may send: `{"type":"draw","strokes":[…]}`, the body of
/// `POST /api/draw` with a type.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum DrawFrame {
    Draw(crate::feed::draw::Batch),
}

/// Handles one text frame on a draw socket: the strokes are checked, charged to the peer's
/// address and published like a `POST /api/draw` (they come back through the subscription,
/// like everyone's); a refusal is an `error` event and the socket stays open.
pub(super) fn draw_frame(app: &AppState, peer: std::net::IpAddr, text: &str) -> Option<Utf8Bytes> {
    let batch = match serde_json::from_str::<DrawFrame>(text) {
        Ok(DrawFrame::Draw(batch)) => batch,
        Err(err) => {
            return Some(error_event(
                "bad_json",
                &format!("send {{\"type\":\"draw\",\"strokes\":[…]}}: {err}"),
            ));
        }
    };
    app.send_strokes(peer, batch)
        .err()
        .map(|err| error_event(err.code(), &err.to_string()))
}

/// Why a message did not go out; either way the socket's loop ends.
#[derive(Debug, thiserror::Error)]
enum Unsent {
    #[error(transparent)]
    Gone(#[from] socket::Gone),
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// Sends one message, giving up if the peer has not taken it within `--ws-timeout` (a client
/// that stopped reading) or when the server shuts down.
async fn send(socket: &mut Socket, message: Out, app: &AppState) -> Result<(), Unsent> {
    use futures_util::FutureExt as _;
    // No deadline of its own: a peer that stops reading stalls the socket's writes, which
    // the listener's `--send-timeout` watch turns into an error (docs/API.md, Limits). A
    // timer per send was one timer-wheel entry per event per subscriber.
    let mut sending = std::pin::pin!(socket.send(message));
    // Most sends complete at once (the frame fits the socket's buffer); only one that has
    // to wait also waits for shutdown, which costs registering a waiter on the token.
    if let Some(sent) = (&mut sending).now_or_never() {
        return Ok(sent?);
    }
    let shutdown = app.shutdown_token();
    tokio::select! {
        sent = sending => Ok(sent?),
        () = shutdown.cancelled() => Err(Unsent::ShuttingDown),
    }
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
