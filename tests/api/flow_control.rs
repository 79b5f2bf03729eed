//! The send deadline follows the bytes: a client that grants an HTTP/2
//! stream one byte of window and never another, or reads a TCP stream a trickle at a time,
//! holds nothing past `--send-timeout`, and what it holds meanwhile is bounded by its share.
//! The HTTP/2 client here speaks raw frames (RFC 9113 §4), as the audit's attacker did:
//! hyper's client manages flow control itself and would never leave a window shut.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::tls::TlsServer;

const SECOND: Duration = Duration::from_secs(1);

/// Frame types (RFC 9113 §6).
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK string literal, not Huffman-coded (RFC 7541 §5.2); short strings only.
fn literal(out: &mut Vec<u8>, s: &str) {
    assert!(s.len() < 127);
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

/// A GET request's header block: `:method GET` and `:scheme https` from the static table
/// (indices 2 and 7), `:authority` and `:path` as literals with indexed names (indices 1
/// and 4, "without indexing", RFC 7541 §6.2.2), then any other headers as literals with
/// literal names.
fn get_headers(authority: &str, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut block = vec![0x82, 0x87, 0x01];
    literal(&mut block, authority);
    block.push(0x04);
    literal(&mut block, path);
    for (name, value) in extra {
        block.push(0x00);
        literal(&mut block, name);
        literal(&mut block, value);
    }
    block
}

/// What the attacking connection saw.
#[derive(Debug, Default)]
struct Seen {
    /// Streams answered with a HEADERS frame.
    answered: usize,
    data_bytes: usize,
    goaway: bool,
    /// When the server closed the connection (end of file, or a reset).
    closed_after: Option<Duration>,
}

/// The audit's attack on one HTTP/2 connection from `127.0.0.N`: `SETTINGS_INITIAL_WINDOW_SIZE`
/// 0, `streams` requests for `path`, one `WINDOW_UPDATE(+1)` per stream once its head
/// arrives and never again; every `PING` answered, every `SETTINGS` acknowledged. Runs until
/// the server closes the connection or `give_up` passes.
async fn window_attack(
    server: &TlsServer,
    n: u8,
    path: &str,
    streams: u32,
    give_up: Duration,
) -> Seen {
    let mut tls = server.tls_from(n, &[b"h2"]).await;
    let authority = server.addr.to_string();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // SETTINGS_INITIAL_WINDOW_SIZE (0x4) = 0, SETTINGS_ENABLE_PUSH (0x2) = 0.
    out.extend(frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0]));
    for i in 0..streams {
        let block = get_headers(&authority, path, &[]);
        out.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i, &block));
    }
    tls.write_all(&out).await.expect("write the requests");
    let started = Instant::now();
    let mut seen = Seen::default();
    let mut buf = Vec::new();
    let mut scratch = vec![0u8; 64 * 1024];
    loop {
        let left = give_up.saturating_sub(started.elapsed());
        let read = match tokio::time::timeout(left, tls.read(&mut scratch)).await {
            Err(_) => return seen,
            Ok(Ok(0)) | Ok(Err(_)) => {
                seen.closed_after = Some(started.elapsed());
                return seen;
            }
            Ok(Ok(read)) => read,
        };
        buf.extend_from_slice(&scratch[..read]);
        let mut reply = Vec::new();
        while buf.len() >= 9 {
            let len =
                (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
            if buf.len() < 9 + len {
                break;
            }
            let (kind, flags) = (buf[3], buf[4]);
            let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
            let payload: Vec<u8> = buf[9..9 + len].to_vec();
            buf.drain(..9 + len);
            match kind {
                SETTINGS if flags & ACK == 0 => reply.extend(frame(SETTINGS, ACK, 0, &[])),
                PING if flags & ACK == 0 => reply.extend(frame(PING, ACK, 0, &payload)),
                HEADERS => {
                    seen.answered += 1;
                    reply.extend(frame(WINDOW_UPDATE, 0, stream, &1u32.to_be_bytes()));
                }
                DATA => seen.data_bytes += len,
                GOAWAY => seen.goaway = true,
                _ => {}
            }
        }
        if !reply.is_empty() && tls.write_all(&reply).await.is_err() {
            seen.closed_after = Some(started.elapsed());
            return seen;
        }
    }
}

/// The chat filled with `count` messages of 2000 four-byte characters (8,000 bytes of text,
/// sent as is in the JSON), so that one `limit=1000` answer from memory would be ~8 MB.
async fn fill_with_big_messages(server: &TlsServer, count: usize) {
    let mut h2 = server.h2_from(3).await;
    let res = h2
        .send_request(server.request("POST", "/api/session", json!({"nick": "big"}).to_string()))
        .await
        .expect("login");
    assert_eq!(res.status(), 201);
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let text = "🦀".repeat(2000);
    for _ in 0..count {
        let mut req = server.request(
            "POST",
            "/api/chat/messages",
            json!({"room": "lobby", "text": text}).to_string(),
        );
        req.headers_mut()
            .insert("cookie", cookie.parse().expect("cookie"));
        req.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        let res = h2.send_request(req).await.expect("send");
        assert_eq!(res.status(), 201);
    }
}

async fn stats(server: &TlsServer) -> serde_json::Value {
    server
        .get_json(&mut server.h2_from(2).await, "/api/stats")
        .await
}

