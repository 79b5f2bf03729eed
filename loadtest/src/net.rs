//! The wire under every client: a TCP stream that counts the bytes read and written on it
//! (headers, framing and all), and a minimal HTTP/1.1 client (hyper) over such a stream, so
//! that bytes on the wire are measured rather than estimated.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response, header};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};

/// Bytes read and written on the sockets of one run: everything that crosses them, so
/// request and response heads, chunked-encoding framing, WebSocket handshakes and frame
/// headers (with the 4-byte mask of every client frame) are all counted.
#[derive(Debug, Default)]
pub struct IoCounters {
    /// Bytes down (server to client).
    pub read: AtomicU64,
    /// Bytes up (client to server).
    pub written: AtomicU64,
}

/// The two counts of [`IoCounters`] at one moment, to take differences (a window's bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoSnapshot {
    /// Bytes down: read from the sockets.
    pub read: u64,
    /// Bytes up: written to the sockets.
    pub written: u64,
}

impl IoSnapshot {
    /// What was counted between `earlier` and `self`.
    pub fn since(self, earlier: IoSnapshot) -> IoSnapshot {
        IoSnapshot {
            read: self.read.saturating_sub(earlier.read),
            written: self.written.saturating_sub(earlier.written),
        }
    }
}

impl IoCounters {
    pub fn snapshot(&self) -> IoSnapshot {
        IoSnapshot {
            read: self.read.load(Relaxed),
            written: self.written.load(Relaxed),
        }
    }
}

/// A stream that adds what passes through it to shared [`IoCounters`].
pub struct Counting<S> {
    inner: S,
    io: Arc<IoCounters>,
}

impl<S> Counting<S> {
    pub fn new(inner: S, io: Arc<IoCounters>) -> Self {
        Counting { inner, io }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.io
                .read
                .fetch_add((buf.filled().len() - before) as u64, Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.io.written.fetch_add(n as u64, Relaxed);
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Opens a counted TCP connection to `addr`.
pub async fn tcp(addr: SocketAddr, io: &Arc<IoCounters>) -> io::Result<Counting<TcpStream>> {
    tcp_from(addr, None, io).await
}

/// Opens a counted TCP connection to `addr` from the local address `source` (any port), so
/// one process can play several peers: the whole 127.0.0.0/8 is loopback, and the server
/// keeps its per-peer accounts by source address.
pub async fn tcp_from(
    addr: SocketAddr,
    source: Option<IpAddr>,
    io: &Arc<IoCounters>,
) -> io::Result<Counting<TcpStream>> {
    let stream = match source {
        None => TcpStream::connect(addr).await?,
        Some(ip) => {
            let socket = if ip.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.bind(SocketAddr::new(ip, 0))?;
            socket.connect(addr).await?
        }
    };
    stream.set_nodelay(true)?;
    Ok(Counting::new(stream, io.clone()))
}

/// One keep-alive HTTP/1.1 connection.
pub struct Http {
    addr: SocketAddr,
    sender: SendRequest<Full<Bytes>>,
}

impl Http {
    pub async fn connect(addr: SocketAddr, io: &Arc<IoCounters>) -> anyhow::Result<Http> {
        Http::connect_from(addr, None, io).await
    }

    /// [`Http::connect`] from the local address `source` (see [`tcp_from`]).
    pub async fn connect_from(
        addr: SocketAddr,
        source: Option<IpAddr>,
        io: &Arc<IoCounters>,
    ) -> anyhow::Result<Http> {
        let stream = tcp_from(addr, source, io)
            .await
            .with_context(|| format!("connect to {addr}"))?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        // The connection task ends when the sender is dropped or the server closes.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Http { addr, sender })
    }

    /// Sends a request; `body` makes it a JSON POST (or the given method).
    pub async fn send(
        &mut self,
        method: hyper::Method,
        path: &str,
        cookie: Option<&str>,
        body: Option<Bytes>,
    ) -> anyhow::Result<Response<Incoming>> {
        self.sender.ready().await.context("connection closed")?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.addr.to_string());
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(body.unwrap_or_default()))?;
        Ok(self.sender.send_request(request).await?)
    }

    /// A GET with extra request headers (the nchan clients' `Accept` and cursor headers).
    pub async fn get_with(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Response<Incoming>> {
        self.sender.ready().await.context("connection closed")?;
        let mut request = Request::builder()
            .method(hyper::Method::GET)
            .uri(path)
            .header(header::HOST, self.addr.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::new()))?;
        Ok(self.sender.send_request(request).await?)
    }

    pub async fn get(&mut self, path: &str) -> anyhow::Result<Response<Incoming>> {
        self.send(hyper::Method::GET, path, None, None).await
    }

    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

/// Reads a whole response body.
pub async fn body(response: Response<Incoming>) -> anyhow::Result<Bytes> {
    Ok(response.into_body().collect().await?.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A GET is its request line and a Host header, nothing more: the counted bytes up are
    /// exactly those bytes, and the bytes down exactly the answer the peer wrote.
    #[tokio::test]
    async fn a_get_counts_its_known_request_bytes_up_and_the_answer_down() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let peer = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.ends_with(b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed before the head ended");
                got.extend_from_slice(&buf[..n]);
            }
            socket.write_all(ANSWER).await.unwrap();
            got
        });
        let io = Arc::new(IoCounters::default());
        let mut http = Http::connect(addr, &io).await.unwrap();
        let response = http.get("/poll/chat?rooms=lobby&history=0").await.unwrap();
        assert_eq!(body(response).await.unwrap().as_ref(), b"ok");
        let received = peer.await.unwrap();
        let expected =
            format!("GET /poll/chat?rooms=lobby&history=0 HTTP/1.1\r\nhost: {addr}\r\n\r\n");
        assert_eq!(String::from_utf8_lossy(&received), expected);
        let counted = io.snapshot();
        assert_eq!(counted.written, expected.len() as u64);
        assert_eq!(counted.read, ANSWER.len() as u64);
        assert_eq!(
            counted
                .since(IoSnapshot {
                    read: 10,
                    written: 1
                })
                .read,
            ANSWER.len() as u64 - 10
        );
    }

    /// A client WebSocket frame costs its header, the 4-byte mask and the payload
    /// (RFC 6455 §5.2): a 5-byte text frame is 11 bytes up, a close without a code 6.
    #[tokio::test]
    async fn websocket_frames_count_their_header_and_mask() {
        use futures_util::SinkExt;
        use tokio_tungstenite::tungstenite::Message;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(socket).await.unwrap();
            use futures_util::StreamExt;
            while let Some(Ok(message)) = ws.next().await {
                if message.is_close() {
                    break;
                }
            }
        });
        let io = Arc::new(IoCounters::default());
        let stream = tcp(addr, &io).await.unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), stream)
            .await
            .unwrap();
        let after_handshake = io.snapshot();
        ws.send(Message::text("hello")).await.unwrap();
        assert_eq!(io.snapshot().since(after_handshake).written, 2 + 4 + 5);
        let before_close = io.snapshot();
        ws.send(Message::Close(None)).await.unwrap();
        assert_eq!(io.snapshot().since(before_close).written, 2 + 4);
        peer.await.unwrap();
    }
}
