//! The accept loop's edge: a listener that counts every TCP connection and refuses those
//! past `--max-connections` with a `503` written straight onto the socket, before hyper
//! ever sees them, so an overloaded server spends almost nothing on the excess.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::error::ApiError;
use crate::stats::Stats;

pub struct LimitedListener {
    inner: TcpListener,
    stats: Arc<Stats>,
}

impl LimitedListener {
    pub fn new(inner: TcpListener, stats: Arc<Stats>) -> Self {
        LimitedListener { inner, stats }
    }
}

impl Listener for LimitedListener {
    type Io = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    backoff(err).await;
                    continue;
                }
            };
            // Small frames (ticks, chat lines) should leave at once, not wait for Nagle.
            let _ = stream.set_nodelay(true);
            if self.stats.tcp_try_open() {
                let stats = self.stats.clone();
                return (CountedStream { stream, stats }, addr);
            }
            tokio::spawn(refuse(stream, self.stats.max_connections()));
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
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
async fn refuse(mut stream: TcpStream, max: u64) {
    let body = ApiError::Overloaded(max).body();
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

/// A TCP stream that counts itself out of the open connections when dropped.
pub struct CountedStream {
    stream: TcpStream,
    stats: Arc<Stats>,
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.stats.tcp_closed();
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
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