#[tokio::test]
async fn the_http2_window_attack_is_cut_at_the_send_timeout_and_holds_only_capped_answers() {
    let server = TlsServer::start(&[
        "--tls-self-signed",
        "--send-timeout",
        "2s",
        "--rate-limit",
        "1000000",
        "--rate-limit-bytes",
        "1073741824",
    ])
    .await;
    fill_with_big_messages(&server, 300).await;
    let rss_before = stats(&server).await["process"]["rss_bytes"]
        .as_u64()
        .unwrap();
    let timeouts_before = stats(&server).await["connections"]["send_timeouts"]
        .as_u64()
        .unwrap();

    // 32 streams of 300 × 8 KB would be 2.4 MB each (77 MB in all) unbounded; capped, each
    // holds one answer of 64 KiB plus one event.
    let watcher = async {
        // While the attack holds its streams, another peer is served, and the server's
        // memory is sampled.
        let mut peak = 0u64;
        let until = Instant::now() + 2 * SECOND;
        while Instant::now() < until {
            let s = stats(&server).await;
            peak = peak.max(s["process"]["rss_bytes"].as_u64().unwrap());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        peak
    };
    let (seen, peak) = tokio::join!(
        window_attack(&server, 1, "/poll/chat?after=0&limit=1000", 32, 15 * SECOND),
        watcher
    );
    assert_eq!(seen.answered, 32, "{seen:?}");
    assert!(
        seen.data_bytes <= 32,
        "one byte per stream was granted: {seen:?}"
    );
    let closed = seen
        .closed_after
        .unwrap_or_else(|| panic!("the connection was still open after 15 s: {seen:?}"));
    // The stall watch fires between 1 and 1.25 send timeouts after the last progress; the
    // rest is slack for a loaded 2-core machine.
    assert!(closed <= 2 * SECOND * 5 / 4 + 2 * SECOND, "{seen:?}");
    let after = stats(&server).await;
    assert!(
        after["connections"]["send_timeouts"].as_u64().unwrap() > timeouts_before,
        "{after}"
    );
    let grew = peak.saturating_sub(rss_before);
    assert!(
        grew < 16 * 1024 * 1024,
        "the attack made the server hold {grew} more bytes (capped answers: ~2.2 MB)"
    );
}

#[tokio::test]
async fn an_http2_request_whose_host_names_another_server_is_refused() {
    let server = TlsServer::start(&["--tls-self-signed"]).await;
    let mut tls = server.tls_from(1, &[b"h2"]).await;
    let authority = server.addr.to_string();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    // `localhost` is one of the server's own names (the Host check alone would take it):
    // what is refused is the disagreement.
    let other = format!("localhost:{}", server.addr.port());
    let block = get_headers(&authority, "/poll/clock", &[("host", &other)]);
    out.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
    // The same name in both, in another case, is the same server.
    let upper = authority.to_uppercase();
    let block = get_headers(&authority, "/poll/clock", &[("host", &upper)]);
    out.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &block));
    tls.write_all(&out).await.unwrap();
    let mut statuses = std::collections::HashMap::new();
    let mut buf = Vec::new();
    let mut scratch = vec![0u8; 16 * 1024];
    let until = Instant::now() + 5 * SECOND;
    while statuses.len() < 2 && Instant::now() < until {
        let Ok(Ok(read)) = tokio::time::timeout(SECOND, tls.read(&mut scratch)).await else {
            continue;
        };
        assert!(read > 0, "closed early");
        buf.extend_from_slice(&scratch[..read]);
        while buf.len() >= 9 {
            let len =
                (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
            if buf.len() < 9 + len {
                break;
            }
            let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
            if buf[3] == HEADERS {
                // The server's first field is `:status`, from the static table: 0x88 is
                // 200; 400 is index 12 (0x8c).
                statuses.insert(stream, buf[9]);
            }
            if buf[3] == SETTINGS && buf[4] & ACK == 0 {
                tls.write_all(&frame(SETTINGS, ACK, 0, &[])).await.unwrap();
            }
            buf.drain(..9 + len);
        }
    }
    assert_eq!(statuses.get(&1), Some(&0x8c), "Host ≠ :authority → 400");
    assert_eq!(
        statuses.get(&3),
        Some(&0x88),
        "the same name in another case → 200"
    );
}

#[tokio::test]
async fn a_reader_that_takes_a_trickle_is_cut_after_the_send_timeout() {
    let app = crate::support::spawn_app(&[
        "--send-timeout",
        "2s",
        "--rate-limit",
        "1000000",
        "--rate-limit-bytes",
        "1073741824",
    ])
    .await;
    // 100 messages of 8,000 bytes: a replay from the start has ~800 KB to send.
    let cookie = app.login("big").await;
    let text = "🦀".repeat(2000);
    for _ in 0..100 {
        assert_eq!(app.say(&cookie, "lobby", &text).await.0, 201);
    }
    let before = app.stats().await.connections.send_timeouts;
    // A small receive buffer, read 1 KiB every 200 ms. Without TCP_NOTSENT_LOWAT the
    // kernel's send buffer (up to 4 MiB) took the whole replay and the server's writes never
    // waited: the stream stayed open. With it, the server's writes wait for the peer, which
    // takes a few KiB at a time with pauses past --send-timeout.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(app.addr).await.expect("connect");
    let head = format!(
        "GET /sse/chat?after=0 HTTP/1.1\r\nHost: {}\r\n\r\n",
        app.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut scratch = [0u8; 1024];
    let mut taken = 0usize;
    let closed = loop {
        assert!(
            started.elapsed() < 30 * SECOND,
            "a trickle reader ({taken} bytes in 30 s) kept its stream"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        match tokio::time::timeout(SECOND, stream.read(&mut scratch)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break started.elapsed(),
            Ok(Ok(n)) => taken += n,
            Err(_) => {}
        }
    };
    // Closed once the buffers filled and a write waited 2 s; what is still in this
    // socket's buffer is read first, a KiB at a time.
    assert!(
        closed < 20 * SECOND,
        "closed after {closed:?}, {taken} bytes taken"
    );
    assert!(app.stats().await.connections.send_timeouts > before);
    app.another_peer_is_served().await;
}
