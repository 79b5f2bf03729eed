//! The compare page over HTTPS: one origin, every HTTP transport a stream
//! of one HTTP/2 connection, every clock live, and the protocol panel saying so, as
//! measured by the page itself.

use clap::Parser as _;

use super::*;

/// The real server with `--tls-self-signed` on 127.0.0.1:0, in this process; stopped when
/// dropped. (`spawn_app` waits for it over plain HTTP, which a TLS listener does not speak.)
struct Https {
    addr: std::net::SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
    _watchdog: support::Watchdog,
}

impl Https {
    async fn start() -> Https {
        let watchdog = support::Watchdog::arm();
        let config = pushpoll::Config::try_parse_from([
            "pushpoll",
            "--addr",
            "127.0.0.1:0",
            "--db",
            ":memory:",
            "--tls-self-signed",
        ])
        .expect("config");
        let listener = tokio::net::TcpListener::bind(config.addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(pushpoll::run(listener, config, async move {
            let _ = stopped.await;
        }));
        Https {
            addr,
            _stop: stop,
            _watchdog: watchdog,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }
}

/// Each lane's transport, its origin's host, the age of its displayed tick (ms, -1 before
/// the first).
const LANES: &str = "JSON.stringify([...document.querySelectorAll('.lane')].map((l) => [l.dataset.transport, l.dataset.origin ?? '', l.dataset.tickTime ? Date.now() - Date.parse(l.dataset.tickTime) : -1]))";

/// The protocol panel's rows: transport, what the page saw, what the server saw.
const PROTOCOLS: &str = "JSON.stringify([...document.querySelectorAll('#protocol-rows tr')].map((r) => [r.dataset.transport, r.dataset.pageProtocol ?? '', r.dataset.serverProtocol ?? '']))";

async fn lanes(page: &Page<'_>) -> Vec<(String, String, f64)> {
    serde_json::from_str(&eval::<String>(page, LANES).await).unwrap()
}

async fn protocols(page: &Page<'_>) -> Vec<(String, String, String)> {
    serde_json::from_str(&eval::<String>(page, PROTOCOLS).await).unwrap()
}

async fn the_compare_page_over_https_runs_every_clock_live_on_one_http2_origin(engine: Engine) {
    let server = Https::start().await;
    let browser = Browser::launch(engine).await;
    let (page, errors) = browser.open(&server.url("/demos/compare.html")).await;

    // The page itself came over HTTP/2.
    let page_protocol = until(Duration::from_secs(15), async || {
        let p: String = eval(
            &page,
            "performance.getEntriesByType('navigation')[0]?.nextHopProtocol ?? ''",
        )
        .await;
        if p.is_empty() { Err(p) } else { Ok(p) }
    })
    .await;
    assert_eq!(
        page_protocol.as_deref(),
        Ok("h2"),
        "{}: the page's protocol",
        engine.name()
    );

    // Every lane on the page's own origin, all ticking.
    let host = server.addr.to_string();
    let ticking = until(Duration::from_secs(20), async || {
        let now: Vec<_> = lanes(&page)
            .await
            .into_iter()
            .filter(|(t, _, _)| runs(engine, t))
            .collect();
        if now.len()
            == pushpoll::names::Transport::NAMES
                .iter()
                .filter(|t| runs(engine, t))
                .count()
            && now.iter().all(|(_, _, age)| *age >= 0.0)
        {
            Ok(now)
        } else {
            Err(now)
        }
    })
    .await;
    let now =
        ticking.unwrap_or_else(|seen| panic!("{}: not every lane ticked: {seen:?}", engine.name()));
    for (transport, origin, _) in &now {
        assert_eq!(origin, &host, "{transport} left the page's origin");
    }
    // And they stay live: every clock under 3 s old for 6 s.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        for (transport, _, age) in lanes(&page)
            .await
            .into_iter()
            .filter(|(t, _, _)| runs(engine, t))
        {
            assert!(
                (0.0..3000.0).contains(&age),
                "{}: {transport}'s clock is {age} ms old",
                engine.name()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The panel: the server saw HTTP/2 for the HTTP transports and HTTP/1.1 for the
    // WebSocket's upgrade; the page saw h2 for short and long polling and the iframe.
    let measured = until(Duration::from_secs(15), async || {
        let rows = protocols(&page).await;
        let ok = rows.len() == pushpoll::names::Transport::ALL.len()
            && rows.iter().all(|(t, page, server)| match t.as_str() {
                "poll" | "longpoll" | "iframe" => page == "h2" && server == "HTTP/2.0",
                // Streams still open have no Resource Timing entry yet.
                "fetch" | "sse" => server == "HTTP/2.0",
                "ws" => server == "HTTP/1.1",
                // A WebTransport session is HTTP/3 on UDP, over HTTPS as over HTTP.
                "webtransport" => server == "HTTP/3 (QUIC on UDP)",
                _ => false,
            });
        if ok { Ok(rows) } else { Err(rows) }
    })
    .await;
    assert!(
        measured.is_ok(),
        "{}: protocol panel {measured:?}",
        engine.name()
    );

    // On one origin over HTTP/2 nothing queues for a connection: the polls' longest wait in
    // the last 10 s stays under the 250 ms from which the page marks a wait as queueing (on
    // one HTTP/1.1 origin compare.rs measures waits past it).
    let waits: String = eval(
        &page,
        "JSON.stringify([...document.querySelectorAll('#protocol-rows tr')].filter((r) => r.dataset.waitMs).map((r) => [r.dataset.transport, Number(r.dataset.waitMs)]))",
    )
    .await;
    let waits: Vec<(String, f64)> = serde_json::from_str(&waits).unwrap();
    assert!(
        waits.iter().any(|(t, _)| t == "poll") && waits.iter().any(|(t, _)| t == "longpoll"),
        "{}: no waits measured: {waits:?}",
        engine.name()
    );
    for (transport, wait) in &waits {
        assert!(
            *wait < 250.0,
            "{}: {transport} waited {wait} ms on HTTP/2",
            engine.name()
        );
    }
    eprintln!("{} waits on h2: {waits:?}", engine.name());

    // docs/HTTPS.md's picture: the protocol panel, unfolded, before any kill.
    if std::env::var_os("PUSHPOLL_SCREENSHOTS").is_some() {
        eval::<bool>(
            &page,
            "(document.querySelector('#protocols details').open = true, true)",
        )
        .await;
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    screenshot_element(&page, "#protocols", "compare-h2").await;

    // An SSE stream has no Resource Timing entry while it is open; killing the lane ends it
    // (over HTTP/2 the server resets the stream). Chromium and Firefox then report the ended
    // stream, over h2; WebKitGTK reported no entry for it at all (the page says so).
    let kill = "document.querySelector('#lane-sse [data-action=kill]').click(), true";
    assert!(eval::<bool>(&page, kill).await);
    let sse = until(Duration::from_secs(10), async || {
        let rows = protocols(&page).await;
        match rows.iter().find(|(t, _, _)| t == "sse") {
            Some((_, page, _)) if page == "h2" => Ok(()),
            other => Err(other.cloned()),
        }
    })
    .await;
    let entries: String = eval(
        &page,
        "JSON.stringify(performance.getEntriesByType('resource').filter((e) => e.name.includes('/sse/')).map((e) => e.nextHopProtocol))",
    )
    .await;
    eprintln!(
        "{} {}: SSE entries after the kill: {entries}",
        engine.name(),
        browser.version()
    );
    match engine {
        Engine::WebKit => assert_eq!(entries, "[]", "webkit now reports the killed stream"),
        _ => assert!(
            sse.is_ok(),
            "{}: the ended SSE stream: {sse:?}",
            engine.name()
        ),
    }

    // What the kill makes the browser log, by design: Chromium names the stream reset
    // (RST_STREAM, RFC 9113 §8.1) ERR_HTTP2_PROTOCOL_ERROR; EventSource notes its reconnect.
    let errors = errors.all().await;
    let left: Vec<_> = errors
        .iter()
        .filter(|e| {
            !((e.contains("/sse/") && e.contains("ERR_HTTP2_PROTOCOL_ERROR"))
                || e.contains("EventSource"))
        })
        .collect();
    assert!(
        left.is_empty(),
        "{}: console errors: {errors:#?}",
        engine.name()
    );
}
in_every_engine!(the_compare_page_over_https_runs_every_clock_live_on_one_http2_origin);

/// Request streaming where it exists: over HTTPS, which this server speaks as HTTP/2 to a
/// browser that offers it, Chromium sends fetch streaming's page's JSON body as a stream (two
/// pieces, 300 ms apart) and the server answers with the chat's stream. Firefox and WebKitGTK
/// fail the same way as over HTTP/1.1 (`fetch::request_streaming_over_http1_…`): the protocol
/// is not what they lack.
async fn request_streaming_over_http2_works_in_chromium_only(engine: Engine) {
    let server = Https::start().await;
    let browser = Browser::launch(engine).await;
    let (page, errors) = browser.open(&server.url("/demos/fetch.html")).await;
    let (detect, detect_text, body, result, result_text) =
        super::fetch::upstream_outcome(&page).await;
    eprintln!(
        "{} {} over HTTPS: detection {detect} ({detect_text}); Request body {body:?}; tried: {result} ({result_text})",
        engine.name(),
        browser.version()
    );
    match engine {
        Engine::Chromium => {
            assert_eq!(detect, "supported", "{detect_text}");
            assert_eq!(result, "streamed", "{result_text}");
            assert!(result_text.contains("protocol h2"), "{result_text}");
        }
        Engine::Firefox => {
            assert_eq!(body, "[object ReadableStream]");
            assert_eq!(result, "refused", "{result_text}");
        }
        Engine::WebKit => assert_eq!(result, "not-supported", "{result_text}"),
    }
    let errors = errors.all().await;
    let left: Vec<_> = errors
        .iter()
        .filter(|e| !e.contains("/fetch/chat?for=upstream"))
        .collect();
    assert!(
        left.is_empty(),
        "{}: console errors: {errors:#?}",
        engine.name()
    );
}
in_every_engine!(request_streaming_over_http2_works_in_chromium_only);
