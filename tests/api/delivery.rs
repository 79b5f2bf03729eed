//! Every transport delivers successive ticks, in id order, fresh.

use std::time::Duration;

use futures_util::StreamExt;
use pushpoll::feed::{EventBody, WireEvent};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Streaming, TestApp, now_micros, spawn_app};

const WAIT: Duration = Duration::from_secs(3);

/// Each tick is well-formed, fresh, and later than the one before.
fn assert_successive_ticks(transport: &str, ticks: &[WireEvent]) {
    assert!(ticks.len() >= 3, "{transport}: only {} ticks", ticks.len());
    for pair in ticks.windows(2) {
        assert!(
            pair[1].id > pair[0].id,
            "{transport}: ids not increasing: {pair:?}"
        );
        assert!(
            pair[1].ts > pair[0].ts,
            "{transport}: ts not increasing: {pair:?}"
        );
    }
    for tick in ticks {
        let EventBody::Tick { time } = &tick.body else {
            panic!("{transport}: not a tick: {tick:?}")
        };
        assert!(
            time.ends_with('Z') && time.len() >= 20,
            "{transport}: odd time {time}"
        );
        // The id is the tick's Unix time in ms; ts its creation time in µs.
        assert!(
            tick.ts / 1000 >= tick.id.saturating_sub(5) && tick.ts / 1000 <= tick.id + 50,
            "{tick:?}"
        );
        let age_ms = now_micros().saturating_sub(tick.ts) / 1000;
        assert!(age_ms < 5_000, "{transport}: tick {age_ms} ms old");
    }
}

async fn app() -> TestApp {
    spawn_app(&["--tick-ms", "100"]).await
}

/// `GET /api/time` reads the clock of every `ts` (the pages time it to estimate their
/// offset): between the test's readings before and after, and never before a tick it follows.
#[tokio::test]
async fn the_time_answer_is_the_clock_that_stamps_ts() {
    let app = app().await;
    let tick_ts = app.poll("/poll/clock").await.0[0].ts;
    let before = now_micros();
    let res = app.http.get(app.url("/api/time")).send().await.unwrap();
    let after = now_micros();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: serde_json::Value = res.json().await.unwrap();
    let ts = body["ts"].as_u64().unwrap_or_else(|| panic!("{body}"));
    assert!((before..=after).contains(&ts), "{before} ≤ {ts} ≤ {after}");
    assert!(ts >= tick_ts, "{ts} before the tick's {tick_ts}");
}

#[tokio::test]
async fn short_polling_delivers_successive_ticks() {
    let app = app().await;
    let (mut ticks, mut next) = app.poll("/poll/clock").await;
    assert_eq!(
        ticks.len(),
        1,
        "without a cursor a poll gets the latest tick"
    );
    while ticks.len() < 4 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        let (events, n) = app.poll(&format!("/poll/clock?after={next}")).await;
        assert!(
            events.len() <= 1,
            "the clock is a state feed: at most the latest tick"
        );
        ticks.extend(events);
        next = n;
    }
    assert_successive_ticks("poll", &ticks);
}

#[tokio::test]
async fn long_polling_delivers_successive_ticks() {
    let app = app().await;
    let mut ticks = Vec::new();
    let mut cursor = app.latest_tick().await;
    while ticks.len() < 4 {
        let (events, next) = app
            .poll(&format!("/longpoll/clock?after={cursor}&timeout=5"))
            .await;
        assert_eq!(events.len(), 1, "a long poll answers with the next tick");
        assert_eq!(next, events[0].id);
        cursor = next;
        ticks.extend(events);
    }
    assert_successive_ticks("longpoll", &ticks);
}

#[tokio::test]
async fn sse_delivers_successive_ticks_with_id_and_event_lines() {
    let app = app().await;
    let mut stream = Streaming::open(app.http.get(app.url("/sse/clock"))).await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    assert_eq!(stream.headers["cache-control"], "no-cache, no-store");
    assert_eq!(stream.headers["x-accel-buffering"], "no");
    let first = stream.next_sse(WAIT).await.unwrap();
    assert_eq!(first.retry, Some(2000), "the stream opens with retry: 2000");
    let mut ticks = Vec::new();
    while ticks.len() < 4 {
        let (msg, event) = stream.next_sse_event(WAIT).await.unwrap();
        assert_eq!(msg.id, Some(event.id.to_string()));
        assert_eq!(msg.event.as_deref(), Some("tick"));
        ticks.push(event);
    }
    assert_successive_ticks("sse", &ticks);
}

#[tokio::test]
async fn the_iframe_stream_delivers_successive_ticks() {
    let app = app().await;
    let mut stream = Streaming::open(app.http.get(app.url("/iframe/clock"))).await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.headers["content-type"], "text/html; charset=utf-8");
    let mut ticks = Vec::new();
    while ticks.len() < 4 {
        ticks.push(stream.next_iframe_event(WAIT).await.unwrap());
    }
    assert_successive_ticks("iframe", &ticks);
}

#[tokio::test]
async fn websocket_delivers_successive_ticks_as_text_frames() {
    let app = app().await;
    let (mut socket, response) = tokio_tungstenite::connect_async(app.ws_url("/ws/clock"))
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    let mut ticks = Vec::new();
    while ticks.len() < 4 {
        match tokio::time::timeout(WAIT, socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            // The heartbeat (`{"heartbeat":MS}`) opens the socket; it is no event.
            Message::Text(text) if pushpoll::wire::is_heartbeat(text.as_bytes()) => {}
            Message::Text(text) => ticks.push(serde_json::from_str(&text).unwrap()),
            Message::Ping(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_successive_ticks("ws", &ticks);
}

#[tokio::test]
async fn a_subscription_without_a_cursor_starts_at_the_next_tick() {
    let app = spawn_app(&["--tick-ms", "400"]).await;
    let latest = app.latest_tick().await;
    let mut stream = Streaming::open(app.http.get(app.url("/sse/clock"))).await;
    let (_, first) = stream.next_sse_event(WAIT).await.unwrap();
    assert!(first.id > latest, "got the old tick {latest} again");
}
