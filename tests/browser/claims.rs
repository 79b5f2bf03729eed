//! Claims the pages make about browser behaviour, checked in Chromium: the forever frame's
//! padding (is it still needed?), the headers `EventSource` sends, the fallback probe that must
//! see a real event (a buffering proxy passes a handshake), and permessage-deflate (offered by
//! Chromium, declined by the server).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Reads from `stream` until the end of an HTTP head (`\r\n\r\n`): the head, and whatever
/// came after it in the same reads. `None` if the peer closed first.
async fn read_head(stream: &mut TcpStream) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = support::find(&buf, b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Some((buf, rest));
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// One forever-frame variant: the `Content-Type` it is served with and the document head
/// written before the first event.
struct Variant {
    name: &'static str,
    content_type: &'static str,
    head: Vec<u8>,
}

/// How long the frame's head stays alone on the wire before the first event is written: long
/// enough that a parser waiting for more bytes would be seen waiting.
const HEAD_ALONE: Duration = Duration::from_millis(300);

/// Serves a parent page at `/` and each variant at `/frame/NAME`: headers and head at once,
/// then after [`HEAD_ALONE`] one `<script>parent.ran(NAME, Date.now())</script>`, recording
/// when it was written; the response then stays open (a forever frame never ends). One
/// request per connection.
async fn frame_server(variants: Vec<Variant>) -> (SocketAddr, Arc<Mutex<HashMap<String, i64>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let written = Arc::new(Mutex::new(HashMap::new()));
    let variants = Arc::new(variants);
    let record = written.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let variants = variants.clone();
            let record = record.clone();
            tokio::spawn(async move {
                let Some((head, _)) = read_head(&mut stream).await else {
                    return;
                };
                let line = String::from_utf8_lossy(&head)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                let path = line.split(' ').nth(1).unwrap_or("");
                if path == "/" {
                    let body = "<!doctype html><meta charset=\"utf-8\"><title>frames</title>\
                        <script>window.opened = {}; window.runs = {};\
                        function ran(name, at) { runs[name] = { at, after: performance.now() - opened[name] }; }</script>";
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    return;
                }
                let Some(variant) = path
                    .strip_prefix("/frame/")
                    .and_then(|name| variants.iter().find(|v| v.name == name))
                else {
                    let _ = stream
                        .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                    return;
                };
                let headers = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {}\r\ncache-control: no-store\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
                    variant.content_type
                );
                let mut first = headers.into_bytes();
                first.extend(chunk(&variant.head));
                if stream.write_all(&first).await.is_err() {
                    return;
                }
                tokio::time::sleep(HEAD_ALONE).await;
                let script = format!(
                    "<script>parent.ran({:?}, Date.now())</script>\n",
                    variant.name
                );
                record
                    .lock()
                    .unwrap()
                    .insert(variant.name.to_string(), now_ms());
                let _ = stream.write_all(&chunk(script.as_bytes())).await;
                // Open, as a forever frame is, past the end of the test's wait.
                tokio::time::sleep(Duration::from_secs(20)).await;
            });
        }
    });
    (addr, written)
}

/// The product's iframe prelude, as the server sends it: everything before the first event.
async fn product_prelude(app: &TestApp) -> Vec<u8> {
    let mut stream = support::Streaming::open(app.http.get(app.url("/iframe/clock"))).await;
    assert_eq!(stream.status, 200);
    while support::find(stream.buffered(), b"-->\n").is_none() {
        assert!(
            stream.fill(Duration::from_secs(5)).await,
            "the stream ended"
        );
    }
    let end = support::find(stream.buffered(), b"-->\n").unwrap() + 4;
    stream.buffered()[..end].to_vec()
}

