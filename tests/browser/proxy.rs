//! The pages through real nginx's naive config (`scripts/proxy.sh --naive`): the proxy lab
//! shows, measured in the page, the failures tests/api/proxy.rs observed on the wire, and the
//! automatic-fallback page lands on a transport that works through it.

use std::time::Duration;

use super::{
    Engine, chosen_transport, eval, in_every_engine, screenshot, unexpected, until, until_true,
};
use crate::nginx::proxied;
use crate::webdriver::Browser;

/// Console errors the naive proxy causes on purpose: the refused upgrade, the held event
/// stream, the 504 of the cut long poll.
fn proxy_expected(errors: &[String]) -> Vec<String> {
    unexpected(errors)
        .into_iter()
        .filter(|e| !(e.contains("504") || e.contains("Gateway Time-out") || e.contains("426")))
        .collect()
}

/// The lab page through the naive proxy, at ten ticks a second so that nginx's 4 KiB buffer
/// fills within seconds: SSE and the iframe arrive late and in bursts, WebSocket fails, the
/// quiet long poll is cut with 504 at 10 s, and both polls are on time.
async fn the_proxy_lab_through_the_naive_proxy_shows_what_breaks(engine: Engine) {
    let Some(p) = proxied(&["--tick-ms", "100"], &["--naive"]).await else {
        return;
    };
    let browser = Browser::launch(engine).await;
    let (page, errors) = browser.open(&p.url("/demos/proxy.html")).await;
    // The header the config adds, read by the page from its own fetch.
    let proxy = until(Duration::from_secs(5), async || {
        let v: String = eval(&page, "document.querySelector('#lab-proxy').dataset.proxy").await;
        if v.is_empty() { Err(v) } else { Ok(v) }
    })
    .await;
    assert_eq!(proxy, Ok("naive".to_string()));

    let verdict = |row: &str| {
        format!(
            "document.querySelector('tr[data-lab=\"{row}\"] [data-f=\"verdict\"]').dataset.verdict"
        )
    };
    let verdicts = "JSON.stringify([...document.querySelectorAll('tr[data-lab]')].map(r => r.dataset.lab + ': ' + r.querySelector('[data-f=\"verdict\"]').textContent + ' | ' + r.querySelector('[data-f=\"state\"]').textContent + ' | burst ' + r.querySelector('[data-f=\"burst\"]').textContent))";
    // The quiet long poll is cut at 10 s; by then the streams have had several bursts.
    let cut = until_true(
        &page,
        &format!("{} === 'cut'", verdict("quiet")),
        Duration::from_secs(14),
    )
    .await;
    let seen: String = eval(&page, verdicts).await;
    eprintln!("{}: {seen}", engine.name());
    assert!(
        cut,
        "{}: the quiet long poll was not cut: {seen}",
        engine.name()
    );
    for (row, expected) in [
        ("poll", "ok"),
        ("longpoll", "ok"),
        ("sse", "bursts"),
        ("iframe", "bursts"),
        ("fetch", "bursts"),
        ("ws", "fails"),
    ] {
        let got: String = eval(&page, &verdict(row)).await;
        assert_eq!(got, expected, "{}: {row}: {seen}", engine.name());
    }
    // A burst is tens of ticks: one 4 KiB buffer.
    let burst: String = eval(
        &page,
        "document.querySelector('tr[data-lab=\"sse\"] [data-f=\"burst\"]').textContent",
    )
    .await;
    let ticks: u32 = burst.split(' ').next().unwrap_or("0").parse().unwrap_or(0);
    assert!(
        ticks >= 10,
        "{}: SSE's largest burst {burst}",
        engine.name()
    );
    screenshot(&page, "proxy-lab").await;
    let errors = errors.all().await;
    assert!(
        proxy_expected(&errors).is_empty(),
        "{}: console errors: {errors:#?}",
        engine.name()
    );
}
in_every_engine!(the_proxy_lab_through_the_naive_proxy_shows_what_breaks);

