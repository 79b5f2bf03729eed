//! WebTransport over HTTP/3: a session at `https://HOST:PORT/webtransport/FEED?after=ID` (UDP, the TCP
//! server's port number; the endpoint and its certificate are `crate::net::quic`). Server side
//! only so far: not yet one of [`crate::names::Transport::ALL`] (no page, page client or load
//! tester client yet), so it has its own section in the statistics.
//!
//! - **Downstream**: the server opens one unidirectional stream and writes the feed to it as
//!   NDJSON, the event's JSON and a newline, with the same ids and cursor rules as every other
//!   transport (it subscribes through [`super::open_held`]), and the heartbeat line
//!   `{"heartbeat":MS}` first and after `--keepalive` without a line.
//! - **Datagrams** (`?datagrams=1`, clock and draw): each event is one datagram (its JSON, no
//!   newline) when it fits the connection's current maximum datagram size, else a line on the
//!   stream. A datagram the network loses is lost for good: QUIC does not resend it, and the
//!   server cannot know; the client sees the gap in the ids (ticks, strokes) and may reopen
//!   with its cursor to fetch what the feed still holds. Heartbeats stay on the stream.
//! - **Upstream**: a bidirectional stream the client opens; each line is a command as the
//!   WebSocket takes it (chat: `chat::Command`'s frames; draw: `{"type":"draw","strokes":[…]}`).
//!   A refusal comes back as an `error` event line on that stream's send half; the client's
//!   own message comes back on the feed, like everyone's.
//!
//! Bounds (docs/API.md, Limits): the QUIC handshake and the CONNECT request within
//! `--header-timeout`; `--max-webtransport-sessions` in all and the peer's
//! `--max-connections-per-peer` (the same per-address count as its TCP connections), both
//! checked before the handshake is spent, so a refusal is QUIC's CONNECTION_REFUSED; a stream
//! write that makes no progress for `--send-timeout` closes the session; a command line longer
//! than [`MAX_LINE_BYTES`] closes its stream; QUIC's own bounds are `net::quic`'s.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::time::{Instant, MissedTickBehavior};
use wtransport::endpoint::endpoint_side::Server;
use wtransport::endpoint::{IncomingSession, SessionRequest};
use wtransport::{Connection, Endpoint, SendStream, VarInt};

use super::{Hold, open_held, ws};
use crate::chat::{EndReason, Session};
use crate::error::ApiError;
use crate::feed::{Ended, Start, Subscription};
use crate::http::{Params, session_of};
use crate::names::FeedName;
use crate::net::addresses::AddressConn;
use crate::net::quic::CertificateHash;
use crate::state::AppState;
use crate::stats::WebTransportSlot;

/// The longest command line a client may send on its bidirectional stream (the WebSocket's
/// message limit); past it the stream is stopped.
pub const MAX_LINE_BYTES: usize = ws::MAX_MESSAGE_BYTES;

/// Session close codes (the WebTransport application error code) and their reasons.
pub mod close {
    /// The server is shutting down.
    pub const GOING_AWAY: u32 = 0;
    /// The event stream took nothing for `--send-timeout`.
    pub const SEND_TIMEOUT: u32 = 1;
    /// The chat session logged out.
    pub const LOGGED_OUT: u32 = 2;
    /// The chat session ended after `--idle-timeout`.
    pub const IDLE_TIMEOUT: u32 = 3;
    /// The subscription was dropped by `POST /api/debug/kill` (not reachable yet: sessions take
    /// no kill switch, as `?tag=` does not reach them).
    pub const KILLED: u32 = 4;
    /// The client stopped or reset the event stream.
    pub const STREAM_GONE: u32 = 5;
}

/// `GET /webtransport/FEED` over TCP: a WebTransport session is HTTP/3 on UDP, so this
/// route only says where to go.
pub async fn over_tcp(State(app): State<AppState>) -> ApiError {
    let _ = &app;
    ApiError::NotFound(
        "WebTransport sessions are HTTP/3 over UDP at this port number: GET /api/webtransport says where and with which certificate hashes".to_string(),
    )
}