/// docs/API.md and iframe.html once said the prelude is padded past 1 KiB because browsers
/// buffer a document's first bytes before parsing. Chromium does not: with the charset in the
/// header, in a `<meta>` only, or nowhere, a 70-byte head followed by one script runs that
/// script as soon as its bytes arrive, while the response stays open. (Old IE waited for
/// ~256 bytes and old WebKit for ~1 KiB, which is what the padding was for.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_runs_a_forever_frames_first_script_without_any_padding() {
    let app = spawn_app(&[]).await;
    let prelude = product_prelude(&app).await;
    assert!(
        prelude.len() > 1024,
        "the product's prelude is padded past 1 KiB"
    );
    let bare = |meta: bool| {
        let meta = if meta { "<meta charset=\"utf-8\">" } else { "" };
        format!("<!doctype html>\n<html><head>{meta}<title>f</title></head><body>\n").into_bytes()
    };
    let variants = vec![
        Variant {
            name: "padded-prelude",
            content_type: "text/html; charset=utf-8",
            head: prelude,
        },
        Variant {
            name: "bare-charset-in-header",
            content_type: "text/html; charset=utf-8",
            head: bare(false),
        },
        Variant {
            name: "bare-charset-in-meta",
            content_type: "text/html",
            head: bare(true),
        },
        Variant {
            name: "bare-no-charset",
            content_type: "text/html",
            head: bare(false),
        },
    ];
    let names: Vec<&str> = variants.iter().map(|v| v.name).collect();
    let (addr, written) = frame_server(variants).await;
    let chromium = Chromium::launch().await;
    let (page, errors) = chromium.open(&format!("http://{addr}/")).await;
    assert!(
        until_true(
            &page,
            "typeof window.ran === 'function'",
            Duration::from_secs(10)
        )
        .await
    );

    let mut report = Vec::new();
    for name in names {
        let js = format!(
            "(() => {{ opened[{name:?}] = performance.now(); const f = document.createElement('iframe'); f.src = '/frame/{name}'; document.body.append(f); return true; }})()"
        );
        assert!(eval::<bool>(&page, &js).await);
        let ran = until_true(
            &page,
            &format!("runs[{name:?}] !== undefined"),
            Duration::from_secs(5),
        )
        .await;
        assert!(
            ran,
            "{name}: the first script did not run while the response stayed open"
        );
        let at: f64 = eval(&page, &format!("runs[{name:?}].at")).await;
        let after: f64 = eval(&page, &format!("runs[{name:?}].after")).await;
        let sent = written.lock().unwrap()[name];
        let delay = at as i64 - sent;
        // A parser waiting for more bytes would never run it (nothing more comes for 20 s);
        // 500 ms is room for a loaded machine, not the expected figure (a few ms).
        assert!(
            delay < 500,
            "{name}: the script ran {delay} ms after its bytes were written"
        );
        report.push(format!(
            "{name}: script ran {delay} ms after it was written; {after:.0} ms after the iframe was inserted (of which {} ms the head alone)",
            HEAD_ALONE.as_millis()
        ));
    }
    // The figures for the pages (run with --nocapture to see them).
    eprintln!(
        "forever frame, first script in Chromium:\n  {}",
        report.join("\n  ")
    );
    let errors = errors.lock().unwrap().clone();
    assert!(
        errors.iter().all(|e| e.contains("favicon")),
        "console errors: {errors:#?}"
    );
}

