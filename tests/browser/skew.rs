//! Latency that holds in a classroom: a server whose clock is off the browser's by seconds
//! (the test-only `--test-clock-offset-ms`, as on another machine), and every page still
//! shows latencies within their stated uncertainty of the truth, with the offset it measured.

use super::*;
use support::spawn_binary;

/// Slack over a page's stated uncertainty: the pages round to 0.1 ms, and `nowMicros` may
/// re-anchor its sub-millisecond clock to `Date.now()` by up to 1 ms between two readings.
const SLACK_MS: f64 = 1.5;

/// How late a tick may truly be on loopback: a short poll's (every 1 s by default) up to
/// its interval, a push a few ms, both with a loaded machine's hiccups on top.
fn truth_at_most_ms(transport: &str) -> f64 {
    if transport == "poll" { 1500.0 } else { 1000.0 }
}

/// "+7000.2", "−7000.2", "-3.1 ms", "7.00 s", "0.4": milliseconds; "–", "measuring…": none.
fn ms(text: &str) -> Option<f64> {
    let text = text.trim().replace('−', "-").replace('+', "");
    let (number, scale) = if let Some(n) = text.strip_suffix(" ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix(" s") {
        (n, 1000.0)
    } else {
        (text.as_str(), 1.0)
    };
    number.trim().parse::<f64>().ok().map(|v| v * scale)
}

/// The offset and its ± as the page shows them (selectors of the two elements), once measured.
async fn shown_offset(page: &Page<'_>, offset: &str, uncertainty: &str) -> (f64, f64) {
    let shown = until(Duration::from_secs(15), async || {
        let (o, u) = (text(page, offset).await, text(page, uncertainty).await);
        match (ms(&o), ms(&u)) {
            (Some(o), Some(u)) => Ok((o, u)),
            _ => Err((o, u)),
        }
    })
    .await;
    shown.unwrap_or_else(|seen| panic!("{}: no offset shown: {seen:?}", page.engine().name()))
}

/// The page's offset is the injected one, within its own uncertainty.
fn check_offset(page: &Page<'_>, at: &str, (offset, pm): (f64, f64), injected_ms: f64) {
    let engine = page.engine().name();
    eprintln!(
        "skew {engine} {at}: offset shown {offset:+.1} ms ± {pm:.1} ms (injected {injected_ms:+.0} ms)"
    );
    assert!(
        (offset - injected_ms).abs() <= pm + SLACK_MS,
        "{engine} {at}: offset {offset} ± {pm} ms, injected {injected_ms} ms"
    );
    assert!(
        pm < 500.0,
        "{engine} {at}: an uncertainty of ± {pm} ms says nothing"
    );
}

/// A latency the page shows is the truth (between 0 and `at_most`) within the offset's ±.
fn check_latency(page: &Page<'_>, at: &str, latency: f64, pm: f64, at_most: f64) {
    let engine = page.engine().name();
    assert!(
        latency >= -(pm + SLACK_MS) && latency <= at_most + pm + SLACK_MS,
        "{engine} {at}: latency {latency} ms is not a delivery time (± {pm} ms, at most {at_most} ms)"
    );
}

