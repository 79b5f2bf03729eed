//! The live timeline on every transport's page (static/timeline.js), read from the page's own
//! model (`window.pushpollTimeline.items()`): short polling asks on its interval, long polling
//! re-asks as soon as it is answered, a stream is one open bar with the events inside it, a
//! WebSocket frame sent shows as an upstream mark, and a kill (`POST /api/debug/kill`) shows
//! as a break, then the request that resumed, then events again. On the compare page every
//! lane is a row of one timeline, in the lanes' order, each with its transport's shape.

use std::time::Duration;

use serde::Deserialize;

use super::*;

/// `--keepalive` here: the iframe's silence watch (2.5 times it) notices a killed stream.
const KEEPALIVE: &str = "1000ms";
const POLL_MS: f64 = 1000.0;

#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Item {
    row: String,
    transport: String,
    kind: String,
    #[serde(default)]
    start: Option<f64>,
    #[serde(default)]
    end: Option<f64>,
    #[serde(default)]
    at: Option<f64>,
    #[serde(default)]
    ending: Option<String>,
    #[serde(default)]
    latency_ms: Option<f64>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    bytes: Option<f64>,
}

async fn items(page: &Page<'_>) -> Vec<Item> {
    eval(
        page,
        "window.pushpollTimeline ? window.pushpollTimeline.items() : []",
    )
    .await
}

fn of<'a>(items: &'a [Item], row: &str, kind: &str) -> Vec<&'a Item> {
    items
        .iter()
        .filter(|i| i.row == row && i.kind == kind)
        .collect()
}

/// Polls the model until `check` accepts it (at most `within`); the last model on time-out.
async fn model_until(
    page: &Page<'_>,
    within: Duration,
    check: impl Fn(&[Item]) -> bool,
) -> Result<Vec<Item>, Vec<Item>> {
    until(within, async || {
        let seen = items(page).await;
        if check(&seen) { Ok(seen) } else { Err(seen) }
    })
    .await
}

/// How long the timeline's last draws took (ms; performance.now() around each), printed: a
/// window in the background gets no animation frames, so there may be none.
async fn print_frames(page: &Page<'_>, what: &str) {
    let mut frames: Vec<f64> = eval(page, "window.pushpollTimeline.frames()").await;
    frames.sort_by(f64::total_cmp);
    if let (Some(median), Some(max)) = (frames.get(frames.len() / 2), frames.last()) {
        eprintln!(
            "{} {what}: timeline draw times over the last {} draws: median {median:.2} ms, max {max:.2} ms",
            page.engine().name(),
            frames.len()
        );
    }
}

