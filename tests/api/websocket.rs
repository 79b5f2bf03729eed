//! WebSocket keep-alive and isolation: pings, the silent-peer timeout, a client that
//! never reads, and the RFC 6455 edge cases (fragments, control frames, hostile frames).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use pushpoll::feed::WireEvent;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{now_micros, raw_websocket, server_frames, spawn_app};

/// A cursor far beyond any tick: a clock subscription from it stays silent, deterministically.
const QUIET: u64 = u64::MAX / 2;

#[tokio::test]
async fn the_server_pings_and_closes_a_silent_peer_with_4001() {
    let app = spawn_app(&[
        "--tick-ms",
        "60000",
        "--ws-ping",
        "100ms",
        "--ws-timeout",
        "400ms",
    ])
    .await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    raw_websocket(&mut stream, app.addr, &format!("/ws/clock?after={QUIET}")).await;
    // Never answering pings: the peer looks dead, so the server closes it.
    let started = Instant::now();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut bytes))
        .await
        .expect("the server did not close the silent peer")
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(400));
    let frames = server_frames(&bytes);
    let pings = frames.iter().filter(|(op, _)| *op == 0x9).count();
    assert!(pings >= 2, "{pings} pings in {frames:?}");
    let (op, payload) = frames.last().unwrap();
    assert_eq!(*op, 0x8, "the last frame is a close: {frames:?}");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 4001);
    assert_eq!(&payload[2..], b"ping timeout");
}

#[tokio::test]
async fn a_peer_that_answers_pings_stays_connected() {
    let app = spawn_app(&[
        "--tick-ms",
        "60000",
        "--ws-ping",
        "100ms",
        "--ws-timeout",
        "300ms",
    ])
    .await;
    let url = app.ws_url(&format!("/ws/clock?after={QUIET}"));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let until = Instant::now() + Duration::from_millis(1200);
    let mut pings = 0;
    while Instant::now() < until {
        // Reading lets the client library answer each ping with a pong.
        match tokio::time::timeout(Duration::from_millis(200), socket.next()).await {
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(Some(Ok(Message::Text(text)))) if pushpoll::wire::is_heartbeat(text.as_bytes()) => {}
            Ok(Some(Ok(Message::Close(frame)))) => panic!("closed: {frame:?}"),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => {}
        }
    }
    assert!(pings >= 8, "{pings} pings");
}

#[tokio::test]
async fn a_websocket_client_that_never_reads_does_not_delay_ticks_to_a_fast_one() {
    let app = spawn_app(&["--tick-ms", "2"]).await;
    // The slow client: a real upgrade on a socket with a tiny receive buffer, then silence.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    let mut slow = socket.connect(app.addr).await.unwrap();
    raw_websocket(&mut slow, app.addr, "/ws/clock?after=0").await;

    let (mut fast, _) = tokio_tungstenite::connect_async(app.ws_url("/ws/clock"))
        .await
        .unwrap();
    let started = Instant::now();
    let mut ids = Vec::new();
    let mut worst_ms = 0;
    while started.elapsed() < Duration::from_secs(3) {
        if let Message::Text(text) = tokio::time::timeout(Duration::from_secs(1), fast.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            && !pushpoll::wire::is_heartbeat(text.as_bytes())
        {
            let event: WireEvent = serde_json::from_str(&text).unwrap();
            worst_ms = worst_ms.max(now_micros().saturating_sub(event.ts) / 1000);
            ids.push(event.id);
        }
    }
    let stats = app.stats().await;
    assert_eq!(
        stats.transports["ws"].open, 2,
        "the slow client is still connected"
    );
    assert!(ids.windows(2).all(|w| w[1] > w[0]), "ticks out of order");
    // Tick ids are their wall-clock milliseconds, 2 ms apart. A client blocked behind the
    // slow one would get next to nothing (and its ticks would arrive late, below). One that
    // is merely starved of CPU on a busy machine falls behind the clock's ring and skips to
    // the latest tick, as a state feed should: so the floor is a fifth of the ticks, not all.
    let published = (ids[ids.len() - 1] - ids[0]) / 2 + 1;
    assert!(
        ids.len() as u64 * 5 > published,
        "the fast client got only {} of {published} ticks",
        ids.len()
    );
    assert!(
        worst_ms < 1000,
        "a tick reached the fast client {worst_ms} ms late"
    );
    drop(slow);
}

#[tokio::test]
async fn an_inspected_socket_starts_with_the_handshake_as_it_happened() {
    let app = spawn_app(&[]).await;
    let (mut socket, response) =
        tokio_tungstenite::connect_async(app.ws_url("/ws/clock?inspect=1"))
            .await
            .unwrap();
    let Message::Text(first) = socket.next().await.unwrap().unwrap() else {
        panic!("no text frame")
    };
    let handshake: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(handshake["type"], "handshake");
    assert_eq!(
        handshake["request"]["line"],
        "GET /ws/clock?inspect=1 HTTP/1.1"
    );
    assert_eq!(
        handshake["response"]["line"],
        "HTTP/1.1 101 Switching Protocols"
    );
    // What the server says it answered is what this client received.
    assert_eq!(
        handshake["response"]["headers"]["sec-websocket-accept"],
        response.headers()["sec-websocket-accept"].to_str().unwrap()
    );
    assert!(
        handshake["request"]["headers"]["sec-websocket-key"]
            .as_str()
            .is_some_and(|k| k.len() == 24)
    );
    // Then the socket carries the feed as usual.
    loop {
        if let Message::Text(text) = socket.next().await.unwrap().unwrap()
            && !pushpoll::wire::is_heartbeat(text.as_bytes())
        {
            let _: WireEvent = serde_json::from_str(&text).unwrap();
            break;
        }
    }
}

/// A masked client frame (RFC 6455 §5.2) with the first byte `first` (FIN, RSV, opcode).
fn client_frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![first];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => frame.push(mask_bit | n as u8),
        n @ 126..=65535 => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        frame.extend_from_slice(payload);
    }
    frame
}