/// A transport page: its panel's last latency over a few ticks, its average, and its offset.
async fn a_transport_page_holds(browser: &Browser, app: &TestApp, transport: &str, injected: f64) {
    let (page, errors) = browser
        .open(&app.url(&format!("/demos/{transport}.html")))
        .await;
    let offset = shown_offset(
        &page,
        "[data-stat=clock-offset]",
        "[data-stat=clock-offset-uncertainty]",
    )
    .await;
    check_offset(&page, transport, offset, injected);
    let at_most = truth_at_most_ms(transport);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while seen.len() < 4 && Instant::now() < deadline {
        if let Some(last) = ms(&text(&page, "[data-stat=latency-last]").await)
            && seen.last() != Some(&last)
        {
            check_latency(&page, transport, last, offset.1, at_most);
            seen.push(last);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(
        seen.len() >= 4,
        "{}: {transport} showed {seen:?}",
        page.engine().name()
    );
    let avg = ms(&text(&page, "[data-stat=latency-avg]").await).expect("an average latency");
    check_latency(
        &page,
        &format!("{transport} average"),
        avg,
        offset.1,
        at_most,
    );
    eprintln!(
        "skew {} {transport}: latencies shown {seen:?} ms, average {avg} ms",
        page.engine().name()
    );
    let errors = errors.all().await;
    assert!(errors.is_empty(), "{transport}: {errors:?}");
    page.close().await.unwrap();
}

/// The compare page: each lane's last latency, p50 and p99, and one chat message's five
/// arrivals.
async fn the_compare_page_holds(browser: &Browser, app: &TestApp, injected: f64) {
    let (page, errors) = browser.open(&app.url("/demos/compare.html")).await;
    let offset = shown_offset(&page, "#clock-offset", "#clock-offset-uncertainty").await;
    check_offset(&page, "compare", offset, injected);
    let lanes = until(Duration::from_secs(20), async || {
        let js = "JSON.stringify([...document.querySelectorAll('.lane')].map((l) => [l.dataset.transport, l.querySelector('[data-field=lat-last]').textContent, l.querySelector('[data-field=lat-pct]').textContent]))";
        let lanes: Vec<(String, String, String)> =
            serde_json::from_str(&eval::<String>(&page, js).await).unwrap();
        let lanes: Vec<_> = lanes.into_iter().filter(|(t, _, _)| runs(page.engine(), t)).collect();
        if lanes.len() == pushpoll::names::Transport::NAMES.iter().filter(|t| runs(page.engine(), t)).count()
            && lanes.iter().all(|(_, last, _)| ms(last).is_some())
        {
            Ok(lanes)
        } else {
            Err(lanes)
        }
    })
    .await
    .unwrap_or_else(|seen| panic!("{}: lanes {seen:?}", page.engine().name()));
    for (transport, last, pct) in &lanes {
        let at_most = truth_at_most_ms(transport);
        check_latency(
            &page,
            &format!("compare {transport} last"),
            ms(last).unwrap(),
            offset.1,
            at_most,
        );
        for p in pct.split('·') {
            let p = ms(p).unwrap_or_else(|| panic!("compare {transport}: p50 · p99 {pct:?}"));
            check_latency(
                &page,
                &format!("compare {transport} p50·p99"),
                p,
                offset.1,
                at_most,
            );
        }
    }

    // One message, delivered five times.
    let cookie = app.login(&format!("skew{}", support::unique())).await;
    let (status, body) = app.say(&cookie, "lobby", "what time is it").await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no id in {body}"));
    let cells = until(Duration::from_secs(15), async || {
        let js = format!(
            "JSON.stringify([...document.querySelectorAll('#arrivals tr[data-id=\"{id}\"] td[data-transport]')].map((td) => [td.dataset.transport, td.dataset.state, td.textContent]))"
        );
        let cells: Vec<(String, String, String)> =
            serde_json::from_str(&eval::<String>(&page, &js).await).unwrap();
        let cells: Vec<_> = cells.into_iter().filter(|(t, _, _)| runs(page.engine(), t)).collect();
        if cells.len() == pushpoll::names::Transport::NAMES.iter().filter(|t| runs(page.engine(), t)).count()
            && cells.iter().all(|(_, state, _)| state == "arrived")
        {
            Ok(cells)
        } else {
            Err(cells)
        }
    })
    .await
    .unwrap_or_else(|seen| panic!("{}: message {id}: {seen:?}", page.engine().name()));
    for (transport, _, shown) in &cells {
        let latency = ms(shown).unwrap_or_else(|| panic!("{transport}: {shown:?}"));
        check_latency(
            &page,
            &format!("compare chat {transport}"),
            latency,
            offset.1,
            truth_at_most_ms(transport),
        );
    }
    eprintln!(
        "skew {} compare: lanes {lanes:?}, message {cells:?}",
        page.engine().name()
    );
    let errors = errors.all().await;
    assert!(errors.is_empty(), "compare: {errors:?}");
    page.close().await.unwrap();
}

/// The proxy lab (no proxy in front): each transport's "late by" and the offset.
async fn the_proxy_lab_holds(browser: &Browser, app: &TestApp, injected: f64) {
    let (page, errors) = browser.open(&app.url("/demos/proxy.html")).await;
    let offset = shown_offset(&page, "#clock-offset", "#clock-offset-uncertainty").await;
    check_offset(&page, "proxy", offset, injected);
    let rows = until(Duration::from_secs(20), async || {
        // WebTransport does not pass through a proxy: the lab does not open it (proxy.js).
        let through: Vec<&str> = pushpoll::names::Transport::NAMES
            .into_iter()
            .filter(|t| *t != pushpoll::names::Transport::WebTransport.as_str())
            .collect();
        let js = format!(
            "JSON.stringify({through:?}.map((t) => [t, document.querySelector(`tr[data-lab=${{t}}] [data-f=late]`).textContent]))"
        );
        let rows: Vec<(String, String)> =
            serde_json::from_str(&eval::<String>(&page, &js).await).unwrap();
        if rows.iter().all(|(_, late)| ms(late).is_some()) {
            Ok(rows)
        } else {
            Err(rows)
        }
    })
    .await
    .unwrap_or_else(|seen| panic!("{}: proxy lab {seen:?}", page.engine().name()));
    for (transport, late) in &rows {
        check_latency(
            &page,
            &format!("proxy {transport}"),
            ms(late).unwrap(),
            offset.1,
            truth_at_most_ms(transport),
        );
    }
    eprintln!("skew {} proxy: late by {rows:?}", page.engine().name());
    let errors = errors.all().await;
    assert!(errors.is_empty(), "proxy: {errors:?}");
    page.close().await.unwrap();
}

/// The server's clock `offset_ms` off the browser's: the pages, one after another (each holds
/// connections of its own, and six per origin is the browser's limit).
async fn pages_hold_with_the_server_clock_off_by(
    engine: Engine,
    offset_ms: i64,
    transports: &[&str],
) {
    let offset = offset_ms.to_string();
    let app = spawn_binary(&["--test-clock-offset-ms", &offset, "--tick-ms", "250"]).await;
    // The server's clock is off indeed: its time answer is, against this test's own clock.
    let (_, time) = app.get_json("/api/time").await;
    let off = time["ts"].as_u64().unwrap() as f64 / 1000.0 - support::now_micros() as f64 / 1000.0;
    assert!(
        (off - offset_ms as f64).abs() < 500.0,
        "GET /api/time is {off} ms off"
    );

    let browser = Browser::launch(engine).await;
    let injected = offset_ms as f64;
    for transport in transports.iter().filter(|t| runs(engine, t)) {
        a_transport_page_holds(&browser, &app, transport, injected).await;
    }
    the_compare_page_holds(&browser, &app, injected).await;
    the_proxy_lab_holds(&browser, &app, injected).await;
}

async fn every_page_shows_true_latencies_with_the_server_clock_7_s_ahead(engine: Engine) {
    pages_hold_with_the_server_clock_off_by(engine, 7000, &pushpoll::names::Transport::NAMES).await;
}
in_every_engine!(every_page_shows_true_latencies_with_the_server_clock_7_s_ahead);

async fn pages_show_true_latencies_with_the_server_clock_7_s_behind(engine: Engine) {
    pages_hold_with_the_server_clock_off_by(engine, -7000, &["poll", "ws"]).await;
}
in_every_engine!(pages_show_true_latencies_with_the_server_clock_7_s_behind);