async fn the_timeline_shows_what_the_page_did_over(engine: Engine, transport: &str) {
    let app = spawn_app(&["--tick-ms", "500", "--keepalive", KEEPALIVE]).await;
    let browser = Browser::launch(engine).await;
    let (page, errors) = browser
        .open(&app.url(&format!("/demos/{transport}.html")))
        .await;
    let name = engine.name();

    if !runs(engine, transport) {
        // No WebTransport in this engine: the timeline shows the client's failure, no request.
        let seen = model_until(&page, Duration::from_secs(10), |m| {
            !of(m, "clock", "break").is_empty()
        })
        .await
        .unwrap_or_else(|m| panic!("{name}/{transport}: no break shown: {m:#?}"));
        assert!(of(&seen, "clock", "bar").is_empty(), "{seen:#?}");
        assert!(
            of(&seen, "clock", "break")[0]
                .text
                .as_deref()
                .unwrap_or("")
                .contains("no WebTransport"),
            "{seen:#?}"
        );
        return;
    }

    match transport {
        "poll" => {
            // One bar per poll, each answered, each starting one interval after the last.
            let seen = model_until(&page, Duration::from_secs(15), |m| {
                of(m, "clock", "bar")
                    .iter()
                    .filter(|b| b.end.is_some())
                    .count()
                    >= 6
            })
            .await
            .unwrap_or_else(|m| panic!("{name}: fewer than 6 polls answered: {m:#?}"));
            let bars = of(&seen, "clock", "bar");
            for bar in bars.iter().filter(|b| b.end.is_some()) {
                assert_eq!(bar.ending.as_deref(), Some("answered"), "{bar:?}");
                assert!(bar.bytes.unwrap_or(0.0) > 0.0, "{bar:?}");
                assert!(bar.end.unwrap() - bar.start.unwrap() < POLL_MS, "{bar:?}");
            }
            let starts: Vec<f64> = bars.iter().filter_map(|b| b.start).collect();
            let beats: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
            eprintln!("{name}: short polling's beats (ms): {beats:.0?}");
            // Skip the first: the timetable's slot 0 fires at once, slot 1 an interval later.
            for beat in &beats[1..] {
                assert!(
                    (POLL_MS - 250.0..=POLL_MS + 250.0).contains(beat),
                    "{name}: polls {beats:?} ms apart, not every {POLL_MS} ms"
                );
            }
        }
        "longpoll" => {
            // Each held request is answered by a tick, then asked again at once: end to end.
            let seen = model_until(&page, Duration::from_secs(15), |m| {
                of(m, "clock", "bar")
                    .iter()
                    .filter(|b| b.ending.as_deref() == Some("answered"))
                    .count()
                    >= 5
            })
            .await
            .unwrap_or_else(|m| panic!("{name}: fewer than 5 long polls answered: {m:#?}"));
            let bars = of(&seen, "clock", "bar");
            let gaps: Vec<f64> = bars
                .windows(2)
                .filter(|w| w[0].ending.as_deref() == Some("answered"))
                .map(|w| w[1].start.unwrap() - w[0].end.unwrap())
                .collect();
            eprintln!("{name}: long polling's answer-to-next-ask gaps (ms): {gaps:.1?}");
            assert!(gaps.len() >= 4, "{bars:#?}");
            for gap in &gaps {
                assert!(
                    (0.0..200.0).contains(gap),
                    "{name}: a long poll re-asked {gap} ms after its answer"
                );
            }
            // The events arrive at the ends of the bars (with the answer).
            let events = of(&seen, "clock", "event");
            assert!(events.len() >= 4, "{seen:#?}");
            for e in &events {
                let at = e.at.unwrap();
                assert!(
                    bars.iter()
                        .any(|b| b.end.is_some_and(|end| (end..end + 100.0).contains(&at))),
                    "{name}: event at {at} not at an answer: {seen:#?}"
                );
            }
        }
        _ => {
            // A stream: one bar, still open, with the events inside it.
            let seen = model_until(&page, Duration::from_secs(15), |m| {
                of(m, "clock", "event")
                    .iter()
                    .filter(|e| e.latency_ms.is_some())
                    .count()
                    >= 4
            })
            .await
            .unwrap_or_else(|m| panic!("{name}/{transport}: fewer than 4 events: {m:#?}"));
            let bars = of(&seen, "clock", "bar");
            assert_eq!(bars.len(), 1, "{name}/{transport}: {seen:#?}");
            assert_eq!(
                bars[0].end, None,
                "{name}/{transport}: the stream's bar ended"
            );
            let start = bars[0].start.unwrap();
            for e in of(&seen, "clock", "event") {
                assert!(e.at.unwrap() > start, "{e:?} before {start}");
            }
            let latencies: Vec<f64> = of(&seen, "clock", "event")
                .iter()
                .filter_map(|e| e.latency_ms)
                .collect();
            eprintln!("{name}/{transport}: latencies on the timeline (ms): {latencies:.1?}");
            assert!(latencies.iter().all(|l| (-50.0..1000.0).contains(l)));
        }
    }

    if transport == "ws" {
        // A frame sent on the clock's socket shows as an upstream mark on its row.
        assert!(
            eval::<bool>(
                &page,
                "(() => { const f = document.querySelector('#ws-send'); f.querySelector('input').value = 'hello'; f.requestSubmit(); return true })()"
            )
            .await
        );
        let seen = model_until(&page, Duration::from_secs(5), |m| {
            !of(m, "clock", "up").is_empty()
        })
        .await
        .unwrap_or_else(|m| panic!("{name}: no upstream mark: {m:#?}"));
        assert_eq!(of(&seen, "clock", "up")[0].bytes, Some(5.0));
    }

    // Before the kill, which makes engines log the streams it cut off.
    let seen_errors = errors.all().await;
    assert!(
        seen_errors.is_empty(),
        "{transport}: console errors: {seen_errors:#?}"
    );

    if !["poll", "longpoll"].contains(&transport) {
        // A stream's two subscriptions, the clock and the chat, break and resume. Short
        // polling holds no connection to kill; a held long poll that is cut off shows no
        // failure to the page in the three engines (the kill counts it, yet the page's request
        // ends answered, in its time), so its timeline has no break to show.
        let tag: String = eval(&page, "document.body.dataset.tag ?? ''").await;
        assert!(
            tag.starts_with("page-"),
            "{name}/{transport}: the page's tag: {tag:?}"
        );
        let killed_at: f64 = eval(&page, "performance.now()").await;
        let killed = app
            .http
            .post(app.url("/api/debug/kill"))
            .json(&serde_json::json!({ "tag": tag }))
            .send()
            .await
            .unwrap();
        assert_eq!(killed.status(), 200);
        let killed: serde_json::Value = killed.json().await.unwrap();
        eprintln!("{name}/{transport}: the kill of {tag}: {killed}");
        let rows: &[&str] = &["chat", "clock"];
        let recovered = |m: &[Item], row: &str| {
            let Some(broke) = of(m, row, "break")
                .into_iter()
                .find(|b| b.at.unwrap() >= killed_at)
            else {
                return false;
            };
            let broke = broke.at.unwrap();
            let Some(resumed) = of(m, row, "resume")
                .into_iter()
                .find(|r| r.at.unwrap() >= broke)
            else {
                return false;
            };
            let resumed = resumed.at.unwrap();
            // The bar the resume opened, and (on the clock) events again after it.
            of(m, row, "bar").iter().any(|b| b.start == Some(resumed))
                && (row == "chat" || of(m, row, "event").iter().any(|e| e.at.unwrap() > resumed))
        };
        let seen = model_until(&page, Duration::from_secs(20), |m| {
            rows.iter().all(|&row| recovered(m, row))
        })
        .await
        .unwrap_or_else(|m| {
            let after: Vec<String> = m
                .iter()
                .filter(|i| i.at.or(i.start).unwrap_or(0.0) >= killed_at - 1000.0)
                .map(|i| {
                    format!(
                        "{} {} {:?} {:?} {:?}",
                        i.row,
                        i.kind,
                        i.at.or(i.start),
                        i.ending,
                        i.text
                    )
                })
                .collect();
            panic!(
                "{name}/{transport}: no break then resume after the kill at {killed_at}: {after:#?}"
            )
        });
        for row in rows {
            let breaks: Vec<_> = of(&seen, row, "break")
                .into_iter()
                .filter(|b| b.at.unwrap() >= killed_at)
                .collect();
            eprintln!(
                "{name}/{transport}: {row} after the kill: {:?}",
                breaks.iter().map(|b| b.text.clone()).collect::<Vec<_>>()
            );
        }
    }

    print_frames(&page, transport).await;
}

