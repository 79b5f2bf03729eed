//! Browser behaviour the pages state, measured in each engine against small raw servers: the
//! connections a browser opens per origin, `EventSource`'s `retry` and `Last-Event-ID`, the close
//! code of a WebSocket that dies without a close frame, and what a forever frame whose connection
//! breaks mid-stream shows its parent. Each test holds the figures measured per engine (so it
//! fails if an engine changes) and prints them (`--nocapture`) for the pages that cite them.

use std::future::Future;
use std::net::SocketAddr;

use futures_util::SinkExt;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use super::*;

/// Reads from `stream` until the end of an HTTP head (`\r\n\r\n`) and gives the head; `None`
/// if the peer closed first. (A copy of `claims.rs`'s reader, without what followed the head:
/// these servers get no request bodies.)
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = support::find(&buf, b"\r\n\r\n") {
            buf.truncate(end + 4);
            return Some(String::from_utf8_lossy(&buf).into_owned());
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The value of request header `name` in `head`.
fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// A raw HTTP/1.1 server on 127.0.0.1 (and on ::1 at the same port where it can, so that
/// `localhost`, whichever address a browser tries first, reaches it too): `/` is a blank page
/// (no script: the tests inject what they need); every other request's path and head go to
/// `handle` with the connection, which does what it likes with it. One request per connection.
async fn raw_server<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(String, String, TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let v4 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = v4.local_addr().unwrap();
    let mut listeners = vec![v4];
    if let Ok(v6) = TcpListener::bind(("::1", addr.port())).await {
        listeners.push(v6);
    }
    let handle = Arc::new(handle);
    for listener in listeners {
        let handle = handle.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let handle = handle.clone();
                tokio::spawn(async move {
                    let Some(head) = read_head(&mut stream).await else {
                        return;
                    };
                    let path = head.split(' ').nth(1).unwrap_or("").to_string();
                    if path == "/" {
                        let body =
                            "<!doctype html><meta charset=\"utf-8\"><title>engines</title><body>";
                        let response = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncache-control: no-store\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(response.as_bytes()).await;
                        return;
                    }
                    handle(path, head, stream).await;
                });
            }
        });
    }
    addr
}

async fn not_found(mut stream: TcpStream) {
    let _ = stream
        .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .await;
}

/// The figure expected in `engine`, from a per-engine table.
fn expected<T>(table: &[(Engine, T)], engine: Engine) -> &T {
    &table.iter().find(|(e, _)| *e == engine).unwrap().1
}

// 1. Connections per origin.

/// How many requests to one origin (scheme, host, port) an engine keeps open at once over
/// HTTP/1.1; the rest wait in its queue. Measured: six in each engine.
const CONNECTIONS_EXPECTED: &[(Engine, usize)] = &[
    (Engine::Chromium, 6),
    (Engine::Firefox, 6),
    (Engine::WebKit, 6),
];

/// Whether a WebSocket handshake waits for one of an origin's six connections. Measured: in
/// Chromium and Firefox a WebSocket to an origin holding six requests opens at once (they keep
/// WebSockets apart from the six); in WebKitGTK it waits, without reaching the server, until one
/// of the six is free.
const WEBSOCKET_IN_THE_SIX: &[(Engine, bool)] = &[
    (Engine::Chromium, false),
    (Engine::Firefox, false),
    (Engine::WebKit, true),
];

/// How long the server holds each `/hold/…` request unanswered: past the end of the test.
const HOLD: Duration = Duration::from_secs(25);

/// How long after a batch of requests is started the server's count is read. The queued
/// requests never get a connection (nothing is answered), so a longer wait changes nothing;
/// 3 s is room for a loaded machine.
const SETTLE: Duration = Duration::from_secs(3);