/// Opens `/ws/chat`, sends `bytes` after the first heartbeat, and collects the server's
/// frames for `wait` or until it ends the connection; returns them and whether it ended.
async fn exchange(
    app: &crate::support::TestApp,
    bytes: &[u8],
    wait: Duration,
) -> (Vec<(u8, Vec<u8>)>, bool) {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    raw_websocket(&mut stream, app.addr, "/ws/chat").await;
    stream.write_all(bytes).await.unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + wait;
    let ended = loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => break false,
            // A reset (the server closed with our bytes unread) ends it too.
            Ok(Ok(0) | Err(_)) => break true,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    };
    (server_frames(&received), ended)
}

/// The edge cases of RFC 6455 that the server must get right on every `--ws-engine`
/// (scripts/test.sh runs this suite on each): pings answered with their payload, a
/// fragmented message with a ping between its fragments put back together, a fragmented
/// message over 64 KiB closed with 1009, a client's close frame answered (§5.5.1: its code
/// and reason echoed; §7.4: 1002 for a code a peer may not send), and hostile frames
/// (unmasked, a reserved bit, text that is not UTF-8, a continuation with nothing to
/// continue, an oversized ping, a close with one byte or a reason not UTF-8) ending the
/// connection without a close frame.
#[tokio::test]
async fn fragments_control_frames_and_hostile_frames_are_answered_per_rfc_6455() {
    let app = spawn_app(&[]).await;
    let quiet = Duration::from_millis(600);
    let texts = |frames: &[(u8, Vec<u8>)]| -> Vec<String> {
        frames
            .iter()
            .filter(|(op, _)| *op == 1)
            .map(|(_, p)| String::from_utf8_lossy(p).into_owned())
            .collect()
    };

    let (frames, ended) = exchange(&app, &client_frame(0x89, b"hello", true), quiet).await;
    assert!(!ended);
    assert!(frames.contains(&(0xa, b"hello".to_vec())), "{frames:?}");

    let mut bytes = client_frame(0x01, br#"{"type":"#, true);
    bytes.extend(client_frame(0x89, b"x", true));
    bytes.extend(client_frame(0x80, br#""nope"}"#, true));
    let (frames, ended) = exchange(&app, &bytes, quiet).await;
    assert!(!ended);
    let pong = frames.iter().position(|f| *f == (0xa, b"x".to_vec()));
    assert!(pong.is_some(), "{frames:?}");
    let answers = texts(&frames);
    assert!(
        answers
            .iter()
            .any(|t| t.contains(r#""code":"unknown_type""#) && t.contains("nope")),
        "{answers:?}"
    );

    let (frames, ended) = exchange(&app, &client_frame(0x82, b"\x00", true), quiet).await;
    assert!(!ended);
    assert!(
        texts(&frames)
            .iter()
            .any(|t| t.contains(r#""code":"bad_frame""#)),
        "{frames:?}"
    );

    let mut bytes = client_frame(0x01, &[b'a'; 40_000], true);
    bytes.extend(client_frame(0x80, &[b'a'; 30_000], true));
    let (frames, ended) = exchange(&app, &bytes, Duration::from_secs(5)).await;
    assert!(ended);
    let mut too_big = 1009u16.to_be_bytes().to_vec();
    too_big.extend_from_slice(b"message too big");
    assert_eq!(frames.last(), Some(&(0x8, too_big)), "{frames:?}");

    let mut violation = 1002u16.to_be_bytes().to_vec();
    violation.extend_from_slice(b"Protocol violation");
    for (what, payload, answer) in [
        (
            "a normal close",
            &b"\x03\xe8bye"[..],
            b"\x03\xe8bye".to_vec(),
        ),
        ("a close without a code", b"", Vec::new()),
        ("an application's code", b"\x0f\xa0", b"\x0f\xa0".to_vec()),
        (
            "1005, which no frame may carry",
            b"\x03\xed",
            violation.clone(),
        ),
        ("code 999", b"\x03\xe7", violation.clone()),
    ] {
        let (frames, ended) = exchange(&app, &client_frame(0x88, payload, true), quiet).await;
        assert!(ended, "{what}: still open");
        assert_eq!(frames.last(), Some(&(0x8, answer)), "{what}: {frames:?}");
    }

    for (what, bytes) in [
        ("close with one byte", client_frame(0x88, b"\x03", true)),
        (
            "close reason not UTF-8",
            client_frame(0x88, b"\x03\xe8\xff", true),
        ),
        ("unmasked", client_frame(0x81, b"{}", false)),
        ("reserved bit", client_frame(0xc1, b"{}", true)),
        ("not UTF-8", client_frame(0x81, b"\xff\xfe", true)),
        ("stray continuation", client_frame(0x80, b"{}", true)),
        ("ping over 125 bytes", client_frame(0x89, &[0; 126], true)),
    ] {
        let (frames, ended) = exchange(&app, &bytes, Duration::from_secs(5)).await;
        assert!(ended, "{what}: still open");
        assert!(
            frames.iter().all(|(op, _)| *op != 0x8),
            "{what}: {frames:?}"
        );
    }
}
