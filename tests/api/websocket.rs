//! WebSocket keep-alive and isolation: pings, the silent-peer timeout, and a client that
//! never reads.

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
