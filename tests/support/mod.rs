//! Test support shared by the integration-test binaries: a real server on 127.0.0.1:0 (in
//! process, or the real binary), and small real clients for each transport.
#![allow(dead_code)]

use pushpoll::names::Transport;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser as _;
use futures_util::StreamExt;
use pushpoll::Config;
use pushpoll::feed::WireEvent;
use pushpoll::stats::Snapshot;
use pushpoll::wire::SSE_MESSAGE_END;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A real redis-server on a free port, for the scale-out tests.
pub mod redis;

/// Two network namespaces joined by a veth pair: a LAN a test makes for itself.
pub mod netns;

/// A WebTransport client pinned to the server's published certificate hashes.
pub mod quic;

/// A server running in this process on a free loopback port.
pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    /// The server's own process, when it runs as the real binary ([`spawn_binary`]).
    child: Option<tokio::process::Child>,
    /// Dropping it (with the app, at the end of the test) stands the watchdog down.
    _watchdog: Watchdog,
}

/// How long one test may run once it has started a server, unless `PUSHPOLL_TEST_DEADLINE_S`
/// says otherwise. Generous: the slowest browser test takes well under a minute.
pub const TEST_DEADLINE: Duration = Duration::from_secs(120);

/// A per-test deadline. A regression that makes a test wait forever (a cursor off by one
/// turns "read until the message arrives" into a loop) must fail the suite, not hang it:
/// libtest has no per-test timeout, and an async test stuck in a loop never reaches its own
/// `timeout`s. So a plain thread waits on a channel; if the test has not dropped the sender
/// by the deadline, it names the test (libtest names each test's thread after the test) and
/// aborts the whole process, which fails the run with the name in the log.
pub struct Watchdog(std::sync::mpsc::Sender<()>);

impl Watchdog {
    /// Arms a watchdog for the current test; see [`TEST_DEADLINE`].
    pub fn arm() -> Watchdog {
        let deadline = std::env::var("PUSHPOLL_TEST_DEADLINE_S")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .map_or(TEST_DEADLINE, Duration::from_secs);
        let test = std::thread::current()
            .name()
            .unwrap_or("<unnamed>")
            .to_string();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name(format!("watchdog {test}"))
            .spawn(move || {
                // Only a timeout fires: the sender is never used, so `Disconnected` means the
                // test dropped its guard in time.
                if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(deadline) {
                    use std::io::Write as _;
                    // Straight to fd 2: libtest captures `eprintln!` (threads inherit the
                    // capture), and that buffer would be lost with the process.
                    let _ = writeln!(
                        std::io::stderr(),
                        "\nwatchdog: test `{test}` still running after {deadline:?} \
                         (PUSHPOLL_TEST_DEADLINE_S); aborting the test process"
                    );
                    std::process::abort();
                }
            })
            .expect("spawn the test watchdog");
        Watchdog(tx)
    }
}

/// Starts the real binary with `args` on 127.0.0.1:0, in its own process: for tests that
/// measure the server's memory ([`TestApp::server_rss`]), which an in-process server shares
/// with every other test of the binary.
pub async fn spawn_binary(args: &[&str]) -> TestApp {
    spawn_binary_on(":memory:", args).await
}

/// [`spawn_binary`] over the SQLite file `db`.
pub async fn spawn_binary_on(db: &str, args: &[&str]) -> TestApp {
    let watchdog = Watchdog::arm();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_pushpoll"));
    command
        .args(["--addr", "127.0.0.1:0", "--db", db])
        .args(ws_engine())
        .args(args)
        .stderr(std::process::Stdio::null());
    let pushpoll::spawn::Spawned { child, addr, .. } = pushpoll::spawn::start(&mut command)
        .await
        .expect("start the pushpoll binary and read its URL within 10 s");
    let app = TestApp {
        addr,
        http: reqwest::Client::new(),
        stop: None,
        task: None,
        child: Some(child),
        _watchdog: watchdog,
    };
    app.wait_for_first_tick().await;
    app
}

/// Starts the real server with `args` (as on the command line) on 127.0.0.1:0.
pub async fn spawn_app(args: &[&str]) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    spawn_app_on(listener, args).await
}

