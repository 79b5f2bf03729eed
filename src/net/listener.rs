//! The accept loop and what every connection gets before any handler runs: the connection
//! limits, hyper's HTTP/1.1 connection with a timer, and deadlines on reading and writing.
//!
//! - **Admission.** Each accepted TCP connection takes a slot of `--max-connections` (in
//!   [`Stats`]) and one of its peer's `--max-connections-per-peer` (in [`Addresses`]). Past
//!   either, the listener answers `503` with the JSON error itself, before hyper ever sees the
//!   connection, so the excess costs almost nothing; at most [`MAX_REFUSING`] such answers are
//!   in flight, and past that an excess connection is simply closed.
//! - **Reading.** A request head must arrive within `--header-timeout`, counted from when the
//!   connection starts waiting for one: on a new connection and on an idle keep-alive one
//!   alike (hyper's header-read timer; `axum::serve` sets no timer, so it has none). A head
//!   larger than [`MAX_HEAD_BYTES`] is refused by hyper with `431`.
//! - **Writing.** A connection whose writes make no progress for `--send-timeout` (a peer
//!   that stopped reading a stream, a long-poll answer or a WebSocket) is closed:
//!   [`CountedStream`] arms a timer whenever the socket refuses bytes and fails the write
//!   when it fires. One rule for every transport, upgraded sockets included. The kernel
//!   holds at most [`KERNEL_UNSENT`] bytes not yet sent (`TCP_NOTSENT_LOWAT`), so what a slow
//!   reader has not taken waits in the server, where the answer caps bound it and the timer
//!   sees it, not in a send buffer of up to 4 MiB that accepts writes while the peer reads a
//!   trickle.
//! - **Dead peers.** Every accepted socket gets TCP keepalive and `TCP_USER_TIMEOUT` from
//!   `--dead-peer-timeout` ([`liveness`]), so a peer gone without a FIN or RST is dropped by
//!   the kernel within a stated bound instead of after minutes of retransmissions, whether
//!   the connection is sending (a stream's heartbeats) or idle (a held long poll).
//! - **HTTPS** (`--tls-…`, [`SecureServer`]). The same admission, then a TLS handshake within
//!   `--header-timeout` under the same [`CountedStream`] (so the write-stall deadline sees the
//!   TLS records), then HTTP/2 or HTTP/1.1 as ALPN chose. HTTP/1.1 keeps the rules above. For
//!   HTTP/2: at most [`MAX_H2_STREAMS`] streams per connection, the 64 KiB head as its header
//!   list limit, a connection with no stream open for `--header-timeout` is closed (GOAWAY),
//!   and a stream whose peer stops reading it (its flow-control window stays shut while the
//!   socket is writable) closes the connection after `--send-timeout`: response bodies are
//!   handed to h2 [`H2_CHUNK`] bytes at a time, and a stream counts as sending until h2 asks
//!   for more after its last chunk (it asks only once what it holds fits the peer's window),
//!   so a chunk the peer's window keeps back is seen, the last one included. The same
//!   deadline bounds a connection's close (GOAWAY, then its streams finish). A request
//!   whose `Host` names another server than its `:authority` is refused. An excess
//!   connection is closed without the `503`, which a client mid-handshake could not read.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::response::IntoResponse as _;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use crate::error::ApiError;
use crate::net::addresses::{AddressConn, Addresses};
use crate::net::tls::{self, OverTls, Tls};
use crate::stats::Stats;

/// Refusals (`503` written by the listener) in flight at once; past it, excess connections
/// are closed without an answer rather than spending a task each.
pub const MAX_REFUSING: usize = 64;

/// The largest request head (request line and headers) hyper reads; past it, `431`.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Deadlines every connection gets.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub header: Duration,
    pub send: Duration,
    /// `--dead-peer-timeout`: see [`liveness`].
    pub dead_peer: Duration,
}

