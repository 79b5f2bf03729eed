//! Claims the pages make about browser behaviour, checked in each engine: the forever frame's
//! padding (is it still needed?), the headers `EventSource` sends, the fallback probe that must
//! see a real event (a buffering proxy passes a handshake), and permessage-deflate (offered by
//! every engine, declined by the server).

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

/// Which forever-frame heads let the first script run while the response stays open, per
/// engine. Comet-era browsers held back a streaming document's first bytes (old IE ~256 B, old
/// WebKit ~1 KiB), which is what the product's padded prelude is for. Measured here: Chromium
/// runs the script after any head; Firefox too, unless no charset is declared anywhere (then the
/// HTML standard's encoding prescan waits for up to 1024 bytes); WebKitGTK holds back a head of
/// 255 bytes (and its script) whatever the charset, and runs the script after one of 511.
/// iframe.html states these results.
const FRAME_EXPECTED: &[(Engine, &[&str])] = &[
    (
        Engine::Chromium,
        &[
            "padded-prelude",
            "bare-charset-in-header",
            "bare-charset-in-meta",
            "bare-no-charset",
            "padded-256-charset-in-header",
            "padded-512-charset-in-header",
            "padded-1024-charset-in-header",
            "padded-1024-no-charset",
        ],
    ),
    (
        Engine::Firefox,
        &[
            "padded-prelude",
            "bare-charset-in-header",
            "bare-charset-in-meta",
            "padded-256-charset-in-header",
            "padded-512-charset-in-header",
            "padded-1024-charset-in-header",
            "padded-1024-no-charset",
        ],
    ),
    (
        Engine::WebKit,
        &[
            "padded-prelude",
            "padded-512-charset-in-header",
            "padded-1024-charset-in-header",
            "padded-1024-no-charset",
        ],
    ),
];

/// How long a variant's script may take to run after its bytes were written and still count as
/// run: a parser waiting for more bytes never runs it (nothing more comes for 20 s); 1.5 s is
/// room for a loaded machine, not the expected figure (a few ms).
const RAN_WITHIN: Duration = Duration::from_millis(1500);

