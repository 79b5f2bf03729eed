//! Browser behaviour the pages state, measured in each engine against small raw servers: the
//! connections a browser opens per origin, `EventSource`'s `retry` and `Last-Event-ID`, the close
//! code of a WebSocket that dies without a close frame, and what a forever frame whose connection
//! breaks mid-stream shows its parent. Each test holds the figures measured per engine (so it
//! fails if an engine changes) and prints them (`--nocapture`) for the pages that cite them.

use std::future::Future;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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
                        let body = "<!doctype html><meta charset=\"utf-8\"><title>engines</title><body>";
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
fn expected<T: Copy>(table: &[(Engine, T)], engine: Engine) -> T {
    table.iter().find(|(e, _)| *e == engine).unwrap().1
}

// 1. Connections per origin.

/// How many requests to one origin (scheme, host, port) an engine keeps open at once over
/// HTTP/1.1; the rest wait in its queue. Measured: six in each engine.
const CONNECTIONS_EXPECTED: &[(Engine, usize)] = &[
    (Engine::Chromium, 6),
    (Engine::Firefox, 6),
    (Engine::WebKit, 6),
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
async fn a_browser_opens_six_connections_per_origin_shared_by_its_tabs(engine: Engine) {
    // (Host header, path) of each held request, in arrival order.
    let arrived: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let record = arrived.clone();
    let addr = raw_server(move |path, head, stream| {
        let record = record.clone();
        async move {
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
            .filter(|(h, p)| h == host && p.starts_with(&format!("/hold/{tag}-")))
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
    let six = expected(CONNECTIONS_EXPECTED, engine);
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
    assert_eq!(alias_after, six, "{}: the first origin still full", engine.name());
}
in_every_engine!(a_browser_opens_six_connections_per_origin_shared_by_its_tabs);
