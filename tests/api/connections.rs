//! Connection-level bounds: header and idle deadlines, slow readers, per-peer caps and the
//! Host check. Each attack comes from 127.0.0.1 while another peer (127.0.0.2) is served
//! and sees the clock tick.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{TestApp, client_from, spawn_app, tcp_from};

/// Reads and discards until the server closes the connection; returns how long that took,
/// or `None` if it was still open after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = within.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_header_timeout() {
    let app = spawn_app(&["--header-timeout", "1s", "--tick-ms", "100"]).await;
    let mut silent = tcp_from(7, app.addr).await;
    let mut half = tcp_from(7, app.addr).await;
    half.write_all(b"GET /poll/clock HTTP/1.1\r\nHost: ")
        .await
        .unwrap();
    app.another_peer_is_served().await;
    for stream in [&mut silent, &mut half] {
        let took = closed_within(stream, Duration::from_secs(4))
            .await
            .expect("closed within the header timeout");
        assert!(took < Duration::from_secs(3), "closed after {took:?}");
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_the_header_timeout() {
    let app = spawn_app(&["--header-timeout", "1s"]).await;
    let mut conn = tcp_from(7, app.addr).await;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr);
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = conn.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Now idle between requests: the next head must come within the header timeout too.
    let took = closed_within(&mut conn, Duration::from_secs(4))
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    app.another_peer_is_served().await;
}

#[tokio::test]
async fn a_head_trickled_one_byte_at_a_time_is_cut_off_at_the_header_timeout() {
    let app = spawn_app(&["--header-timeout", "1s", "--tick-ms", "100"]).await;
    let mut conn = tcp_from(7, app.addr).await;
    let started = Instant::now();
    let head =
        b"GET /poll/clock HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed = false;
    for byte in head {
        if conn.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    if !closed {
        closed = closed_within(&mut conn, Duration::from_secs(1))
            .await
            .is_some();
    }
    assert!(closed, "the trickling connection is still open");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    app.another_peer_is_served().await;
}

#[tokio::test]
async fn many_trickling_connections_from_one_peer_are_capped_and_then_closed() {
    let app = spawn_app(&[
        "--header-timeout",
        "1s",
        "--max-connections",
        "400",
        "--max-connections-per-peer",
        "100",
        "--tick-ms",
        "100",
    ])
    .await;
    let mut conns = Vec::new();
    for _ in 0..300 {
        let mut c = tcp_from(7, app.addr).await;
        let _ = c.write_all(b"G").await;
        conns.push(c);
    }
    // The peer's share is taken: the excess was answered 503 by the listener.
    let mut refused = 0;
    for c in &mut conns {
        let mut buf = [0u8; 512];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(20), c.read(&mut buf)).await
            && String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 503")
        {
            refused += 1;
        }
    }
    assert!(
        refused >= 150,
        "only {refused} of the excess 200 were refused"
    );
    app.another_peer_is_served().await;
    // And the admitted ones are closed by the header deadline.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats = app.stats().await;
    assert!(
        stats.connections.open <= 5,
        "{} connections still open",
        stats.connections.open
    );
    assert_eq!(stats.connections.rejected_per_peer, 200);
}