/// How a dead peer is found: every accepted socket gets `TCP_USER_TIMEOUT` and TCP keepalive
/// derived from one duration, `--dead-peer-timeout` (U). A peer that vanished without a FIN
/// or RST (a laptop closed, Wi-Fi lost, packets dropped) is otherwise held until TCP's
/// retransmissions give up (`tcp_retries2`, about 15 minutes), and `--send-timeout` fires
/// only once the socket refuses writes, which a quiet stream never makes it do.
///
/// - **Data unacknowledged** (a heartbeat or an event sent to a dead peer): the kernel drops
///   the connection once data has waited U for its acknowledgement (`TCP_USER_TIMEOUT`).
///   A stream or WebSocket sends something at least every `--keepalive` (H), so its dead peer
///   is dropped within H + U of the last packet heard from it.
/// - **Idle** (nothing to send: a held long poll, a connection between requests): keepalive
///   probes start after U/2 of silence and repeat every U/6 ([`KEEPALIVE_PROBES`] of them);
///   with `TCP_USER_TIMEOUT` set, Linux drops the connection at the first probe that finds
///   nothing heard for U. A held long poll answers after its hold (T) and the connection then
///   waits for the next request head, so it goes within T + U (or T + `--header-timeout`).
///
/// The server sees the error at its next read or write of the socket and frees the slot.
pub mod liveness {
    use std::time::Duration;

    /// The pages take a stream silent (no event, no heartbeat) for this many heartbeat
    /// intervals for dead and reopen it from their cursor: more than two, so one heartbeat
    /// delayed by a busy network or a throttled tab is not a death. Served in facts.js.
    pub const SILENCE_FACTOR: f64 = 2.5;

    /// `--dead-peer-timeout`'s default.
    pub const DEFAULT_DEAD_PEER_TIMEOUT: &str = "30s";
    /// Keepalive probes sent before the idle connection is given up (with
    /// `TCP_USER_TIMEOUT` set, the time U decides; the count matches it: U/2 + 3 × U/6 = U).
    pub const KEEPALIVE_PROBES: u32 = 3;

    /// Silence before the first keepalive probe: U/2, in whole seconds (the kernel's unit),
    /// at least 1 s.
    pub fn keepalive_idle(dead_peer: Duration) -> Duration {
        Duration::from_secs((dead_peer.as_secs() / 2).max(1))
    }

    /// Between keepalive probes: U/6, in whole seconds, at least 1 s.
    pub fn keepalive_interval(dead_peer: Duration) -> Duration {
        Duration::from_secs((dead_peer.as_secs() / 6).max(1))
    }

    /// The bound on holding a dead peer's stream or WebSocket, from the last packet heard
    /// from it: one heartbeat interval (H, until something is sent) plus U (until the kernel
    /// gives up on its acknowledgement).
    pub fn stream_bound(heartbeat: Duration, dead_peer: Duration) -> Duration {
        heartbeat + dead_peer
    }

    /// The bound for a held long poll of `hold`: it answers after `hold`, and that answer
    /// (or, idle, a keepalive probe) finds the peer dead within U.
    pub fn longpoll_bound(hold: Duration, dead_peer: Duration) -> Duration {
        hold + dead_peer
    }
}

/// Accepts connections on `listener` and serves `router` on each until `shutdown` fires;
/// then each connection finishes its response (streams end on the same token) and closes.
/// Connection tasks run on `tracker`, so shutdown can wait for them.
// Eight parts of one accept loop, each used once; a struct gathering them would only move
// the same list to the caller.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stats: Arc<Stats>,
    addresses: Arc<Addresses>,
    deadlines: Deadlines,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    tls: Option<Tls>,
) {
    let secure = tls.map(|tls| {
        Arc::new(SecureServer::new(
            tls,
            deadlines,
            stats.clone(),
            tracker.clone(),
        ))
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(deadlines.header)
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    loop {
        let (stream, addr) = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    backoff(err).await;
                    continue;
                }
            },
        };
        // Small frames (ticks, chat lines) should leave at once, not wait for Nagle.
        let _ = stream.set_nodelay(true);
        hold_unsent_in_the_server(&stream);
        detect_dead_peers(&stream, deadlines.dead_peer);
        let peer = match admit(&stats, &addresses, addr) {
            Ok(peer) => peer,
            Err(refusal) => {
                // Over HTTPS a plaintext 503 would reach a client in the middle of its
                // handshake, which cannot read it; a handshake just to refuse would spend what
                // the limit is there to save. So an excess TLS connection is only closed.
                if secure.is_some() {
                    continue;
                }
                if let Ok(permit) = refusing.clone().try_acquire_owned() {
                    tokio::spawn(async move {
                        refuse(stream, refusal).await;
                        drop(permit);
                    });
                }
                continue;
            }
        };
        let io = TokioIo::new(CountedStream {
            stream,
            stats: stats.clone(),
            _peer: peer,
            send_timeout: deadlines.send,
            stalled: None,
        });
        if let Some(secure) = &secure {
            let secure = secure.clone();
            let (router, shutdown) = (router.clone(), shutdown.clone());
            tracker.spawn(async move { secure.serve(io, addr, router, shutdown).await });
            continue;
        }
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(addr));
            router.clone().oneshot(req)
        });
        let conn = http.serve_connection(io, service).with_upgrades();
        let shutdown = shutdown.clone();
        let send = deadlines.send;
        tracker.spawn(async move {
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    // The response in flight gets what any write gets, then the connection
                    // is dropped.
                    let _ = tokio::time::timeout(send, conn).await;
                }
            }
        });
    }
}