/// Starts `n` requests from `page` to `origin` (`""`: the page's own) for `/hold/TAG-i`, none
/// of which is ever answered. `no-cors`, so a cross-origin one needs no CORS answer.
async fn start_holds(page: &Page<'_>, origin: &str, tag: &str, n: usize) {
    let js = format!(
        "(() => {{ for (let i = 0; i < {n}; i++) fetch(`{origin}/hold/{tag}-${{i}}`, {{ mode: 'no-cors', cache: 'no-store' }}).catch(() => {{}}); return true; }})()"
    );
    assert!(eval::<bool>(page, &js).await);
}

/// longpoll.html, sse.html and compare.html say a browser opens at most six HTTP/1.1
/// connections per origin, shared by its tabs, and compare.html puts half its streams on the
/// other loopback name of the same port to get six more. Ten requests that the server never
/// answers are started at once, and the server counts how many reached it: from one tab to
/// `localhost:PORT`, then one more from a second tab of the same site to the same origin, then
/// ten from the first tab to its own origin `127.0.0.1:PORT` while the first six are still held.
/// Last, the first tab leaves, and the second tab's request must go out.
async fn a_browser_opens_six_connections_per_origin_shared_by_its_tabs(engine: Engine) {
    // (Host header, path) of each held request, in arrival order.
    let arrived: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let record = arrived.clone();
    let addr = raw_server(move |path, head, stream| {
        let record = record.clone();
        async move {
            if path == "/ws-probe" {
                // A WebSocket handshake (tungstenite's, fed the head already read), then held
                // open.
                record
                    .lock()
                    .unwrap()
                    .push((header_value(&head, "host").unwrap_or_default(), path));
                let (read, write) = stream.into_split();
                let replayed = std::io::Cursor::new(head.into_bytes()).chain(read);
                let _ws = tokio_tungstenite::accept_async(tokio::io::join(replayed, write)).await;
                tokio::time::sleep(HOLD).await;
                return;
            }
            if !path.starts_with("/hold/") {
                return not_found(stream).await;
            }
            let host = header_value(&head, "host").unwrap_or_default();
            record.lock().unwrap().push((host, path));
            tokio::time::sleep(HOLD).await;
            drop(stream);
        }
    })
    .await;
    let port = addr.port();
    let count = |host: &str, tag: &str| {
        arrived
            .lock()
            .unwrap()
            .iter()
            .filter(|(h, p)| {
                h == host && (p.starts_with(&format!("/hold/{tag}-")) || *p == format!("/{tag}"))
            })
            .count()
    };
    let (alias, own) = (format!("localhost:{port}"), format!("127.0.0.1:{port}"));

    let browser = Browser::launch(engine).await;
    // Both tabs load before any request is held: a page of a full origin would queue too.
    let (first, _) = browser.open(&format!("http://{own}/")).await;
    let (second, _) = browser.open(&format!("http://{own}/")).await;

    start_holds(&first, &format!("http://{alias}"), "a", 10).await;
    tokio::time::sleep(SETTLE).await;
    let alias_first_tab = count(&alias, "a");

    start_holds(&second, &format!("http://{alias}"), "b", 1).await;
    tokio::time::sleep(SETTLE).await;
    let alias_second_tab = count(&alias, "b");

    start_holds(&first, "", "c", 10).await;
    tokio::time::sleep(SETTLE).await;
    let own_origin = count(&own, "c");
    let alias_after = count(&alias, "a") + count(&alias, "b");

    eprintln!(
        "connections per origin in {}: 10 requests from tab 1 to http://{alias}: {alias_first_tab} reached the server; \
         1 more from tab 2 to the same origin: {alias_second_tab} reached it; \
         then 10 from tab 1 to its own origin http://{own}: {own_origin} reached it (http://{alias} still holding {alias_after})",
        engine.name()
    );
    let six = *expected(CONNECTIONS_EXPECTED, engine);
    assert_eq!(alias_first_tab, six, "{}: one origin", engine.name());
    assert_eq!(
        alias_second_tab,
        0,
        "{}: a second tab queues behind the first one's {six}",
        engine.name()
    );
    assert_eq!(
        own_origin,
        six,
        "{}: another origin gets its own {six}",
        engine.name()
    );
    assert_eq!(
        alias_after,
        six,
        "{}: the first origin still full",
        engine.name()
    );

    // compare.html: is a WebSocket one of the six? With both origins full, the second tab
    // opens a WebSocket to the full origin.
    assert!(
        eval::<bool>(
            &second,
            &format!("(() => {{ window.wsProbe = 'pending'; const ws = new WebSocket('ws://{alias}/ws-probe'); ws.onopen = () => {{ window.wsProbe = 'open'; }}; ws.onclose = (e) => {{ if (window.wsProbe !== 'open') window.wsProbe = `closed ${{e.code}}`; }}; return true; }})()"),
        )
        .await
    );
    tokio::time::sleep(SETTLE).await;
    let ws_state: String = eval(&second, "wsProbe").await;
    let ws_arrived = count(&alias, "ws-probe");
    eprintln!(
        "a WebSocket to http://{alias} while it holds {six} requests, in {}: {ws_state} after {} ms (handshakes that reached the server: {ws_arrived})",
        engine.name(),
        SETTLE.as_millis()
    );
    let queued = *expected(WEBSOCKET_IN_THE_SIX, engine);
    let expected_state = if queued { "pending" } else { "open" };
    assert_eq!(
        (ws_state.as_str(), ws_arrived),
        (expected_state, usize::from(!queued)),
        "{}: a WebSocket to a full origin",
        engine.name()
    );

    // The second tab's request was queued, not lost: once the first tab leaves (its requests
    // aborted, their connections closed), it goes out.
    first.close().await.unwrap();
    let freed = until(Duration::from_secs(10), async || match count(&alias, "b") {
        1 => Ok(()),
        n => Err(n),
    })
    .await;
    assert!(
        freed.is_ok(),
        "{}: the second tab's request never went out: {freed:?}",
        engine.name()
    );
    // And a queued WebSocket was waiting, not refused: it opens now.
    assert!(
        until_true(&second, "wsProbe === 'open'", Duration::from_secs(10)).await,
        "{}: the WebSocket never opened: {}",
        engine.name(),
        eval::<String>(&second, "wsProbe").await
    );
}
in_every_engine!(a_browser_opens_six_connections_per_origin_shared_by_its_tabs);

