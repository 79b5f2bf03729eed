//! WebTransport over HTTP/3: a session at `https://HOST:PORT/webtransport/FEED?after=ID` (UDP, the TCP
//! server's port number; the endpoint and its certificate are `crate::net::quic`). One of
//! [`crate::names::Transport::ALL`] like the others (its row in the statistics, `--refuse`,
//! `?tag=` and the kill switch), whose sessions come from the QUIC endpoint rather than an
//! HTTP route; its extra figures (datagrams, refusals) have their own statistics section.
//!
//! - **Chat session**: a browser sends no cookies with a WebTransport session, so the chat's
//!   session comes with `?ticket=` (`POST /api/webtransport/ticket`, `crate::net::tickets`:
//!   single use, expiring); a client that can set headers may send the `Cookie` instead.
//! - **Refusals** the page may be told (a bad query, a ticket refused, `--refuse`) accept the
//!   session, send the `error` event (`{"type":"error","code":…,"message":…}`) as the one line
//!   of a server-opened stream, and close with [`close::REFUSED`] (a refused CONNECT, or a
//!   QUIC close's reason, reaches a page as a bare network error). A foreign origin or host
//!   gets `403`, an unknown path `404`.
//! - **Downstream**: the server opens one unidirectional stream and writes the feed to it as
//!   NDJSON, the event's JSON and a newline, with the same ids and cursor rules as every other
//!   transport (it subscribes through [`super::open_as`]), and the heartbeat line
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
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use wtransport::endpoint::endpoint_side::Server;
use wtransport::endpoint::{IncomingSession, SessionRequest};
use wtransport::{Connection, Endpoint, SendStream, VarInt};

use super::ws;
use crate::chat::{EndReason, Session};
use crate::error::ApiError;
use crate::feed::{Ended, Subscription};
use crate::http::{FeedPath, Params, SignedIn, session_of};
use crate::names::{FeedName, Transport};
use crate::net::addresses::AddressConn;
use crate::net::quic::CertificateHash;
use crate::net::tickets::Refused;
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
    /// The subscription was dropped by `POST /api/debug/kill` (a session opened with `?tag=`).
    pub const KILLED: u32 = 4;
    /// The client stopped or reset the event stream.
    pub const STREAM_GONE: u32 = 5;
    /// The session's request was refused: the reason is the error's `code: message`, the
    /// JSON error an HTTP transport would answer (`invalid_ticket`, `transport_refused`…).
    pub const REFUSED: u32 = 6;
}