/// Starts the real server with `args` on `listener` (a test that needs a given port binds it).
pub async fn spawn_app_on(listener: tokio::net::TcpListener, args: &[&str]) -> TestApp {
    let watchdog = Watchdog::arm();
    init_logs();
    let mut argv = vec!["pushpoll", "--addr", "127.0.0.1:0", "--db", ":memory:"];
    // `PUSHPOLL_TEST_REDIS=redis://…`: the same tests against the cluster engine, each server
    // under its own key prefix in that Redis (scripts/test.sh runs the chat tests so).
    let redis = std::env::var("PUSHPOLL_TEST_REDIS").ok();
    let prefix = format!("t{}:", unique());
    if let Some(url) = &redis {
        argv.extend(["--redis", url, "--redis-prefix", &prefix]);
    }
    let engine = ws_engine();
    argv.extend(engine.iter().map(String::as_str));
    argv.extend_from_slice(args);
    let config = Config::try_parse_from(argv).expect("test config");
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(pushpoll::run(listener, config, async move {
        let _ = stopped.await;
    }));
    let app = TestApp {
        addr,
        http: reqwest::Client::new(),
        stop: Some(stop),
        task: Some(task),
        child: None,
        _watchdog: watchdog,
    };
    app.wait_for_first_tick().await;
    app
}

/// The client side of a server running elsewhere (another process, another namespace) at
/// `addr`: the typed helpers (`login`, `say`, [`Subscriber::open`]…) against it. Dropping it
/// stops nothing. Made inside a namespace's task (`netns::Netns::run`), its requests leave
/// from that namespace.
pub fn client_of(addr: SocketAddr) -> TestApp {
    TestApp {
        addr,
        http: reqwest::Client::new(),
        stop: None,
        task: None,
        child: None,
        // Not armed: the test that made the server holds its own watchdog.
        _watchdog: Watchdog(std::sync::mpsc::channel().0),
    }
}

/// `PUSHPOLL_TEST_WS_ENGINE=tungstenite`: every server of the run speaks WebSocket on that
/// engine rather than the default (scripts/test.sh runs the API suite once per engine).
fn ws_engine() -> Vec<String> {
    match std::env::var("PUSHPOLL_TEST_WS_ENGINE") {
        Ok(engine) => vec!["--ws-engine".into(), engine],
        Err(_) => Vec::new(),
    }
}

/// A number no other server of this test run has: for Redis key prefixes.
pub fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    u64::from(std::process::id()) << 20 | n
}

fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug,hyper=info,h2=info")
            .with_test_writer()
            .try_init();
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    async fn wait_for_first_tick(&self) {
        for _ in 0..100 {
            if let Ok(r) = self.http.get(self.url("/healthz")).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("server did not come up");
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let res = self.http.get(self.url(path)).send().await.expect("request");
        let status = res.status().as_u16();
        let body = res.json().await.expect("json body");
        (status, body)
    }

    /// `GET /poll/...` or `/longpoll/...`, parsed into events and the next cursor.
    pub async fn poll(&self, path: &str) -> (Vec<WireEvent>, u64) {
        let (status, body) = self.get_json(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let events = serde_json::from_value(body["events"].clone()).expect("events");
        (events, body["next"].as_u64().expect("next"))
    }

    /// `GET /metrics`'s text (the tests are on loopback: the operator's).
    pub async fn metrics(&self) -> String {
        let res = self.http.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
    }

    pub async fn stats(&self) -> Snapshot {
        self.http
            .get(self.url("/api/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The server's resident memory, from `/proc`: its own process's for [`spawn_binary`];
    /// this test process's otherwise (shared with every test running beside it).
    pub fn server_rss(&self) -> u64 {
        let pid = self
            .child
            .as_ref()
            .and_then(|c| c.id())
            .map_or("self".to_string(), |pid| pid.to_string());
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS")
            * 1024
    }

    pub async fn latest_tick(&self) -> u64 {
        self.poll("/poll/clock").await.1
    }

    /// SIGTERM to a server started with [`spawn_binary`] (a normal shutdown); waits for it.
    pub async fn terminate(&mut self) {
        let child = self.child.as_mut().expect("terminate needs spawn_binary");
        let pid = child.id().expect("running") as libc::pid_t;
        // SAFETY: kill(2) with a pid we own and a valid signal number has no memory effects.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let _ = child.wait().await;
    }

    /// Sends `signal` to a server started with [`spawn_binary`] (SIGSTOP, SIGCONT…).
    pub fn signal(&self, signal: libc::c_int) {
        let child = self.child.as_ref().expect("signal needs spawn_binary");
        let pid = child.id().expect("running") as libc::pid_t;
        // SAFETY: kill(2) with a pid we own and a valid signal number has no memory effects.
        unsafe { libc::kill(pid, signal) };
    }

    /// `kill -9` of a server started with [`spawn_binary`]: no shutdown, no goodbye.
    pub async fn kill9(&mut self) {
        let child = self.child.as_mut().expect("kill9 needs spawn_binary");
        child.start_kill().expect("SIGKILL");
        let _ = child.wait().await;
    }

    /// Stops the server as SIGTERM would, and returns how long it took.
    pub async fn shutdown(mut self) -> Duration {
        let started = std::time::Instant::now();
        let _ = self.stop.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("server did not stop within 10 s")
            .expect("server task panicked")
            .expect("server returned an error");
        started.elapsed()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// One parsed Server-Sent Events message (or a comment line).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SseMessage {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Option<String>,
    pub retry: Option<u64>,
    pub comment: Option<String>,
}

/// An open HTTP response read chunk by chunk as it arrives.
pub struct Streaming {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    body: futures_util::stream::BoxStream<'static, Result<bytes::Bytes, String>>,
    buf: Vec<u8>,
    pub total_bytes: usize,
    pub ended: bool,
    /// The HTTP version the response came over (the TLS tests check for HTTP/2).
    pub version: reqwest::Version,
}

impl Streaming {
    pub async fn open(request: reqwest::RequestBuilder) -> Streaming {
        let res = request.send().await.expect("stream request");
        let version = res.version();
        Streaming {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: res
                .bytes_stream()
                .map(|r| r.map_err(|e| e.to_string()))
                .boxed(),
            buf: Vec::new(),
            total_bytes: 0,
            ended: false,
            version,
        }
    }

    /// A response read by another client (hyper's, in the HTTPS tests).
    pub fn from_parts(
        status: u16,
        headers: reqwest::header::HeaderMap,
        version: reqwest::Version,
        body: futures_util::stream::BoxStream<'static, Result<bytes::Bytes, String>>,
    ) -> Streaming {
        Streaming {
            status,
            headers,
            body,
            buf: Vec::new(),
            total_bytes: 0,
            ended: false,
            version,
        }
    }

    /// Reads one more chunk into the buffer; false at the end of the body.
    pub async fn fill(&mut self, within: Duration) -> bool {
        match tokio::time::timeout(within, self.body.next()).await {
            Ok(Some(Ok(chunk))) => {
                self.total_bytes += chunk.len();
                self.buf.extend_from_slice(&chunk);
                true
            }
            Ok(Some(Err(_)) | None) => {
                self.ended = true;
                false
            }
            Err(_) => panic!("no data within {within:?}"),
        }
    }

    /// Everything received and not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// The next complete SSE message (blocks split on a blank line).
    pub async fn next_sse(&mut self, within: Duration) -> Option<SseMessage> {
        loop {
            if let Some(end) = find(&self.buf, SSE_MESSAGE_END) {
                let block: Vec<u8> = self.buf.drain(..end + SSE_MESSAGE_END.len()).collect();
                return Some(parse_sse_block(std::str::from_utf8(&block).expect("utf-8")));
            }
            if !self.fill(within).await {
                return None;
            }
        }
    }

    /// The next event of the SSE stream, skipping `retry:`, comments and heartbeats.
    pub async fn next_sse_event(&mut self, within: Duration) -> Option<(SseMessage, WireEvent)> {
        loop {
            let msg = self.next_sse(within).await?;
            if let Some(data) = &msg.data
                && !pushpoll::wire::is_heartbeat(data.as_bytes())
            {
                let event = serde_json::from_str(data).expect("event json");
                return Some((msg, event));
            }
        }
    }

    /// The next line of a `fetch` stream (NDJSON), heartbeat lines included.
    pub async fn next_line(&mut self, within: Duration) -> Option<String> {
        loop {
            if let Some(end) = find(&self.buf, pushpoll::wire::NDJSON_LINE_END) {
                let line: Vec<u8> = self.buf.drain(..end + 1).collect();
                return Some(String::from_utf8(line[..end].to_vec()).expect("utf-8 line"));
            }
            if !self.fill(within).await {
                return None;
            }
        }
    }

    /// The next event of a `fetch` stream (heartbeat lines skipped).
    pub async fn next_ndjson_event(&mut self, within: Duration) -> Option<WireEvent> {
        loop {
            let line = self.next_line(within).await?;
            if line.is_empty() || pushpoll::wire::is_heartbeat(line.as_bytes()) {
                continue;
            }
            return Some(serde_json::from_str(&line).expect("ndjson event json"));
        }
    }

    /// The next `<script>parent.pushpoll(EVENT)</script>` of an iframe stream (heartbeats
    /// skipped).
    pub async fn next_iframe_event(&mut self, within: Duration) -> Option<WireEvent> {
        use pushpoll::wire::{IFRAME_CALL_CLOSE as CLOSE, IFRAME_CALL_OPEN as OPEN};
        loop {
            if let Some(start) = find(&self.buf, OPEN)
                && let Some(len) = find(&self.buf[start..], CLOSE)
            {
                let json = self.buf[start + OPEN.len()..start + len].to_vec();
                self.buf.drain(..start + len + CLOSE.len());
                if pushpoll::wire::is_heartbeat(&json) {
                    continue;
                }
                return Some(serde_json::from_slice(&json).expect("iframe event json"));
            }
            if !self.fill(within).await {
                return None;
            }
        }
    }

    /// Reads until the body ends; panics if it does not end within `within`.
    pub async fn read_to_end(&mut self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while !self.ended {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(!left.is_zero(), "stream did not end within {within:?}");
            self.fill(left).await;
        }
    }
}

fn parse_sse_block(block: &str) -> SseMessage {
    let mut msg = SseMessage::default();
    for line in block.lines() {
        if let Some(c) = line.strip_prefix(':') {
            msg.comment = Some(c.trim().to_string());
        } else if let Some((field, value)) = line.split_once(": ") {
            match field {
                "id" => msg.id = Some(value.into()),
                "event" => msg.event = Some(value.into()),
                "data" => msg.data = Some(value.into()),
                "retry" => msg.retry = value.parse().ok(),
                other => panic!("unexpected SSE field {other}"),
            }
        }
    }
    msg
}

pub use pushpoll::wire::find;

/// Opens a WebSocket by hand on a raw TCP socket and returns it after the `101`, for tests
/// that must control exactly what the client reads and when.
pub async fn raw_websocket(stream: &mut tokio::net::TcpStream, addr: SocketAddr, path: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let handshake = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(handshake.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // RFC 6455: base64(SHA-1(key + GUID)) for the RFC's sample key.
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
}

/// Splits unmasked server frames into `(opcode, payload)`.
pub fn server_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        let opcode = bytes[0] & 0x0f;
        let (len, header) = match bytes[1] & 0x7f {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        if bytes.len() < header + len {
            break;
        }
        frames.push((opcode, bytes[header..header + len].to_vec()));
        bytes = &bytes[header + len..];
    }
    frames
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Every transport's name, from `src/names.rs`.
pub const TRANSPORTS: [&str; Transport::ALL.len()] = Transport::NAMES;

impl TestApp {
    /// Signs in as `nick`; returns the `Cookie` header value of that session.
    pub async fn login(&self, nick: &str) -> String {
        let res = self
            .http
            .post(self.url("/api/session"))
            .json(&serde_json::json!({ "nick": nick }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "login {nick}");
        let set_cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(
            set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
            "{set_cookie}"
        );
        set_cookie.split(';').next().unwrap().to_string()
    }

    /// A JSON request with an optional session cookie: (status, body, headers).
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        cookie: Option<&str>,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
        let mut req = self.http.request(method, self.url(path)).json(&body);
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let body = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).expect("json body")
        };
        (status, body, headers)
    }

    /// `POST /api/chat/messages` to a room; returns the status and body.
    pub async fn say(&self, cookie: &str, room: &str, text: &str) -> (u16, serde_json::Value) {
        let body = serde_json::json!({ "room": room, "text": text });
        let (status, body, _) = self
            .send_json(
                reqwest::Method::POST,
                "/api/chat/messages",
                Some(cookie),
                body,
            )
            .await;
        (status, body)
    }

    /// Opens a WebSocket to `path`, with a session cookie if given.
    pub async fn ws(&self, path: &str, cookie: Option<&str>) -> Ws {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = self.ws_url(path).into_client_request().unwrap();
        if let Some(cookie) = cookie {
            request
                .headers_mut()
                .insert("cookie", cookie.parse().unwrap());
        }
        tokio_tungstenite::connect_async(request)
            .await
            .expect("websocket")
            .0
    }
}

/// A subscriber on any of the seven transports, read one event at a time. Polling
/// transports re-ask with their cursor, as a real client does.
pub enum Subscriber {
    Poll {
        app_url: String,
        http: reqwest::Client,
        path: String,
        cursor: Option<u64>,
        cookie: Option<String>,
        buffered: std::collections::VecDeque<WireEvent>,
        long: bool,
    },
    Stream {
        stream: Streaming,
        sse: bool,
    },
    /// The `fetch` stream: one event per line.
    Lines(Streaming),
    Socket(Ws),
    /// A WebTransport session: NDJSON lines on the server's stream.
    Quic(Box<quic::Session>),
}

impl Subscriber {
    /// Subscribes over `transport` to `/{transport}/{feed_and_query}` (e.g. `chat?rooms=lobby`).
    pub async fn open(
        app: &TestApp,
        transport: &str,
        feed_and_query: &str,
        cookie: Option<&str>,
    ) -> Subscriber {
        let path = format!("/{transport}/{feed_and_query}");
        // A match on the enum, so a new transport is a compile error here until the tests
        // can subscribe over it.
        let kind: Transport = transport.parse().unwrap_or_else(|e| panic!("{e}"));
        match kind {
            Transport::Poll | Transport::LongPoll => {
                let (base, query) = path.split_once('?').unwrap_or((&path, ""));
                let cursor = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("after="))
                    .map(|v| v.parse().unwrap());
                let query: Vec<&str> = query
                    .split('&')
                    .filter(|kv| !kv.starts_with("after=") && !kv.is_empty())
                    .collect();
                let mut sub = Subscriber::Poll {
                    app_url: format!("http://{}", app.addr),
                    http: app.http.clone(),
                    path: format!("{base}?{}", query.join("&")),
                    cursor,
                    cookie: cookie.map(str::to_string),
                    buffered: Default::default(),
                    long: kind == Transport::LongPoll,
                };
                sub.fetch().await;
                sub
            }
            Transport::Iframe | Transport::Sse => {
                let mut req = app.http.get(app.url(&path));
                if let Some(cookie) = cookie {
                    req = req.header("cookie", cookie);
                }
                let stream = Streaming::open(req).await;
                assert_eq!(stream.status, 200, "{path}");
                Subscriber::Stream {
                    stream,
                    sse: kind == Transport::Sse,
                }
            }
            Transport::Fetch => {
                let mut req = app.http.get(app.url(&path));
                if let Some(cookie) = cookie {
                    req = req.header("cookie", cookie);
                }
                let stream = Streaming::open(req).await;
                assert_eq!(stream.status, 200, "{path}");
                Subscriber::Lines(stream)
            }
            Transport::Ws => Subscriber::Socket(app.ws(&path, cookie).await),
            Transport::WebTransport => Subscriber::Quic(Box::new(
                quic::Session::open(app, feed_and_query, cookie).await,
            )),
        }
    }

    async fn fetch(&mut self) {
        let Subscriber::Poll {
            app_url,
            http,
            path,
            cursor,
            cookie,
            buffered,
            long,
        } = self
        else {
            return;
        };
        let sep = if path.ends_with('?') { "" } else { "&" };
        let mut url = format!("{app_url}{path}");
        if let Some(c) = cursor {
            url.push_str(&format!("{sep}after={c}"));
        }
        if *long {
            url.push_str("&timeout=2");
        }
        let mut req = http.get(url.replace("?&", "?"));
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie.as_str());
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = res.json().await.unwrap();
        *cursor = Some(body["next"].as_u64().unwrap());
        let events: Vec<WireEvent> = serde_json::from_value(body["events"].clone()).unwrap();
        buffered.extend(events);
    }

    /// The next event (of any type), or `None` if none comes within `within`.
    pub async fn next_event(&mut self, within: Duration) -> Option<WireEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            match self {
                Subscriber::Poll { buffered, long, .. } => {
                    if let Some(event) = buffered.pop_front() {
                        return Some(event);
                    }
                    if !*long {
                        tokio::time::sleep(Duration::from_millis(30)).await;
                    }
                    self.fetch().await;
                }
                Subscriber::Stream { stream, sse } => {
                    // The outer deadline must fire first: the reader's own one panics.
                    let left_inner = left + Duration::from_secs(1);
                    let got = if *sse {
                        tokio::time::timeout(left, stream.next_sse_event(left_inner))
                            .await
                            .ok()
                            .flatten()
                            .map(|(_, e)| e)
                    } else {
                        tokio::time::timeout(left, stream.next_iframe_event(left_inner))
                            .await
                            .ok()
                            .flatten()
                    };
                    return got;
                }
                Subscriber::Lines(stream) => {
                    let left_inner = left + Duration::from_secs(1);
                    return tokio::time::timeout(left, stream.next_ndjson_event(left_inner))
                        .await
                        .ok()
                        .flatten();
                }
                Subscriber::Quic(session) => {
                    let value = session.next_line(left).await?;
                    if value.get("heartbeat").is_some() {
                        continue;
                    }
                    assert_ne!(value["type"], "error", "unexpected error event {value}");
                    return Some(serde_json::from_value(value).unwrap());
                }
                Subscriber::Socket(ws) => {
                    use tokio_tungstenite::tungstenite::Message;
                    match tokio::time::timeout(left, ws.next()).await {
                        Ok(Some(Ok(Message::Text(text))))
                            if pushpoll::wire::is_heartbeat(text.as_bytes()) =>
                        {
                            continue;
                        }
                        Ok(Some(Ok(Message::Text(text)))) => {
                            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                            assert_ne!(value["type"], "error", "unexpected error event {value}");
                            return Some(serde_json::from_value(value).unwrap());
                        }
                        Ok(Some(Ok(_))) => continue,
                        _ => return None,
                    }
                }
            }
        }
    }

    /// Collects message-like events until `n` chat messages (or whispers) arrived.
    pub async fn messages(&mut self, n: usize, within: Duration) -> Vec<WireEvent> {
        use pushpoll::feed::EventBody;
        let deadline = tokio::time::Instant::now() + within;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(event) = self.next_event(left).await else {
                panic!("only {} of {n} messages within {within:?}", got.len())
            };
            if matches!(
                event.body,
                EventBody::Message { .. } | EventBody::Whisper { .. }
            ) {
                got.push(event);
            }
        }
        got
    }
}

