//! The hidden-iframe stream: same events as SSE, padded prelude, keep-alives, the 256 KiB
//! response limit, and the same keep-alive rule for SSE.

use std::time::Duration;

use pushpoll::feed::WireEvent;
use pushpoll::transport::iframe::PRELUDE_MIN_BYTES;
use pushpoll::wire::IFRAME_DOCUMENT_BYTES;

use crate::support::{Streaming, find, spawn_app};

const WAIT: Duration = Duration::from_secs(3);

#[tokio::test]
async fn the_iframe_stream_parses_into_the_same_events_as_sse() {
    let app = spawn_app(&["--tick-ms", "100"]).await;
    let cursor = app.latest_tick().await;
    let mut sse =
        Streaming::open(app.http.get(app.url(&format!("/sse/clock?after={cursor}")))).await;
    let mut iframe = Streaming::open(
        app.http
            .get(app.url(&format!("/iframe/clock?after={cursor}"))),
    )
    .await;
    let mut from_sse: Vec<WireEvent> = Vec::new();
    let mut from_iframe: Vec<WireEvent> = Vec::new();
    while from_sse.len() < 3 {
        from_sse.push(sse.next_sse_event(WAIT).await.unwrap().1);
    }
    while from_iframe.len() < 3 {
        from_iframe.push(iframe.next_iframe_event(WAIT).await.unwrap());
    }
    assert_eq!(from_sse, from_iframe);
}

#[tokio::test]
async fn the_iframe_prelude_is_padded_past_one_kib_before_the_first_event() {
    let app = spawn_app(&["--tick-ms", "100"]).await;
    let mut stream = Streaming::open(app.http.get(app.url("/iframe/clock"))).await;
    while find(stream.buffered(), b"<script>").is_none() {
        assert!(stream.fill(WAIT).await);
    }
    let first_script = find(stream.buffered(), b"<script>").unwrap();
    assert!(
        first_script > PRELUDE_MIN_BYTES,
        "first event at byte {first_script}"
    );
    let head = String::from_utf8_lossy(&stream.buffered()[..first_script]).to_string();
    assert!(head.starts_with("<!doctype html>"), "{head}");
    assert!(head.contains("<meta charset=\"utf-8\">"));
}

#[tokio::test]
async fn iframe_and_sse_send_heartbeats_when_the_feed_is_quiet() {
    let app = spawn_app(&["--tick-ms", "60000", "--keepalive", "150ms"]).await;
    let cursor = app.latest_tick().await;
    let mut iframe = Streaming::open(
        app.http
            .get(app.url(&format!("/iframe/clock?after={cursor}"))),
    )
    .await;
    let mut sse =
        Streaming::open(app.http.get(app.url(&format!("/sse/clock?after={cursor}")))).await;
    // One heartbeat when the stream opens, then one per quiet interval: three in all,
    // each saying the interval in ms, and no event.
    let beat = b"<script>parent.pushpoll({\"heartbeat\":150})</script>\n";
    while iframe
        .buffered()
        .windows(beat.len())
        .filter(|w| w == beat)
        .count()
        < 3
    {
        assert!(iframe.fill(WAIT).await);
    }
    let scripts = iframe
        .buffered()
        .windows(8)
        .filter(|w| w == b"<script>")
        .count();
    let beats = iframe
        .buffered()
        .windows(beat.len())
        .filter(|w| w == beat)
        .count();
    assert_eq!(scripts, beats, "only heartbeats on a quiet stream");
    let retry = sse.next_sse(WAIT).await.unwrap();
    assert_eq!(retry.retry, Some(2000));
    for _ in 0..3 {
        let heartbeat = sse.next_sse(WAIT).await.unwrap();
        assert_eq!(heartbeat.event.as_deref(), Some("heartbeat"));
        assert_eq!(heartbeat.data.as_deref(), Some(r#"{"heartbeat":150}"#));
        assert_eq!(heartbeat.id, None, "a heartbeat leaves Last-Event-ID alone");
    }
}

#[tokio::test]
async fn the_iframe_response_ends_after_256_kib_and_resumes_from_its_cursor() {
    // A 1 ms clock fills 256 KiB in about two seconds.
    let app = spawn_app(&["--tick-ms", "1"]).await;
    let mut stream = Streaming::open(app.http.get(app.url("/iframe/clock"))).await;
    stream.read_to_end(Duration::from_secs(20)).await;
    let total = stream.total_bytes;
    assert!(
        total >= IFRAME_DOCUMENT_BYTES,
        "ended early at {total} bytes"
    );
    assert!(
        total < IFRAME_DOCUMENT_BYTES + 512,
        "ran {total} bytes, far past the limit"
    );
    assert!(
        stream.buffered().ends_with(b")</script>\n"),
        "ended inside a chunk"
    );
    let mut last = None;
    while let Some(event) = stream.next_iframe_event(WAIT).await {
        last = Some(event.id);
    }
    let last = last.expect("events in the stream");

    let mut resumed = Streaming::open(
        app.http
            .get(app.url(&format!("/iframe/clock?after={last}"))),
    )
    .await;
    let first = resumed.next_iframe_event(WAIT).await.unwrap();
    assert!(first.id > last);
}
