//! The accept loop and what every connection gets before any handler runs: the connection
//! limits, hyper's HTTP/1.1 connection with a timer, and deadlines on reading and writing.
//!
//! - **Admission.** Each accepted TCP connection takes a slot of `--max-connections` (in
//!   [`Stats`]) and one of its peer's `--max-connections-per-peer` (in [`Peers`]). Past
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
//!   when it fires. One rule for every transport, upgraded sockets included.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use crate::error::ApiError;
use crate::peers::{PeerConn, Peers};
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
}

/// Accepts connections on `listener` and serves `router` on each until `shutdown` fires;
/// then each connection finishes its response (streams end on the same token) and closes.
/// Connection tasks run on `tracker`, so shutdown can wait for them.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stats: Arc<Stats>,
    peers: Arc<Peers>,
    deadlines: Deadlines,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
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
        let peer = match admit(&stats, &peers, addr) {
            Ok(peer) => peer,
            Err(refusal) => {
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
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(addr));
            router.clone().oneshot(req)
        });
        let conn = http.serve_connection(io, service).with_upgrades();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

/// Takes a connection slot in total and for the peer, or says which limit refused it.
fn admit(stats: &Arc<Stats>, peers: &Arc<Peers>, addr: SocketAddr) -> Result<PeerConn, ApiError> {
    if !stats.tcp_try_open() {
        return Err(ApiError::Overloaded(stats.max_connections()));
    }
    match peers.connect(addr.ip()) {
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

/// A TCP stream that holds its connection slots (counted out when dropped) and fails a
/// write that has made no progress for `send_timeout`.
pub struct CountedStream {
    stream: TcpStream,
    stats: Arc<Stats>,
    _peer: PeerConn,
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
    /// turning a stall past `send_timeout` into an error that closes the connection.
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