// 2. EventSource's `retry` and `Last-Event-ID`.

/// One request the `/es/R` server answered: when it came, its `Last-Event-ID`, the id it was
/// sent, and when the server closed the connection.
struct EsRequest {
    retry: u64,
    at: Instant,
    last_event_id: Option<String>,
    id: usize,
    closed: Instant,
}

/// How an engine reconnects after the stream ends: how much earlier and later than the `retry`
/// it was sent, in ms, the next request may come, timed from the server's close (the band is
/// wide: the machine is shared), and whether the reconnect carries `Last-Event-ID`. Measured: every
/// engine reconnects 0-7 ms after `retry`, with `Last-Event-ID`.
struct Reconnect {
    early_ms: i64,
    late_ms: i64,
    last_event_id: bool,
}

const RECONNECT_EXPECTED: &[(Engine, Reconnect)] = &[
    (
        Engine::Chromium,
        Reconnect {
            early_ms: 100,
            late_ms: 1500,
            last_event_id: true,
        },
    ),
    (
        Engine::Firefox,
        Reconnect {
            early_ms: 100,
            late_ms: 1500,
            last_event_id: true,
        },
    ),
    (
        Engine::WebKit,
        Reconnect {
            early_ms: 100,
            late_ms: 1500,
            last_event_id: true,
        },
    ),
];

/// The `retry` values tried: what the product sends, and a shorter one.
const RETRIES: [u64; 2] = [2000, 500];

