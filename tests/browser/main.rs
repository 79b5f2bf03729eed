//! Browser tests: every demo page in three real browser engines, Chromium, Firefox ESR and
//! WebKitGTK (WebKit's GTK port: Safari's engine on libsoup's network stack, not Safari's
//! CFNetwork), against the real server, through one WebDriver harness
//! (`webdriver.rs`). Each test runs once per engine (`NAME::chromium`, `NAME::firefox`,
//! `NAME::webkit`); the browsers are shared, one pool per engine, between tests.

#[path = "../support/nginx.rs"]
mod nginx;
#[path = "../support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{TestApp, Watchdog, spawn_app};
use webdriver::{Browser, Engine, Page};

mod bytes;
mod chat_panel;
mod claims;
mod compare;
mod draw;
mod engines;
mod fetch;
mod h2;
mod liveness;
mod matrix;
mod proxy;
mod record;
mod skew;
mod timeline;
mod webdriver;
mod webtransport;
mod wire;

/// Runs the test function `NAME(engine: Engine)` in each engine: a module `NAME` with one
/// `#[tokio::test]` per engine (`NAME::chromium`, `NAME::firefox`, `NAME::webkit`).
macro_rules! in_every_engine {
    ($name:ident) => {
        mod $name {
            use super::Engine;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn chromium() {
                super::$name(Engine::Chromium).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn firefox() {
                super::$name(Engine::Firefox).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn webkit() {
                super::$name(Engine::WebKit).await
            }
        }
    };
}
pub(crate) use in_every_engine;

/// Whether `engine` runs `transport` at all. WebKitGTK has no `WebTransport`
/// (`webtransport.rs` measures it): its pages say so instead (the transport's page, the
/// compare page's lane, the fallback's first step), so the tests over every transport check
/// that statement there and the transport's delivery in the engines that have it.
pub(crate) fn runs(engine: Engine, transport: &str) -> bool {
    !(engine == Engine::WebKit && transport == pushpoll::names::Transport::WebTransport.as_str())
}

/// Evaluates the expression `js` in the page. Right after a navigation the old document can
/// still answer, or none, so errors are retried for a few seconds.
async fn eval<T: serde::de::DeserializeOwned>(page: &Page<'_>, js: &str) -> T {
    let js = js.trim().trim_end_matches(';');
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match page.evaluate(js).await {
            Ok(result) => {
                return serde_json::from_value::<T>(result.clone()).unwrap_or_else(|e| {
                    panic!("{}: {js} gave {result}: {e}", page.engine().name())
                });
            }
            Err(err) if Instant::now() < deadline => {
                let _ = err;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!(
                "{}: evaluate {js}: {err}\n{}",
                page.engine().name(),
                webdriver::driver_log(page)
            ),
        }
    }
}

/// Runs `check` every 100 ms until it gives `Ok`, for at most `within`. On time-out, the
/// last `Err`: what was seen instead, for the failure message.
async fn until<T, E>(
    within: Duration,
    mut check: impl AsyncFnMut() -> Result<T, E>,
) -> Result<T, E> {
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(value) => return Ok(value),
            Err(seen) if Instant::now() >= deadline => return Err(seen),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Waits (at most `within`) for the JavaScript expression `js` to be true in the page.
async fn until_true(page: &Page<'_>, js: &str, within: Duration) -> bool {
    until(within, async || {
        if eval::<bool>(page, js).await {
            Ok(())
        } else {
            Err(())
        }
    })
    .await
    .is_ok()
}

/// The transport auto.html chose (`#auto-chosen`), once it has chosen one, within `within`.
async fn chosen_transport(page: &Page<'_>, within: Duration) -> Result<String, ()> {
    until(within, async || {
        let chosen: String = eval(
            page,
            "document.querySelector('#auto-chosen')?.dataset.transport ?? ''",
        )
        .await;
        if chosen.is_empty() {
            Err(())
        } else {
            Ok(chosen)
        }
    })
    .await
}

async fn text(page: &Page<'_>, selector: &str) -> String {
    let js = format!("document.querySelector({selector:?})?.textContent ?? ''");
    eval::<String>(page, &js).await.trim().to_string()
}

/// With `PUSHPOLL_SCREENSHOTS=1`, saves what the page shows, top to bottom, to
/// `docs/screenshots/NAME.png` (Chromium) or `NAME-ENGINE.png` (the others), for the docs (docs/SCREENSHOTS.md).
/// Off by default, so test runs never change the tree.
async fn screenshot(page: &Page<'_>, name: &str) {
    let Some(path) = screenshot_path(page, name) else {
        return;
    };
    // The whole page: the window made as tall as the document for the picture.
    let height: u32 = eval(page, "document.documentElement.scrollHeight").await;
    let width: u32 = eval(page, "window.outerWidth").await;
    page.resize(width, (height + 120).min(6000)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    std::fs::write(path, page.screenshot_png().await).unwrap();
}

/// `docs/screenshots/NAME[-ENGINE].png` when `PUSHPOLL_SCREENSHOTS` is set, its folder made.
fn screenshot_path(page: &Page<'_>, name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PUSHPOLL_SCREENSHOTS")?;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    Some(match page.engine() {
        Engine::Chromium => dir.join(format!("{name}.png")),
        other => dir.join(format!("{name}-{}.png", other.name())),
    })
}

/// Like [`screenshot`], of one element only.
async fn screenshot_element(page: &Page<'_>, selector: &str, name: &str) {
    let Some(path) = screenshot_path(page, name) else {
        return;
    };
    std::fs::write(path, page.element_png(selector).await).unwrap();
}

fn number(text: &str) -> f64 {
    let digits: String = text
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {text:?}"))
}

/// Opens the page of `transport` and checks, on the page and from the server's side, that
/// the clock runs over that transport and only that one, with no console errors.
async fn the_demo_page_runs_the_clock_over(engine: Engine, transport: &str) {
    let app: TestApp = spawn_app(&["--tick-ms", "500"]).await;
    let browser = Browser::launch(engine).await;
    let (page, errors) = browser
        .open(&app.url(&format!("/demos/{transport}.html")))
        .await;

    let mut body_transport = String::new();
    for _ in 0..50 {
        body_transport = eval(&page, "document.body?.dataset.transport ?? ''").await;
        if !body_transport.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(body_transport, transport);

    // The clock must change at least twice.
    let mut shown: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while shown.len() < 3 && Instant::now() < deadline {
        let now = text(&page, "#clock-time").await;
        // Only times count, not the placeholder shown before the first tick.
        if now.chars().any(|c| c.is_ascii_digit()) && shown.last() != Some(&now) {
            shown.push(now);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        shown.len() >= 3,
        "{}/{transport}: the clock showed only {shown:?}; errors {:?}",
        engine.name(),
        errors.all().await
    );
    assert!(!text(&page, "#clock-id").await.is_empty());

    // The live panel counts what happened (it renders at most every 250 ms).
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(number(&text(&page, "#stat-requests").await) >= 1.0);
    let events = text(&page, "#stat-events").await;
    assert!(
        number(&events) >= 2.0,
        "{transport}: {events} events, clock showed {shown:?}"
    );
    assert!(number(&text(&page, "#stat-bytes").await) > 0.0);
    assert!(!text(&page, "#stat-latency-last").await.is_empty());
    assert!(!text(&page, "#stat-latency-avg").await.is_empty());
    assert!(!text(&page, "#stat-state").await.is_empty());
    if transport == "ws" {
        assert_eq!(text(&page, "#stat-ready-state").await, "OPEN");
        assert!(!text(&page, "#stat-buffered").await.is_empty());
    }

    // The server saw this transport, and no other, carry the ticks.
    let stats = app.stats().await;
    for (name, figures) in &stats.transports {
        if name == transport {
            assert!(figures.requests >= 1, "{name}: {figures:?}");
            assert!(figures.events_sent >= 2, "{name}: {figures:?}");
            if ["iframe", "fetch", "sse", "ws", "longpoll", "webtransport"].contains(&name.as_str())
            {
                // The clock's, the chat's and the canvas's subscriptions (a long poll may
                // be between asks).
                assert!(
                    (1..=3).contains(&figures.open),
                    "{name}: connections held open: {figures:?}"
                );
            }
        } else {
            assert_eq!(
                figures.requests, 0,
                "{transport} page used {name}: {figures:?}"
            );
        }
    }
    let errors = errors.all().await;
    assert!(
        errors.is_empty(),
        "{transport}: console errors: {errors:#?}"
    );
}

async fn the_short_polling_page_runs_the_clock(engine: Engine) {
    the_demo_page_runs_the_clock_over(engine, "poll").await;
}
in_every_engine!(the_short_polling_page_runs_the_clock);

async fn the_long_polling_page_runs_the_clock(engine: Engine) {
    the_demo_page_runs_the_clock_over(engine, "longpoll").await;
}
in_every_engine!(the_long_polling_page_runs_the_clock);

async fn the_iframe_page_runs_the_clock(engine: Engine) {
    the_demo_page_runs_the_clock_over(engine, "iframe").await;
}
in_every_engine!(the_iframe_page_runs_the_clock);

async fn the_fetch_streaming_page_runs_the_clock(engine: Engine) {
    the_demo_page_runs_the_clock_over(engine, "fetch").await;
}
in_every_engine!(the_fetch_streaming_page_runs_the_clock);

async fn the_sse_page_runs_the_clock(engine: Engine) {
    the_demo_page_runs_the_clock_over(engine, "sse").await;
}
in_every_engine!(the_sse_page_runs_the_clock);

async fn the_websocket_page_runs_the_clock(engine: Engine) {
    the_demo_page_runs_the_clock_over(engine, "ws").await;
}
in_every_engine!(the_websocket_page_runs_the_clock);

async fn the_index_links_every_demo_and_loads_cleanly(engine: Engine) {
    let app = spawn_app(&[]).await;
    let browser = Browser::launch(engine).await;
    let (page, errors) = browser.open(&app.url("/")).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let links: Vec<String> = eval(
        &page,
        "[...document.querySelectorAll('a')].map(a => a.getAttribute('href'))",
    )
    .await;
    for t in pushpoll::names::Transport::NAMES {
        let href = format!("/demos/{t}.html");
        assert!(links.contains(&href), "{href} missing from {links:?}");
    }
    let errors = errors.all().await;
    assert!(errors.is_empty(), "{errors:?}");
}
in_every_engine!(the_index_links_every_demo_and_loads_cleanly);

/// Text that tries to run script, end a script element, or break a JavaScript string.
const XSS: &str = "<img src=x onerror=window.__xss=1></script>\u{2028}&amp; &";

async fn sign_in(page: &Page<'_>, nick: &str) {
    // The chat module is live once it has written its first status line (it attaches its
    // handlers first); clicking before that would submit the bare form.
    assert!(
        until_true(
            page,
            "document.readyState === 'complete' && (document.querySelector('#chat-status')?.textContent ?? '') !== ''",
            Duration::from_secs(10),
        )
        .await,
        "the chat panel never appeared"
    );
    // Through the DOM, as a user's typing and click would: find_element's node ids can be
    // stale right after a navigation.
    fill_and_click(page, "#chat-nick", nick, "#chat-signin").await;
    let signed_in = until(Duration::from_secs(10), async || {
        let me = text(page, "#chat-me").await;
        if me == nick { Ok(()) } else { Err(me) }
    })
    .await;
    assert!(
        signed_in.is_ok(),
        "not signed in as {nick}: {}",
        text(page, "#chat-status").await
    );
}

async fn send(page: &Page<'_>, message: &str) {
    fill_and_click(page, "#chat-text", message, "#chat-send").await;
}

/// Sets an input's value (firing `input`, as typing does) and clicks a button.
async fn fill_and_click(page: &Page<'_>, input: &str, value: &str, button: &str) {
    let js = format!(
        "(() => {{ const t = document.querySelector({input:?}); t.focus(); t.value = {}; \
         t.dispatchEvent(new Event('input', {{bubbles: true}})); \
         document.querySelector({button:?}).click(); return true; }})()",
        serde_json::to_string(value).unwrap()
    );
    assert!(eval::<bool>(page, &js).await);
}

/// Waits until the page shows a chat message whose text is exactly `message`.
async fn wait_for_message(page: &Page<'_>, message: &str) {
    let js = format!(
        "[...document.querySelectorAll('#chat-log .chat-line[data-type=message] .chat-text')].some(e => e.textContent === {})",
        serde_json::to_string(message).unwrap()
    );
    assert!(
        until_true(page, &js, Duration::from_secs(15)).await,
        "{message:?} never shown; log: {:?}; status: {:?}",
        text(page, "#chat-log").await,
        text(page, "#chat-status").await
    );
}

async fn the_websocket_and_long_polling_pages_chat_with_each_other_and_hostile_text_stays_text(
    engine: Engine,
) {
    let app = spawn_app(&[]).await;
    // Two browsers: two cookie jars, two people.
    let (a, b) = tokio::join!(Browser::launch(engine), Browser::launch(engine));
    let (ws_page, ws_errors) = a.open(&app.url("/demos/ws.html")).await;
    let (lp_page, lp_errors) = b.open(&app.url("/demos/longpoll.html")).await;
    sign_in(&ws_page, "alice").await;
    sign_in(&lp_page, "bob").await;

    send(&ws_page, XSS).await;
    wait_for_message(&lp_page, XSS).await;
    wait_for_message(&ws_page, XSS).await;
    send(&lp_page, "hello from long polling").await;
    wait_for_message(&ws_page, "hello from long polling").await;

    for page in [&ws_page, &lp_page] {
        assert!(
            eval::<bool>(page, "window.__xss === undefined").await,
            "the payload ran"
        );
        assert_eq!(
            eval::<u64>(page, "document.querySelectorAll('#chat-log img').length").await,
            0
        );
        let sender: Vec<String> = eval(
            page,
            "[...document.querySelectorAll('#chat-log .chat-line[data-type=message] .chat-from')].map(e => e.textContent)",
        )
        .await;
        assert!(
            sender.iter().any(|s| s.contains("alice")) && sender.iter().any(|s| s.contains("bob")),
            "{sender:?}"
        );
    }
    // Both are online, as each page shows.
    let online = until(Duration::from_secs(10), async || {
        let users: Vec<String> = eval(
            &ws_page,
            "[...document.querySelectorAll('#chat-users .chat-user')].map(e => e.textContent)",
        )
        .await;
        let both = ["alice", "bob"]
            .iter()
            .all(|nick| users.iter().any(|u| u.contains(nick)));
        if both { Ok(()) } else { Err(users) }
    })
    .await;
    assert!(online.is_ok(), "online list {online:?}");
    screenshot(&ws_page, "chat-ws").await;
    // Each page sent over its own transport: the socket for one, POST for the other.
    let stats = app.stats().await;
    assert!(stats.transports["ws"].open >= 1);
    assert!(stats.transports["longpoll"].requests >= 2);
    for errors in [ws_errors, lp_errors] {
        let errors = errors.all().await;
        assert!(errors.is_empty(), "console errors: {errors:#?}");
    }
}
in_every_engine!(
    the_websocket_and_long_polling_pages_chat_with_each_other_and_hostile_text_stays_text
);

/// Console lines a refused transport makes by design (the failure the page demonstrates).
fn unexpected(errors: &[String]) -> Vec<String> {
    errors
        .iter()
        .filter(|e| {
            !(e.contains("503") || e.contains("WebSocket connection") || e.contains("EventSource"))
        })
        .cloned()
        .collect()
}

async fn with_websocket_upgrades_refused_the_fallback_client_lands_on_sse(engine: Engine) {
    // WebTransport, tried first, refused too: in Chromium and Firefox the session says why
    // (`transport_refused` on its stream); WebKitGTK has none to try.
    let app = spawn_app(&["--tick-ms", "500", "--refuse", "ws,webtransport"]).await;
    let browser = Browser::launch(engine).await;
    let (page, errors) = browser.open(&app.url("/demos/auto.html")).await;
    let chosen = chosen_transport(&page, Duration::from_secs(15)).await;
    match chosen {
        Ok(chosen) => assert_eq!(chosen, "sse"),
        Err(()) => panic!("no transport chosen: {}", text(&page, "#auto-steps").await),
    }
    let steps: Vec<String> = eval(&page, "[...document.querySelectorAll('#auto-steps li')].map(li => li.dataset.transport + ':' + li.className)").await;
    assert_eq!(
        steps,
        [
            "webtransport:auto-step fail",
            "ws:auto-step fail",
            "sse:auto-step ok"
        ]
    );
    let first = text(&page, "#auto-steps li[data-transport=webtransport]").await;
    eprintln!(
        "{}: the fallback's WebTransport step: {first}",
        engine.name()
    );
    let why = match engine {
        Engine::WebKit => "this browser has no WebTransport",
        Engine::Chromium | Engine::Firefox => "refused: transport_refused",
    };
    assert!(first.contains(why), "{first}");
    screenshot(&page, "fallback").await;
    // The clock runs over SSE.
    let first = text(&page, "#clock-id").await;
    let ran = until(Duration::from_secs(10), async || {
        if text(&page, "#clock-id").await == first {
            Err(())
        } else {
            Ok(())
        }
    })
    .await;
    assert!(
        ran.is_ok(),
        "the clock did not run over the chosen transport"
    );
    let stats = app.stats().await;
    assert!(
        stats.transports["ws"].requests >= 1,
        "the WebSocket was tried"
    );
    assert_eq!(stats.transports["ws"].open, 0);
    assert!(
        stats.transports["sse"].open >= 1,
        "the clock streams over SSE"
    );

    // Blocking SSE on the page as well steps down to fetch streaming, and blocking that too
    // to long polling.
    for (block, expected) in [("sse", "fetch"), ("fetch", "longpoll")] {
        eval::<bool>(&page, &format!("(() => {{ document.querySelector('#block-{block}').checked = true; document.querySelector('#auto-retry').click(); return true; }})()")).await;
        let fell_back = until(Duration::from_secs(15), async || {
            let chosen: String = eval(
                &page,
                "document.querySelector('#auto-chosen')?.dataset.transport ?? ''",
            )
            .await;
            if chosen == expected {
                Ok(())
            } else {
                Err(chosen)
            }
        })
        .await;
        assert!(
            fell_back.is_ok(),
            "blocking {block}: did not fall back to {expected}: {fell_back:?}"
        );
    }
    let errors = errors.all().await;
    assert!(
        unexpected(&errors).is_empty(),
        "console errors: {errors:#?}"
    );
}
in_every_engine!(with_websocket_upgrades_refused_the_fallback_client_lands_on_sse);

async fn the_websocket_inspectors_accept_value_matches_its_own_computation(engine: Engine) {
    let app = spawn_app(&[]).await;
    let browser = Browser::launch(engine).await;
    let (page, errors) = browser.open(&app.url("/demos/ws.html")).await;
    let matched = until(Duration::from_secs(10), async || {
        let shown = text(&page, "#inspect-match").await;
        if shown == "match" { Ok(()) } else { Err(shown) }
    })
    .await;
    assert!(matched.is_ok(), "inspector: {matched:?}");
    let accept = text(&page, "#inspect-accept").await;
    assert_eq!(accept.len(), 28, "{accept}");
    assert_eq!(accept, text(&page, "#inspect-computed").await);
    assert!(
        text(&page, "#inspect-request")
            .await
            .contains("sec-websocket-key: ")
    );
    assert!(
        text(&page, "#inspect-response")
            .await
            .starts_with("HTTP/1.1 101")
    );
    let errors = errors.all().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}
in_every_engine!(the_websocket_inspectors_accept_value_matches_its_own_computation);

async fn the_dashboard_draws_its_charts_and_updates_them(engine: Engine) {
    let app = spawn_app(&[]).await;
    let browser = Browser::launch(engine).await;
    let (page, errors) = browser.open(&app.url("/demos/dashboard.html")).await;
    // Traffic for the charts to show: short polls for a few seconds.
    let traffic = {
        let (http, url) = (app.http.clone(), app.url("/poll/clock"));
        tokio::spawn(async move {
            for _ in 0..40 {
                let _ = http.get(&url).send().await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let picture = "document.querySelector('#chart-requests').toDataURL()";
    let sampled = until(Duration::from_secs(15), async || {
        let samples = text(&page, "#dash-samples")
            .await
            .parse::<u32>()
            .unwrap_or(0);
        if samples >= 3 { Ok(()) } else { Err(()) }
    })
    .await;
    assert!(
        sampled.is_ok(),
        "no samples: {}",
        text(&page, "#dash-state").await
    );
    // Each legend swatch has its colour, set by the script (from facts.js) under the page's CSP.
    let colored: bool = eval(
        &page,
        "[...document.querySelectorAll('#legend .swatch')].every((s) => getComputedStyle(s).backgroundColor !== 'rgba(0, 0, 0, 0)')",
    )
    .await;
    assert!(colored, "a legend swatch has no colour");
    let before: String = eval(&page, picture).await;
    let polled = until(Duration::from_secs(10), async || {
        let latest = text(&page, "#latest-requests").await;
        let poll_rate: f64 = latest
            .split(" · ")
            .find_map(|s| s.strip_prefix("poll "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        if poll_rate > 0.0 { Ok(()) } else { Err(latest) }
    })
    .await;
    assert!(polled.is_ok(), "poll requests never showed: {polled:?}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let after: String = eval(&page, picture).await;
    assert_ne!(before, after, "the chart did not change");
    for chart in ["requests", "open", "bytes", "events", "cpu", "rss"] {
        let drawn: bool = eval(
            &page,
            &format!(
                "(() => {{ const c = document.querySelector('#chart-{chart}'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true; return false; }})()"
            ),
        )
        .await;
        assert!(drawn, "{chart} is blank");
    }
    assert_eq!(text(&page, "#dash-state").await, "live");
    screenshot(&page, "dashboard").await;
    traffic.abort();
    let errors = errors.all().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}
in_every_engine!(the_dashboard_draws_its_charts_and_updates_them);

async fn the_results_page_shows_its_tables_and_charts(engine: Engine) {
    let app = spawn_app(&[]).await;
    let browser = Browser::launch(engine).await;
    let (page, errors) = browser.open(&app.url("/results/")).await;
    assert!(
        until_true(
            &page,
            "document.readyState === 'complete' && [...document.querySelectorAll('main img')].length >= 4 && [...document.querySelectorAll('main img')].every(i => i.complete && i.naturalWidth > 0)",
            Duration::from_secs(10),
        )
        .await,
        "the charts did not load"
    );
    assert!(eval::<u64>(&page, "document.querySelectorAll('main table').length").await >= 3);
    // At 1280×720 its charts at a glance end within the first screen, each linking to a
    // section of the page.
    compare::set_viewport(&page, 1280, 720).await;
    let glance: (u32, f64, Vec<String>) = serde_json::from_str(
        &eval::<String>(
            &page,
            "(scrollTo(0, 0), JSON.stringify([document.querySelectorAll('.glance img').length, document.querySelector('.glance').getBoundingClientRect().bottom, [...document.querySelectorAll('.glance a')].map((a) => new URL(a.href).hash).filter((h) => !h || !document.getElementById(decodeURIComponent(h.slice(1))))]))",
        )
        .await,
    )
    .unwrap();
    assert!(glance.0 >= 5, "{glance:?}");
    assert!(glance.1 <= 720.0, "the charts end at {} px", glance.1);
    assert!(glance.2.is_empty(), "links to no section: {:?}", glance.2);
    // Its charts' text as shown, those at a glance and the sections', is 14 px at least; the
    // glance's row scrolls sideways inside itself, not the page.
    let at = format!("{}: results at 1280×720", engine.name());
    compare::charts_read_at_14_px(&page, "main img", &at).await;
    let sideways: (u32, u32) = serde_json::from_str(
        &eval::<String>(
            &page,
            "JSON.stringify([document.documentElement.scrollWidth, innerWidth])",
        )
        .await,
    )
    .unwrap();
    assert!(
        sideways.0 <= sideways.1,
        "{at}: scrolls sideways: {sideways:?}"
    );
    if let Some(path) = screenshot_path(&page, "results") {
        std::fs::write(path, page.screenshot_png().await).unwrap();
    }
    let errors = errors.all().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    page.close().await.unwrap();

    // In a phone's 390×844 frame (Firefox's and WebKitGTK's windows do not shrink that far):
    // the same, the page still not scrolling sideways.
    let (host, errors) = browser.open(&app.url("/demos/glossary.html")).await;
    compare::set_viewport(&host, 1280, 1000).await;
    eval::<bool>(
        &host,
        "(() => { const f = document.createElement('iframe'); f.src = '/results/'; f.width = '390'; f.height = '844'; f.style.border = '0'; document.body.replaceChildren(f); return true; })()",
    )
    .await;
    host.enter_frame("iframe").await;
    assert!(
        until_true(
            &host,
            "location.pathname === '/results/' && document.readyState === 'complete' && innerWidth === 390",
            Duration::from_secs(10),
        )
        .await,
        "the results page did not load in its frame"
    );
    let at = format!("{}: results at 390×844", engine.name());
    compare::charts_read_at_14_px(&host, "main img", &at).await;
    let sideways: (u32, u32, Vec<String>) = serde_json::from_str(
        &eval::<String>(
            &host,
            "JSON.stringify([document.documentElement.scrollWidth, innerWidth, [...document.querySelectorAll('body *')].filter((e) => { if (e.getBoundingClientRect().right <= innerWidth + 1) return false; for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) if (getComputedStyle(a).overflowX !== 'visible') return false; return true; }).slice(0, 8).map((e) => `${e.tagName} ${e.className} ${Math.round(e.getBoundingClientRect().right)}: ${(e.textContent || '').trim().slice(0, 50)}`)])",
        )
        .await,
    )
    .unwrap();
    assert!(
        sideways.0 <= sideways.1,
        "{at}: scrolls sideways: {sideways:?}"
    );
    host.leave_frame().await;
    let errors = errors.all().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    host.close().await.unwrap();
}
in_every_engine!(the_results_page_shows_its_tables_and_charts);