/// `GET /api/webtransport`: where the WebTransport endpoint is and the certificate hashes a
/// page passes to `new WebTransport(url, { serverCertificateHashes })` as they are. `404`
/// with `--no-webtransport`.
pub async fn info(State(app): State<AppState>) -> Result<Response, ApiError> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Info {
        port: u16,
        /// Empty with `--tls-cert`: the browser checks the real certificate's chain.
        certificate_hashes: Vec<CertificateHash>,
    }
    let quic = app
        .webtransport()
        .ok_or_else(|| ApiError::NotFound("WebTransport is off (--no-webtransport)".into()))?;
    let body = Info {
        port: quic.port,
        certificate_hashes: quic.hashes.list(),
    };
    // The list changes at a rotation: never cached.
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(body),
    )
        .into_response())
}

/// Accepts WebTransport connections on `endpoint` until shutdown; each session runs in its
/// own task on the state's tracker.
pub async fn serve(app: AppState, endpoint: Arc<Endpoint<Server>>) {
    let shutdown = app.shutdown_token();
    loop {
        let incoming = tokio::select! {
            () = shutdown.cancelled() => break,
            incoming = endpoint.accept() => incoming,
        };
        let Some(slots) = admit(&app, &incoming) else {
            // QUIC's CONNECTION_REFUSED, before any handshake is spent on it.
            incoming.refuse();
            continue;
        };
        let app = app.clone();
        app.tracker().clone().spawn(async move {
            let deadline = app.config().header_timeout;
            match tokio::time::timeout(deadline, incoming).await {
                Ok(Ok(request)) => handle(app, request, slots).await,
                Ok(Err(err)) => tracing::debug!(%err, "WebTransport handshake failed"),
                Err(_) => app.stats().webtransport.handshake_timed_out(),
            }
        });
    }
    // Every session ends on the same token (its subscription ends); this tells the peers
    // whose handshake is still under way.
    endpoint.close(VarInt::from_u32(close::GOING_AWAY), b"server shutting down");
}

/// A session's slots: one of `--max-webtransport-sessions` and one of its address's
/// `--max-connections-per-peer`, held until the session ends.
struct Slots {
    _total: WebTransportSlot,
    peer: AddressConn,
}

fn admit(app: &AppState, incoming: &IncomingSession) -> Option<Slots> {
    let total = app
        .stats()
        .webtransport_try_open(app.config().max_webtransport_sessions)?;
    match app.addresses().connect(incoming.remote_address().ip()) {
        Ok(peer) => Some(Slots {
            _total: total,
            peer,
        }),
        Err(_) => {
            app.stats().webtransport.refused_per_peer();
            None
        }
    }
}

/// What the CONNECT request asks for.
struct Wanted {
    feed: FeedName,
    params: Params,
    datagrams: bool,
}

/// `/webtransport/FEED?QUERY`; `None` for any other path.
fn wanted(path: &str) -> Option<Result<Wanted, ApiError>> {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let feed = FeedName::parse(path.strip_prefix("/webtransport/")?)?;
    Some(Params::parse(query).map(|params| Wanted {
        feed,
        datagrams: params.get("datagrams") == Some("1"),
        params,
    }))
}

/// The request's headers as a `HeaderMap` (for the session cookie); names or values that
/// are not valid HTTP are left out.
fn header_map(request: &SessionRequest) -> HeaderMap {
    request
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            Some((
                header::HeaderName::from_bytes(name.as_bytes()).ok()?,
                HeaderValue::from_str(value).ok()?,
            ))
        })
        .collect()
}

/// Why a CONNECT request is answered without a session.
enum Refusal {
    NotFound,
    Forbidden,
}