/// Lets the kernel keep at most [`KERNEL_UNSENT`] bytes of a connection that are not yet
/// sent (`TCP_NOTSENT_LOWAT`, Linux 3.12): past it the socket refuses writes. Without it a
/// peer that advertises a small window while it reads a trickle sees the kernel take up to
/// its send buffer (`net.ipv4.tcp_wmem`'s maximum, 4 MiB by default) of answers, and the
/// server's writes never wait, so the write deadline cannot see the stall. With it, the
/// kernel holds 16 KiB beyond what the peer's window takes, and what waits is the server's
/// (bounded) answer. Best effort: on failure the socket keeps the system default.
fn hold_unsent_in_the_server(stream: &TcpStream) {
    use std::os::fd::AsRawFd as _;
    let lowat = KERNEL_UNSENT as libc::c_int;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live local; the descriptor
    // belongs to `stream`, which outlives the call.
    let _ = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&lowat as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// Sets `TCP_USER_TIMEOUT` and TCP keepalive on `stream` from `--dead-peer-timeout`; see
/// [`liveness`]. Best effort: on failure the socket keeps the system defaults.
fn detect_dead_peers(stream: &TcpStream, dead_peer: Duration) {
    let socket = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(liveness::keepalive_idle(dead_peer))
        .with_interval(liveness::keepalive_interval(dead_peer))
        .with_retries(liveness::KEEPALIVE_PROBES);
    let _ = socket.set_tcp_keepalive(&keepalive);
    let _ = socket.set_keepalive(true);
    let _ = socket.set_tcp_user_timeout(Some(dead_peer));
}

/// Takes a connection slot in total and for the peer, or says which limit refused it.
fn admit(
    stats: &Arc<Stats>,
    addresses: &Arc<Addresses>,
    addr: SocketAddr,
) -> Result<AddressConn, ApiError> {
    if !stats.tcp_try_open() {
        return Err(ApiError::Overloaded(stats.max_connections()));
    }
    match addresses.connect(addr.ip()) {
        Ok(peer) => Ok(peer),
        Err(full) => {
            stats.tcp_closed();
            stats.tcp_refused_for_peer();
            Err(ApiError::PeerOverloaded(full.max))
        }
    }
}

/// Errors from `accept` that concern one connection are skipped; running out of file
/// descriptors or memory is retried after a pause rather than spinning.
async fn backoff(err: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    ) {
        return;
    }
    tracing::warn!(%err, "accept failed; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Reads what the client sent (briefly, so closing does not reset the connection before it
/// reads the answer), then answers `503` with the JSON error body and closes.
async fn refuse(mut stream: TcpStream, refusal: ApiError) {
    let body = refusal.body();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut scratch = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut scratch)).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// Bytes of a connection the kernel may hold not yet sent (`TCP_NOTSENT_LOWAT`): one HTTP/2
/// chunk ([`H2_CHUNK`]).
pub const KERNEL_UNSENT: usize = 16 * 1024;

/// A TCP stream that holds its connection slots (counted out when dropped) and fails a
/// write that has made no progress for `send_timeout`.
pub struct CountedStream {
    stream: TcpStream,
    stats: Arc<Stats>,
    _peer: AddressConn,
    send_timeout: Duration,
    /// Armed when the socket refuses bytes; cleared by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.stats.tcp_closed();
    }
}

