//! The byte accounting checked from the other end of the socket: `loadtest run` goes through
//! a counting TCP proxy started here, which sorts its connections by their first request line
//! (the subscribers' `GET /{transport}/chat?rooms=…`; the publisher's, the stats reader's and
//! the cursor probe's are others) and
//! counts every byte it forwards. For every transport, the reported totals (`bytes_in`
//! down, `bytes_out` up) must equal what the proxy counted on the subscribers' connections,
//! byte for byte, and the per-event figures must be those totals ÷ events received.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn binaries() -> (PathBuf, PathBuf) {
    let loadtest = PathBuf::from(env!("CARGO_BIN_EXE_loadtest"));
    let server = loadtest.with_file_name("pushpoll");
    assert!(
        server.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        server.display()
    );
    (loadtest, server)
}

/// What the proxy counted on one connection.
#[derive(Default)]
struct Conn {
    /// The first request line's target, e.g. `/sse/chat?rooms=…`.
    target: Mutex<String>,
    /// Bytes the client wrote (read here from the client).
    up: AtomicU64,
    /// Bytes written here to the client (what it could read).
    down: AtomicU64,
}

#[derive(Default)]
struct Proxy {
    conns: Mutex<Vec<Arc<Conn>>>,
    /// Connections whose two directions have not both ended.
    open: AtomicUsize,
}

impl Proxy {
    /// Bytes (up, down) on the connections whose first request targets `prefix`.
    fn counted(&self, prefix: &str) -> (u64, u64, usize) {
        let conns = self.conns.lock().unwrap();
        let mine: Vec<&Arc<Conn>> = conns
            .iter()
            .filter(|c| c.target.lock().unwrap().starts_with(prefix))
            .collect();
        (
            mine.iter().map(|c| c.up.load(SeqCst)).sum(),
            mine.iter().map(|c| c.down.load(SeqCst)).sum(),
            mine.len(),
        )
    }
}