impl TestApp {
    /// A short poll with a session cookie (which also marks the user online).
    pub async fn poll_with_cookie(&self, path: &str, cookie: &str) -> serde_json::Value {
        let res = self
            .http
            .get(self.url(path))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }
}

/// Another peer, as far as the server can tell: an HTTP client whose connections come from
/// `127.0.0.N` (the whole 127.0.0.0/8 is loopback).
pub fn client_from(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, n]))
        .build()
        .expect("client")
}

/// A raw TCP connection to `addr` from `127.0.0.N`.
pub async fn tcp_from(n: u8, addr: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, n], 0)))
        .expect("bind the source address");
    socket.connect(addr).await.expect("connect")
}

/// The proof, after an attack from one address, that the server still serves others: a
/// client from `127.0.0.2` gets a short poll of the clock answered, then a long poll after
/// that cursor answered with a newer tick (the clock still ticks for it), each within 10 s.
pub async fn another_peer_is_served(base: &str) {
    let other = client_from(2);
    let get = |path: String| {
        let request = other
            .get(format!("{base}{path}"))
            .timeout(Duration::from_secs(10));
        async move {
            let res = request
                .send()
                .await
                .expect("the other peer is answered in time");
            assert_eq!(res.status(), 200, "{path}");
            res.json::<serde_json::Value>().await.expect("json")
        }
    };
    let now = get("/poll/clock".into()).await;
    let cursor = now["next"].as_u64().expect("next");
    let later = get(format!("/longpoll/clock?after={cursor}&timeout=5")).await;
    let newer = later["events"]
        .as_array()
        .expect("events")
        .iter()
        .any(|t| t["id"].as_u64() > Some(cursor));
    assert!(newer, "the clock stopped for the other peer: {later}");
}

impl TestApp {
    /// [`another_peer_is_served`] by this server.
    pub async fn another_peer_is_served(&self) {
        another_peer_is_served(&self.url("")).await;
    }
}
