//! Subscriber backlog: a cursor far in the past is replayed a page at a time, so neither a
//! poll nor a stream that does not read makes the server hold the range; a replay longer
//! than `--max-backfill` starts with a `gap`; a subscriber that lags past the live ring
//! resyncs and still gets every event once; an acknowledged message is already committed.

use std::time::{Duration, Instant};

use pushpoll::feed::{EventBody, WireEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{
    Subscriber, TRANSPORTS, TestApp, another_peer_is_served, spawn_app, spawn_binary_on,
};

/// Text of the big stored messages: 8 KB, as in the measurement.
const BIG: usize = 8 * 1024;
const STORED: u64 = 20_000;

/// Fills a new SQLite file at `path` with `n` lobby messages of `size` bytes, in one
/// transaction (the server's own appends fsync each one, far too slow for 20k).
fn fill_db(path: &str, n: u64, size: usize) {
    // Opening through the server's store creates the schema exactly as the server does.
    drop(pushpoll::engine::embedded::sqlite::SqliteStore::open(path).unwrap());
    let mut conn = rusqlite::Connection::open(path).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO events (id, ts, type, room, sid_a, sid_b, json) \
                 VALUES (?1, ?2, 'message', 'lobby', NULL, NULL, ?3)",
            )
            .unwrap();
        let text = "x".repeat(size);
        for id in 1..=n {
            let json = serde_json::to_string(&WireEvent {
                id,
                ts: id,
                body: EventBody::Message {
                    room: "lobby".into(),
                    from: "filler".into(),
                    text: text.clone(),
                },
            })
            .unwrap();
            insert
                .execute(rusqlite::params![id as i64, id as i64, json])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

const MB: u64 = 1024 * 1024;

async fn get_json(http: &reqwest::Client, url: &str) -> (serde_json::Value, usize) {
    let res = http.get(url).send().await.unwrap();
    assert_eq!(res.status(), 200, "{url}");
    let bytes = res.bytes().await.unwrap();
    (serde_json::from_slice(&bytes).unwrap(), bytes.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_cursor_with_limit_1_reads_one_row_not_the_range_even_20_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.sqlite");
    let db = db.to_str().unwrap();
    fill_db(db, STORED, BIG);
    let app = spawn_binary_on(db, &["--tick-ms", "100"]).await;
    let base = app.url("");
    let http = reqwest::Client::new();
    // Warm up the connection pool and the store's first pages.
    get_json(
        &http,
        &format!("{base}/poll/chat?after={}&limit=1", STORED - 1),
    )
    .await;
    let before = app.server_rss();

    // A cursor older than the backfill reach: the gap, and nothing read.
    let started = Instant::now();
    let (body, len) = get_json(&http, &format!("{base}/poll/chat?after=0&limit=1")).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(body["events"][0]["type"], "gap", "{body}");
    assert!(len < 300, "{len} bytes");
    let resumed = body["next"].as_u64().unwrap();
    assert_eq!(resumed, STORED - pushpoll::feed::MAX_BACKFILL);

    // Cursors inside the reach, 20 at once: each answer is one 8 KB event, read alone.
    let started = Instant::now();
    let polls = (0..20u64).map(|i| {
        let http = http.clone();
        let url = format!("{base}/poll/chat?after={}&limit=1", resumed + i * 7);
        async move { get_json(&http, &url).await }
    });
    for (i, (body, len)) in futures_util::future::join_all(polls)
        .await
        .into_iter()
        .enumerate()
    {
        let events = body["events"].as_array().unwrap();
        assert_eq!(events.len(), 1, "{i}");
        assert_eq!(events[0]["id"], resumed + i as u64 * 7 + 1);
        assert!(len < BIG + 300, "{len} bytes");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "20 one-row polls took {:?}",
        started.elapsed()
    );
    let grown = app.server_rss().saturating_sub(before);
    assert!(grown < 10 * MB, "RSS grew by {} MB", grown / MB);
    another_peer_is_served(&base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_subscribers_that_never_read_hold_one_page_not_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.sqlite");
    let db = db.to_str().unwrap();
    fill_db(db, STORED, BIG);
    let app = spawn_binary_on(db, &["--tick-ms", "100"]).await;
    let base = app.url("");
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    // One warm-up replay of a few events, so the store's caches exist before measuring.
    let http = reqwest::Client::new();
    get_json(
        &http,
        &format!("{base}/poll/chat?after={}&limit=5", STORED - 5),
    )
    .await;
    let before = app.server_rss();

    // Five subscribers from a far cursor (inside the reach: 10,000 × 8 KB = 80 MB each if
    // loaded at once), each reading the response head and then nothing.
    let mut held = Vec::new();
    for n in 0..5u8 {
        let mut tcp = crate::support::tcp_from(10 + n, addr).await;
        let request = format!(
            "GET /sse/chat?after={} HTTP/1.1\r\nHost: {addr}\r\n\r\n",
            STORED - 10_000
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut head = vec![0; 4096];
        let got = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut head))
            .await
            .unwrap()
            .unwrap();
        assert!(
            head[..got].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            &head[..got]
        );
        held.push(tcp);
    }
    // Let the server push until the sockets are full, and then some.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grown = app.server_rss().saturating_sub(before);
    assert!(
        grown < 16 * MB,
        "RSS grew by {} MB for 5 stalled subscribers",
        grown / MB
    );
    another_peer_is_served(&base).await;
    drop(held);
}

/// Posts `n` lobby messages of `size` bytes as `cookie`'s session; returns the last id.
async fn post_messages(app: &TestApp, cookie: &str, n: usize, size: usize) -> u64 {
    let text = "y".repeat(size);
    let mut last = 0;
    for _ in 0..n {
        let (status, body) = app.say(cookie, "lobby", &text).await;
        assert_eq!(status, 201, "{body}");
        last = body["id"].as_u64().unwrap();
    }
    last
}

/// Reads `sub` until the event `newest` arrives; the events in order. An iframe stream
/// that ends (at its byte cap) is reopened from the last id, as the page does.
async fn read_through(
    app: &TestApp,
    sub: &mut Subscriber,
    newest: u64,
    transport: &str,
) -> Vec<WireEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut got: Vec<WireEvent> = Vec::new();
    while got.last().is_none_or(|e| e.id < newest) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match sub.next_event(left).await {
            Some(event) => got.push(event),
            None if transport == "iframe" && !left.is_zero() => {
                let cursor = got
                    .last()
                    .map_or(String::new(), |e| format!("&after={}", e.id));
                *sub = Subscriber::open(app, transport, &format!("chat?rooms=lobby{cursor}"), None)
                    .await;
            }
            None => panic!("{transport}: stopped after {:?}", got.last().map(|e| e.id)),
        }
    }
    got
}

#[tokio::test]
async fn a_cursor_older_than_the_backfill_reach_gets_a_gap_then_every_event_over_every_transport() {
    let app = spawn_app(&[
        "--max-backfill",
        "40",
        "--backfill-page",
        "8",
        "--chat-window",
        "16",
        "--rate-limit",
        "100000",
        "--rate-limit-bytes",
        "1073741824",
        "--tick-ms",
        "100",
    ])
    .await;
    let cookie = app.login("filler").await;
    let newest = post_messages(&app, &cookie, 100, 10).await;
    let resumed = newest - 40 + 1;
    for transport in TRANSPORTS {
        let mut sub = Subscriber::open(&app, transport, "chat?after=5", None).await;
        let got = read_through(&app, &mut sub, newest, transport).await;
        assert_eq!(
            got[0].body,
            EventBody::Gap {
                after: 5,
                resumed_from: resumed
            },
            "{transport}"
        );
        assert_eq!(got[0].id, resumed - 1, "{transport}");
        let ids: Vec<u64> = got[1..].iter().map(|e| e.id).collect();
        assert_eq!(
            ids,
            (resumed..=newest).collect::<Vec<_>>(),
            "{transport}: every event after the gap, once, in order"
        );
    }
    // A cursor inside the reach gets no gap.
    let (events, _) = app
        .poll(&format!("/poll/chat?after={}&limit=1000", newest - 10))
        .await;
    assert!(events.iter().all(|e| e.body
        != EventBody::Gap {
            after: newest - 10,
            resumed_from: newest - 9
        }));
    assert_eq!(events.first().map(|e| e.id), Some(newest - 9));
    another_peer_is_served(&format!("http://{}", app.addr)).await;
}

/// A TCP connection from 127.0.0.N with a tiny receive buffer, so that a client that does
/// not read stalls the server's writes after a few KB instead of after megabytes.
async fn stingy_tcp(n: u8, addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, n], 0)))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