/// `GET /webtransport/FEED` over TCP: a WebTransport session is HTTP/3 on UDP, so this
/// route only says where to go, once the feed and the cursor are ones a session would take
/// (`404 unknown_feed`, `400 bad_cursor` as on every transport's route).
pub async fn over_tcp(FeedPath(_): FeedPath, params: Params) -> ApiError {
    if let Err(err) = params.cursor() {
        return err;
    }
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

/// `POST /api/webtransport/ticket` (signed in; the Origin rule of every state-changing
/// request applies) → `201 {"ticket":…,"expiresInMs":…}`: a single-use ticket that carries the
/// caller's chat session onto one WebTransport session (`?ticket=`), which browsers open
/// without cookies. `404` with `--no-webtransport`; `429` when the node holds its most.
pub async fn ticket(
    State(app): State<AppState>,
    SignedIn(session): SignedIn,
) -> Result<Response, ApiError> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Ticket {
        ticket: String,
        expires_in_ms: u64,
    }
    let quic = app
        .webtransport()
        .ok_or_else(|| ApiError::NotFound("WebTransport is off (--no-webtransport)".into()))?;
    let ticket = quic
        .tickets
        .issue(session.id)
        .map_err(|refused| match refused {
            Refused::Full(wait) => ApiError::RateLimited {
                what: "WebTransport tickets on this server",
                retry_after: wait.as_secs().max(1),
            },
            Refused::NoRandomness => ApiError::Internal(anyhow::anyhow!("no OS randomness")),
        })?;
    let body = Ticket {
        ticket,
        expires_in_ms: u64::try_from(quic.tickets.ttl().as_millis()).unwrap_or(u64::MAX),
    };
    Ok((
        StatusCode::CREATED,
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
    /// `404`: not a session path.
    NotFound,
    /// `403`: a foreign host or origin, told nothing more.
    Forbidden,
    /// Accepted and closed at once with [`close::REFUSED`] and this error as the reason.
    Api(ApiError),
}

/// A session's close reason: at most the 1024 bytes WebTransport carries, cut at a character.
fn close_reason(err: &ApiError) -> String {
    let mut reason = format!("{}: {err}", err.code());
    if reason.len() > 1024 {
        let mut end = 1024;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

/// Accepts the session only to say why it is refused: the error event line on a server-opened
/// stream (what a page reads; a browser does not show it a QUIC close's reason), then, once
/// the peer has it or has closed, the close with [`close::REFUSED`] and the same reason.
async fn refuse(request: SessionRequest, err: &ApiError) {
    let Ok(connection) = request.accept().await else {
        return;
    };
    let reason = close_reason(err);
    let told = async {
        let mut out = connection.open_uni().await.ok()?.await.ok()?;
        let line = format!("{}\n", ws::error_event(err.code(), &err.to_string()));
        out.write_all(line.as_bytes()).await.ok()?;
        out.finish().await.ok()
    };
    if told.await.is_some() {
        // A page closes once it has read the line; a peer that does not gets a second.
        let _ = tokio::time::timeout(Duration::from_secs(1), connection.closed()).await;
    }
    connection.close(VarInt::from_u32(close::REFUSED), reason.as_bytes());
}

/// Answers the CONNECT request: a session, or `404`/`403`, or a session closed at once with
/// the refusal. The answer is a few bytes on the request's stream; a peer that does not take
/// them is left after `--header-timeout`.
async fn handle(app: AppState, request: SessionRequest, slots: Slots) {
    let deadline = app.config().header_timeout;
    // Counted as every transport counts its requests: each one asked, refused or not.
    app.stats().transport(Transport::WebTransport).request();
    let subscribed = subscribe(&app, &request, slots.peer.ip()).await;
    let (wanted, sub, session) = match subscribed {
        Ok(subscribed) => subscribed,
        Err(Refusal::Api(err)) => {
            // Within one `--header-timeout`: the refusal told, then the peer's close awaited.
            let _ = tokio::time::timeout(deadline, refuse(request, &err)).await;
            return;
        }
        Err(refusal) => {
            let answer = async {
                match refusal {
                    Refusal::NotFound => request.not_found().await,
                    Refusal::Forbidden | Refusal::Api(_) => request.forbidden().await,
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
    let _open = app.stats().open(Transport::WebTransport);
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

/// The checks of every subscription (the Host and Origin rules, the query, `--refuse`), then
/// the feed's subscription with the chat session the ticket (or a `Cookie` header) names and,
/// with `?tag=`, the tag's kill switch.
async fn subscribe(
    app: &AppState,
    request: &SessionRequest,
    peer: IpAddr,
) -> Result<(Wanted, Subscription, Option<Session>), Refusal> {
    let wanted = match wanted(request.path()) {
        None => return Err(Refusal::NotFound),
        Some(wanted) => wanted.map_err(Refusal::Api)?,
    };
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
    if wanted.datagrams && wanted.feed == FeedName::Chat {
        // A chat line lost unseen is what the chat promises never happens.
        return Err(Refusal::Api(ApiError::Invalid(
            "invalid_datagrams",
            "the chat is never sent as datagrams (a lost line would go unseen): drop datagrams=1"
                .into(),
        )));
    }
    let cursor = wanted.params.cursor().map_err(Refusal::Api)?;
    let session = session(app, &wanted, &headers)
        .await
        .map_err(Refusal::Api)?;
    // `?tag=`'s kill switch, as the recorder gives a tagged HTTP request one
    // (`POST /api/debug/kill` closes the session with `close::KILLED`).
    let query = request.path().split_once('?').map(|(_, q)| q);
    let kill = app
        .diagnostics()
        .kill_switch_in(query, peer)
        .map_err(Refusal::Api)?;
    let sub = super::open_as(
        app,
        Transport::WebTransport,
        wanted.feed,
        cursor,
        &wanted.params,
        session.clone(),
        kill,
    )
    .await
    .map_err(Refusal::Api)?;
    Ok((wanted, sub, session))
}

/// The chat session of a session request: the one its `?ticket=` names (redeemed here, once),
/// else its `Cookie` header's. A ticket is refused for the clock and the canvas, which have
/// no sessions, and when it is unknown, used, expired, or its chat session has ended.
async fn session(
    app: &AppState,
    wanted: &Wanted,
    headers: &HeaderMap,
) -> Result<Option<Session>, ApiError> {
    let refused = |why: &str| {
        ApiError::Invalid(
            "invalid_ticket",
            format!(
                "{why}: ask POST /api/webtransport/ticket for a new one just before opening the session"
            ),
        )
    };
    let Some(ticket) = wanted.params.get("ticket") else {
        return match wanted.feed {
            FeedName::Chat => session_of(app.chat(), headers).await,
            FeedName::Clock | FeedName::Draw => Ok(None),
        };
    };
    if wanted.feed != FeedName::Chat {
        return Err(ApiError::Invalid(
            "invalid_ticket",
            "only the chat takes a ticket (the clock and the canvas have no sessions)".into(),
        ));
    }
    let tickets = app
        .webtransport()
        .map(|quic| quic.tickets.clone())
        .ok_or_else(|| refused("WebTransport is off"))?;
    let id = tickets
        .redeem(ticket)
        .ok_or_else(|| refused("the ticket is unknown, already used or expired"))?;
    match app.chat().sessions().get(id).await? {
        Some(session) => Ok(Some(session)),
        None => Err(refused("the ticket's chat session has ended")),
    }
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
    let counters = Counted {
        detail: &app.stats().webtransport,
        row: app.stats().transport(Transport::WebTransport),
    };
    let config = app.config();
    let deadline = config.send_timeout;
    let timed_out = || {
        counters.detail.send_timed_out();
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
    let mut heartbeat = super::quiet::Quiet::new(every);
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
                heartbeat.sent();
            }
            () = heartbeat.due() => match write(&mut out, &beat, deadline).await {
                Written::Ok => counters.sent(beat.len(), 0, false),
                Written::Gone => return None,
                Written::TimedOut => return timed_out(),
            },
            _ = connection.closed() => return None,
        }
    }
}

/// Where a session's sends are counted: its transport's row and WebTransport's own section.
struct Counted<'a> {
    detail: &'a crate::stats::WebTransportCounters,
    row: &'a crate::stats::Counters,
}

impl Counted<'_> {
    fn sent(&self, bytes: usize, events: usize, datagram: bool) {
        self.row.sent(bytes, events);
        self.detail.sent(bytes, events, datagram);
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