/// sse.html says `EventSource` reconnects by itself after the `retry` the server sent, with
/// `Last-Event-ID`. The server answers each `/es/R` with `retry: R`, one event with a new id,
/// and closes the connection; two reconnects per `R` are timed from the close.
async fn eventsource_reconnects_after_retry_with_last_event_id(engine: Engine) {
    let requests: Arc<Mutex<Vec<EsRequest>>> = Arc::default();
    let record = requests.clone();
    let addr = raw_server(move |path, head, mut stream| {
        let record = record.clone();
        async move {
            let Some(retry) = path.strip_prefix("/es/").and_then(|r| r.parse::<u64>().ok())
            else {
                return not_found(stream).await;
            };
            let at = Instant::now();
            let last_event_id = header_value(&head, "last-event-id");
            let id = record
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r.retry == retry)
                .count()
                + 1;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-store\r\nconnection: close\r\n\r\nretry: {retry}\n\nid: {id}\ndata: x\n\n"
            );
            let _ = stream.write_all(response.as_bytes()).await;
            // Long enough for the browser to parse the event before the end.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = stream.shutdown().await;
            drop(stream);
            record.lock().unwrap().push(EsRequest {
                retry,
                at,
                last_event_id,
                id,
                closed: Instant::now(),
            });
        }
    })
    .await;
    let browser = Browser::launch(engine).await;
    let (page, _) = browser.open(&format!("http://{addr}/")).await;
    let js = format!(
        "(() => {{ window.sources = {RETRIES:?}.map((r) => new EventSource(`/es/${{r}}`)); return true; }})()"
    );
    assert!(eval::<bool>(&page, &js).await);

    // Three requests per retry: the first and two reconnects.
    let enough = until(Duration::from_secs(15), async || {
        let seen = requests.lock().unwrap();
        let fewest = RETRIES
            .iter()
            .map(|r| seen.iter().filter(|q| q.retry == *r).count())
            .min()
            .unwrap();
        if fewest >= 3 { Ok(()) } else { Err(fewest) }
    })
    .await;
    assert!(
        eval::<bool>(
            &page,
            "(() => { sources.forEach((s) => s.close()); return true; })()"
        )
        .await
    );
    if let Err(fewest) = enough {
        panic!("{}: only {fewest} requests for one retry", engine.name());
    }

    let want = expected(RECONNECT_EXPECTED, engine);
    let seen = requests.lock().unwrap();
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for retry in RETRIES {
        let mine: Vec<&EsRequest> = seen.iter().filter(|q| q.retry == retry).take(3).collect();
        if mine[0].last_event_id.is_some() {
            failures.push(format!(
                "retry {retry}: the first request has Last-Event-ID"
            ));
        }
        for pair in mine.windows(2) {
            let delay = pair[1].at.duration_since(pair[0].closed).as_millis() as i64;
            report.push(format!(
                "retry {retry}: reconnected {delay} ms after the close, Last-Event-ID {:?} (last id sent {})",
                pair[1].last_event_id, pair[0].id
            ));
            let low = retry as i64 - want.early_ms;
            let high = retry as i64 + want.late_ms;
            if !(low..=high).contains(&delay) {
                failures.push(format!(
                    "retry {retry}: {delay} ms, not within {low}..={high}"
                ));
            }
            let carried = pair[1].last_event_id.as_deref() == Some(&*pair[0].id.to_string());
            if carried != want.last_event_id {
                failures.push(format!(
                    "retry {retry}: Last-Event-ID {:?} after id {}",
                    pair[1].last_event_id, pair[0].id
                ));
            }
        }
    }
    eprintln!(
        "EventSource reconnect in {}:\n  {}",
        engine.name(),
        report.join("\n  ")
    );
    assert!(failures.is_empty(), "{}: {failures:#?}", engine.name());
}
in_every_engine!(eventsource_reconnects_after_retry_with_last_event_id);

// 3. A WebSocket that dies without a close frame.