/// Answers the CONNECT request: a session, or `404`/`403`. The answer is a few bytes on the
/// request's stream; a peer that does not take them is left after `--header-timeout`.
async fn handle(app: AppState, request: SessionRequest, slots: Slots) {
    let deadline = app.config().header_timeout;
    let (wanted, sub, session) = match subscribe(&app, &request).await {
        Ok(subscribed) => subscribed,
        Err(refusal) => {
            let answer = async {
                match refusal {
                    Refusal::NotFound => request.not_found().await,
                    Refusal::Forbidden => request.forbidden().await,
                }
            };
            let _ = tokio::time::timeout(deadline, answer).await;
            return;
        }
    };
    let connection = match tokio::time::timeout(deadline, request.accept()).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(err)) => return tracing::debug!(%err, "WebTransport session not accepted"),
        Err(_) => return app.stats().webtransport.handshake_timed_out(),
    };
    app.stats().webtransport.accepted();
    let upstream = Upstream {
        app: app.clone(),
        feed: wanted.feed,
        session: session.clone(),
        peer: slots.peer.ip(),
    };
    // Aborting it drops its JoinSet, which aborts every command stream's task with it.
    let commands = tokio::spawn(upstream.accept_forever(connection.clone()));
    let end = downstream(&app, &connection, sub, wanted.datagrams, session.as_ref()).await;
    commands.abort();
    // Closed in every case, so no connection outlives the slots it held.
    let (code, reason) = end.unwrap_or((close::STREAM_GONE, "event stream gone"));
    connection.close(VarInt::from_u32(code), reason.as_bytes());
    drop(slots);
}

/// The checks of every subscription (the Host and Origin rules, the query), then the feed's
/// subscription and, for the chat, the session the `Cookie` header names.
async fn subscribe(
    app: &AppState,
    request: &SessionRequest,
) -> Result<(Wanted, Subscription, Option<Session>), Refusal> {
    let wanted = match wanted(request.path()) {
        None => return Err(Refusal::NotFound),
        Some(wanted) => wanted.map_err(|_| Refusal::Forbidden)?,
    };
    if wanted.datagrams && wanted.feed == FeedName::Chat {
        // A chat line lost unseen is what the chat promises never happens.
        return Err(Refusal::Forbidden);
    }
    let mut headers = header_map(request);
    // HTTP/3 carries the host as `:authority`; the Host check reads `Host`.
    if let Ok(host) = HeaderValue::from_str(request.authority()) {
        headers.insert(header::HOST, host);
    }
    app.own_hosts()
        .check(&headers)
        .map_err(|_| Refusal::Forbidden)?;
    // A page's origin is the TCP side's (`http://` unless the server serves HTTPS there).
    let scheme = if app.config().serves_tls() {
        "https://"
    } else {
        "http://"
    };
    crate::net::origin::check(
        &headers,
        app.own_hosts(),
        &app.config().allow_origin,
        scheme,
    )
    .map_err(|_| Refusal::Forbidden)?;
    let cursor = wanted.params.cursor().map_err(|_| Refusal::Forbidden)?;
    let sub = open_held(
        app,
        wanted.feed,
        cursor,
        Start::Next,
        Hold::Push,
        &wanted.params,
        &headers,
        None,
    )
    .await
    .map_err(|_| Refusal::Forbidden)?;
    let session = match wanted.feed {
        FeedName::Chat => session_of(app.chat(), &headers).await.ok().flatten(),
        FeedName::Clock | FeedName::Draw => None,
    };
    Ok((wanted, sub, session))
}

