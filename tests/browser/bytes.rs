//! Both directions on the pages: the cost panel's bytes down and bytes up (per event), with the
//! request and response head sizes the page cannot see estimated from the server's wire record
//! of its own requests, and WebSocket frame sizes as RFC 6455 §5.2 gives them.

use super::*;

/// The panel's figures, read in one go (one render).
#[derive(Debug, serde::Deserialize)]
struct Figures {
    requests: String,
    events: String,
    body: String,
    down: String,
    up: String,
    both: String,
    heads: String,
    tag: String,
}

const FIGURES: &str =
    "(() => { const t = (s) => document.querySelector(s)?.textContent.trim() ?? ''; return {
    requests: t('[data-stat=requests]'),
    events: t('[data-stat=events]'),
    body: t('[data-stat=\"bytes-per-event\"]'),
    down: t('[data-stat=\"bytes-down-per-event\"]'),
    up: t('[data-stat=\"bytes-up-per-event\"]'),
    both: t('[data-stat=\"bytes-both-per-event\"]'),
    heads: t('[data-stat=\"heads-estimate\"]'),
    tag: t('#wire [data-wire=tag]'),
}; })()";

/// Bytes of a head as the server recorded it: line, `name: value` lines, blank line, each
/// ended by CRLF; a value the record hides counts as its stated length. Written apart from
/// the page's own code (clients/heads.js `headBytes`) so the two can disagree.
fn head_bytes(head: &serde_json::Value) -> Option<u64> {
    let line = head["line"].as_str()?;
    let mut n = line.len() as u64 + 4;
    for pair in head["headers"].as_array()? {
        let name = pair[0].as_str()?;
        let value = pair[1].as_str()?;
        let value_len = value
            .strip_prefix('(')
            .and_then(|v| v.strip_suffix(" bytes, not shown)"))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(value.len() as u64);
        n += name.len() as u64 + 2 + value_len + 2;
    }
    Some(n)
}

/// "estimated: request head ≈ 512 B, response head ≈ 180 B each, …" → (512, 180).
fn estimated_heads(text: &str) -> Option<(u64, u64)> {
    let after = |key: &str| -> Option<u64> {
        let rest = text.split(key).nth(1)?;
        rest.trim_start().split(' ').next()?.parse().ok()
    };
    Some((after("request head ≈")?, after("response head ≈")?))
}

async fn the_panel_counts_both_directions_over(engine: Engine, transport: &str) {
    let app = spawn_app(&["--tick-ms", "500"]).await;
    let browser = Browser::launch(engine).await;
    let (page, errors) = browser
        .open(&app.url(&format!("/demos/{transport}.html")))
        .await;

    // The floor first, then the server's record (asked 1.5 s after the first request).
    let figures: Figures = until(Duration::from_secs(15), async || {
        let f: Figures = eval(&page, FIGURES).await;
        let events = f.events.parse::<u64>().unwrap_or(0);
        if f.heads.contains("from the server's record") && events >= 4 && !f.tag.is_empty() {
            Ok(f)
        } else {
            Err(f)
        }
    })
    .await
    .unwrap_or_else(|f| panic!("{transport}: never measured: {f:?}"));
    eprintln!("{transport}: {figures:?}");
    let (request, response) =
        estimated_heads(&figures.heads).unwrap_or_else(|| panic!("{figures:?}"));

    // The estimate is a real head (every engine sends User-Agent, Accept…), the
    // size the server recorded for one of this page's requests of this transport.
    let (status, record) = app
        .get_json(&format!("/api/debug/wire?tag={}", figures.tag))
        .await;
    assert_eq!(status, 200, "{record}");
    let sizes: Vec<(u64, Option<u64>)> = record["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| {
            x["request"]["line"]
                .as_str()
                .is_some_and(|l| l.starts_with(&format!("GET /{transport}/")))
        })
        .map(|x| {
            (
                head_bytes(&x["request"]).unwrap(),
                head_bytes(&x["response"]),
            )
        })
        .collect();
    assert!(!sizes.is_empty(), "{record}");
    assert!(
        request >= 200,
        "{transport}: request head {request} B: {figures:?}"
    );
    // Heads of the same transport differ only in the cursor's digits and the like.
    assert!(
        sizes.iter().any(|(r, _)| r.abs_diff(request) <= 16),
        "{transport}: estimate {request} B, recorded {sizes:?}"
    );
    assert!(
        sizes
            .iter()
            .any(|(_, s)| s.is_some_and(|s| s.abs_diff(response) <= 16)),
        "{transport}: estimate {response} B, recorded {sizes:?}"
    );

    // Bytes up: one request head per request (nothing sent: not signed in).
    let requests: f64 = figures.requests.parse().unwrap();
    let events: f64 = figures.events.parse().unwrap();
    let up: f64 = figures.up.parse().unwrap();
    assert_eq!(
        up,
        (requests * request as f64 / events).round(),
        "{transport}: {figures:?}"
    );
    // Bytes down: more than the bodies (heads, and frame headers for WebSocket).
    let body: f64 = figures.body.parse().unwrap();
    let down: f64 = figures.down.parse().unwrap();
    let expected_floor = body + requests * response as f64 / events;
    assert!(
        down + 1.0 >= expected_floor && down > body,
        "{transport}: {figures:?}"
    );
    if transport == "ws" {
        // Every message also carries a 2-byte frame header down (payloads under 126 bytes
        // are rarer than larger ones here, so at least 2 per event).
        assert!(down + 1.0 >= expected_floor + 2.0, "{figures:?}");
    }
    let both: f64 = figures.both.parse().unwrap();
    assert!((both - (up + down)).abs() <= 1.0, "{figures:?}");
    let errors = errors.all().await;
    assert!(
        errors.is_empty(),
        "{transport}: console errors: {errors:#?}"
    );
}