impl CountedStream {
    /// Passes a write's result through, arming the stall timer while it is pending and
    /// turning a stall past `send_timeout` into an error that closes the connection. With
    /// [`KERNEL_UNSENT`] set on the socket, a refused write becomes writable again only
    /// once less than half of it is unsent (Linux wakes a writer at `TCP_NOTSENT_LOWAT` / 2),
    /// so progress means the peer took at least 8 KiB.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let timeout = self.send_timeout;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if timer.as_mut().poll(cx).is_ready() {
            self.stalled = None;
            self.stats.send_timed_out();
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer has not read for --send-timeout",
            )));
        }
        Poll::Pending
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.watch(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_flush(cx);
        this.watch(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_shutdown(cx);
        this.watch(cx, polled)
    }
}

/// Streams one HTTP/2 connection may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`,
/// RFC 9113 §5.1.2): RFC 9113 §6.5.2 recommends no fewer than 100, so as not to limit
/// parallelism, and every tab of an origin shares them. What an open stream costs the server
/// is measured by `scripts/h2-streams.py` (results/h2-streams); the per-peer request budget
/// (`--max-requests-per-peer`), not this, bounds what one client holds over all its
/// connections. The pages state it from `/static/facts.js`.
pub const MAX_H2_STREAMS: u32 = 100;

/// The most bytes of a response body handed to h2 at once: one DATA frame at the default
/// `SETTINGS_MAX_FRAME_SIZE` of 16,384 (RFC 9113 §6.5.2). Handed a whole body, h2 keeps all
/// of it until the peer's window takes it; handed a chunk, it asks for the next one only
/// once the stream has room.
pub const H2_CHUNK: usize = 16 * 1024;

/// Bytes hyper buffers per HTTP/2 stream before the response body waits (its default is
/// 400 KiB): what a stream whose reader is slow can make the server hold.
pub const H2_SEND_BUFFER: usize = 64 * 1024;

/// Runs hyper's per-stream HTTP/2 tasks on the server's [`TaskTracker`], so shutdown waits
/// for them as it does for connections.
#[derive(Clone)]
struct Tracked(TaskTracker);

impl<F> hyper::rt::Executor<F> for Tracked
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        self.0.spawn(fut);
    }
}

/// HTTPS connections: a TLS handshake with a deadline, then HTTP/2 or HTTP/1.1 as ALPN
/// chose, each with the bounds the plain listener has (see the module docs).
struct SecureServer {
    tls: Tls,
    deadlines: Deadlines,
    stats: Arc<Stats>,
    h1: auto::Builder<Tracked>,
    h2: auto::Builder<Tracked>,
}

impl SecureServer {
    fn new(
        tls: Tls,
        deadlines: Deadlines,
        stats: Arc<Stats>,
        tracker: TaskTracker,
    ) -> SecureServer {
        // One builder per protocol, chosen by ALPN after the handshake: an auto builder left
        // to sniff the connection preface would wait for it without any deadline.
        let mut h1 = auto::Builder::new(Tracked(tracker.clone())).http1_only();
        h1.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(deadlines.header)
            .max_buf_size(MAX_HEAD_BYTES)
            .keep_alive(true);
        let mut h2 = auto::Builder::new(Tracked(tracker)).http2_only();
        h2.http2()
            .timer(TokioTimer::new())
            // h2's own default is 16 MiB; the same 64 KiB as an HTTP/1.1 head (HPACK-decoded
            // size, RFC 9113 §6.5.2). Past it hyper answers 431.
            .max_header_list_size(MAX_HEAD_BYTES as u32)
            .max_concurrent_streams(MAX_H2_STREAMS)
            .max_send_buf_size(H2_SEND_BUFFER)
            // A peer that does not answer a PING within the header deadline is gone.
            .keep_alive_interval(deadlines.header)
            .keep_alive_timeout(deadlines.header);
        SecureServer {
            tls,
            deadlines,
            stats,
            h1,
            h2,
        }
    }