/// The request headers of one exchange the server recorded for `tag` whose request line starts
/// with `prefix`, the `n`-th such exchange (oldest first), once it exists.
async fn recorded_request(
    app: &TestApp,
    tag: &str,
    prefix: &str,
    n: usize,
) -> Vec<(String, String)> {
    let found = until(Duration::from_secs(15), async || {
        let (status, record) = app.get_json(&format!("/api/debug/wire?tag={tag}")).await;
        assert_eq!(status, 200, "{record}");
        let mut matching: Vec<&serde_json::Value> = record["exchanges"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|x| {
                x["request"]["line"]
                    .as_str()
                    .is_some_and(|l| l.starts_with(prefix))
            })
            .collect();
        matching.reverse(); // the record is newest first
        match matching.get(n) {
            Some(x) => Ok(x["request"]["headers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| {
                    (
                        h[0].as_str().unwrap_or("").to_string(),
                        h[1].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect::<Vec<_>>()),
            None => Err(record),
        }
    })
    .await;
    found.unwrap_or_else(|record| panic!("no exchange {n} for {prefix}: {record}"))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Waits for the page's diagnostics tag (shown once its modules have run).
async fn page_tag(page: &Page) -> String {
    until(Duration::from_secs(10), async || {
        let tag = text(page, "#wire [data-wire=tag]").await;
        if tag.starts_with("page-") && tag.len() == 27 {
            Ok(tag)
        } else {
            Err(tag)
        }
    })
    .await
    .unwrap_or_else(|tag| panic!("no tag shown: {tag:?}"))
}

/// sse.html says which headers `EventSource` adds by itself; this reads the page's stream as the
/// server recorded it, first connection and the browser's own reconnect after a kill, and
/// checks the page names each of them with Chromium's value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sse_page_names_the_headers_eventsource_sends() {
    let app = spawn_app(&["--tick-ms", "500"]).await;
    let chromium = Chromium::launch().await;
    let (page, _errors) = chromium.open(&app.url("/demos/sse.html")).await;
    let tag = page_tag(&page).await;

    let first = recorded_request(&app, &tag, "GET /sse/clock", 0).await;
    eprintln!("EventSource's first request: {first:?}");
    assert_eq!(header(&first, "accept"), Some("text/event-stream"));
    assert_eq!(header(&first, "cache-control"), Some("no-cache"));
    assert_eq!(header(&first, "pragma"), Some("no-cache"));
    assert_eq!(
        header(&first, "last-event-id"),
        None,
        "nothing to resume yet"
    );

    // Break the stream the way a network would; EventSource reconnects by itself.
    assert!(
        until_true(
            &page,
            "/^\\d+$/.test(document.querySelector('#clock-id').textContent)",
            Duration::from_secs(10)
        )
        .await
    );
    let killed = app
        .http
        .post(app.url("/api/debug/kill"))
        .json(&serde_json::json!({ "tag": tag }))
        .send()
        .await
        .unwrap();
    assert_eq!(killed.status(), 200);
    let again = recorded_request(&app, &tag, "GET /sse/clock", 1).await;
    eprintln!("EventSource's reconnect: {again:?}");
    let resumed = header(&again, "last-event-id").expect("the reconnect carries Last-Event-ID");
    assert!(resumed.parse::<u64>().is_ok(), "{resumed}");
    assert_eq!(header(&again, "accept"), Some("text/event-stream"));

    let said = text(&page, "#es-request-headers")
        .await
        .to_ascii_lowercase();
    for name in ["accept", "cache-control", "pragma"] {
        let value = header(&first, name).unwrap();
        assert!(
            said.contains(&format!("{name}: {value}")),
            "the page does not say {name}: {value}: {said:?}"
        );
    }
    assert!(said.contains("last-event-id"), "{said:?}");
}

/// Rewrites a request head to `connection: close` (unless it asks to upgrade), so that each
/// browser request through the proxy gets a connection of its own.
fn one_request_per_connection(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    if text.to_ascii_lowercase().contains("\r\nupgrade:") {
        return head.to_vec();
    }
    let mut out = String::new();
    for line in text.trim_end_matches("\r\n").split("\r\n") {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("connection: close\r\n\r\n");
    out.into_bytes()
}

/// A reverse proxy in front of `upstream` that buffers event streams, as some corporate proxies
/// and antivirus filters do: for `/sse/` it forwards the response head (so `EventSource` opens)
/// and holds the body; everything else passes through.
async fn buffering_proxy(listener: TcpListener, upstream: SocketAddr) {
    while let Ok((mut client, _)) = listener.accept().await {
        tokio::spawn(async move {
            let Some((head, rest)) = read_head(&mut client).await else {
                return;
            };
            let buffers = head.starts_with(b"GET /sse/");
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            if server
                .write_all(&one_request_per_connection(&head))
                .await
                .is_err()
                || server.write_all(&rest).await.is_err()
            {
                return;
            }
            if buffers {
                let Some((response_head, _held)) = read_head(&mut server).await else {
                    return;
                };
                let _ = client.write_all(&response_head).await;
                let mut held = vec![0u8; 4096];
                while matches!(server.read(&mut held).await, Ok(n) if n > 0) {}
            } else {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
    }
}

/// auto.html's probes count a transport as working only when a real tick came through it:
/// behind a proxy that buffers event streams, SSE opens but delivers nothing, and the page
/// must step down to long polling rather than choose SSE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_buffering_proxy_the_fallback_does_not_choose_sse() {
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    let origin = format!("http://{proxy_addr}");
    let app = spawn_app(&[
        "--tick-ms",
        "500",
        "--refuse",
        "ws",
        "--allow-origin",
        &origin,
    ])
    .await;
    tokio::spawn(buffering_proxy(proxy, app.addr));

    // The proxy really lets the handshake through and holds the events.
    let chromium = Chromium::launch().await;
    let (page, errors) = chromium.open(&format!("{origin}/demos/auto.html")).await;
    let chosen = until(Duration::from_secs(20), async || {
        let chosen: String = eval(
            &page,
            "document.querySelector('#auto-chosen')?.dataset.transport ?? ''",
        )
        .await;
        if chosen.is_empty() {
            Err(())
        } else {
            Ok(chosen)
        }
    })
    .await;
    let steps: Vec<String> = eval(&page, "[...document.querySelectorAll('#auto-steps li')].map(li => li.dataset.transport + ':' + li.className + ':' + li.textContent)").await;
    assert_eq!(chosen, Ok("longpoll".to_string()), "steps: {steps:?}");
    assert_eq!(steps.len(), 3, "{steps:?}");
    assert!(steps[0].starts_with("ws:auto-step fail"), "{steps:?}");
    assert!(
        steps[1].starts_with("sse:auto-step fail")
            && steps[1].contains("stream opened, but no event"),
        "{steps:?}"
    );
    assert!(steps[2].starts_with("longpoll:auto-step ok"), "{steps:?}");
    let stats = app.stats().await;
    assert!(
        stats.transports["sse"].requests >= 1,
        "the SSE probe reached the server"
    );
    // The clock then runs over long polling, through the same proxy.
    let first = text(&page, "#clock-id").await;
    assert!(
        until_true(
            &page,
            &format!("document.querySelector('#clock-id').textContent !== {first:?}"),
            Duration::from_secs(10)
        )
        .await,
        "the clock did not run over long polling"
    );
    let errors = errors.lock().unwrap().clone();
    assert!(
        unexpected(&errors).is_empty(),
        "console errors: {errors:#?}"
    );
}

/// ws.html says the server declines permessage-deflate (RFC 7692): Chromium offers it in
/// `Sec-WebSocket-Extensions`, the 101 carries no such header, and the socket's `extensions`
/// is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_offers_permessage_deflate_and_the_server_declines_it() {
    let app = spawn_app(&[]).await;
    let chromium = Chromium::launch().await;
    let (page, _errors) = chromium.open(&app.url("/demos/ws.html")).await;
    let tag = page_tag(&page).await;
    let offered = recorded_request(&app, &tag, "GET /ws/clock", 0).await;
    let offer = header(&offered, "sec-websocket-extensions").unwrap_or("");
    assert!(
        offer.contains("permessage-deflate"),
        "Chromium's offer: {offered:?}"
    );

    let (_, record) = app.get_json(&format!("/api/debug/wire?tag={tag}")).await;
    let upgrade = record["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| {
            x["request"]["line"]
                .as_str()
                .is_some_and(|l| l.starts_with("GET /ws/clock"))
        })
        .unwrap()
        .clone();
    assert!(
        upgrade["response"]["line"]
            .as_str()
            .unwrap_or("")
            .contains("101"),
        "{upgrade}"
    );
    let answered: Vec<String> = upgrade["response"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_str().unwrap_or("").to_ascii_lowercase())
        .collect();
    assert!(
        !answered.iter().any(|h| h == "sec-websocket-extensions"),
        "{answered:?}"
    );

    // The browser agrees: no extension is in use on the socket.
    eval::<bool>(
        &page,
        "(() => { const s = new WebSocket(`ws://${location.host}/ws/clock`); s.onopen = () => { window.__ext = s.extensions; s.close(); }; return true; })()",
    )
    .await;
    assert!(until_true(&page, "window.__ext !== undefined", Duration::from_secs(10)).await);
    assert_eq!(eval::<String>(&page, "window.__ext").await, "");
    assert!(
        text(&page, "#ws-deflate")
            .await
            .contains("permessage-deflate")
    );
}