async fn the_long_polling_panel_counts_bytes_up_and_down_with_estimated_heads(engine: Engine) {
    the_panel_counts_both_directions_over(engine, "longpoll").await;
}
in_every_engine!(the_long_polling_panel_counts_bytes_up_and_down_with_estimated_heads);

async fn the_websocket_panel_counts_bytes_up_and_down_with_estimated_heads(engine: Engine) {
    the_panel_counts_both_directions_over(engine, "ws").await;
}
in_every_engine!(the_websocket_panel_counts_bytes_up_and_down_with_estimated_heads);

async fn websocket_frame_sizes_follow_rfc_6455(engine: Engine) {
    let app = spawn_app(&[]).await;
    let browser = Browser::launch(engine).await;
    let (page, _errors) = browser.open(&app.url("/demos/glossary.html")).await;
    let sizes: Vec<u64> = eval(
        &page,
        "import('/static/clients/index.js').then(m => [
            m.wsFrameBytes(5, true), m.wsFrameBytes(125, false), m.wsFrameBytes(126, true),
            m.wsFrameBytes(65535, false), m.wsFrameBytes(65536, true)])",
    )
    .await;
    // 2-byte header up to 125, 4 up to 65535, 10 beyond; 4 more for a client's mask.
    assert_eq!(sizes, vec![11, 127, 134, 65539, 65550]);

    // A frame the client sends is reported up with those sizes: 65 × "é" is 130 bytes of
    // UTF-8, past 125, so its length takes the 16-bit form.
    let sent: Vec<u64> = eval(
        &page,
        "import('/static/clients/index.js').then(m => new Promise((resolve) => {
            const up = [];
            const client = m.connect('ws', 'clock', {
                onBytesUp: (n) => up.push(n),
                onState: (text, phase) => {
                    if (phase !== 'open') return;
                    client.send('hello');
                    client.send('é'.repeat(65));
                    client.stop();
                    resolve(up);
                },
            });
        }))",
    )
    .await;
    assert_eq!(sent, vec![2 + 4 + 5, 4 + 4 + 130]);
}
in_every_engine!(websocket_frame_sizes_follow_rfc_6455);

async fn the_compare_lanes_show_bytes_down_and_up_per_event_from_the_wire_record(engine: Engine) {
    let app = spawn_app(&["--tick-ms", "500"]).await;
    let browser = Browser::launch(engine).await;
    let (page, errors) = browser.open(&app.url("/demos/compare.html")).await;
    let shown: Vec<String> = until(Duration::from_secs(15), async || {
        let shown: Vec<String> = eval(
            &page,
            "[...document.querySelectorAll('[data-field=\"bpe-both\"]')].map(e => e.textContent)",
        )
        .await;
        // WebTransport's lane shows a floor (`≥`): the page reads its payload, and no engine
        // tells it QUIC's bytes (webtransport.rs); in WebKitGTK it does not run (`–`).
        let expected = |t: &str, s: &str| match t {
            "webtransport" if runs(engine, t) => s.starts_with('≥') && s.contains(" · ≥"),
            "webtransport" => s == "–",
            _ => s.starts_with('≈') && s.contains(" · ≈"),
        };
        if shown.len() == pushpoll::names::Transport::ALL.len()
            && shown
                .iter()
                .zip(pushpoll::names::Transport::NAMES)
                .all(|(s, t)| expected(t, s))
        {
            Ok(shown)
        } else {
            Err(shown)
        }
    })
    .await
    .unwrap_or_else(|s| panic!("lanes show {s:?}"));
    // Every HTTP transport sends something up per event (its requests' heads, TCP's share);
    // WebTransport's page sends nothing it can count per event (QUIC's acknowledgements are
    // the browser's), so its floor up may be 0.
    for (s, t) in shown.iter().zip(pushpoll::names::Transport::NAMES) {
        if t == "webtransport" {
            continue;
        }
        let up: f64 = number(s.split('·').nth(1).unwrap());
        assert!(up > 0.0, "{t}: {shown:?}");
    }
    let errors = errors.all().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}
in_every_engine!(the_compare_lanes_show_bytes_down_and_up_per_event_from_the_wire_record);

async fn the_glossary_page_defines_every_figure_and_the_header_links_it(engine: Engine) {
    let app = spawn_app(&[]).await;
    let browser = Browser::launch(engine).await;
    let (page, errors) = browser.open(&app.url("/demos/glossary.html")).await;
    assert!(
        until_true(
            &page,
            "document.querySelector('h1')?.textContent === 'Glossary'",
            Duration::from_secs(10)
        )
        .await,
        "no glossary: {}",
        text(&page, "body").await
    );
    for id in [
        "event",
        "bytes-down",
        "bytes-up",
        "bytes-per-event",
        "bytes-per-s",
        "body-bytes",
        "estimated",
        "requests",
        "latency",
        "held-connections",
    ] {
        let js = format!("document.getElementById({id:?})?.tagName ?? ''");
        assert_eq!(eval::<String>(&page, &js).await, "DT", "#{id}");
    }
    // The header fragment links it, with the current page marked.
    assert_eq!(
        eval::<String>(
            &page,
            "document.querySelector('header nav a[href=\"/demos/glossary.html\"]')?.getAttribute('aria-current') ?? ''"
        )
        .await,
        "page"
    );
    let errors = errors.all().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}
in_every_engine!(the_glossary_page_defines_every_figure_and_the_header_links_it);