    /// Serves one accepted connection (its slots already taken) until it closes.
    async fn serve(
        &self,
        io: TokioIo<CountedStream>,
        addr: SocketAddr,
        router: Router,
        shutdown: CancellationToken,
    ) {
        // The handshake gets the header deadline: a peer that opens a connection and then
        // stalls in the TLS handshake is closed like one that never sends a request head.
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = tokio::time::timeout(
                self.deadlines.header,
                self.tls.acceptor.accept(io.into_inner()),
            ) => accepted,
        };
        let stream = match accepted {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                tracing::debug!(%addr, %err, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%addr, "TLS handshake not done within --header-timeout");
                return;
            }
        };
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let (open, watch_open) = tokio::sync::watch::channel(0usize);
        let open = Arc::new(open);
        let stalls = Arc::new(Stalls::default());
        let watched = stalls.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(addr));
            req.extensions_mut().insert(OverTls);
            let misdirected = authority_as_host(&mut req);
            let guard = h2.then(|| StreamGuard::new(open.clone(), stalls.clone()));
            let response = router.clone().oneshot(req);
            async move {
                let mut response = match misdirected {
                    Some(refusal) => refusal.into_response(),
                    None => response.await?,
                };
                tls::secure_cookies(response.headers_mut());
                Ok::<_, std::convert::Infallible>(
                    response.map(|body| axum::body::Body::new(Guarded::new(body, guard))),
                )
            }
        });
        let builder = if h2 { &self.h2 } else { &self.h1 };
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let mut conn = std::pin::pin!(conn);
        let send = self.deadlines.send;
        // A stream the peer stopped reading stalls on its own flow-control window while the
        // socket stays writable, so CountedStream cannot see it: past --send-timeout the
        // whole connection is dropped, as an HTTP/1.1 one would be. The watch runs until the
        // connection is gone, through its close too.
        let mut stalled = std::pin::pin!(watched.stalled_for(send));
        tokio::select! {
            _ = conn.as_mut() => return,
            () = shutdown.cancelled() => {}
            // HTTP/2 has no request-head timer: an h2 connection with no stream open for
            // the header deadline (from the handshake on, or since its last stream ended) is
            // closed with GOAWAY, the h2 form of an idle keep-alive connection timing out.
            () = idle_for(watch_open, self.deadlines.header), if h2 => {}
            () = &mut stalled, if h2 => return self.timed_out(addr),
        }
        // GOAWAY (HTTP/2) or close after the response in flight (HTTP/1.1); what is still
        // being sent gets --send-timeout, as any write does.
        conn.as_mut().graceful_shutdown();
        tokio::select! {
            _ = conn.as_mut() => {}
            () = &mut stalled, if h2 => self.timed_out(addr),
            () = tokio::time::sleep(send) => self.timed_out(addr),
        }
    }

    /// A connection dropped because what it had to send did not leave in time.
    fn timed_out(&self, addr: SocketAddr) {
        self.stats.send_timed_out();
        tracing::debug!(%addr, "an HTTPS connection made no progress for --send-timeout");
    }
}

/// An HTTP/2 request names its server in `:authority` (which hyper puts in the URI), not in
/// `Host`; as an HTTP/1.1 gateway must (RFC 9113 §8.3.1), the missing `Host` is made from it,
/// so the Host and Origin checks see the same name whichever protocol carried the request.
/// A request carrying both, naming different servers, is malformed by the same section's
/// SHOULD: the refusal (`400 bad_request`) is returned, and the request is not routed.
fn authority_as_host(req: &mut hyper::Request<Incoming>) -> Option<ApiError> {
    if req.version() != hyper::Version::HTTP_2 {
        return None;
    }
    let authority = req.uri().authority()?.as_str().to_owned();
    match req.headers().get(axum::http::header::HOST) {
        Some(host) => {
            let host = String::from_utf8_lossy(host.as_bytes());
            (!host.eq_ignore_ascii_case(&authority)).then(|| {
                ApiError::BadRequest(format!(
                    "the Host header {host:?} names another server than :authority {authority:?}; they must agree (RFC 9113 §8.3.1)"
                ))
            })
        }
        None => {
            if let Ok(host) = axum::http::HeaderValue::from_str(&authority) {
                req.headers_mut().insert(axum::http::header::HOST, host);
            }
            None
        }
    }
}

/// Completes once the count of open streams has stayed at zero for `limit`.
async fn idle_for(mut open: tokio::sync::watch::Receiver<usize>, limit: Duration) {
    loop {
        if open.wait_for(|n| *n == 0).await.is_err() {
            return;
        }
        if tokio::time::timeout(limit, open.changed()).await.is_err() && *open.borrow() == 0 {
            return;
        }
    }
}