/// auto.html through the naive proxy: WebTransport, tried first, does not go through the
/// proxy at all (QUIC on UDP to the server's own port, which this machine reaches), so where
/// the engine has it, it works; blocked on the page (as a network that drops UDP would), the
/// fallback passes over WebSocket (upgrade refused), SSE and fetch streaming (held in nginx's
/// buffer past the probe's deadline), lands on long polling, and the clock runs.
async fn through_the_naive_proxy_the_fallback_lands_on_long_polling_and_the_clock_runs(
    engine: Engine,
) {
    let Some(p) = proxied(&[], &["--naive"]).await else {
        return;
    };
    let browser = Browser::launch(engine).await;
    let (page, errors) = browser.open(&p.url("/demos/auto.html")).await;
    let steps_js = "[...document.querySelectorAll('#auto-steps li')].map(li => li.dataset.transport + ':' + li.className + ':' + li.textContent)";
    let mut chosen = chosen_transport(&page, Duration::from_secs(15)).await;
    if crate::runs(engine, "webtransport") {
        let steps: Vec<String> = eval(&page, steps_js).await;
        eprintln!("{}: {steps:?}", engine.name());
        assert_eq!(chosen, Ok("webtransport".to_string()), "{steps:?}");
        eval::<bool>(&page, "(() => { document.querySelector('#block-webtransport').checked = true; document.querySelector('#auto-chosen').dataset.transport = ''; document.querySelector('#auto-retry').click(); return true; })()").await;
        chosen = chosen_transport(&page, Duration::from_secs(20)).await;
    }
    let steps: Vec<String> = eval(&page, steps_js).await;
    eprintln!("{}: {steps:?}", engine.name());
    assert_eq!(chosen, Ok("longpoll".to_string()), "{steps:?}");
    assert!(
        steps[0].starts_with("webtransport:auto-step fail"),
        "{steps:?}"
    );
    assert!(steps[1].starts_with("ws:auto-step fail"), "{steps:?}");
    assert!(steps[2].starts_with("sse:auto-step fail"), "{steps:?}");
    assert!(steps[3].starts_with("fetch:auto-step fail"), "{steps:?}");
    let first: String = eval(&page, "document.querySelector('#clock-id').textContent").await;
    assert!(
        until_true(
            &page,
            &format!("document.querySelector('#clock-id').textContent !== {first:?}"),
            Duration::from_secs(5)
        )
        .await,
        "{}: the clock did not run over long polling",
        engine.name()
    );
    let errors = errors.all().await;
    assert!(
        proxy_expected(&errors).is_empty(),
        "{}: console errors: {errors:#?}",
        engine.name()
    );
}
in_every_engine!(through_the_naive_proxy_the_fallback_lands_on_long_polling_and_the_clock_runs);

/// The same lab page through `deploy/nginx.conf`: every transport on time, WebSocket open;
/// WebTransport's row says it does not pass (no HTTP proxy carries UDP).
async fn the_proxy_lab_through_the_good_config_shows_every_transport_on_time(engine: Engine) {
    let Some(p) = proxied(&["--tick-ms", "100"], &[]).await else {
        return;
    };
    let browser = Browser::launch(engine).await;
    let (page, errors) = browser.open(&p.url("/demos/proxy.html")).await;
    let through: Vec<&str> = pushpoll::names::Transport::NAMES
        .into_iter()
        .filter(|t| *t != "webtransport")
        .collect();
    let all_on_time = format!(
        "document.querySelector('tr[data-lab=webtransport] [data-f=verdict]').dataset.verdict === 'bypass' && {:?}.every(t => document.querySelector(`tr[data-lab=\"${{t}}\"] [data-f=\"verdict\"]`).dataset.verdict === 'ok' && Number(document.querySelector(`tr[data-lab=\"${{t}}\"] [data-f=\"events\"]`).textContent) >= 10)",
        through
    );
    let ok = until_true(&page, &all_on_time, Duration::from_secs(10)).await;
    let verdicts: String = eval(&page, "JSON.stringify([...document.querySelectorAll('tr[data-lab]')].map(r => r.dataset.lab + ': ' + r.querySelector('[data-f=\"verdict\"]').textContent + ' | ' + r.querySelector('[data-f=\"worst\"]').textContent))").await;
    eprintln!("{}: {verdicts}", engine.name());
    assert!(ok, "{}: {verdicts}", engine.name());
    let proxy: String = eval(&page, "document.querySelector('#lab-proxy').dataset.proxy").await;
    assert_eq!(proxy, "good");
    let errors = errors.all().await;
    assert!(errors.is_empty(), "{}: {errors:#?}", engine.name());
}
in_every_engine!(the_proxy_lab_through_the_good_config_shows_every_transport_on_time);