async fn the_short_polling_timeline(engine: Engine) {
    the_timeline_shows_what_the_page_did_over(engine, "poll").await;
}
in_every_engine!(the_short_polling_timeline);

async fn the_long_polling_timeline(engine: Engine) {
    the_timeline_shows_what_the_page_did_over(engine, "longpoll").await;
}
in_every_engine!(the_long_polling_timeline);

async fn the_iframe_timeline(engine: Engine) {
    the_timeline_shows_what_the_page_did_over(engine, "iframe").await;
}
in_every_engine!(the_iframe_timeline);

async fn the_fetch_streaming_timeline(engine: Engine) {
    the_timeline_shows_what_the_page_did_over(engine, "fetch").await;
}
in_every_engine!(the_fetch_streaming_timeline);

async fn the_sse_timeline(engine: Engine) {
    the_timeline_shows_what_the_page_did_over(engine, "sse").await;
}
in_every_engine!(the_sse_timeline);

async fn the_websocket_timeline(engine: Engine) {
    the_timeline_shows_what_the_page_did_over(engine, "ws").await;
}
in_every_engine!(the_websocket_timeline);

async fn the_webtransport_timeline(engine: Engine) {
    the_timeline_shows_what_the_page_did_over(engine, "webtransport").await;
}
in_every_engine!(the_webtransport_timeline);

#[derive(Debug, Deserialize)]
struct Row {
    transport: String,
}

/// The compare page: one row per lane, in the lanes' order, on one axis; each running lane's
/// row has its transport's shape (answered polls, one open stream with events inside). At 10
/// ticks/s, the timeline's busiest case: its draw times are printed.
async fn the_compare_page_stacks_every_lane_on_one_timeline(engine: Engine) {
    let app = spawn_app(&["--tick-ms", "100"]).await;
    let browser = Browser::launch(engine).await;
    let (page, errors) = browser.open(&app.url("/demos/compare.html")).await;
    let name = engine.name();
    assert!(
        until_true(&page, "document.querySelector('.lane[data-paused]') !== null && window.pushpollTimeline !== undefined", Duration::from_secs(10)).await,
        "{name}: the lanes never started"
    );
    let rows: Vec<Row> = eval(&page, "window.pushpollTimeline.rows()").await;
    let transports: Vec<&str> = rows.iter().map(|r| r.transport.as_str()).collect();
    assert_eq!(transports, pushpoll::names::Transport::NAMES.to_vec());
    let running: Vec<String> = eval(
        &page,
        "[...document.querySelectorAll('.lane[data-paused=false]')].map((l) => l.dataset.transport)",
    )
    .await;
    assert!(running.len() >= 4, "{name}: running lanes {running:?}");
    let shaped = |m: &[Item], transport: &str| {
        let bars: Vec<&Item> = m
            .iter()
            .filter(|i| i.kind == "bar" && i.transport == transport)
            .collect();
        let events = m
            .iter()
            .filter(|i| i.kind == "event" && i.transport == transport)
            .count();
        match transport {
            "poll" | "longpoll" => {
                bars.iter()
                    .filter(|b| b.ending.as_deref() == Some("answered"))
                    .count()
                    >= 3
                    && events >= 2
            }
            _ => bars.len() == 1 && bars[0].end.is_none() && events >= 3,
        }
    };
    let seen = model_until(&page, Duration::from_secs(20), |m| {
        running.iter().all(|t| shaped(m, t))
    })
    .await
    .unwrap_or_else(|m| {
        let short: Vec<String> = running.iter().filter(|t| !shaped(&m, t)).cloned().collect();
        panic!("{name}: lanes without their shape: {short:?}")
    });
    for t in &running {
        let bars = seen
            .iter()
            .filter(|i| i.kind == "bar" && &i.transport == t)
            .count();
        eprintln!("{name}: {t}'s row: {bars} bars");
    }
    print_frames(&page, "compare").await;
    let errors = errors.all().await;
    assert!(errors.is_empty(), "compare: console errors: {errors:#?}");
}
in_every_engine!(the_compare_page_stacks_every_lane_on_one_timeline);