/// Client to server: counts what it reads from the client, and notes the request target.
async fn upstream(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    conn: Arc<Conn>,
) {
    let mut head = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        conn.up.fetch_add(n as u64, SeqCst);
        if head.len() < 4096 && conn.target.lock().unwrap().is_empty() {
            head.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&head);
            if let Some(line) = text.split("\r\n").next().filter(|_| text.contains("\r\n")) {
                let target = line.split(' ').nth(1).unwrap_or("?").to_owned();
                *conn.target.lock().unwrap() = target;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Server to client: counts what it writes to the client.
async fn downstream(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    conn: Arc<Conn>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        conn.down.fetch_add(n as u64, SeqCst);
    }
    let _ = to.shutdown().await;
}

async fn serve_proxy(listener: TcpListener, server: SocketAddr, proxy: Arc<Proxy>) {
    while let Ok((client, _)) = listener.accept().await {
        let Ok(upstream_socket) = TcpStream::connect(server).await else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = upstream_socket.set_nodelay(true);
        let conn = Arc::new(Conn::default());
        proxy.conns.lock().unwrap().push(conn.clone());
        proxy.open.fetch_add(1, SeqCst);
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = upstream_socket.into_split();
        let proxy = proxy.clone();
        tokio::spawn(async move {
            tokio::join!(
                upstream(client_read, server_write, conn.clone()),
                downstream(server_read, client_write, conn),
            );
            proxy.open.fetch_sub(1, SeqCst);
        });
    }
}

/// Starts `pushpoll` on a free port, answering to the proxy's name too.
fn start_server(bin: &PathBuf, proxy: SocketAddr) -> (std::process::Child, SocketAddr) {
    let mut command = Command::new(bin);
    command
        .args(["--addr", "127.0.0.1:0", "--db", ":memory:"])
        .args([
            "--rate-limit",
            "1000000",
            "--rate-limit-bytes",
            "1073741824",
        ])
        .arg("--allow-origin")
        .arg(format!("http://{proxy}"))
        .env("PUSHPOLL_LOG", "warn")
        .stderr(Stdio::inherit());
    pushpoll::spawn::start_blocking(&mut command).unwrap()
}

/// A server with the counting proxy in front of it, and the runtime the proxy runs on.
struct Proxied {
    loadtest: PathBuf,
    runtime: tokio::runtime::Runtime,
    proxy_addr: SocketAddr,
    server: std::process::Child,
    server_addr: SocketAddr,
    proxy: Arc<Proxy>,
}

fn proxied() -> Proxied {
    let (loadtest, server_bin) = binaries();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let proxy_addr = listener.local_addr().unwrap();
    let (server, server_addr) = start_server(&server_bin, proxy_addr);
    let proxy = Arc::new(Proxy::default());
    runtime.spawn(serve_proxy(listener, server_addr, proxy.clone()));
    Proxied {
        loadtest,
        runtime,
        proxy_addr,
        server,
        server_addr,
        proxy,
    }
}

/// Runs one transport through the proxy and compares the two counts.
fn the_totals_equal_the_proxys_counts(transport: &str) {
    let started = Instant::now();
    let Proxied {
        loadtest,
        runtime: _runtime,
        proxy_addr,
        mut server,
        proxy,
        ..
    } = proxied();

    let out =
        std::env::temp_dir().join(format!("loadtest-bytes-{transport}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let output = Command::new(&loadtest)
        .args(["run", "--transport", transport, "--url"])
        .arg(format!("http://{proxy_addr}"))
        .args(["--clients", "8", "--rate", "10", "--duration", "2s"])
        .args(["--ramp", "200ms", "--poll-interval", "300ms", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        output.status.success(),
        "loadtest failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Every connection has ended once loadtest has exited and the server is gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    while proxy.open.load(SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(proxy.open.load(SeqCst), 0, "connections still open");

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let r = &summary["results"][0];
    // The subscribers' URLs name their room; the load tester's own cursor probe
    // (`/poll/chat?history=0`, on a connection it does not count) does not.
    let (up, down, connections) = proxy.counted(&format!("/{transport}/chat?rooms="));
    assert!(connections >= 8, "{transport}: {connections} connections");
    assert_eq!(r["bytes_out"], up, "{transport}: bytes up: {r}");
    assert_eq!(r["bytes_in"], down, "{transport}: bytes down: {r}");
    let events = r["events_received"].as_f64().unwrap();
    assert!(events >= 8.0 * 15.0, "{transport}: {r}");
    let per_event = |key: &str| r[key].as_f64().unwrap();
    let close = |a: f64, b: f64| (a - b).abs() < 1e-6 * b.max(1.0);
    assert!(
        close(per_event("bytes_down_per_event"), down as f64 / events),
        "{r}"
    );
    assert!(
        close(per_event("bytes_up_per_event"), up as f64 / events),
        "{r}"
    );
    assert!(
        close(per_event("bytes_per_event"), (up + down) as f64 / events),
        "{r}"
    );
    assert!(
        per_event("bytes_up_per_s") > 0.0 || transport != "poll",
        "{r}"
    );
    assert!(per_event("bytes_down_per_s") > 0.0, "{r}");
    assert!(
        close(
            per_event("bytes_per_s"),
            per_event("bytes_up_per_s") + per_event("bytes_down_per_s")
        ),
        "{r}"
    );
    // Every request sent up is at least a request line and a Host header.
    let requests = r["requests"].as_u64().unwrap();
    assert!(
        up >= requests * 40,
        "{transport}: {up} B for {requests} requests"
    );
    let _ = std::fs::remove_dir_all(&out);
    assert!(started.elapsed() < Duration::from_secs(25));
}

#[test]
fn poll_bytes_up_and_down_equal_the_proxys_counts() {
    the_totals_equal_the_proxys_counts("poll");
}

#[test]
fn longpoll_bytes_up_and_down_equal_the_proxys_counts() {
    the_totals_equal_the_proxys_counts("longpoll");
}

#[test]
fn iframe_bytes_up_and_down_equal_the_proxys_counts() {
    the_totals_equal_the_proxys_counts("iframe");
}

#[test]
fn sse_bytes_up_and_down_equal_the_proxys_counts() {
    the_totals_equal_the_proxys_counts("sse");
}

#[test]
fn fetch_bytes_up_and_down_equal_the_proxys_counts() {
    the_totals_equal_the_proxys_counts("fetch");
}

#[test]
fn ws_bytes_up_and_down_equal_the_proxys_counts() {
    the_totals_equal_the_proxys_counts("ws");
}

/// WebTransport is UDP: no TCP proxy sees it. Its bytes are QUIC's UDP payload from quinn's
/// statistics, checked byte for byte against a counting UDP relay in the client's unit tests
/// (`clients::webtransport`); here, through the same `loadtest run --url PROXY` as the
/// others: the proxy carries none of the sessions, the figures say what they count, and the
/// server's own count of what it wrote to the sessions (event and heartbeat payload, before
/// QUIC's framing and encryption) travelled inside the bytes the clients report down.
#[test]
fn webtransport_bytes_are_the_quic_udp_payload_and_hold_what_the_server_sent() {
    let Proxied {
        loadtest,
        runtime,
        proxy_addr,
        mut server,
        server_addr,
        proxy,
    } = proxied();
    let out = std::env::temp_dir().join(format!("loadtest-bytes-wt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let output = Command::new(&loadtest)
        .args(["run", "--transport", "webtransport", "--url"])
        .arg(format!("http://{proxy_addr}"))
        .args(["--clients", "8", "--rate", "10", "--duration", "2s"])
        .args(["--ramp", "200ms", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "loadtest failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stats: serde_json::Value = runtime.block_on(async {
        let mut socket = TcpStream::connect(server_addr).await.unwrap();
        socket
            .write_all(
                format!(
                    "GET /api/stats HTTP/1.1\r\nhost: {server_addr}\r\nconnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let mut answer = Vec::new();
        socket.read_to_end(&mut answer).await.unwrap();
        let text = String::from_utf8_lossy(&answer);
        let (_, body) = text.split_once("\r\n\r\n").unwrap();
        serde_json::from_str(body).unwrap()
    });
    let _ = server.kill();
    let _ = server.wait();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let r = &summary["results"][0];
    assert_eq!(r["bytes_basis"], "quic_udp_payload", "{r}");
    let (_, _, connections) = proxy.counted("/webtransport/");
    assert_eq!(connections, 0, "a session went through the TCP proxy");
    let sent = stats["webtransport"]["bytes_sent"].as_u64().unwrap();
    let (down, up) = (
        r["bytes_in"].as_u64().unwrap(),
        r["bytes_out"].as_u64().unwrap(),
    );
    let events = r["events_received"].as_u64().unwrap();
    assert!(events >= 8 * 15, "{r}");
    assert!(
        sent > 0 && down > sent,
        "down {down} B, server payload {sent} B: {r}"
    );
    // Each session's handshake is at least one padded 1200-byte Initial packet up.
    assert!(up >= 8 * 1_200, "{r}");
    let close = |a: f64, b: f64| (a - b).abs() < 1e-6 * b.max(1.0);
    assert!(
        close(
            r["bytes_down_per_event"].as_f64().unwrap(),
            down as f64 / events as f64
        ),
        "{r}"
    );
    assert!(
        close(
            r["bytes_up_per_event"].as_f64().unwrap(),
            up as f64 / events as f64
        ),
        "{r}"
    );
    assert!(r["bytes_down_per_s"].as_f64().unwrap() > 0.0, "{r}");
    let _ = std::fs::remove_dir_all(&out);
}