async fn a_forever_frames_first_script_runs_after_the_heads_each_engine_needs(engine: Engine) {
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
    // A bare head, padded with a comment to `size` bytes.
    let padded = |size: usize| {
        let mut head = bare(false);
        let filler = size.saturating_sub(head.len() + 9);
        head.extend_from_slice(format!("<!--{}-->\n", " ".repeat(filler)).as_bytes());
        head
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
        Variant {
            name: "padded-256-charset-in-header",
            content_type: "text/html; charset=utf-8",
            head: padded(256),
        },
        Variant {
            name: "padded-512-charset-in-header",
            content_type: "text/html; charset=utf-8",
            head: padded(512),
        },
        Variant {
            name: "padded-1024-charset-in-header",
            content_type: "text/html; charset=utf-8",
            head: padded(1024),
        },
        Variant {
            name: "padded-1024-no-charset",
            content_type: "text/html",
            head: padded(1024),
        },
    ];
    let names: Vec<(&str, usize)> = variants.iter().map(|v| (v.name, v.head.len())).collect();
    let (addr, written) = frame_server(variants).await;
    let browser = Browser::launch(engine).await;
    let (page, errors) = browser.open(&format!("http://{addr}/")).await;
    assert!(
        until_true(
            &page,
            "typeof window.ran === 'function'",
            Duration::from_secs(10)
        )
        .await
    );

    // Three frames at a time (each holds one of the browser's six connections to this origin
    // for 20 s), removed after their wait: the script of each ran, or not.
    let mut ran = Vec::new();
    let mut report = Vec::new();
    for batch in names.chunks(3) {
        for (name, _) in batch {
            let js = format!(
                "(() => {{ opened[{name:?}] = performance.now(); const f = document.createElement('iframe'); f.src = '/frame/{name}'; document.body.append(f); return true; }})()"
            );
            assert!(eval::<bool>(&page, &js).await);
        }
        tokio::time::sleep(HEAD_ALONE + RAN_WITHIN + Duration::from_millis(500)).await;
        for (name, size) in batch {
            let at: Option<f64> = eval(&page, &format!("runs[{name:?}]?.at ?? null")).await;
            let sent = written.lock().unwrap().get(*name).copied();
            match (at, sent) {
                (Some(at), Some(sent)) if at as i64 - sent < RAN_WITHIN.as_millis() as i64 => {
                    ran.push(*name);
                    report.push(format!(
                        "{name} ({size} B head): ran {} ms after its bytes were written",
                        at as i64 - sent
                    ));
                }
                (at, sent) => report.push(format!(
                    "{name} ({size} B head): did not run (script written: {}, ran: {at:?})",
                    sent.is_some()
                )),
            }
        }
        assert!(
            eval::<bool>(
                &page,
                "(() => { document.querySelectorAll('iframe').forEach((f) => f.remove()); return true; })()"
            )
            .await
        );
    }
    // The figures for the pages (run with --nocapture to see them).
    eprintln!(
        "forever frame, first script in {}:\n  {}",
        engine.name(),
        report.join("\n  ")
    );
    let expected = FRAME_EXPECTED.iter().find(|(e, _)| *e == engine).unwrap().1;
    assert_eq!(
        ran,
        expected,
        "{}: the heads after which the first script ran; {report:#?}",
        engine.name()
    );
    let errors = errors.all().await;
    assert!(
        errors.iter().all(|e| e.contains("favicon")),
        "console errors: {errors:#?}"
    );
}
in_every_engine!(a_forever_frames_first_script_runs_after_the_heads_each_engine_needs);

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
async fn page_tag(page: &Page<'_>) -> String {
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
/// checks the page names each of them with the value this engine sent.
async fn the_sse_page_names_the_headers_eventsource_sends(engine: Engine) {
    let app = spawn_app(&["--tick-ms", "500"]).await;
    let browser = Browser::launch(engine).await;
    let (page, _errors) = browser.open(&app.url("/demos/sse.html")).await;
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
in_every_engine!(the_sse_page_names_the_headers_eventsource_sends);

/// Rewrites a request head to `connection: close` (unless it asks to upgrade), so that each
/// browser request through the proxy gets a connection of its own.
fn one_request_per_connection(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    if upgrade(head) {
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

fn upgrade(head: &[u8]) -> bool {
    String::from_utf8_lossy(head)
        .to_ascii_lowercase()
        .contains("\r\nupgrade:")
}

fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0)
}

/// A reverse proxy in front of `upstream` that buffers event streams, as some corporate proxies
/// and antivirus filters do: for `/sse/` and `/fetch/` it forwards the response head (so
/// `EventSource` opens, and `fetch()` resolves) and holds the body; everything else passes
/// through.
async fn buffering_proxy(listener: TcpListener, upstream: SocketAddr) {
    while let Ok((mut client, _)) = listener.accept().await {
        tokio::spawn(async move {
            let Some((head, rest)) = read_head(&mut client).await else {
                return;
            };
            let buffers = head.starts_with(b"GET /sse/") || head.starts_with(b"GET /fetch/");
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
            } else if upgrade(&head) {
                // A refused upgrade leaves the connection open for reuse, and WebKit does
                // reuse it; this proxy looks at one request per connection, so after a
                // refusal it passes that answer on and closes.
                let Some((response_head, rest)) = read_head(&mut server).await else {
                    return;
                };
                if response_head.starts_with(b"HTTP/1.1 101") {
                    let _ = client.write_all(&response_head).await;
                    let _ = client.write_all(&rest).await;
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                } else {
                    let length = content_length(&response_head);
                    let mut body = rest;
                    let mut chunk = [0u8; 4096];
                    while body.len() < length {
                        match server.read(&mut chunk).await {
                            Ok(n) if n > 0 => body.extend_from_slice(&chunk[..n]),
                            _ => break,
                        }
                    }
                    let _ = client.write_all(&response_head).await;
                    let _ = client.write_all(&body).await;
                }
            } else {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
    }
}

/// auto.html's probes count a transport as working only when a real tick came through it:
/// behind a proxy that buffers event streams, SSE and fetch streaming open but deliver
/// nothing, and the page must step down to long polling rather than choose either. The two
/// two-way transports are refused, as the proxy would not carry them: the WebSocket's upgrade,
/// and WebTransport, which would go to the server over UDP around the proxy.
async fn behind_a_buffering_proxy_the_fallback_does_not_choose_sse(engine: Engine) {
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    let origin = format!("http://{proxy_addr}");
    let app = spawn_app(&[
        "--tick-ms",
        "500",
        "--refuse",
        "ws,webtransport",
        "--allow-origin",
        &origin,
    ])
    .await;
    tokio::spawn(buffering_proxy(proxy, app.addr));

    // The proxy really lets the handshake through and holds the events.
    let browser = Browser::launch(engine).await;
    let (page, errors) = browser.open(&format!("{origin}/demos/auto.html")).await;
    let chosen = chosen_transport(&page, Duration::from_secs(20)).await;
    let steps: Vec<String> = eval(&page, "[...document.querySelectorAll('#auto-steps li')].map(li => li.dataset.transport + ':' + li.className + ':' + li.textContent)").await;
    assert_eq!(chosen, Ok("longpoll".to_string()), "steps: {steps:?}");
    assert_eq!(steps.len(), 5, "{steps:?}");
    assert!(
        steps[0].starts_with("webtransport:auto-step fail"),
        "{steps:?}"
    );
    let steps = steps[1..].to_vec();
    assert!(steps[0].starts_with("ws:auto-step fail"), "{steps:?}");
    // Why the SSE step failed, as the page says it: Chromium and WebKit fire `open` on the
    // response's headers; Firefox did not with the headers alone (auto.html says so).
    let why = match engine {
        Engine::Firefox => "no event stream within",
        Engine::Chromium | Engine::WebKit => "stream opened, but no event",
    };
    assert!(
        steps[1].starts_with("sse:auto-step fail") && steps[1].contains(why),
        "{}: {steps:?}",
        engine.name()
    );
    // Why the fetch step failed: Chromium and WebKit resolve fetch() with the response's
    // head; Firefox did not with the head alone, as it fired no `open` for SSE above.
    let why = match engine {
        Engine::Firefox => "no response handed over within",
        Engine::Chromium | Engine::WebKit => "stream opened, but no event",
    };
    assert!(
        steps[2].starts_with("fetch:auto-step fail") && steps[2].contains(why),
        "{}: {steps:?}",
        engine.name()
    );
    assert!(steps[3].starts_with("longpoll:auto-step ok"), "{steps:?}");
    let stats = app.stats().await;
    assert!(
        stats.transports["sse"].requests >= 1,
        "the SSE probe reached the server"
    );
    assert!(
        stats.transports["fetch"].requests >= 1,
        "the fetch probe reached the server"
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
    let errors = errors.all().await;
    assert!(
        unexpected(&errors).is_empty(),
        "console errors: {errors:#?}"
    );
}
in_every_engine!(behind_a_buffering_proxy_the_fallback_does_not_choose_sse);

/// ws.html says the server declines permessage-deflate (RFC 7692): every engine offers it in
/// `Sec-WebSocket-Extensions`, the 101 carries no such header, and the socket's `extensions`
/// is empty.
async fn the_browser_offers_permessage_deflate_and_the_server_declines_it(engine: Engine) {
    let app = spawn_app(&[]).await;
    let browser = Browser::launch(engine).await;
    let (page, _errors) = browser.open(&app.url("/demos/ws.html")).await;
    let tag = page_tag(&page).await;
    let offered = recorded_request(&app, &tag, "GET /ws/clock", 0).await;
    let offer = header(&offered, "sec-websocket-extensions").unwrap_or("");
    assert!(
        offer.contains("permessage-deflate"),
        "{}'s offer: {offered:?}",
        engine.name()
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
in_every_engine!(the_browser_offers_permessage_deflate_and_the_server_declines_it);
