//! The matrix: every feed over every transport (`pushpoll::names`), checked on the page as a
//! reader sees it, in each engine. One compare page holds every transport at once, so two
//! page loads cover every feed × transport cell: the clock's time shown in each lane, a chat
//! message in each lane's cell of the arrivals table, and, with `?lanes=draw`, every lane's
//! canvas showing a stroke drawn in every lane (every lane a sender and a receiver, by pixels).

use pushpoll::names::{FeedName, Transport};

use super::compare::no_origin_is_full;
use super::draw::{draw_line, ink_at};
use super::*;

/// The transports' names, in the order of the compare page's lanes.
const TRANSPORTS: [&str; Transport::ALL.len()] = Transport::NAMES;

/// The clock time each lane shows, in lane order.
async fn shown_times(page: &Page<'_>) -> Vec<String> {
    eval(
        page,
        "[...document.querySelectorAll('.lane')].map((l) => l.querySelector('[data-clock=time]').textContent.trim())",
    )
    .await
}

/// The clock: every lane the engine runs shows three different times (the one it cannot run
/// stays empty and says why: compare.rs).
async fn the_clock_shows_in_every_lane(page: &Page<'_>) {
    let mut seen: Vec<Vec<String>> = vec![Vec::new(); TRANSPORTS.len()];
    let ticked = until(Duration::from_secs(20), async || {
        for (lane, now) in shown_times(page).await.into_iter().enumerate() {
            if !runs(page.engine(), TRANSPORTS[lane]) {
                seen[lane] = vec!["not run".into(); 3];
                continue;
            }
            // Only times count, not the placeholder `--:--:--` shown before the first tick.
            if now.chars().any(|c| c.is_ascii_digit()) && seen[lane].last() != Some(&now) {
                seen[lane].push(now);
            }
        }
        if seen.iter().all(|times| times.len() >= 3) {
            Ok(())
        } else {
            Err(())
        }
    })
    .await;
    assert!(
        ticked.is_ok(),
        "{}: the clock shown in each lane ({TRANSPORTS:?}): {seen:?}",
        page.engine().name()
    );
}

/// The chat: a message typed on the page arrives in every lane's cell of the arrivals table.
async fn a_message_shows_in_every_lane(page: &Page<'_>) {
    fill_and_click(page, "#cmp-text", "five ways", "#cmp-send-button").await;
    let cells = compare::wait_for_arrivals(page, "five ways").await;
    // Each arrived cell shows the delivery's latency.
    assert!(
        cells
            .iter()
            .all(|c| c.ends_with(" ms") || c.ends_with(" µs") || c.ends_with(" s")),
        "{cells:?}"
    );
}

/// A colour per sending lane, each one exactly what the line's middle shows: the six whose
/// channels are 0 or 255 (every such colour but black and white, the canvas and its ink),
/// then one with a 128 channel, which the line's middle shows exactly too in all three
/// engines (a canvas of opaque strokes is not colour-managed). A lane takes the one at its
/// index, so an eighth transport is a compile error here.
const COLORS: [(&str, [u8; 3]); 7] = [
    ("#ff0000", [255, 0, 0]),
    ("#00ff00", [0, 255, 0]),
    ("#0000ff", [0, 0, 255]),
    ("#ff00ff", [255, 0, 255]),
    ("#00ffff", [0, 255, 255]),
    ("#ffff00", [255, 255, 0]),
    ("#ff8000", [255, 128, 0]),
];
const _: () = assert!(
    Transport::ALL.len() <= COLORS.len(),
    "a lane without a colour"
);

/// Draw: a line drawn in each lane's canvas appears in every lane's canvas. The sender's own
/// canvas is cleared in the same script that draws, so its line there is the one the server
/// sent back, not the local ink. Returns the cells that failed, as (sender, receiver, pixels).
async fn strokes_between_every_pair_of_lanes(
    app: &TestApp,
    browser: &Browser,
) -> Vec<(&'static str, &'static str, Vec<Vec<u8>>)> {
    let (page, errors) = browser
        .open(&app.url("/demos/compare.html?lanes=draw"))
        .await;
    let canvas = |t: &str| format!("#lane-{t} .lane-canvas");
    // Every lane's canvas has started (it asks for every stroke kept: none can be missed).
    let running: Vec<&str> = TRANSPORTS
        .into_iter()
        .filter(|t| runs(browser.engine(), t))
        .collect();
    let started = format!(
        "{running:?}.every((t) => document.querySelector(`#lane-${{t}} .lane-draw`)?.dataset.transport === t && !document.querySelector(`#lane-${{t}} .lane-canvas`).hidden)"
    );
    assert!(
        until_true(&page, &started, Duration::from_secs(15)).await,
        "the lanes' canvases did not start"
    );
    // A thick pen: a lane's canvas is about a quarter of its 1000 units wide on screen, so
    // one CSS pixel of WebKit's rounding is about four units.
    assert!(
        eval::<bool>(
            &page,
            "(() => { const w = document.getElementById('draw-width'); w.value = '12'; w.dispatchEvent(new Event('input')); return true; })()",
        )
        .await
    );

    let mut failed = Vec::new();
    for (i, sender) in TRANSPORTS.into_iter().enumerate() {
        if !runs(browser.engine(), sender) {
            continue;
        }
        let (color, rgb) = COLORS[i];
        // One line per lane, spread over the canvas above the paused-lane check's line.
        let y = 0.1 + 0.12 * i as f64;
        let at = (500, (y * 1000.0).round() as u32);
        let own = canvas(sender);
        let js = format!(
            "{} && (() => {{ const c = document.querySelector({own:?}); c.getContext('2d').clearRect(0, 0, c.width, c.height); return true; }})()",
            draw_line(&own, color, y)
        );
        assert!(eval::<bool>(&page, &js).await, "{sender}: could not draw");
        let mut missing: Vec<(&str, Vec<Vec<u8>>)> = Vec::new();
        let _ = until(Duration::from_secs(10), async || {
            missing.clear();
            for receiver in TRANSPORTS.into_iter().filter(|t| runs(browser.engine(), t)) {
                if let Err(pixels) = ink_at(&page, &canvas(receiver), at, rgb).await {
                    missing.push((receiver, pixels));
                }
            }
            if missing.is_empty() { Ok(()) } else { Err(()) }
        })
        .await;
        failed.extend(
            missing
                .drain(..)
                .map(|(receiver, pixels)| (sender, receiver, pixels)),
        );
    }
    a_paused_lane_catches_up_from_its_cursor(&page, TRANSPORTS[0], TRANSPORTS[2]).await;
    // With the canvas in place of the clock the lanes still hold two subscriptions each: no
    // origin reached six, and no request waited 250 ms for a connection
    // (static/compare/timing.js).
    let budget = text(&page, "#budget-rows").await;
    no_origin_is_full(&page, &budget).await;
    let errors = errors.all().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    page.close().await.unwrap();
    failed
}