/// Lets a stingy connection read at full speed again: a duplicate of its socket sets the
/// receive buffer (dropping the duplicate closes only that descriptor).
fn widen(tcp: &tokio::net::TcpStream) {
    let fd = std::os::fd::AsFd::as_fd(tcp).try_clone_to_owned().unwrap();
    let dup = tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
    dup.set_recv_buffer_size(4 * 1024 * 1024).unwrap();
}

/// Reads `tcp` until `done` says the bytes so far are complete.
async fn read_until(tcp: &mut tokio::net::TcpStream, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut buf = Vec::new();
    let mut chunk = vec![0; 64 * 1024];
    while !done(&buf) {
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut chunk))
            .await
            .expect("the stream went on within 10 s")
            .unwrap();
        assert!(n > 0, "the server closed the stream");
        buf.extend_from_slice(&chunk[..n]);
    }
    buf
}

/// `(id, event type)` of each message of an SSE response read raw (chunked framing lines
/// are neither `id:` nor `event:` lines, so they fall away).
fn sse_ids(raw: &[u8]) -> Vec<(u64, String)> {
    let text = String::from_utf8_lossy(raw);
    let mut out = Vec::new();
    let mut id = None;
    for line in text.split('\n') {
        if let Some(v) = line.strip_prefix("id: ") {
            id = v.trim().parse().ok();
        } else if let Some(kind) = line.strip_prefix("event: ")
            && let Some(id) = id.take()
        {
            out.push((id, kind.trim().to_string()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_subscriber_that_lags_past_the_live_ring_resyncs_and_gets_every_message_once() {
    // A live ring of 2 events and a window of 32: subscribers that stop reading while
    // ~3 MB are published overflow both, and must catch up from the store by their cursor.
    let app = spawn_app(&[
        "--chat-lag",
        "2",
        "--chat-window",
        "32",
        "--backfill-page",
        "8",
        "--rate-limit",
        "100000",
        "--rate-limit-bytes",
        "1073741824",
        "--tick-ms",
        "100",
    ])
    .await;
    let cookie = app.login("filler").await;
    let start = post_messages(&app, &cookie, 1, 10).await;
    let path = format!("/sse/chat?after={start}");
    let mut sse = stingy_tcp(20, app.addr).await;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr);
    sse.write_all(request.as_bytes()).await.unwrap();
    let mut ws = stingy_tcp(21, app.addr).await;
    crate::support::raw_websocket(&mut ws, app.addr, &format!("/ws/chat?after={start}")).await;

    // Neither is read while these are published.
    let newest = post_messages(&app, &cookie, 1500, 1900).await;
    let expected: Vec<u64> = (start + 1..=newest).collect();
    widen(&sse);
    widen(&ws);

    let end = format!("id: {newest}\n");
    let raw = read_until(&mut sse, |b| {
        crate::support::find(b, end.as_bytes()).is_some()
    })
    .await;
    let got = sse_ids(&raw);
    assert!(got.iter().all(|(_, kind)| kind == "message"), "sse: no gap");
    let ids: Vec<u64> = got.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, expected, "sse: every message once, in order");

    let last_frame = |b: &[u8]| {
        crate::support::server_frames(b)
            .last()
            .and_then(|(_, payload)| serde_json::from_slice::<WireEvent>(payload).ok())
            .is_some_and(|e| e.id >= newest)
    };
    let raw = read_until(&mut ws, last_frame).await;
    let events: Vec<WireEvent> = crate::support::server_frames(&raw)
        .into_iter()
        .filter(|(opcode, payload)| *opcode == 1 && !pushpoll::wire::is_heartbeat(payload))
        .map(|(_, payload)| serde_json::from_slice(&payload).unwrap())
        .collect();
    assert!(
        events
            .iter()
            .all(|e| matches!(e.body, EventBody::Message { .. })),
        "ws: no gap"
    );
    let ids: Vec<u64> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids, expected, "ws: every message once, in order");
    another_peer_is_served(&format!("http://{}", app.addr)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_message_is_already_readable_from_a_second_connection() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.sqlite");
    let db = db.to_str().unwrap();
    // The server in its own process; this test's connection is the second one.
    let app = spawn_binary_on(db, &["--tick-ms", "100"]).await;
    let base = app.url("");
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{base}/api/session"))
        .json(&serde_json::json!({ "nick": "alice" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let cookie = res.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let second = rusqlite::Connection::open(db).unwrap();
    for i in 0..5 {
        let text = format!("committed {i}");
        let res = http
            .post(format!("{base}/api/chat/messages"))
            .header("cookie", &cookie)
            .json(&serde_json::json!({ "room": "lobby", "text": text }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let body: serde_json::Value = res.json().await.unwrap();
        let id = body["id"].as_u64().unwrap();
        // No wait, no retry: the 201 means the row is committed.
        let json: String = second
            .query_row("SELECT json FROM events WHERE id = ?1", [id as i64], |r| {
                r.get(0)
            })
            .unwrap_or_else(|e| panic!("message {id} acknowledged but not committed: {e}"));
        let event: WireEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(
            event.body,
            EventBody::Message {
                room: "lobby".into(),
                from: "alice".into(),
                text
            }
        );
    }
    another_peer_is_served(&base).await;
}