/// The events a page's WebSocket fires when the server sends one message and then closes the
/// TCP connection without a close frame, in order, the close as `close CODE wasClean`.
/// Measured: 1006, not clean, and no `error` event before it, in every engine.
const WS_DEATH_EXPECTED: &[(Engine, &[&str])] = &[
    (Engine::Chromium, &["open", "message", "close 1006 false"]),
    (Engine::Firefox, &["open", "message", "close 1006 false"]),
    (Engine::WebKit, &["open", "message", "close 1006 false"]),
];

/// ws.html says the browser reports code 1006 when a connection ends without a close frame
/// (RFC 6455 §7.1.5; the code is never sent on the wire). The server completes the handshake,
/// sends one text frame, and drops the TCP connection.
async fn a_websocket_closed_without_a_close_frame_reports_1006(engine: Engine) {
    let ws_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = ws_listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = ws_listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let _ = ws.send(Message::text("hello")).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                // Dropping the stream closes the socket (FIN) with no close frame.
                drop(ws);
            });
        }
    });
    let addr = raw_server(|_, _, stream| not_found(stream)).await;
    let browser = Browser::launch(engine).await;
    let (page, _) = browser.open(&format!("http://{addr}/")).await;
    let js = format!(
        "(() => {{ window.seen = []; const ws = new WebSocket('ws://{ws_addr}/'); \
         ws.onopen = () => seen.push('open'); ws.onmessage = () => seen.push('message'); \
         ws.onerror = () => seen.push('error'); \
         ws.onclose = (e) => seen.push(`close ${{e.code}} ${{e.wasClean}}`); return true; }})()"
    );
    assert!(eval::<bool>(&page, &js).await);
    let closed = until_true(
        &page,
        "seen.some((e) => e.startsWith('close'))",
        Duration::from_secs(10),
    )
    .await;
    let seen: Vec<String> = eval(&page, "seen").await;
    eprintln!(
        "WebSocket dropped without a close frame in {}: events {seen:?}",
        engine.name()
    );
    assert!(closed, "{}: no close event: {seen:?}", engine.name());
    assert_eq!(
        seen,
        *expected(WS_DEATH_EXPECTED, engine),
        "{}",
        engine.name()
    );
}
in_every_engine!(a_websocket_closed_without_a_close_frame_reports_1006);

// 4. A forever frame whose connection breaks mid-stream.

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// What the parent of a forever frame sees once the frame's connection broke mid-stream:
/// whether the frame fired `load`, `error`, and its document's `readyState` 3 s later.
#[derive(Debug, PartialEq, serde::Deserialize)]
struct BrokenFrame {
    ran: bool,
    load: bool,
    error: bool,
    state: String,
}

/// (connection end, `load` fired, `error` fired, `readyState` after the break)
type FrameOutcome = (&'static str, bool, bool, &'static str);

/// Per engine and per way the connection ends: `fin` (the server closes its socket, no
/// terminating chunk: what the product's `POST /api/debug/kill` does, through hyper) and
/// `reset` (a TCP RST). `no document`: `contentDocument` is null.
const BROKEN_FRAME_EXPECTED: &[(Engine, [FrameOutcome; 2])] = &[
    (
        Engine::Chromium,
        [
            ("fin", false, false, "loading"),
            ("reset", false, false, "loading"),
        ],
    ),
    (
        Engine::Firefox,
        [
            // The parser stops ("interactive") but `load` never fires.
            ("fin", false, false, "interactive"),
            // The frame's `contentDocument` becomes null: the parent can no longer read it.
            ("reset", false, false, "no document"),
        ],
    ),
    (
        Engine::WebKit,
        [
            // A close ends the document as if it were complete.
            ("fin", true, false, "complete"),
            ("reset", false, false, "loading"),
        ],
    ),
];

/// How long after the break the parent's view is read.
const AFTER_BREAK: Duration = Duration::from_secs(3);