/// A lane paused while `sender` draws does not show the line; resumed, it asks from its
/// cursor and shows it.
async fn a_paused_lane_catches_up_from_its_cursor(page: &Page<'_>, sender: &str, paused: &str) {
    let (own, theirs) = (
        format!("#lane-{sender} .lane-canvas"),
        format!("#lane-{paused} .lane-canvas"),
    );
    let pause =
        format!("document.querySelector('#lane-{paused} [data-action=pause]').click(), true");
    assert!(eval::<bool>(page, &pause).await);
    assert!(
        until_true(
            page,
            &format!("document.getElementById('lane-{paused}').dataset.paused === 'true'"),
            Duration::from_secs(5)
        )
        .await
    );
    // A colour none of the senders above used (COLORS), so no earlier line can pass for it.
    let (at, violet) = ((500, 970), [128, 0, 255]);
    let js = format!(
        "{} && (() => {{ const c = document.querySelector({own:?}); c.getContext('2d').clearRect(0, 0, c.width, c.height); return true; }})()",
        draw_line(&own, "#8000ff", 0.97)
    );
    assert!(eval::<bool>(page, &js).await);
    // Back on the sender's canvas: the server has published it.
    let echoed = until(Duration::from_secs(10), async || {
        ink_at(page, &own, at, violet).await
    })
    .await;
    assert!(
        echoed.is_ok(),
        "{sender}: its line never came back: {echoed:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        ink_at(page, &theirs, at, violet).await.is_err(),
        "{paused} showed a line drawn while it was paused"
    );
    assert!(eval::<bool>(page, &pause).await, "resume");
    let caught_up = until(Duration::from_secs(10), async || {
        ink_at(page, &theirs, at, violet).await
    })
    .await;
    assert!(
        caught_up.is_ok(),
        "{paused}: resumed, it never showed the line drawn while paused: {caught_up:?}"
    );
}

/// The grid of a draw run's cells, sender by row, receiver by column.
fn grid(failed: &[(&str, &str, Vec<Vec<u8>>)]) -> String {
    let mut grid = format!("from \\ to: {}\n", TRANSPORTS.join(" "));
    for sender in TRANSPORTS {
        let row: Vec<&str> = TRANSPORTS
            .iter()
            .map(|receiver| {
                let bad = failed.iter().any(|(s, r, _)| s == &sender && r == receiver);
                if bad { "MISSING" } else { "ok" }
            })
            .collect();
        grid += &format!("{sender}: {}\n", row.join(" "));
    }
    grid
}

async fn every_feed_over_every_transport_shows_on_the_page(engine: Engine) {
    let app = spawn_app(&[]).await;
    let browser = Browser::launch(engine).await;
    let (page, errors) = browser.open(&app.url("/demos/compare.html")).await;
    let mut clock_page = Some((page, errors));
    let mut failed = Vec::new();
    for feed in FeedName::ALL {
        let started = Instant::now();
        match (feed, &clock_page) {
            (FeedName::Clock, Some((page, _))) => the_clock_shows_in_every_lane(page).await,
            (FeedName::Chat, Some((page, _))) => a_message_shows_in_every_lane(page).await,
            (FeedName::Draw, _) => {
                // The lanes carry the chat and one other feed, never a third: done with the
                // clock's page.
                if let Some((page, errors)) = clock_page.take() {
                    let errors = errors.all().await;
                    assert!(errors.is_empty(), "console errors: {errors:#?}");
                    page.close().await.unwrap();
                }
                failed = strokes_between_every_pair_of_lanes(&app, &browser).await;
            }
            (other, None) => panic!("{other:?} must come before the draw feed"),
        }
        println!(
            "{}: matrix: {} over {} transports in {:.1?}",
            engine.name(),
            feed.as_str(),
            TRANSPORTS.len(),
            started.elapsed()
        );
    }
    assert!(
        failed.is_empty(),
        "{}: strokes missing from lanes' canvases:\n{}first: {:?}",
        engine.name(),
        grid(&failed),
        failed[0]
    );
}
in_every_engine!(every_feed_over_every_transport_shows_on_the_page);