/// The HTTP/2 streams of one connection whose response body handed hyper a frame and has
/// not been asked for the next one since: hyper asks again as soon as the stream's window and
/// send buffer have room, so a stream that stays here is one its peer does not read.
#[derive(Default)]
struct Stalls {
    waiting: std::sync::Mutex<std::collections::HashMap<u64, std::time::Instant>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Stalls {
    fn waiting(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, std::time::Instant>> {
        // The map holds plain data; a panic elsewhere cannot leave it inconsistent.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Completes once some stream has waited longer than `limit` (checked four times per
    /// `limit`, so it fires between `limit` and 1.25 × `limit`).
    async fn stalled_for(&self, limit: Duration) {
        let period = (limit / 4).max(Duration::from_millis(10));
        loop {
            tokio::time::sleep(period).await;
            let oldest = self.waiting().values().min().copied();
            if oldest.is_some_and(|since| since.elapsed() >= limit) {
                return;
            }
        }
    }
}

/// Counts an HTTP/2 stream as open from its request until its response body is dropped, and
/// notes when its body waits for the peer ([`Stalls`]).
struct StreamGuard {
    open: Arc<tokio::sync::watch::Sender<usize>>,
    stalls: Arc<Stalls>,
    id: u64,
}

impl StreamGuard {
    fn new(open: Arc<tokio::sync::watch::Sender<usize>>, stalls: Arc<Stalls>) -> StreamGuard {
        open.send_modify(|n| *n += 1);
        let id = stalls
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        StreamGuard { open, stalls, id }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.stalls.waiting().remove(&self.id);
        self.open.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// A response body over HTTPS. Over HTTP/2 it holds its stream's [`StreamGuard`] and hands
/// h2 at most [`H2_CHUNK`] bytes per frame; it does not report its end with its last chunk,
/// so h2 asks once more, which it does only when the stream has room again, and the body
/// (its guard, its stall watch) lives until then: a body counts as sent when its bytes have
/// left, not when h2 has been handed them.
struct Guarded {
    body: axum::body::Body,
    guard: Option<StreamGuard>,
    /// The rest of a data frame longer than [`H2_CHUNK`], handed on a chunk at a time.
    rest: Bytes,
    /// Some data has been handed on (an empty body may end with its head).
    started: bool,
}

impl Guarded {
    fn new(body: axum::body::Body, guard: Option<StreamGuard>) -> Guarded {
        Guarded {
            body,
            guard,
            rest: Bytes::new(),
            started: false,
        }
    }

    /// The next frame, split to [`H2_CHUNK`] bytes.
    fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        if !self.rest.is_empty() {
            let n = self.rest.len().min(H2_CHUNK);
            return Poll::Ready(Some(Ok(http_body::Frame::data(self.rest.split_to(n)))));
        }
        let frame = match http_body::Body::poll_frame(Pin::new(&mut self.body), cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        match frame.into_data() {
            Ok(mut data) => {
                if data.len() > H2_CHUNK {
                    self.rest = data.split_off(H2_CHUNK);
                }
                Poll::Ready(Some(Ok(http_body::Frame::data(data))))
            }
            Err(trailers) => Poll::Ready(Some(Ok(trailers))),
        }
    }
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let Some(guard) = &this.guard else {
            return Pin::new(&mut this.body).poll_frame(cx);
        };
        guard.stalls.waiting().remove(&guard.id);
        let polled = this.poll_chunk(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) => {
                this.started = true;
                if let Some(guard) = &this.guard {
                    guard
                        .stalls
                        .waiting()
                        .insert(guard.id, std::time::Instant::now());
                }
            }
            // Asked again after the last chunk: it fit the window. The stream is done.
            Poll::Ready(None | Some(Err(_))) => this.guard = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match self.guard {
            None => self.rest.is_empty() && self.body.is_end_stream(),
            // Over HTTP/2 only a body that never had data ends with its head.
            Some(_) => !self.started && self.rest.is_empty() && self.body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        if self.started {
            // Part of it has been handed on already; hyper reads the hint before that.
            return http_body::SizeHint::default();
        }
        self.body.size_hint()
    }
}
