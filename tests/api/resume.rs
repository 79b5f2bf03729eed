//! Resuming from a cursor: SSE with `Last-Event-ID`, long polling with `after=`, WebSocket
//! with `after=`. The clock is a state feed: a stale cursor gets the latest tick at once,
//! never a tick the client already has.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use pushpoll::feed::WireEvent;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Streaming, spawn_app};

const WAIT: Duration = Duration::from_secs(3);
/// Slow enough that "delivered at once" and "waited for the next tick" are far apart.
const TICK_MS: u64 = 700;

#[tokio::test]
async fn sse_resumes_after_last_event_id_with_nothing_lost_or_duplicated() {
    let app = spawn_app(&["--tick-ms", &TICK_MS.to_string()]).await;
    let mut stream = Streaming::open(app.http.get(app.url("/sse/clock"))).await;
    let (msg, seen) = stream.next_sse_event(WAIT).await.unwrap();
    drop(stream);
    // Miss at least one tick while disconnected.
    tokio::time::sleep(Duration::from_millis(TICK_MS * 3 / 2)).await;
    let latest = app.latest_tick().await;
    assert!(latest > seen.id);

    let started = Instant::now();
    let request = app
        .http
        .get(app.url("/sse/clock?after=1"))
        .header("Last-Event-ID", msg.id.unwrap());
    let mut resumed = Streaming::open(request).await;
    let (_, first) = resumed.next_sse_event(WAIT).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(TICK_MS / 2),
        "the missed state should come at once"
    );
    assert_eq!(
        first.id, latest,
        "resumed with the latest tick, not an older or the seen one"
    );
    let (_, second) = resumed.next_sse_event(WAIT).await.unwrap();
    assert!(second.id > first.id);
}

#[tokio::test]
async fn sse_with_an_up_to_date_last_event_id_waits_for_the_next_tick() {
    let app = spawn_app(&["--tick-ms", &TICK_MS.to_string()]).await;
    let latest = app.latest_tick().await;
    let request = app
        .http
        .get(app.url("/sse/clock"))
        .header("Last-Event-ID", latest.to_string());
    let mut stream = Streaming::open(request).await;
    let (_, first) = stream.next_sse_event(WAIT).await.unwrap();
    assert!(first.id > latest, "{} was already seen", first.id);
}

#[tokio::test]
async fn long_polling_resumes_after_its_cursor_with_nothing_lost_or_duplicated() {
    let app = spawn_app(&["--tick-ms", &TICK_MS.to_string()]).await;
    let seen = app.latest_tick().await;
    tokio::time::sleep(Duration::from_millis(TICK_MS * 3 / 2)).await;
    let latest = app.latest_tick().await;
    assert!(latest > seen);

    let started = Instant::now();
    let (events, next) = app
        .poll(&format!("/longpoll/clock?after={seen}&timeout=5"))
        .await;
    assert!(
        started.elapsed() < Duration::from_millis(TICK_MS / 2),
        "answered at once"
    );
    assert_eq!(
        events.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![latest]
    );
    assert_eq!(next, latest);

    let (events, next2) = app
        .poll(&format!("/longpoll/clock?after={next}&timeout=5"))
        .await;
    assert_eq!(events.len(), 1);
    assert!(
        events[0].id > latest,
        "no duplicate of the tick already delivered"
    );
    assert_eq!(next2, events[0].id);
}

#[tokio::test]
async fn websocket_resumes_after_its_cursor() {
    let app = spawn_app(&["--tick-ms", &TICK_MS.to_string()]).await;
    let seen = app.latest_tick().await;
    tokio::time::sleep(Duration::from_millis(TICK_MS * 3 / 2)).await;
    let latest = app.latest_tick().await;
    let url = app.ws_url(&format!("/ws/clock?after={seen}"));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut ids = Vec::new();
    while ids.len() < 2 {
        if let Message::Text(text) = tokio::time::timeout(WAIT, socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            && !pushpoll::wire::is_heartbeat(text.as_bytes())
        {
            ids.push(serde_json::from_str::<WireEvent>(&text).unwrap().id);
        }
    }
    assert_eq!(ids[0], latest);
    assert!(ids[1] > ids[0]);
}