/// iframe.html says a forever frame whose connection breaks gives its parent no sign. The
/// server sends `/frame/fin` and `/frame/reset` like the product's iframe stream (chunked
/// `text/html`, a head padded past 1 KiB), then one `<script>parent.ran(NAME)</script>`, then
/// 300 ms later ends the connection without the terminating chunk: a plain close, or a reset.
async fn a_forever_frame_whose_connection_breaks(engine: Engine) {
    let broken: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let record = broken.clone();
    let addr = raw_server(move |path, _, mut stream| {
        let record = record.clone();
        async move {
            let Some(name) = path
                .strip_prefix("/frame/")
                .filter(|n| ["fin", "reset"].contains(n))
                .map(str::to_string)
            else {
                return not_found(stream).await;
            };
            let mut head = b"<!doctype html>\n<html><head><title>f</title></head><body>\n".to_vec();
            head.extend_from_slice(format!("<!--{}-->\n", " ".repeat(1100)).as_bytes());
            let mut first = b"HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncache-control: no-store\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
            first.extend(chunk(&head));
            if stream.write_all(&first).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let script = format!("<script>parent.ran({name:?})</script>\n");
            let _ = stream.write_all(&chunk(script.as_bytes())).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            if name == "reset" {
                // SO_LINGER 0: closing sends RST instead of FIN.
                let _ = stream.set_zero_linger();
            }
            drop(stream);
            record.lock().unwrap().push((name, Instant::now()));
        }
    })
    .await;
    let browser = Browser::launch(engine).await;
    let (page, _) = browser.open(&format!("http://{addr}/")).await;
    let js = "(() => {
        window.frames_ = {};
        window.ran = (name) => { frames_[name].ran = true; };
        for (const name of ['fin', 'reset']) {
            const seen = frames_[name] = { ran: false, load: false, error: false, states: [] };
            const f = document.createElement('iframe');
            f.addEventListener('load', () => { seen.load = true; });
            f.addEventListener('error', () => { seen.error = true; });
            f.src = `/frame/${name}`;
            document.body.append(f);
            // readyState over time, to see the transitions; the frame is same-origin.
            setInterval(() => {
                let state = 'no document';
                try { state = f.contentDocument?.readyState ?? 'no document'; } catch (e) { state = String(e); }
                if (seen.states.at(-1) !== state) seen.states.push(state);
            }, 50);
        }
        return true;
    })()";
    assert!(eval::<bool>(&page, js).await);
    let both = until(Duration::from_secs(10), async || {
        let n = broken.lock().unwrap().len();
        if n == 2 { Ok(()) } else { Err(n) }
    })
    .await;
    assert!(
        both.is_ok(),
        "{}: the frames were not served",
        engine.name()
    );
    tokio::time::sleep(AFTER_BREAK).await;

    let mut seen = Vec::new();
    let mut report = Vec::new();
    for name in ["fin", "reset"] {
        let view: BrokenFrame = eval(
            &page,
            &format!(
                "(() => {{ const s = frames_[{name:?}]; return {{ ran: s.ran, load: s.load, error: s.error, state: s.states.at(-1) ?? '' }}; }})()"
            ),
        )
        .await;
        let states: Vec<String> = eval(&page, &format!("frames_[{name:?}].states")).await;
        report.push(format!("{name}: {view:?}, readyState went {states:?}"));
        seen.push((name, view.load, view.error, view.state.clone()));
        assert!(
            view.ran,
            "{}/{name}: the frame's script did not run",
            engine.name()
        );
    }
    eprintln!(
        "forever frame broken mid-stream in {} ({} s after the break):\n  {}",
        engine.name(),
        AFTER_BREAK.as_secs(),
        report.join("\n  ")
    );
    let want: Vec<(&str, bool, bool, String)> = expected(BROKEN_FRAME_EXPECTED, engine)
        .iter()
        .map(|(n, l, e, s)| (*n, *l, *e, s.to_string()))
        .collect();
    assert_eq!(seen, want, "{}: {report:#?}", engine.name());
}
in_every_engine!(a_forever_frame_whose_connection_breaks);