#[tokio::test]
async fn one_peer_cannot_take_every_connection() {
    let app = spawn_app(&["--max-connections", "40", "--tick-ms", "100"]).await;
    // The default share is a quarter of --max-connections: 10.
    let mut held = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..15 {
        let mut c = tcp_from(7, app.addr).await;
        let request = format!("GET /sse/clock HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr);
        c.write_all(request.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 2048];
        let n = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if text.starts_with("HTTP/1.1 200") {
            held.push(c);
        } else {
            refused.push(text);
        }
    }
    assert_eq!(held.len(), 10);
    assert_eq!(refused.len(), 5);
    assert!(refused[0].starts_with("HTTP/1.1 503"), "{}", refused[0]);
    assert!(
        refused[0].contains("\"too_many_connections\""),
        "{}",
        refused[0]
    );
    app.another_peer_is_served().await;
    // Another peer can open its own streams while the first one holds its share.
    let other = client_from(3);
    let res = other.get(app.url("/sse/clock")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

/// Stores `n` chat messages of 2000 characters (~2 KB each on the wire), so that a
/// subscription from `after=0` has megabytes to send: more than the socket buffers hold.
async fn fill_chat(app: &TestApp, n: usize) {
    use futures_util::StreamExt as _;
    let cookie = app.login("filler").await;
    let text = "x".repeat(2000);
    let statuses: Vec<u16> = futures_util::stream::iter(0..n)
        .map(|_| async { app.say(&cookie, "lobby", &text).await.0 })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(
        statuses.iter().all(|s| *s == 201),
        "not every message was stored"
    );
}

/// Opens `path` on a socket with a tiny receive buffer and never reads from it.
async fn unread(app: &TestApp, path: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind("127.0.0.7:0".parse().unwrap()).unwrap();
    let mut conn = socket.connect(app.addr).await.unwrap();
    if path.starts_with("/ws/") {
        crate::support::raw_websocket(&mut conn, app.addr, path).await;
    } else {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr);
        conn.write_all(request.as_bytes()).await.unwrap();
    }
    conn
}

#[tokio::test]
async fn a_stream_or_socket_the_peer_does_not_read_is_closed_at_the_send_timeout() {
    let app = spawn_app(&[
        "--send-timeout",
        "1s",
        "--header-timeout",
        "2s",
        "--ws-timeout",
        "600s",
        "--rate-limit",
        "1000000",
        "--rate-limit-bytes",
        "1073741824",
        "--tick-ms",
        "100",
    ])
    .await;
    // 3,500 x ~2 KB is more than the kernel's largest send buffer here (4 MiB) plus the
    // reader's 4 KiB: the server's writes must stall.
    fill_chat(&app, 3500).await;
    let paths = [
        "/sse/chat?after=0",
        "/iframe/chat?after=0",
        "/ws/chat?after=0",
    ];
    let mut conns = Vec::new();
    for path in paths {
        conns.push((path, unread(&app, path).await));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.stats().await.connections.send_timeouts < 2 {
        assert!(
            Instant::now() < deadline,
            "{} of 2 closed after 20 s: {:?}",
            app.stats().await.connections.send_timeouts,
            app.stats().await.transports
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.another_peer_is_served().await;
    for (path, mut conn) in conns {
        // What it did receive ends: the server closed it.
        assert!(
            closed_within(&mut conn, Duration::from_secs(5))
                .await
                .is_some(),
            "{path}: the connection is still open"
        );
    }
    let stats = app.stats().await;
    for t in ["sse", "iframe", "ws"] {
        assert_eq!(stats.transports[t].open, 0, "{t} still counted open");
    }
    let iframe = stats.transports["iframe"].bytes_sent;
    assert!(
        iframe <= 256 * 1024 + 4096,
        "the iframe sent {iframe} bytes"
    );
}

#[tokio::test]
async fn an_oversized_request_head_is_refused_with_431() {
    let app = spawn_app(&[]).await;
    let mut conn = tcp_from(7, app.addr).await;
    let request = format!(
        "GET /poll/clock HTTP/1.1\r\nHost: {}\r\nX-Big: {}\r\n\r\n",
        app.addr,
        "a".repeat(100 * 1024)
    );
    let _ = conn.write_all(request.as_bytes()).await;
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(3), conn.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap_or(0);
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    app.another_peer_is_served().await;
}

#[tokio::test]
async fn a_request_for_another_host_is_refused_before_routing() {
    let app = spawn_app(&[]).await;
    let evil = format!("evil.example:{}", app.addr.port());
    let origin = format!("http://{evil}");
    let http = client_from(1);
    // DNS rebinding: the page's own name as Host, and a matching Origin.
    for (method, path, body) in [
        ("POST", "/api/session", r#"{"nick":"mallory"}"#),
        (
            "POST",
            "/api/debug/kill",
            r#"{"tag":"abcdefghijklmnopqrstuvwxyz012345"}"#,
        ),
        ("GET", "/api/stats", ""),
        ("GET", "/sse/clock", ""),
    ] {
        let res = http
            .request(method.parse().unwrap(), app.url(path))
            .header("host", &evil)
            .header("origin", &origin)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 421, "{method} {path}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unknown_host", "{method} {path}");
    }
    // A WebSocket upgrade too.
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            app.ws_url("/ws/clock"),
        )
        .unwrap();
    request.headers_mut().insert("host", evil.parse().unwrap());
    request
        .headers_mut()
        .insert("origin", origin.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 421),
        other => panic!("expected 421, got {:?}", other.map(|_| ())),
    }
    // The server's own names are served.
    for host in [
        app.addr.to_string(),
        format!("localhost:{}", app.addr.port()),
    ] {
        let res = http
            .get(app.url("/healthz"))
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{host}");
    }
    app.another_peer_is_served().await;
}

#[tokio::test]
async fn a_request_body_that_trickles_is_answered_408_within_the_body_deadline() {
    let app = spawn_app(&[]).await;
    let mut conn = tcp_from(7, app.addr).await;
    let head = format!(
        "POST /api/session HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        app.addr
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(15), conn.read(&mut buf))
        .await
        .expect("an answer within the body deadline")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"body_timeout\""), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    app.another_peer_is_served().await;
}

/// The first screen of a server started under a hard open-files limit of 20,000 (this
/// machine's; a lower one where the machine's is lower): `--max-connections`'s default is the
/// limit less the reserve, so nothing is warned about; a value given that does not fit beside
/// the reserve is. Each server is the real binary, its limits set before it starts (the soft
/// one low, as a login shell's often is, so the server raises it first).
#[tokio::test]
async fn the_default_max_connections_fits_the_open_files_limit_and_only_a_given_excess_warns() {
    use pushpoll::config::{OPEN_FILES_RESERVE, default_max_connections};
    let limit = pushpoll::open_files_hard_limit().min(20_000);

    let (max, stderr) = start_under_open_files_limit(limit, &[]).await;
    assert_eq!(max, default_max_connections(limit), "{stderr}");
    assert_eq!(max, limit.saturating_sub(OPEN_FILES_RESERVE).max(1));
    assert!(!stderr.contains("WARN"), "the default warned:\n{stderr}");

    let given = limit.to_string();
    let (max, stderr) =
        start_under_open_files_limit(limit, &["--max-connections", given.as_str()]).await;
    assert_eq!(max, limit);
    assert!(
        stderr.contains("WARN") && stderr.contains("--max-connections"),
        "a --max-connections the limit cannot hold was not warned about:\n{stderr}"
    );

    let fits = default_max_connections(limit).to_string();
    let (_, stderr) =
        start_under_open_files_limit(limit, &["--max-connections", fits.as_str()]).await;
    assert!(
        !stderr.contains("WARN"),
        "a value that fits warned:\n{stderr}"
    );
}

/// Starts the binary with `args` under a hard open-files limit of `hard`; returns the
/// connection bound it reports (`/api/stats`) and what it wrote to stderr until it was killed.
async fn start_under_open_files_limit(hard: u64, args: &[&str]) -> (u64, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_pushpoll"));
    command
        .args(["--addr", "127.0.0.1:0", "--db", ":memory:"])
        .args(args)
        .env_remove("PUSHPOLL_MAX_CONNECTIONS")
        .env("PUSHPOLL_LOG", "info")
        .stderr(std::process::Stdio::piped());
    let soft = hard.min(1024);
    // SAFETY: between fork and exec the closure calls setrlimit only, which is
    // async-signal-safe, on a struct of its own.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let mut spawned = pushpoll::spawn::start(&mut command)
        .await
        .expect("start the pushpoll binary");
    let stats: serde_json::Value = reqwest::get(format!("{}/api/stats", spawned.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let max = stats["connections"]["max"]
        .as_u64()
        .expect("connections.max in /api/stats");
    spawned.child.kill().await.unwrap();
    let mut stderr = String::new();
    spawned
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    (max, stderr)
}