/// Writes the feed to a server-opened stream until it ends; returns the close to send, if
/// any (none when the peer is gone).
async fn downstream(
    app: &AppState,
    connection: &Connection,
    mut sub: Subscription,
    datagrams: bool,
    session: Option<&Session>,
) -> Option<(u32, &'static str)> {
    let counters = &app.stats().webtransport;
    let config = app.config();
    let deadline = config.send_timeout;
    let timed_out = || {
        counters.send_timed_out();
        Some((close::SEND_TIMEOUT, "send timeout"))
    };
    // Opening waits for the peer's stream credit, which a peer that grants none never gives.
    let opened = tokio::time::timeout(deadline, async {
        connection.open_uni().await.ok()?.await.ok()
    })
    .await;
    let mut out = match opened {
        Ok(Some(out)) => out,
        Ok(None) => return None,
        Err(_) => return timed_out(),
    };
    let every = config.keepalive;
    let beat = Bytes::from(crate::wire::ndjson_heartbeat(every));
    let mut heartbeat = tokio::time::interval_at(Instant::now() + every, every);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    match write(&mut out, &beat, deadline).await {
        Written::Ok => counters.sent(beat.len(), 0, false),
        Written::Gone => return None,
        Written::TimedOut => return timed_out(),
    }
    loop {
        tokio::select! {
            event = sub.next() => {
                let Some(event) = event else {
                    return match (sub.ended(), session.and_then(Session::end_reason)) {
                        (Some(Ended::SessionEnded), Some(EndReason::Idle)) => Some((close::IDLE_TIMEOUT, "idle timeout")),
                        (Some(Ended::SessionEnded), _) => Some((close::LOGGED_OUT, "logged out")),
                        (Some(Ended::Killed), _) => Some((close::KILLED, "killed")),
                        _ => Some((close::GOING_AWAY, "server shutting down")),
                    };
                };
                if datagrams
                    && connection.max_datagram_size().is_some_and(|max| event.json.len() <= max)
                    && connection.send_datagram(event.json.clone()).is_ok()
                {
                    counters.sent(event.json.len(), 1, true);
                    continue;
                }
                // Framed once per event for every subscriber, as for fetch streaming.
                let line = event.ndjson_line();
                match write(&mut out, &line, deadline).await {
                    Written::Ok => counters.sent(line.len(), 1, false),
                    Written::Gone => return None,
                    Written::TimedOut => return timed_out(),
                }
                heartbeat.reset();
            }
            _ = heartbeat.tick() => match write(&mut out, &beat, deadline).await {
                Written::Ok => counters.sent(beat.len(), 0, false),
                Written::Gone => return None,
                Written::TimedOut => return timed_out(),
            },
            _ = connection.closed() => return None,
        }
    }
}

enum Written {
    Ok,
    Gone,
    TimedOut,
}

/// Writes `bytes`, failing when the peer's flow control keeps them back for `deadline` (a
/// client that stopped reading): quinn buffers a stream's writes only up to the peer's window.
async fn write(out: &mut SendStream, bytes: &[u8], deadline: Duration) -> Written {
    match tokio::time::timeout(deadline, out.write_all(bytes)).await {
        Ok(Ok(())) => Written::Ok,
        Ok(Err(_)) => Written::Gone,
        Err(_) => Written::TimedOut,
    }
}

/// What a session's command streams need.
#[derive(Clone)]
struct Upstream {
    app: AppState,
    feed: FeedName,
    session: Option<Session>,
    peer: IpAddr,
}

impl Upstream {
    /// Serves each bidirectional stream the client opens (QUIC's stream limit,
    /// `net::quic::MAX_BIDI_STREAMS`, bounds how many at once).
    async fn accept_forever(self, connection: Connection) {
        let mut streams = tokio::task::JoinSet::new();
        while let Ok((send, recv)) = connection.accept_bi().await {
            // Reap the finished ones, so the set holds at most the streams QUIC allows open.
            while streams.try_join_next().is_some() {}
            streams.spawn(self.clone().commands(send, recv));
        }
    }

    /// Reads command lines and answers refusals on the same stream. A line past
    /// [`MAX_LINE_BYTES`] stops the stream; a reply the client does not read within
    /// `--send-timeout` ends it too.
    async fn commands(self, mut send: SendStream, recv: wtransport::RecvStream) {
        let deadline = self.app.config().send_timeout;
        let mut lines = BufReader::new(recv);
        let mut line = Vec::new();
        loop {
            line.clear();
            // `take` bounds one line: past the limit the read stops with no newline.
            let mut limited = (&mut lines).take(MAX_LINE_BYTES as u64 + 1);
            match limited.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line.last() != Some(&b'\n') && line.len() > MAX_LINE_BYTES {
                let reply = ws::error_event("too_big", "a command line is at most 64 KiB");
                let _ = write(&mut send, format!("{reply}\n").as_bytes(), deadline).await;
                return;
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end();
            if text.is_empty() {
                continue;
            }
            let reply = match self.feed {
                FeedName::Draw => ws::draw_frame(&self.app, self.peer, text),
                FeedName::Chat | FeedName::Clock => {
                    ws::handle_frame(&self.app, self.feed, self.session.as_ref(), text).await
                }
            };
            if let Some(reply) = reply {
                let reply = format!("{reply}\n");
                if !matches!(
                    write(&mut send, reply.as_bytes(), deadline).await,
                    Written::Ok
                ) {
                    return;
                }
            }
        }
    }
}
